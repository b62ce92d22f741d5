"""Subtitles as drawn: a long phrase in a portrait video, decoded frame by frame from a real render."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from stages.video import plan_timeline, render_timeline
from stages.video.srt import srt_text
from tests.test_video_fixtures import Phrase, make_job

LONG = ("リベースはコミットの歴史を書き換える操作なので、共有しているブランチで使うときは注意が必要です。"
        "特にリモートにプッシュした後のコミットをリベースすると、他の人の作業と衝突してしまいます")


def frame_at(path: Path, t: float, width: int, height: int) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{t:.3f}", "-i", str(path), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)


def test_portrait_long_subtitle_is_shown_whole_in_turns(tmp_path):
    """At 360x640 the long phrase becomes several cues; each one's frame shows white text inside
    the safe box (none cut at the frame's edges), a different text each time, and the .srt has
    every character, no ellipsis and no overlap."""
    width, height = 360, 640
    job = make_job(tmp_path, [[Phrase(LONG, seconds=12.0)]], size=(width, height))
    timeline = plan_timeline(job.dir, job.settings)
    cues = timeline.subtitles
    assert len(cues) >= 2
    assert "".join("".join(c.lines) for c in cues) == LONG
    srt = srt_text(cues)
    assert "…" not in srt and "..." not in srt
    out = render_timeline(timeline, tmp_path / "portrait.mp4", job.settings)
    style = timeline.subtitle_style
    band_top = int(style.safe_box.y)
    left, right = int(style.safe_box.x), int(style.safe_box.x + style.safe_box.width)
    bands = []
    for cue in cues:
        frame = frame_at(out, (cue.start + cue.end) / 2, width, height)
        band = frame[band_top:].astype(int)
        white = (band.min(axis=2) > 225)
        assert white.sum() > 50, cue.lines  # the cue is drawn
        columns = np.flatnonzero(white.any(axis=0))
        assert columns.min() >= left - 2 and columns.max() <= right + 2, (cue.lines, columns.min(), columns.max())
        rows = np.flatnonzero(white.any(axis=1))
        lines_drawn = 1 + int(np.sum(np.diff(rows) > 3))
        assert lines_drawn == len(cue.lines), (cue.lines, lines_drawn)
        bands.append(white)
    for a, b in zip(bands, bands[1:]):
        assert (a != b).mean() > 0.01  # each cue shows its own text
