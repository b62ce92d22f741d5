"""Transitions on real renders: a fade between two slides never shows both texts at once.

The two slides hold Japanese text in different places on the same navy ground (two layouts), the
way a heading slide and a bullet slide differ. Each frame around the transition is decoded, and
each text region's contrast (the spread of its luma) says whether text is visible there.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from stages.fonts import find_font
from stages.video import plan_timeline, render_timeline, verify_video
from tests.test_video_fixtures import Phrase, make_job

W, H = 640, 360
GROUND = (16, 35, 63)  # the default theme's background
# (left, top, right, bottom) of each slide's text, and where the other slide is blank
REGION_A = (30, 30, 300, 150)
REGION_B = (340, 200, 610, 320)
# Luma spread above which a region shows text: the full text gives ~57, the blank ground ~1.
VISIBLE = 12.0


def _slide(path: Path, region: tuple[int, int, int, int], lines: list[str]) -> None:
    image = Image.new("RGB", (W, H), GROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(find_font()), 34)
    x, y = region[0] + 6, region[1] + 6
    for line in lines:
        draw.text((x, y), line, font=font, fill=(245, 247, 250))
        y += 48
    image.save(path)


def _decode(path: Path) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True, check=True,
    ).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, H, W).astype(np.float32)


def _contrast(frame: np.ndarray, region: tuple[int, int, int, int]) -> float:
    left, top, right, bottom = region
    return float(frame[top:bottom, left:right].std())


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("transition")
    job = make_job(root, [[Phrase("前", seconds=0.8)], [Phrase("後", seconds=0.8)]], size=(W, H),
                   video={"transition": {"type": "fade", "duration": 0.6}})
    _slide(root / "slides" / "0.png", REGION_A, ["トマトの育て方", "水やりは朝に"])
    _slide(root / "slides" / "1.png", REGION_B, ["まとめ", "わき芽を摘む"])
    return job


@pytest.mark.parametrize("mode", ["segments", "graph"])
def test_a_fade_never_shows_both_texts(job, tmp_path, mode):
    """Every decoded frame from before to after the fade shows the old slide's text, the new one's,
    or neither; never both. The old text is there before it and the new text after it."""
    settings = job.settings.model_copy(deep=True)
    settings.video.ffmpeg_mode = mode
    timeline = plan_timeline(job.dir, settings)
    out = render_timeline(timeline, tmp_path / f"{mode}.mp4", settings)
    verify_video(out, timeline)
    frames = _decode(out)
    slide = timeline.slides[1]
    start = timeline.frame(slide.start)
    end = timeline.frame(slide.start + slide.transition_in.duration)
    assert end - start >= 10
    a = [_contrast(frames[f], REGION_A) for f in range(start - 2, end + 2)]
    b = [_contrast(frames[f], REGION_B) for f in range(start - 2, end + 2)]
    assert a[0] > 4 * VISIBLE and b[0] < 3 and a[-1] < 3 and b[-1] > 4 * VISIBLE
    both = [start - 2 + i for i, (x, y) in enumerate(zip(a, b)) if x > VISIBLE and y > VISIBLE]
    assert both == [], f"frames {both} show both texts: A {[round(x) for x in a]}, B {[round(y) for y in b]}"
    # the texts fade rather than cut: some frames show either one dimmed
    assert any(VISIBLE < x < a[0] * 0.8 for x in a) and any(VISIBLE < y < b[-1] * 0.8 for y in b)


def test_a_cross_fade_would_have_shown_both(job):
    """The measure can fail: blending the two slides as a cross-fade did puts both texts above the
    threshold in the middle frame."""
    old = np.asarray(Image.open(job.dir.parent / "slides" / "0.png").convert("L"), dtype=np.float32)
    new = np.asarray(Image.open(job.dir.parent / "slides" / "1.png").convert("L"), dtype=np.float32)
    middle = (old + new) / 2
    assert _contrast(middle, REGION_A) > VISIBLE and _contrast(middle, REGION_B) > VISIBLE
