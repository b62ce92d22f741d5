"""The slides stage: layouts, safe areas, kinsoku, auto-fit, cache, index contract, stage wrapper."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from stages.base import Cancelled, JobContext
from stages.fonts import FontNotFound
from stages.linebreak import FORBIDDEN_END, FORBIDDEN_START
from stages.settings import load_settings
from stages.slides import SlidesStage, generate_slides
from stages.slides.typeset import parse_colour

LONG_JA = (
    "保存ボタンを押すと、一瞬固まるのだ！原因はメインスレッドで同期的にファイルを書いていることなのだ。"
    "「非同期I/O」に切り替えれば、画面は止まらなくなるのだ。さらに、書き込みをまとめることで回数も減らせるのだ。"
)
LONG_EN = (
    "The write-ahead log grows until a checkpoint copies pages back into the database file, "
    "and by default SQLite runs an automatic checkpoint when the WAL reaches one thousand pages."
)


def script_data(language: str = "ja", scale: int = 1) -> dict[str, Any]:
    """A four-section script; ``scale`` repeats the texts to make them long."""
    ja = language == "ja"
    return {
        "title": ("SQLiteのWALモードって何？" if ja else "What is SQLite's WAL mode?") * scale,
        "language": language,
        "sections": [
            {"title": "はじめに" if ja else "Introduction", "narrations": ["今日はWALの話なのだ。" if ja else "Today: WAL."]},
            {
                "title": ("WALの仕組みと、読み込みが止まらない理由" if ja else "How the WAL keeps readers going") * scale,
                "narrations": [LONG_JA * scale if ja else LONG_EN * scale],
            },
            {
                "title": "ポイント" if ja else "Key points",
                "narrations": ["要点をまとめるのだ。" if ja else "Let us sum up."],
                "slide": {"heading": "覚えておくこと" if ja else "Remember",
                          "bullets": ([LONG_JA[:40], "「チェックポイント」で書き戻す", "読み手は待たない"] if ja
                                      else [LONG_EN[:60], "Checkpoints copy pages back", "Readers never wait"]) * scale},
            },
            {"title": "まとめ" if ja else "Summary", "narrations": [LONG_JA if ja else LONG_EN]},
        ],
    }


def make_job(tmp_path: Path, data: dict[str, Any], name: str = "job") -> Path:
    job = tmp_path / name
    job.mkdir(parents=True, exist_ok=True)
    (job / "script.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return job


@pytest.fixture
def settings(tmp_path: Path):
    return load_settings(home=tmp_path / "home", video={"width": 320, "height": 180})


CHARACTER = [{"id": "zundamon", "character": {"base": "/nonexistent/zundamon.png"}}]


@pytest.fixture
def with_character(tmp_path: Path):
    """Settings with a persona that has a character: the slides keep the lower corners free."""
    return load_settings(home=tmp_path / "home", video={"width": 320, "height": 180}, personas=CHARACTER)


class Notes:
    """A note callback that keeps what it was told."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, message: str, **data: Any) -> None:
        self.items.append((message, data))

    def named(self, message: str) -> list[dict[str, Any]]:
        return [data for m, data in self.items if m == message]


def run(job: Path, settings, tmp_path: Path, **kwargs: Any) -> tuple[dict[str, Any], Notes]:
    notes = Notes()
    path = generate_slides(job / "script.yaml", job, settings, cache_dir=tmp_path / "cache", note=notes, **kwargs)
    assert path == job / "slides" / "index.json"
    return json.loads(path.read_text("utf-8")), notes


def text_boxes(index: dict[str, Any]):
    for slide in index["slides"]:
        for box in slide["boxes"]:
            yield slide, box


def assert_clear_of_safe_areas(index: dict[str, Any]) -> None:
    w, h = index["width"], index["height"]
    band = index["safe_area"]["subtitle_top"]
    corners = index["safe_area"]["corners"]
    for slide, entry in text_boxes(index):
        if slide["layout"] == "generated":
            continue
        x0, y0, x1, y1 = entry["box"]
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (slide["section"], entry)
        assert y1 <= band, f"section {slide['section']} {entry['kind']} enters the subtitle band: {entry}"
        for cx0, cy0, cx1, cy1 in corners:
            overlaps = x0 < cx1 and x1 > cx0 and y0 < cy1 and y1 > cy0
            assert not overlaps, f"section {slide['section']} {entry['kind']} enters a corner: {entry}"


@pytest.mark.parametrize("language", ["ja", "en"])
@pytest.mark.parametrize("scale", [1, 4])
def test_index_contract_and_safe_areas(tmp_path: Path, with_character, language: str, scale: int):
    """One slide per section, in order, absolute cached PNGs with their sha256; boxes avoid the safe areas."""
    job = make_job(tmp_path, script_data(language, scale))
    index, _ = run(job, with_character, tmp_path)
    assert index["version"] == 1 and (index["width"], index["height"]) == (320, 180)
    assert [s["section"] for s in index["slides"]] == [0, 1, 2, 3]
    assert [s["layout"] for s in index["slides"]] == ["title", "bullets", "bullets", "closing"]
    for slide in index["slides"]:
        path = Path(slide["path"])
        assert path.is_absolute() and path.parent == tmp_path / "cache" / "slides"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == slide["sha256"]
        with Image.open(path) as im:
            assert im.size == (320, 180)
        assert any(b["kind"] in ("heading", "title") for b in slide["boxes"])
    assert index["safe_area"]["subtitle_top"] == round(180 * (1 - 0.22))
    assert len(index["safe_area"]["corners"]) == 2
    assert_clear_of_safe_areas(index)


@pytest.mark.parametrize("size", [(320, 180), (640, 360)])
def test_no_line_breaks_kinsoku_rules(tmp_path: Path, size: tuple[int, int]):
    """No drawn line starts with a forbidden character or ends with an opening bracket."""
    settings = load_settings(home=tmp_path / "home", video={"width": size[0], "height": size[1]})
    job = make_job(tmp_path, script_data("ja", 2))
    index, _ = run(job, settings, tmp_path)
    checked = 0
    for _, entry in text_boxes(index):
        for i, line in enumerate(entry.get("lines", [])):
            checked += 1
            assert line[0] not in FORBIDDEN_START, (entry["kind"], line)
            assert line[-1] not in FORBIDDEN_END, (entry["kind"], line)
            assert line == line.strip()
    assert checked > 10


def test_latin_words_are_not_broken(tmp_path: Path, settings):
    """English lines break between words: every drawn word is a whole word of the source."""
    data = script_data("en", 2)
    job = make_job(tmp_path, data)
    index, _ = run(job, settings, tmp_path)
    words = set(json.dumps(data).replace("\\n", " ").replace('"', " ").split())
    checked = 0
    for _, entry in text_boxes(index):
        for line in entry.get("lines", []):
            for word in line.split():
                if word.endswith("...") or word.endswith("…"):
                    continue  # the last word before a truncation mark is whole too, but followed by it
                if re.fullmatch(r"\d+/\d+", word):
                    continue  # a long list's page mark ("Remember 1/2"): pages, not a cut word
                checked += 1
                assert word in words or word.rstrip(".,") in {w.rstrip(".,") for w in words}, (word, line)
    assert checked > 20


def test_long_text_is_shrunk_then_truncated_with_a_note(tmp_path: Path, settings):
    """Text far too long for the slide is truncated with an ellipsis, noted, and still inside the safe area."""
    data = script_data("ja", 1)
    data["sections"][2]["slide"]["bullets"] = [LONG_JA * 3] * 6
    job = make_job(tmp_path, data)
    index, notes = run(job, settings, tmp_path)
    truncated = notes.named("slide text truncated")
    assert any(n["section"] == 2 for n in truncated)
    bullets = next(b for b in index["slides"][2]["boxes"] if b["kind"] == "bullets")
    assert bullets["lines"][-1].endswith("…")
    assert bullets["size"] == max(5, round(180 * 0.03))
    assert_clear_of_safe_areas(index)


def test_moderate_text_shrinks_without_truncation(tmp_path: Path):
    """A paragraph that overflows at the preferred size is drawn smaller, whole."""
    settings = load_settings(home=tmp_path / "home", video={"width": 640, "height": 360}, personas=CHARACTER)
    data = script_data("ja", 1)
    data["sections"][2]["slide"]["bullets"] = [LONG_JA[:60], LONG_JA[60:110], "読み手は待たない", "書き手も待たない"]
    job = make_job(tmp_path, data)
    index, notes = run(job, settings, tmp_path)
    bullets = next(b for b in index["slides"][2]["boxes"] if b["kind"] == "bullets")
    assert not [n for n in notes.named("slide text truncated") if n["section"] == 2]
    assert bullets["size"] < round(360 * 0.047)
    assert "".join(bullets["lines"]).replace(" ", "") == "".join(data["sections"][2]["slide"]["bullets"]).replace(" ", "")


def test_subtitle_band_and_corners_are_background_only(tmp_path: Path, with_character):
    """Pixel check: the subtitle band and the character corners hold nothing but the background colour."""
    settings = with_character
    job = make_job(tmp_path, script_data("ja", 4))
    index, _ = run(job, settings, tmp_path)
    assert len(index["safe_area"]["corners"]) == 2
    background = np.array(parse_colour(settings.theme.background), dtype=np.uint8)
    band = index["safe_area"]["subtitle_top"]
    for slide in index["slides"]:
        pixels = np.asarray(Image.open(slide["path"]).convert("RGB"))
        assert (pixels[band:] == background).all(), f"section {slide['section']}: band not clear"
        for x0, y0, x1, y1 in index["safe_area"]["corners"]:
            assert (pixels[y0:y1, x0:x1] == background).all(), f"section {slide['section']}: corner not clear"
        assert (pixels[: band] != background).any()


def test_bullets_fall_back_to_narration_and_heading_to_section_title(tmp_path: Path, settings):
    """With no slide content, the heading is the section title and bullets are shortened narration sentences."""
    job = make_job(tmp_path, script_data("ja", 1))
    index, _ = run(job, settings, tmp_path)
    boxes = {b["kind"]: b for b in index["slides"][1]["boxes"]}
    assert "".join(boxes["heading"]["lines"]) == "WALの仕組みと、読み込みが止まらない理由"
    body = "".join(boxes["bullets"]["lines"])
    assert body.startswith("保存ボタンを押すと")
    assert "。" not in body


def test_title_slide_shows_site_and_date_from_article(tmp_path: Path, settings):
    """The title slide carries the video title, the article's site and its date."""
    job = make_job(tmp_path, script_data("ja", 1))
    (job / "article.json").write_text(json.dumps({"title": "x", "site": "example.com",
                                                  "published": "2024-05-01T10:00:00"}), "utf-8")
    index, _ = run(job, settings, tmp_path)
    boxes = {b["kind"]: b for b in index["slides"][0]["boxes"]}
    assert boxes["kicker"]["lines"] == ["example.com"]
    assert "".join(boxes["title"]["lines"]) == "SQLiteのWALモードって何？"
    assert boxes["footer"]["lines"] == ["2024.05.01"]


def test_rerun_hits_the_cache_and_an_edit_redraws_one_slide(tmp_path: Path, settings):
    """A rerun draws nothing (files untouched); editing one section redraws only that slide."""
    job = make_job(tmp_path, script_data("ja", 1))
    first, notes = run(job, settings, tmp_path)
    assert first["stats"] == {"drawn": 4, "cached": 0}
    mtimes = {s["path"]: Path(s["path"]).stat().st_mtime_ns for s in first["slides"]}
    second, notes = run(job, settings, tmp_path)
    assert second["stats"] == {"drawn": 0, "cached": 4}
    assert notes.named("slides drawn") == [{"drawn": 0, "cached": 4}]
    assert second["slides"] == first["slides"]
    assert {s["path"]: Path(s["path"]).stat().st_mtime_ns for s in second["slides"]} == mtimes
    data = script_data("ja", 1)
    data["sections"][2]["slide"]["bullets"] = ["変更した箇条書き"]
    make_job(tmp_path, data)
    third, _ = run(job, settings, tmp_path)
    assert third["stats"] == {"drawn": 1, "cached": 3}
    assert [a["path"] == b["path"] for a, b in zip(first["slides"], third["slides"])] == [True, True, False, True]


def test_parallel_and_serial_drawing_give_identical_slides(tmp_path: Path):
    """The thread pools do not change the output: same slides and pictures, in the same order, with
    the same paths and bytes, with one or four workers."""
    job = make_job(tmp_path, script_data("en", 2))
    one = load_settings(home=tmp_path / "home", video={"width": 320, "height": 180}, slides={"workers": 1})
    four = load_settings(home=tmp_path / "home", video={"width": 320, "height": 180}, slides={"workers": 4})
    a = json.loads(generate_slides(job / "script.yaml", job, one, cache_dir=tmp_path / "c1").read_text())
    b = json.loads(generate_slides(job / "script.yaml", job, four, cache_dir=tmp_path / "c2").read_text())
    for kind in ("slides", "pictures"):
        assert [s["sha256"] for s in a[kind]] == [s["sha256"] for s in b[kind]]
        assert [Path(s["path"]).name for s in a[kind]] == [Path(s["path"]).name for s in b[kind]]
    assert [{k: v for k, v in p.items() if k != "path"} for p in a["pictures"]] == \
        [{k: v for k, v in p.items() if k != "path"} for p in b["pictures"]]
    assert len({p["sha256"] for p in a["pictures"]}) > len(a["slides"])  # the marked bullets: pictures of their own


def test_progress_is_reported_per_slide(tmp_path: Path, settings):
    """Progress goes 0..n, one step per slide, never backwards."""
    job = make_job(tmp_path, script_data("ja", 1))
    seen: list[tuple[int, int]] = []
    generate_slides(job / "script.yaml", job, settings, lambda c, t, m: seen.append((c, t)),
                    cache_dir=tmp_path / "cache")
    assert seen[0] == (0, 4) and seen[-1] == (4, 4)
    assert [c for c, _ in seen] == sorted(c for c, _ in seen) and len(seen) == 5


def test_cancel_stops_the_stage(tmp_path: Path, settings):
    """A set cancellation token raises Cancelled and writes no index."""
    job = make_job(tmp_path, script_data("ja", 1))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        generate_slides(job / "script.yaml", job, settings, cancel=cancel, cache_dir=tmp_path / "cache")
    assert not (job / "slides" / "index.json").exists()


def test_font_without_japanese_fails_with_install_hint(tmp_path: Path):
    """A theme font that cannot draw Japanese is refused with what to install."""
    settings = load_settings(home=tmp_path / "home", video={"width": 320, "height": 180},
                             theme={"font": "DejaVu Sans"})
    job = make_job(tmp_path, script_data("ja", 1))
    with pytest.raises(FontNotFound, match="fonts-noto-cjk"):
        generate_slides(job / "script.yaml", job, settings, cache_dir=tmp_path / "cache")


def test_logo_sits_in_the_top_corner(tmp_path: Path):
    """A theme logo is drawn small in the top right, inside the margins, and text keeps clear of it."""
    logo = tmp_path / "logo.png"
    Image.new("RGBA", (200, 100), (255, 200, 0, 255)).save(logo)
    settings = load_settings(home=tmp_path / "home", video={"width": 640, "height": 360}, theme={"logo": str(logo)})
    data = script_data("en", 1)
    data["sections"][1]["title"] = "A very long heading that would otherwise run under the logo in the corner"
    job = make_job(tmp_path, data)
    index, _ = run(job, settings, tmp_path)
    for slide in index["slides"]:
        boxes = slide["boxes"]
        logo_box = next(b["box"] for b in boxes if b["kind"] == "logo")
        assert logo_box[2] <= 640 - round(640 * 0.05) and logo_box[1] >= round(360 * 0.05)
        assert logo_box[3] - logo_box[1] <= round(360 * 0.075)
        for b in boxes:
            if b["kind"] not in ("logo", "card"):
                x0, y0, x1, y1 = b["box"]
                assert not (x0 < logo_box[2] and x1 > logo_box[0] and y0 < logo_box[3] and y1 > logo_box[1]), b
    assert_clear_of_safe_areas(index)


def test_stage_fingerprint_and_run(tmp_path: Path, settings):
    """The stage fingerprints script, article and settings, and lists the index and PNGs as outputs."""
    job_dir = make_job(tmp_path, script_data("ja", 1))
    job = JobContext(job_id="j1", job_dir=job_dir, settings=settings, cache_dir=tmp_path / "cache",
                     source=job_dir / "script.yaml", kind="script")
    stage = SlidesStage()
    assert (stage.name, stage.resource) == ("slides", "cpu")
    before = stage.fingerprint(job)
    result = stage.run(job, lambda c, t, m: None)
    assert result.outputs[0] == job_dir / "slides" / "index.json"
    index = json.loads(result.outputs[0].read_text("utf-8"))
    pictures = {p["path"] for p in [*index["slides"], *index["pictures"]]}  # every picture is an output
    assert len(pictures) > 4 and len(result.outputs) == 1 + len(pictures) and all(p.is_file() for p in result.outputs)
    assert stage.fingerprint(job) == before
    (job_dir / "article.json").write_text('{"site": "a"}', "utf-8")
    assert stage.fingerprint(job) != before
    bigger = load_settings(home=tmp_path / "home", video={"width": 640, "height": 360})
    job.settings = bigger
    assert stage.fingerprint(job) not in (before,)


def _paragraph_lines(lines: list[str], paragraphs: list[str]) -> list[list[str]]:
    """Split a block's drawn lines back into its paragraphs (lines join to the paragraph, spaces aside)."""
    out: list[list[str]] = []
    i = 0
    for paragraph in paragraphs:
        target, joined, group = paragraph.replace(" ", ""), "", []
        while i < len(lines) and joined != target:
            group.append(lines[i])
            joined += lines[i].replace(" ", "")
            i += 1
        assert joined == target, (paragraph, lines)
        out.append(group)
    return out


def _widows(tmp_path: Path, settings, bullets: list[list[str]]) -> list[tuple[str, list[str]]]:
    body = [{"title": f"見出し{i}", "narrations": ["本文なのだ。"], "slide": {"heading": f"見出し{i}", "bullets": group}}
            for i, group in enumerate(bullets)]
    ends = [{"title": t, "narrations": ["本文なのだ。"]} for t in ("はじめに", "まとめ")]
    data = {"title": "孤立した行", "language": "ja", "sections": [ends[0], *body, ends[1]]}
    job = make_job(tmp_path, data, name=f"job-{len(list(tmp_path.iterdir()))}")
    index, notes = run(job, settings, tmp_path)
    assert not notes.named("slide text truncated")
    found = []
    for slide in index["slides"][1:-1]:
        assert slide["layout"] == "bullets"
        (box,) = [b for b in slide["boxes"] if b["kind"] == "bullets"]
        for paragraph, group in zip(bullets[slide["section"] - 1], _paragraph_lines(box["lines"], bullets[slide["section"] - 1])):
            if len(group) > 1 and len(group[-1].replace(" ", "")) < 3:
                found.append((paragraph, group))
    return found


def test_no_bullet_ends_in_a_one_or_two_character_widow(tmp_path: Path, settings, monkeypatch):
    """A multi-line bullet's last line has at least 3 characters when a kinsoku-legal break allows it.

    The same bullets drawn with greedy breaking do leave widows (「…苗」/「は」), so the check can fail.
    """
    base = "ひょろりと背の高い苗や、葉が黄色くなっている苗は避けましょう。値段が少し高くても接ぎ木苗は病気に強い"
    bullets = [[base[:n], base[: n + 1]] for n in range(14, 46, 2)] + [["Readers never wait for the writer at all, ok"]]
    assert _widows(tmp_path, settings, bullets) == []
    import stages.slides.typeset as typeset

    monkeypatch.setattr(typeset, "widow_free_break", lambda *args, **kwargs: None)
    (tmp_path / "greedy").mkdir()  # a fresh cache, so every slide is drawn again
    greedy = _widows(tmp_path / "greedy", settings, bullets)
    assert greedy, "greedy breaking left no widow: the bullets above no longer exercise the rule"


def test_one_grid_without_characters_and_one_column_with_them(tmp_path: Path, settings, with_character):
    """Without characters no corner is kept and the text column spans the frame between the margins
    (at least 75 % of the width); with characters every bullets slide shares one column."""
    job = make_job(tmp_path, script_data("ja", 2))
    plain, _ = run(job, settings, tmp_path)
    assert plain["safe_area"]["corners"] == []
    lefts, widths = set(), []
    for slide in plain["slides"]:
        if slide["layout"] != "bullets":
            continue
        body = next(b for b in slide["boxes"] if b["kind"] == "bullets")
        heading = next(b for b in slide["boxes"] if b["kind"] == "heading")
        lefts.add(heading["box"][0])
        widths.append(body["box"][2] - heading["box"][0])
    assert max(widths) >= 0.75 * 320 * 0.9  # the script's long bullets fill the column (narration's are short)
    assert len(lefts) == 1  # the same left margin on every content slide
    framed, _ = run(make_job(tmp_path, script_data("ja", 1), name="framed"), with_character, tmp_path / "c")
    columns = {tuple(next(b for b in s["boxes"] if b["kind"] == "heading")["box"][0:1])
               for s in framed["slides"] if s["layout"] == "bullets"}
    assert len(columns) == 1


def test_warm_up_hashes_the_theme_fonts_a_first_fingerprint_needs(tmp_path: Path) -> None:
    """The daemon's warm-up leaves the theme's regular and bold font files hashed for the default
    language, so the first job's fingerprint does not read them (about 20 MB each)."""
    from stages.fonts import find_font_face
    from stages.slides import deck

    settings = load_settings(home=tmp_path / "home")
    faces = [find_font_face(settings.theme.font, lang="ja", bold=bold) for bold in (False, True)]
    deck._hashes.clear()
    SlidesStage().warm(settings)
    assert {stamp[0] for stamp in deck._hashes} == {str(face.path) for face in faces}
