"""The ffmpeg renderer's fixed gaps, on real tiny videos (320x180, a few seconds): video
backgrounds (default and per section, looping), characters fixed and blinking through
transitions, BT.709 colour, one verification per render."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import stages.video as video_api
from stages.video import plan_timeline, render_timeline, verify_video
from stages.video.frames import moving_backgrounds
from stages.video.probe import probe
from tests.test_video_fixtures import SLIDE_COLORS, Phrase, make_job

W, H = 320, 180
WINDOW = (slice(20, 60), slice(200, 280))  # rows, columns of the slides' transparent window
LOOP_COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]  # the background video: 1 s, a third each
MODES = ["segments", "graph"]


def decode_frames(path: Path) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True
    ).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, H, W, 3).astype(int)


def write_loop_video(path: Path) -> Path:
    """A 1 s, 24 fps MP4 without audio: 8 red, 8 green, 8 blue frames (160x120)."""
    frames = np.concatenate([np.tile(np.array(c, dtype=np.uint8), (8, 120, 160, 1)) for c in LOOP_COLORS])
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "160x120", "-r", "24", "-i", "pipe:0",
         "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv444p", str(path)],
        input=frames.tobytes(), check=True,
    )
    return path


def window_slides(job) -> None:
    """Replace the job's opaque slides with RGBA ones that are clear in WINDOW."""
    for i, path in enumerate(sorted((job.dir.parent / "slides").glob("*.png"))):
        image = Image.new("RGBA", (W, H), SLIDE_COLORS[i % len(SLIDE_COLORS)] + (255,))
        ImageDraw.Draw(image).rectangle([WINDOW[1].start, WINDOW[0].start, WINDOW[1].stop - 1, WINDOW[0].stop - 1], fill=(0, 0, 0, 0))
        image.save(path)


def dominant(frame: np.ndarray) -> int:
    """Which LOOP_COLORS the window shows (-1: none of them)."""
    mean = frame[WINDOW].reshape(-1, 3).mean(axis=0)
    distances = [np.abs(mean - np.array(c)).sum() for c in LOOP_COLORS]
    best = int(np.argmin(distances))
    return best if distances[best] < 60 else -1


@pytest.fixture(scope="module")
def loop_video(tmp_path_factory) -> Path:
    return write_loop_video(tmp_path_factory.mktemp("bg") / "loop.mp4")


def render(job, tmp_path: Path, mode: str, timeline=None) -> tuple[Path, object]:
    settings = job.settings.model_copy(deep=True)
    settings.video.ffmpeg_mode = mode
    timeline = timeline or plan_timeline(job.dir, settings)
    out = render_timeline(timeline, tmp_path / f"{mode}.mp4", settings)
    verify_video(out, timeline)
    return out, timeline


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("where", ["default", "section"])
def test_video_background_with_a_silent_character_renders(tmp_path, loop_video, mode, where):
    """A video background (no audio track) next to a character with unused layers (short clips,
    no blink) used to fail with "Stream map '4:a' matches no streams"."""
    video = {"timing": {"initial_pause": 0.3, "section_pause": 0.3, "ending_pause": 0.3}}
    backgrounds = None
    if where == "default":
        video["background"] = {"type": "video", "path": str(loop_video)}
    else:
        backgrounds = {1: {"type": "video", "path": str(loop_video)}}
    job = make_job(tmp_path, [[Phrase("a", seconds=0.3)], [Phrase("b", seconds=0.3)]], characters={"narrator": (0, 200, 0)},
                   video=video, section_backgrounds=backgrounds)
    out, timeline = render(job, tmp_path, mode)
    assert len(decode_frames(out)) == timeline.frames


@pytest.mark.parametrize("mode", MODES)
def test_a_video_background_plays_and_loops_where_the_slide_is_clear(tmp_path, loop_video, mode):
    """Section 0 uses the default (colour) background, section 1 overrides it with the looping
    video: the slide's clear window shows the video playing from its first frame at the section's
    start, red, green, blue, and again a second later."""
    job = make_job(tmp_path, [[Phrase("a", seconds=0.5)], [Phrase("b", seconds=2.2)]],
                   video={"background": {"type": "color", "value": "#808080"}, "transition": {"type": "none", "duration": 0}},
                   section_backgrounds={1: {"type": "video", "path": str(loop_video)}})
    window_slides(job)
    out, timeline = render(job, tmp_path, mode)
    frames = decode_frames(out)
    start = timeline.frame(timeline.slides[1].start)
    assert np.abs(frames[start - 1][WINDOW].mean(axis=(0, 1)) - 128).max() < 12  # the grey default before
    shown = [dominant(f) for f in frames[start : start + 60]]
    assert shown[:8] == [0] * 8, shown
    assert shown[12:18] == [1] * 6 and shown[22:28] == [2] * 6, shown
    assert shown[30:38] == [0] * 8 and shown[42:48] == [1] * 6, shown  # looped
    assert (frames[start + 5][100:120, 20:60] == frames[start + 15][100:120, 20:60]).all() or \
        np.abs(frames[start + 5][100:120, 20:60] - frames[start + 15][100:120, 20:60]).mean() < 2  # the slide itself stays


def test_an_opaque_slide_keeps_the_fast_path(tmp_path, loop_video):
    """Full-frame opaque slides hide the background: no frame is drawn per frame for it."""
    job = make_job(tmp_path, [[Phrase("a", seconds=0.5)]], video={"background": {"type": "video", "path": str(loop_video)}})
    assert moving_backgrounds(plan_timeline(job.dir, job.settings)) == {}
    window_slides(job)
    assert moving_backgrounds(plan_timeline(job.dir, job.settings)) == {0: 0}


def _character_job(tmp_path: Path, kind: str):
    return make_job(
        tmp_path, [[Phrase("a", seconds=0.6)], [Phrase("b", seconds=0.6)]], characters={"narrator": (0, 200, 0)},
        video={"timing": {"initial_pause": 0.3, "section_pause": 1.0, "ending_pause": 0.3},
               "transition": {"type": kind, "duration": 0.6}},
    )


@pytest.mark.parametrize("mode", MODES)
def test_characters_stay_put_during_a_slide_transition(tmp_path, mode):
    job = _character_job(tmp_path, "slide")
    timeline = plan_timeline(job.dir, job.settings)
    track = timeline.characters[0]
    # no blink anywhere near the transition, so the character's picture is the same throughout
    timeline = timeline.model_copy(update={"characters": [track.model_copy(update={"blinks": []})]})
    out, timeline = render(job, tmp_path, mode, timeline)
    frames = decode_frames(out)
    slide = timeline.slides[1]
    a = timeline.frame(slide.start)
    b = timeline.frame(slide.start + slide.transition_in.duration)
    x0, y0 = int(track.x), int(track.y)
    box = (slice(y0, y0 + int(track.height)), slice(x0, x0 + int(track.width)))
    green = np.abs(frames[a - 1][box] - np.array([0, 200, 0])).sum(axis=2) < 40  # the character's body
    assert green.sum() > 1000
    for f in (a + (b - a) // 3, (a + b) // 2, b - 2):
        still = np.abs(frames[f][box] - np.array([0, 200, 0])).sum(axis=2) < 40
        assert (still[green]).mean() > 0.97, f"frame {f} of the transition moved the character"
    # and the slides did move
    assert np.abs(frames[(a + b) // 2][40:60, 100:140] - frames[a - 1][40:60, 100:140]).mean() > 20


@pytest.mark.parametrize("mode", MODES)
def test_a_blink_inside_a_transition_is_drawn(tmp_path, mode):
    job = _character_job(tmp_path, "fade")
    timeline = plan_timeline(job.dir, job.settings)
    slide = timeline.slides[1]
    a = timeline.frame(slide.start)
    blink = ((a + 4) / timeline.fps, (a + 9) / timeline.fps)
    track = timeline.characters[0].model_copy(update={"blinks": [blink]})
    timeline = timeline.model_copy(update={"characters": [track]})
    out, timeline = render(job, tmp_path, mode, timeline)
    frames = decode_frames(out)
    x0, y0 = int(track.x), int(track.y)
    # the eyes' rows and columns, inside the body: a fade dips the slide around it to black
    h, w = int(track.height), int(track.width)
    eyes = frames[:, y0 + h // 4 : y0 + h // 3, x0 + w // 4 : x0 + 3 * w // 4]
    dark = (eyes.sum(axis=3) < 120).sum(axis=(1, 2))
    assert dark[a + 2] > 20 and dark[a + 11] > 20  # open before and after
    assert (dark[a + 5 : a + 8] < 5).all(), dark[a : a + 12]  # shut inside the transition


@pytest.mark.parametrize("mode", MODES)
def test_bt709_limited_range_tagged_and_converted(tmp_path, mode):
    """The stream says BT.709 limited range (container and VUI) and its pixels are BT.709."""
    job = make_job(tmp_path, [[Phrase("a", seconds=0.5)]])
    out, timeline = render(job, tmp_path, mode)
    stream = next(s for s in probe(out)["streams"] if s["codec_type"] == "video")
    assert (stream.get("color_space"), stream.get("color_primaries"), stream.get("color_transfer"), stream.get("color_range")) == (
        "bt709", "bt709", "bt709", "tv")
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
                         capture_output=True, check=True).stdout
    luma = np.frombuffer(raw, dtype=np.uint8)[: W * H].reshape(H, W)
    r, g, b = SLIDE_COLORS[0]
    expected = 16 + 219 / 255 * (0.2126 * r + 0.7152 * g + 0.0722 * b)  # BT.601 would give 91
    assert abs(float(luma[5:15, 150:170].mean()) - expected) < 2.5
    # the raw H.264 stream itself (the SPS's VUI, after splicing) carries the tags too
    es = tmp_path / f"{mode}.h264"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(out), "-c", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "h264", str(es)],
                   check=True)
    raw_stream = next(s for s in probe(es)["streams"] if s["codec_type"] == "video")
    assert raw_stream.get("color_space") == "bt709" and raw_stream.get("color_range") == "tv"


def test_remotion_result_is_verified_once(tmp_path, monkeypatch):
    """render_timeline trusts render_with_remotion's own check (it verifies before renaming);
    here the ffmpeg renderer stands in for Remotion's output, which verifies inside too."""
    import stages.video.remotion as remotion
    from stages.video.ffmpeg import render_with_ffmpeg
    from stages.video.timeline import Timeline

    job = make_job(tmp_path, [[Phrase("a", seconds=0.4)]])
    timeline = plan_timeline(job.dir, job.settings)
    calls = []
    monkeypatch.setattr(video_api, "verify_video", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(remotion, "render_with_remotion", lambda path, out, settings, progress, cancel=None: render_with_ffmpeg(
        Timeline.load(path), out, settings, progress, cancel=cancel))
    out = render_timeline(timeline, tmp_path / "r.mp4", job.settings, renderer="remotion")
    assert out.is_file() and calls == []


@pytest.mark.parametrize("mode", MODES)
def test_a_fade_into_a_visible_video_background(tmp_path, loop_video, mode):
    """A fade into a section whose video background shows through its slide renders in both modes
    (graph mode's still and moving chains once had different timebases, which xfade refused)."""
    job = make_job(tmp_path, [[Phrase("a", seconds=0.5)], [Phrase("b", seconds=1.0)]],
                   video={"fps": 10, "transition": {"type": "fade", "duration": 0.4}},
                   section_backgrounds={1: {"type": "video", "path": str(loop_video)}})
    window_slides(job)
    out, timeline = render(job, tmp_path, mode)
    frames = decode_frames(out)
    assert len(frames) == timeline.frames
    start = timeline.frame(timeline.slides[1].start)
    assert dominant(frames[start + 6]) in (0, 1, 2)  # the video shows in the window after the fade
