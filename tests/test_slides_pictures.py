"""Picture kinds of the slides stage: code (highlighted, paged, never cut), tables (header, paging), math."""

from __future__ import annotations

import numpy as np
import pytest

from stages.settings import Settings
from stages.slides.code import draw_code, highlight
from stages.slides.deck import _theme
from stages.slides.formula import draw_math, readable
from stages.slides.layout import SafeArea
from stages.slides.table import draw_table

UNION_FIND = """def find(parent, x):
    # 経路圧縮: 根まで辿って親を付け替える
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x
"""
KEYWORD = (0xFF, 0x7B, 0x72)  # github-dark's keyword colour
PANEL = (0x0D, 0x11, 0x17)


def frame(width: int = 1280, height: int = 720) -> tuple[Settings, SafeArea]:
    settings = Settings()
    settings.video.width, settings.video.height = width, height
    return settings, SafeArea.of(settings)


def near(image, colour, tol: int = 6) -> int:
    pixels = np.asarray(image.convert("RGB")).astype(int)
    return int((np.abs(pixels - np.array(colour)).max(axis=2) <= tol).sum())


def test_code_is_highlighted_in_one_picture_when_short():
    settings, area = frame()
    pages = draw_code(UNION_FIND, "python", "union_find.py", "find", _theme(settings, "ja"), area, None)
    assert len(pages) == 1
    code = pages[0].boxes[-1]
    assert code["kind"] == "code" and code["lines"] == [1, 6] and code["pages"] == 1
    assert near(pages[0].image, KEYWORD, 20) > 50  # def / while / return in the keyword colour
    assert near(pages[0].image, PANEL) > 10000
    x0, y0, x1, y1 = code["box"]
    assert area.allows([x0, y0, x1, y1])
    assert code["size"] >= round(720 * 0.026)  # legible


def test_long_code_is_paged_and_every_line_is_on_some_page():
    settings, area = frame(640, 360)
    source = "\n".join(f"value_{i} = compute({i})  # 行 {i}" for i in range(1, 41))
    pages = draw_code(source, "python", None, "長いコード", _theme(settings, "ja"), area, None)
    assert len(pages) > 1
    ranges = [p.boxes[-1]["lines"] for p in pages]
    assert ranges[0][0] == 1 and ranges[-1][1] == 40
    assert all(b[0] == a[1] + 1 for a, b in zip(ranges, ranges[1:]))  # consecutive: nothing skipped
    assert all(p.boxes[-1]["pages"] == len(pages) for p in pages)
    assert pages[0].image.tobytes() != pages[1].image.tobytes()


def test_unknown_language_and_wide_lines_wrap_instead_of_cutting():
    settings, area = frame(640, 360)
    source = "x" * 400
    pages = draw_code(source, "no-such-language", None, "wide", _theme(settings, "en"), area, None, lang="en")
    assert pages and pages[0].boxes[-1]["lines"] == [1, 1]
    assert highlight("a = 1", "no-such-language") == [[("a = 1", highlight("a", None)[0][0][1], False)]]


def test_table_header_is_emphasised_and_long_tables_are_paged():
    settings, area = frame(640, 360)
    theme = _theme(settings, "ja")
    rows = [[f"行{i}", "u32, u64, usize", "PyLong" if i % 2 else "符号なし整数。リリースビルドでは折り返します。"] for i in range(30)]
    pages = draw_table(["Rust", "型", "説明"], rows, "整数型", "型の対応", theme, area, None)
    assert len(pages) > 1
    spans = [p.boxes[-1]["rows"] for p in pages]
    assert spans[0][0] == 1 and spans[-1][1] == 30
    assert all(b[0] == a[1] + 1 for a, b in zip(spans, spans[1:]))
    table = pages[0].boxes[-1]
    top, bottom = table["header"]
    header_band = np.asarray(pages[0].image.convert("RGB"))[top + 2:bottom - 2, table["box"][0] + 2:table["box"][2] - 2]
    body_band = np.asarray(pages[0].image.convert("RGB"))[bottom + 2:bottom + 6, table["box"][0] + 2:table["box"][2] - 2]
    # the header band is tinted with the accent colour (green), the body is not
    assert np.median(header_band[..., 1]) > np.median(body_band[..., 1]) + 20
    assert all(area.allows(p.boxes[-1]["box"]) for p in pages)


def test_short_table_fits_one_picture():
    settings, area = frame()
    pages = draw_table(["A", "B", "日数"], [["x", "x", "35"], ["x", "o", "56"]], None, "日数", _theme(settings, "ja"), area, None)
    assert len(pages) == 1 and pages[0].boxes[-1]["rows"] == [1, 2] and not pages[0].truncated


@pytest.mark.parametrize(("tex", "shown"), [
    (r"E = \sum_i (y_i - \tilde{y}_i)^2", "E = Σ_i (y_i - y\u0303_i)^2"),
    (r"\frac{a}{\sqrt{b}} \le \infty", "(a)/(√(b)) ≤ ∞"),
    (r"\mathrm{unknown} + \weird{x}", r"unknown + \weird{x}"),
])
def test_math_is_made_readable_and_nothing_is_lost(tex, shown):
    assert readable(tex) == [shown]


def test_math_picture_has_a_light_box_with_the_formula():
    settings, area = frame()
    pages = draw_math(r"\begin{aligned} E &= a^2 \\ &= b \end{aligned}", None, "式", _theme(settings, "ja"), area, None)
    box = pages[0].boxes[-1]
    assert box["kind"] == "math" and box["lines"] == ["E = a^2", "= b"]
    x0, y0, x1, y1 = box["box"]
    inside = np.asarray(pages[0].image.convert("RGB"))[y0 + 4:y1 - 4, x0 + 4:x1 - 4]
    assert inside.mean() > 180  # a light panel behind dark type


# A formula slide made from real Markdown (the formula; the article's shape follows
# ../shared/eval/ja/boltzmann_machine4.md), and one formula mathtext cannot parse.
BOLTZMANN_MD = r"""---
title: ボルツマンマシンのエネルギー
---

## エネルギー

ボルツマンマシンでは、状態ごとにエネルギーを考えます。エネルギーは次の式で表されます。

$$
E = -\sum_{i<j} W_{ij} s_i s_j
$$

エネルギーが低い状態ほど実現しやすくなります。

## 独自の記法

この記事だけの記法もあります。次の式を見てください。

$$
\frobnicate{x} = y
$$

これは説明用の式です。
"""


def _mathtext_glyphs(tex: str) -> list[str]:
    """The characters mathtext sets for ``tex`` (its layout, not pixels)."""
    from matplotlib import mathtext

    from stages.slides.formula import tex_lines

    parser = mathtext.MathTextParser("path")
    sources = [piece for line in tex_lines(tex) for piece in line if isinstance(piece, str)]
    sources += [cell for line in tex_lines(tex) for piece in line if not isinstance(piece, str)
                for row in piece.rows for cell in row]
    return [chr(glyph[2]) for source in sources for glyph in parser.parse(f"${source}$", 72).glyphs]


def test_a_formula_slide_from_markdown_is_typeset_without_braces_and_legible_at_1080p(tmp_path):
    """The issue's formula goes article -> script -> slides: its picture is typeset by mathtext (no
    literal braces or underscores among the glyphs, unlike the text fallback), dark ink at least
    a body size tall on a light panel at 1920x1080; a formula mathtext cannot parse is shown as
    readable text, and the slides stage notes it."""
    import json

    from PIL import Image

    from stages.fetch.markdown import parse_markdown
    from stages.script.extractive import write_extractive
    from stages.script.loader import dump_script
    from stages.settings import load_settings
    from stages.slides import generate_slides
    from stages.slides.formula import readable
    from tests.test_slides import Notes

    settings = load_settings(home=tmp_path / "home", video={"width": 1920, "height": 1080})
    script = write_extractive(parse_markdown(BOLTZMANN_MD, name="boltzmann.md"), settings)
    job = tmp_path / "job"
    job.mkdir()
    (job / "script.yaml").write_text(dump_script(script), "utf-8")
    notes = Notes()
    index = json.loads(generate_slides(job / "script.yaml", job, settings, cache_dir=tmp_path / "cache",
                                       note=notes).read_text("utf-8"))
    maths = {p["path"]: p["boxes"][-1] for p in index["pictures"] if p["kind"] == "math"}
    assert len(maths) == 2, index["pictures"]
    typeset = [(path, box) for path, box in maths.items() if box["engine"] == "mathtext"]
    fallback = [box for box in maths.values() if box["engine"] == "text"]
    assert len(typeset) == 1 and len(fallback) == 1
    assert r"Unknown symbol: \frobnicate" in fallback[0]["reason"]
    assert [n["reason"] for n in notes.named("math shown as text")] == [fallback[0]["reason"]]

    tex = r"E = -\sum_{i<j} W_{ij} s_i s_j"
    glyphs = _mathtext_glyphs(tex)
    assert "W" in glyphs and "∑" in glyphs and not set("{}_\\") & set(glyphs), glyphs
    assert "{" in "".join(readable(tex))  # what the text fallback would have shown: Σ_{i<j}

    path, box = typeset[0]
    assert box["size"] >= round(1080 * 0.035)
    x0, y0, x1, y1 = box["box"]
    with Image.open(path) as im:
        panel = np.asarray(im.convert("L"))[y0 + 4:y1 - 4, x0 + 4:x1 - 4]
    assert np.median(panel) > 180  # a light panel ...
    rows = np.where((panel < 90).any(axis=1))[0]  # ... with dark ink
    assert rows.size and rows.max() - rows.min() >= 80, rows  # Σ with i<j under it: a tall, legible line


def test_matplotlib_writes_its_settings_where_it_is_told_never_under_home(tmp_path):
    """mathtext's first use sets MPLCONFIGDIR to the folder it is given: its font list goes there,
    nothing into $HOME (a fresh process, so matplotlib is imported for the first time)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    home, config = tmp_path / "home", tmp_path / "cache" / "matplotlib"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), PYTHONPATH=str(root))
    code = ("import sys; from pathlib import Path; from stages.slides.formula import mathtext_pictures; "
            "p = mathtext_pictures(r'x^{2}', 40, config_dir=Path(sys.argv[1])); print(p[0].mode, p[0].width > 10)")
    done = subprocess.run([sys.executable, "-c", code, str(config)], env=env, capture_output=True, text=True,
                          timeout=120, cwd=root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["RGBA", "True"]
    assert list(config.glob("fontlist-*.json"))
    assert not any(home.rglob("*")), list(home.rglob("*"))


# ../shared/eval/ja/markov_eigenvalue.md (kaityo256, CC BY 4.0): a matrix equation, which mathtext
# alone cannot set (no array environment).
MARKOV = r"""
\left(
\begin{array}{c}
p_0(t+1)\\
p_1(t+1)\\
p_2(t+1)
\end{array}
\right)
=
\left(
\begin{array}{ccc}
1 & 1/2 & 0 \\
0 & 0 & 1/2 \\
0 & 1/2 & 1
\end{array}
\right)
\left(
\begin{array}{c}
p_0(t)\\
p_1(t)\\
p_2(t)
\end{array}
\right)
"""


def test_a_matrix_equation_is_typeset_cell_by_cell_between_parentheses():
    """Arrays and pmatrix are laid out by rows and columns of mathtext cells with drawn delimiters:
    one picture line (not one line per row, nor the TeX source), three rows of ink, parentheses."""
    from stages.slides.formula import Matrix, mathtext_pictures, tex_lines

    lines = tex_lines(MARKOV)
    assert len(lines) == 1 and [type(p).__name__ for p in lines[0]] == ["Matrix", "str", "Matrix", "Matrix"]
    assert lines[0][2] == Matrix((("1", "1/2", "0"), ("0", "0", "1/2"), ("0", "1/2", "1")), "(", ")")
    assert not set("{}\\&") & set(_mathtext_glyphs(MARKOV))
    settings, area = frame(1920, 1080)
    pages = draw_math(MARKOV, None, "遷移行列", _theme(settings, "ja"), area, None)
    box = pages[0].boxes[-1]
    assert box["engine"] == "mathtext" and len(pages) == 1
    picture = mathtext_pictures(r"\begin{pmatrix} 1 & 0 \\ 0 & 1 \\ 1 & 1 \end{pmatrix}", 60)[0]
    alpha = np.asarray(picture.getchannel("A")) > 128
    assert alpha.any(axis=1)[picture.height // 10: picture.height * 9 // 10].all()  # parentheses, full height
    runs = alpha[:, picture.width // 4: picture.width * 3 // 4].any(axis=1)  # inside them: three rows of ink
    assert int(np.sum(runs[1:] & ~runs[:-1]) + runs[0]) == 3
