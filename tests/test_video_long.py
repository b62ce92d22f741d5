"""Long videos through the real ffmpeg renderer: many slides, many minutes, many keyframes.

ffmpeg's ``-force_key_frames expr:`` takes at most 100 terms; these renders need more keyframes
than that (one per slide, one every ``KEYINT_SECONDS``), at 320x180 so they stay quick.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stages.base import InputError
from stages.video import plan_timeline, render_timeline, verify_video
from stages.video.ffmpeg import KEYINT_SECONDS, keyframe_times
from stages.video.probe import probe
from tests.test_video_fixtures import Phrase, make_job


def keyframes(path: Path) -> list[int]:
    """Indexes of the video packets flagged as keyframes, in decode order."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=flags", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    return [i for i, flags in enumerate(out) if "K" in flags]


def video_duration(path: Path) -> float:
    return float(next(s for s in probe(path)["streams"] if s["codec_type"] == "video")["duration"])


def test_150_slides_render_with_a_keyframe_at_every_slide(tmp_path):
    """150 sections (150 slides, each a GOP) render; the MP4 lasts the timeline and each slide starts on a keyframe."""
    job = make_job(tmp_path, [[Phrase(f"字幕{i}", seconds=0.4)] for i in range(150)],
                   video={"transition": {"type": "none", "duration": 0}})
    timeline = plan_timeline(job.dir, job.settings)
    assert len(timeline.slides) == 150
    out = render_timeline(timeline, tmp_path / "many.mp4", job.settings)
    verify_video(out, timeline)
    assert abs(video_duration(out) - timeline.duration) <= 1 / timeline.fps
    found = set(keyframes(out))
    starts = {timeline.frame(slide.start) for slide in timeline.slides}
    assert starts <= found, sorted(starts - found)[:5]


def test_keyframe_times_name_each_picture_exactly():
    """Irregular picture numbers become times that ffmpeg rounds back to the same pictures, with no term cap."""
    pictures = [0, 1, 7, 299, 300, 1234, 107999] + list(range(2000, 12000, 37))
    times = keyframe_times(pictures, 30).split(",")
    assert len(times) == len(pictures) > 100
    assert [round(float(t) * 30) for t in times] == pictures
    with pytest.raises(InputError, match="keyframes"):
        keyframe_times(list(range(20000)), 30)
