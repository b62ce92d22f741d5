"""Subtitle colours survive the render: a decoded frame's subtitle fill is the persona's colour
(within a few levels: BT.709 limited range and 4:2:0 rounding), in both ffmpeg modes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from stages.video import plan_timeline, render_timeline
from stages.video.ass import write_ass
from stages.video.frames import _fonts_dir
from tests.test_video_fixtures import Phrase, make_job

W, H = 320, 180
COLOURS = {"narrator": "#ffff00", "zundamon": "#00ffff"}  # pure yellow and pure cyan
TOLERANCE = 4  # levels per channel


def rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])


def decode_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` as RGB, converted explicitly as BT.709 limited range."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{index}),scale=in_color_matrix=bt709:in_range=tv",
         "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(H, W, 3).astype(int)


def fill_interior(timeline, work: Path, cue: int) -> np.ndarray:
    """Where libass itself (drawing straight on RGB, nothing converted) paints the cue's fill colour
    with all 8 neighbours too: a boolean mask of the frame."""
    work.mkdir(exist_ok=True)
    write_ass(timeline, work / "ref.ass", cues=[timeline.subtitles[cue]], times=[(0.0, 1.0)])
    fonts = _fonts_dir(timeline, work)
    ass = "ass=ref.ass" + (f":fontsdir={fonts.name}" if fonts else "")
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-filter_complex", f"color=c=black:s={W}x{H}:r=10:d=0.5,format=rgb24,{ass}",
         "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True, cwd=work,
    ).stdout
    frame = np.frombuffer(raw, dtype=np.uint8).reshape(H, W, 3).astype(int)
    fill = (frame == rgb(timeline.subtitles[cue].color)).all(axis=2)
    interior = fill.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            interior &= np.roll(np.roll(fill, dy, axis=0), dx, axis=1)
    return interior


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("colour")
    # big glyphs: strokes a few pixels wide at 320x180; CRF 10 so that x264's quantisation of thin
    # chroma detail (at 320x180 and CRF 23 it moves a fifth of the fill by > 8 levels) does not
    # hide what the colour handling does
    job = make_job(root, [[Phrase("字幕", "narrator", 0.5), Phrase("字幕", "zundamon", 0.5)]],
                   video={"subtitles": {"size": 0.3}, "crf": 10})
    for persona in job.settings.personas:
        persona.subtitle_color = COLOURS.get(persona.id, persona.subtitle_color)
    return job


@pytest.mark.parametrize("mode", ["segments", "graph"])
def test_saturated_subtitle_colours_arrive_as_asked(job, tmp_path, mode):
    settings = job.settings.model_copy(deep=True)
    settings.video.ffmpeg_mode = mode
    timeline = plan_timeline(job.dir, settings)
    assert [c.color for c in timeline.subtitles] == ["#ffff00", "#00ffff"]
    out = render_timeline(timeline, tmp_path / f"{mode}.mp4", settings)
    for i, cue in enumerate(timeline.subtitles):
        interior = fill_interior(timeline, tmp_path / f"ref-{i}", i)
        assert interior.sum() > 50, "the reference cue has no solid fill to sample"
        frame = decode_frame(out, timeline.frame((cue.start + cue.end) / 2))
        pixels = frame[interior]
        median = np.median(pixels, axis=0)
        assert np.abs(median - rgb(cue.color)).max() <= TOLERANCE, (mode, cue.color, median)
        # and most of the fill, not only its middle value, is the colour
        close = (np.abs(pixels - rgb(cue.color)).max(axis=1) <= 2 * TOLERANCE).mean()
        assert close > 0.9, (mode, cue.color, close)
