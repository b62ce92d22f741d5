"""Slide typography: phrase-aware breaks in headings and bullets, and portrait frames typeset like landscape."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.linebreak import tokens
from stages.settings import load_settings
from tests.test_slides import assert_clear_of_safe_areas, make_job, run

DEMO = {
    "title": "ベランダで始めるミニトマト栽培",
    "language": "ja",
    "sections": [
        {"title": "はじめに", "narrations": ["ミニトマトは育てやすい野菜です。"]},
        {"title": "苗の選び方", "narrations": ["苗を選ぶのだ。"],
         "slide": {"heading": "良い苗の選び方と植え付けの準備",
                   "bullets": ["一番下の花房に、つぼみが付いているものを選ぶと、その後の生育が安定します",
                               "わき芽をそのままにすると、栄養が分散して実が小さくなります",
                               "葉が黄色くなっている苗は避けましょう"]}},
        {"title": "まとめ", "narrations": ["自分で育てたトマトの味をぜひ楽しんでください。"]},  # closing: a narrow card
    ],
}


def breaks_between_units(text: str, lines: list[str]) -> bool:
    """True when every line break of ``text`` falls between two of its line-break units."""
    bounds, at = set(), 0
    for unit in tokens(text):
        at += len(unit)
        bounds.add(at)
    at = 0
    for line in lines[:-1]:
        at = text.index(line, at) + len(line)
        if at not in bounds:
            return False
    return True


@pytest.mark.parametrize("size", [(640, 360), (360, 640), (1080, 1920)])
def test_headings_and_bullets_break_between_phrases(tmp_path: Path, size: tuple[int, int]):
    """The issue's bullet breaks (「その後の生/育」, 「実が小/さく」) are gone, in landscape and portrait."""
    settings = load_settings(home=tmp_path / "home", video={"width": size[0], "height": size[1]})
    index, _ = run(make_job(tmp_path, DEMO), settings, tmp_path)
    texts = [DEMO["title"], DEMO["sections"][1]["slide"]["heading"], *DEMO["sections"][1]["slide"]["bullets"]]
    checked = 0
    for slide in index["slides"]:
        for box in slide["boxes"]:
            if box["kind"] not in ("title", "heading", "bullets"):
                continue
            lines = box["lines"]
            joined = "|".join(lines)
            for bad in ("生|育", "小|さく", "黄|色く", "避け|ましょう", "ミニ|トマト", "栽|培", "く|ださい"):
                assert bad not in joined, (size, joined)
            for text in texts:
                own = [line for line in lines if line in text]
                if "".join(own) == text and len(own) > 1:
                    assert breaks_between_units(text, own), (size, own)
                    checked += 1
    if size[0] < size[1]:
        assert checked >= 1  # in portrait some text really was broken across lines
    assert_clear_of_safe_areas(index)


def test_portrait_uses_landscape_type_sizes(tmp_path: Path):
    """A 360x640 slide draws its heading at the size a 640x360 slide does (the short side rules),
    not 16/9 larger: the title no longer breaks into four-character lines."""
    sizes = {}
    for w, h in ((640, 360), (360, 640)):
        settings = load_settings(home=tmp_path / f"home{w}", video={"width": w, "height": h})
        index, _ = run(make_job(tmp_path, DEMO, name=f"job{w}"), settings, tmp_path)
        title = next(b for b in index["slides"][0]["boxes"] if b["kind"] == "title")
        heading = next(b for b in index["slides"][1]["boxes"] if b["kind"] == "heading")
        sizes[(w, h)] = (title, heading)
    landscape, portrait = sizes[(640, 360)], sizes[(360, 640)]
    assert portrait[1]["size"] <= landscape[1]["size"]
    assert portrait[0]["size"] <= landscape[0]["size"]
    assert min(len(line) for line in portrait[0]["lines"]) >= 5, portrait[0]["lines"]
