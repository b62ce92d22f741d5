"""Long videos through the real ffmpeg renderer: many slides, many minutes, many keyframes.

ffmpeg's ``-force_key_frames expr:`` takes at most 100 terms; these renders need more keyframes
than that (one per slide, one every ``KEYINT_SECONDS``), at 320x180 so they stay quick.
"""

from __future__ import annotations

import subprocess
import tracemalloc
import wave
from pathlib import Path

import numpy as np
import pytest
import yaml

from stages.base import InputError
from stages.video import plan_timeline, render_timeline, verify_video
from stages.video.ffmpeg import KEYINT_SECONDS, keyframe_times
from stages.video.frames import CUE_CHUNK, render_subtitle_overlays
from stages.video.mix import write_soundtrack
from stages.video.timeline import Bgm
from stages.video.probe import probe
from tests.e2e import TERMINAL, DaemonProcess
from tests.fixtures_service import children_with, wait_for
from tests.test_video_fixtures import Phrase, make_job, write_wav
from tests.test_video_render import processes_using


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


def test_a_14_minute_script_renders(tmp_path):
    """Three sections of about 14 minutes in all, a new cue every 4 s (so over 100 GOPs of
    KEYINT_SECONDS, as in a real video), render to the full length."""
    sections = [[Phrase(f"字幕{s}-{n}", seconds=4.0) for n in range(70)] for s in range(3)]
    job = make_job(tmp_path, sections)
    timeline = plan_timeline(job.dir, job.settings)
    assert timeline.duration > 13.5 * 60 and timeline.duration / KEYINT_SECONDS > 100
    seen: list[int] = []
    out = render_timeline(timeline, tmp_path / "long.mp4", job.settings, lambda c, t, m: seen.append(c))
    verify_video(out, timeline)
    # exact, not just within a frame: timestamps that drift 10 ppm failed the check on an hour's video
    assert abs(video_duration(out) - timeline.frames / timeline.fps) < 0.001
    assert len(keyframes(out)) > 100
    assert seen[-1] == timeline.frames and seen == sorted(seen)


def test_an_hour_of_soundtrack_is_mixed_in_flat_memory(tmp_path):
    """A 60-minute soundtrack (720 clips, looping ducked BGM) is written whole while Python holds
    only a block of it at a time (8 kHz, so the file stays small; the whole track is 230 MB of float32)."""
    job = make_job(tmp_path, [[Phrase("a", seconds=3.0)]])
    short = plan_timeline(job.dir, job.settings)
    clip = short.narration[0]
    bgm = write_wav(tmp_path / "bgm.wav", 7.0, freq=220)
    timeline = short.model_copy(update={
        "duration": 3600.0, "sample_rate": 8000,
        "narration": [clip.model_copy(update={"start": 1.0 + 5.0 * k}) for k in range(720)],
        "bgm": Bgm(path=str(bgm), volume=0.2, fade_in=1.0, fade_out=2.0, loop=True, duck=True, duck_volume=0.3),
    })
    tracemalloc.start()
    try:
        write_soundtrack(timeline, tmp_path / "hour.wav")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with wave.open(str(tmp_path / "hour.wav")) as wav:
        assert (wav.getnframes(), wav.getnchannels(), wav.getframerate()) == (3600 * 8000, 2, 8000)
        wav.setpos(3597 * 8000)  # inside the last clip (3596 s to 3599 s)
        tail = np.frombuffer(wav.readframes(800), dtype="<i2")
    assert np.abs(tail).max() > 1000
    assert peak < 32 * 2**20, f"{peak / 2**20:.0f} MB"


def test_subtitle_overlays_are_drawn_a_chunk_at_a_time(tmp_path):
    """Cue overlays come from libass in chunks of CUE_CHUNK, at most two chunks held; any order gives the same pixels."""
    job = make_job(tmp_path, [[Phrase(f"字幕その{i}", seconds=0.3) for i in range(2 * CUE_CHUNK + 6)]])
    timeline = plan_timeline(job.dir, job.settings)
    overlays = render_subtitle_overlays(timeline, tmp_path)
    assert len(overlays) == len(timeline.subtitles) == 2 * CUE_CHUNK + 6
    in_order = [overlays[i] for i in range(len(overlays))]
    assert len(overlays._chunks) == 2
    again = render_subtitle_overlays(timeline, tmp_path)
    for i in (len(overlays) - 1, 0, CUE_CHUNK, 1, len(overlays) - 2):
        x, y, pixels = again[i]
        assert (x, y) == in_order[i][:2] and np.array_equal(pixels, in_order[i][2])
    assert in_order[0][2][..., 3].max() == 255  # drawn, not empty
    assert not np.array_equal(in_order[0][2], in_order[1][2]) or in_order[0][:2] != in_order[1][:2]
    with pytest.raises(IndexError):
        overlays[len(overlays)]


def test_cancel_in_the_daemon_stops_the_render_process(tmp_path):
    """``moviegen cancel`` in the video stage of a real daemon: the job ends cancelled, its render
    process and that process's ffmpegs are gone, nothing is delivered, and the daemon lives on."""
    daemon = DaemonProcess(tmp_path / "home")
    # 1080p, so that the render lasts long enough to be cancelled in the middle
    daemon.env.update({"MOVIEGEN_VIDEO__WIDTH": "1920", "MOVIEGEN_VIDEO__HEIGHT": "1080", "MOVIEGEN_VIDEO__PRESET": "veryfast"})
    lines = ["保存ボタンを押すと、一瞬だけ画面が固まることがあります。", "それはメインスレッドで重い処理をしているからです。",
             "非同期にすれば、画面は固まらなくなります。", "ワーカーに処理を移すのが定石です。"]
    script = {"title": "取り消しの試験", "sections": [{"title": f"節{s}", "narrations": lines} for s in range(6)]}
    daemon.start()
    try:
        daemon.drop("cancel-me.yaml", yaml.safe_dump(script, allow_unicode=True))
        wait_for(lambda: _render_processes_of(daemon.pid), 300, "the render process", daemon)
        job_id = daemon.job_rows()[0]["job_id"]
        cancelled = daemon.cli("cancel", job_id)
        assert cancelled.returncode == 0, cancelled.stderr
        wait_for(lambda: daemon.job_rows()[0]["state"] in TERMINAL, 60, "the job to end", daemon)
        assert daemon.job_rows()[0]["state"] == "cancelled"
        job_dir = daemon.home / "state" / "jobs" / job_id
        wait_for(lambda: not _render_processes_of(daemon.pid) and not processes_using(job_dir), 20,
                 "the render process and its ffmpegs to stop", daemon)
        assert not list((daemon.home / "outbox").glob("*.mp4"))
        assert not (job_dir / "video.mp4").exists()
        assert daemon.alive()
    finally:
        daemon.stop()


def _render_processes_of(pid: int) -> list[int]:
    """Children of ``pid`` running the render process."""
    found = []
    for child in children_with("stages.video.render_process"):
        try:
            if int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(child)
        except (OSError, ValueError, IndexError):
            continue
    return found
