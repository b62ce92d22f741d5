"""Portrait (9:16, Shorts) videos: the named format, and a real two-character render's frames."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from stages.settings import InvalidSettings, load_settings
from stages.video import plan_timeline, render_timeline, verify_video
from stages.video.cast import DIM
from tests.test_video_fixtures import Phrase, make_job

W, H = 540, 960
BODIES = {"kohaku": (0, 170, 0), "mint": (30, 30, 220)}
LONG = "縦長の動画でも字幕は途中で切れずに最後まで画面に表示されるはずなので確かめてみましょう"


def test_format_shorts_is_1080x1920_and_clashes_are_errors():
    """video.format names the frame: shorts is 1080x1920, landscape 1920x1080; a width or height that
    disagrees with it is an error naming both."""
    assert (load_settings(video={"format": "shorts"}).video.width, load_settings(video={"format": "shorts"}).video.height) == (1080, 1920)
    landscape = load_settings(video={"format": "landscape"}).video
    assert (landscape.width, landscape.height) == (1920, 1080)
    with pytest.raises(InvalidSettings, match="format = 'shorts' is 1080x1920, but height = 1080"):
        load_settings(video={"format": "shorts", "height": 1080})


def _decode(path: Path) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, H, W, 3).astype(int)


def test_a_portrait_dialogue_keeps_characters_apart_and_subtitles_off_their_faces(tmp_path):
    """A 540x960 dialogue of two characters: both stand inside the frame in the lower corners, apart and
    visible; every cue's text (white or yellow) is inside the frame, above the bottom edge, and never
    on a character's face (the top 40 % of its box), including a line too long for one cue."""
    job = make_job(
        tmp_path,
        [[Phrase("こんにちは", "kohaku", 1.0), Phrase(LONG, "mint", 3.0)], [Phrase("なるほど", "kohaku", 1.0)]],
        size=(W, H), characters=BODIES, video={"preset": "ultrafast"},
    )
    timeline = plan_timeline(job.dir, job.settings)
    out = render_timeline(timeline, tmp_path / "portrait.mp4", job.settings)
    verify_video(out, timeline)
    frames = _decode(out)
    assert frames.shape[1:3] == (H, W)
    tracks = {t.persona_id: t for t in timeline.characters}
    assert set(tracks) == set(BODIES)
    # a character may reach a pixel or two below the bottom edge (its breath lifts it from there)
    boxes = {k: (round(t.x), round(t.y), round(t.x + t.width), min(H, round(t.y + t.height))) for k, t in tracks.items()}
    assert all(t.y + t.height <= H + 2 for t in tracks.values())
    (ax0, _, ax1, _), (bx0, _, bx1, _) = sorted(boxes.values())
    assert ax1 <= bx0, f"the characters overlap: {boxes}"
    for x0, y0, x1, y1 in boxes.values():
        assert 0 <= x0 < x1 <= W and H // 2 <= y0 < y1 <= H, boxes
    assert len(timeline.subtitles) >= 4  # the long line became more than one cue, nothing cut
    for cue in timeline.subtitles:
        frame = frames[timeline.frame((cue.start + cue.end) / 2)]
        for name, (x0, y0, x1, y1) in boxes.items():
            colour = np.array(BODIES[name])  # or dimmed, while the other one speaks
            box = frame[y0:y1, x0:x1]
            body = np.minimum(np.abs(box - colour).sum(axis=2), np.abs(box - colour * DIM).sum(axis=2)) < 60
            assert body.sum() > 0.2 * (x1 - x0) * (y1 - y0), f"{name} not visible during {cue.text!r}"
        text = (frame[..., 0] > 200) & (frame[..., 1] > 200)  # white and yellow cue text
        text[: H // 2] = False  # the slide's own white box is in the upper half
        ys, xs = np.nonzero(text)
        assert len(ys) > 100, f"no subtitle drawn for {cue.text!r}"
        assert xs.min() > 0 and xs.max() < W - 1 and ys.max() < H - 1, cue.text
        for name, (x0, y0, x1, y1) in boxes.items():
            face = text[y0 : y0 + (y1 - y0) * 2 // 5, x0:x1]
            assert face.sum() == 0, f"{cue.text!r} is drawn over {name}'s face"
