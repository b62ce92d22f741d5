"""The ffmpeg renderer on real, tiny videos (320x180, a few seconds)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from stages.base import Cancelled, InputError, JobContext
from stages.process import ProcessError
from stages.video import VideoStage, plan_timeline, render_process, render_timeline, verify_video
from stages.video.ffmpeg import MAX_PATCH_MBS, REFERENCE_PICTURES
from stages.video.frames import Compositor, encode_plan, frame_runs, patch_plan
from stages.video.h264 import MAX_COPY_RUN
from stages.video.probe import RenderCheckFailed, probe
from tests.test_video_fixtures import MOUTH_COLOR, SLIDE_COLORS, Phrase, make_job


def decode_frames(path: Path, width: int, height: int) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3)


def decode_audio(path: Path) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", "48000", "-"],
        capture_output=True, check=True,
    ).stdout
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One small two-section video with a speaking character, rendered once in each mode."""
    root = tmp_path_factory.mktemp("render")
    job = make_job(
        root,
        [
            [Phrase("最初の字幕", "narrator", 1.0), Phrase("次の字幕なのだ", "zundamon", 1.5)],
            [Phrase("最後", "narrator", 0.8)],
        ],
        characters={"zundamon": (60, 60, 220)},
    )
    timeline = plan_timeline(job.dir, job.settings)
    outputs = {}
    for mode in ("segments", "graph"):
        settings = job.settings.model_copy(deep=True)
        settings.video.ffmpeg_mode = mode
        seen: list[tuple[int, int]] = []
        out = render_timeline(timeline, root / f"{mode}.mp4", settings, lambda c, t, m: seen.append((c, t)))
        outputs[mode] = (out, seen)
    return job, timeline, outputs


@pytest.mark.parametrize("mode", ["segments", "graph"])
def test_duration_and_streams(rendered, mode):
    """H.264 yuv420p + AAC in MP4, the timeline's size, duration within one frame, every frame there."""
    job, timeline, outputs = rendered
    path, seen = outputs[mode]
    info = probe(path)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert (video["codec_name"], video["pix_fmt"], audio["codec_name"]) == ("h264", "yuv420p", "aac")
    assert (video["width"], video["height"]) == (320, 180)
    assert abs(float(video["duration"]) - timeline.duration) <= 1 / timeline.fps
    assert len(decode_frames(path, 320, 180)) == timeline.frames
    assert seen and all(t == timeline.frames for _, t in seen)
    assert [c for c, _ in seen] == sorted(c for c, _ in seen)  # progress never goes backwards
    verify_video(path, timeline)


def test_subtitle_region_changes_with_the_cue(rendered):
    """The subtitle band differs between two cues and is empty in the initial pause."""
    job, timeline, outputs = rendered
    frames = decode_frames(outputs["segments"][0], 320, 180).astype(int)
    band = slice(int(timeline.subtitle_style.safe_box.y), 180)
    fps = timeline.fps
    pause, first, second = (frames[round(t * fps)][band] for t in (0.5, 1.5, 3.0))
    assert np.abs(first - pause).mean() > 1.0
    assert np.abs(second - first).mean() > 1.0


def test_audio_is_silent_in_the_initial_pause_and_loud_in_narration(rendered):
    job, timeline, outputs = rendered
    for mode in ("segments", "graph"):
        audio = decode_audio(outputs[mode][0])
        rms = lambda a, b: float(np.sqrt(np.mean(audio[int(a * 48000) : int(b * 48000)] ** 2)))  # noqa: E731
        assert rms(0.0, 0.9) < 1e-3
        for clip in timeline.narration:
            assert rms(clip.start + 0.15, clip.start + clip.duration - 0.15) > 0.02


def test_mouth_open_only_while_speaking(rendered):
    """The magenta open mouth appears in some frames, and only inside the character's speech."""
    job, timeline, outputs = rendered
    track = timeline.characters[0]
    fps = timeline.fps
    for mode in ("segments", "graph"):
        frames = decode_frames(outputs[mode][0], 320, 180).astype(int)
        x0, y0 = int(track.x), int(track.y)
        box = frames[:, y0 : y0 + int(track.height), x0 : x0 + int(track.width)]
        magenta = (np.abs(box - np.array(MOUTH_COLOR)).sum(axis=3) < 90).sum(axis=(1, 2)) > 30
        open_frames = np.flatnonzero(magenta)
        assert len(open_frames) > 0
        speaking = np.zeros(timeline.frames, dtype=bool)
        for a, b in track.speaking:
            speaking[round(a * fps) : round(b * fps)] = True
        assert speaking[open_frames].all(), mode
        assert not magenta[~speaking].any()


def test_a_fade_dips_through_the_background(rendered):
    """A fade never blends the two slides: a quarter in, the slide area is the old colour darkened
    towards the (black) background; at three quarters the new colour is; in the middle it is
    nearly the background; before and after, the slides themselves."""
    job, timeline, outputs = rendered
    slide = timeline.slides[1]
    fps, steps = timeline.fps, round(slide.transition_in.duration * timeline.fps)
    start = round(slide.start * fps)
    old, new = np.array(SLIDE_COLORS[0]), np.array(SLIDE_COLORS[1])
    for mode in ("segments", "graph"):
        frames = decode_frames(outputs[mode][0], 320, 180).astype(int)

        def patch(f):
            return frames[f, 70:80, 200:210].reshape(-1, 3).mean(axis=0)

        for f, colour in ((start + steps // 4, old), (start + steps - steps // 4, new)):
            share = patch(f) / np.maximum(colour, 1)  # each channel the same share of its colour: no mix
            assert 0.2 < share.mean() < 0.8 and np.ptp(share[colour > 100]) < 0.15, (mode, f, patch(f))
        assert patch(start + steps // 2).max() < 60, mode
        assert np.abs(patch(start - 1) - old).sum() < 40 and np.abs(patch(start + steps + 1) - new).sum() < 40, mode


def test_held_frames_are_identical(rendered):
    """Frames of a held picture decode bit-identically (the spliced skip pictures)."""
    job, timeline, outputs = rendered
    frames = decode_frames(outputs["segments"][0], 320, 180)
    run = max(frame_runs(timeline), key=lambda r: r.count)  # the characters breathe: not every frame is held
    assert run.count >= 10
    first, last = run.start, run.start + run.count - 1
    assert (frames[first + 1] == frames[first]).all() and (frames[last] == frames[first]).all()


@pytest.mark.parametrize("mode", ["segments", "graph"])
def test_cancel_leaves_nothing_behind(tmp_path, mode):
    """Cancelling kills ffmpeg's process group and leaves no output and no temporary files."""
    job = make_job(tmp_path, [[Phrase("a", seconds=2.0)], [Phrase("b", seconds=2.0)]], video={"ffmpeg_mode": mode})
    timeline = plan_timeline(job.dir, job.settings)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cancel = threading.Event()

    def progress(current: int, total: int, message: str) -> None:
        cancel.set()

    with pytest.raises(Cancelled):
        render_timeline(timeline, out_dir / "video.mp4", job.settings, progress, cancel=cancel)
    assert list(out_dir.iterdir()) == []
    assert _ffmpeg_children() == []
    assert processes_using(tmp_path) == []  # the render process's ffmpegs too, not only ours


def test_stage_run_writes_video_and_side_files(tmp_path):
    """VideoStage.run plans and renders; fingerprint follows settings and inputs."""
    job = make_job(tmp_path, [[Phrase("はじめ", seconds=0.6)], [Phrase("おわり", seconds=0.6)]])
    ctx = JobContext(job_id="j1", job_dir=job.dir, settings=job.settings, cache_dir=tmp_path / "cache", source=job.dir / "script.yaml", kind="script")
    stage = VideoStage()
    before = stage.fingerprint(ctx)
    result = stage.run(ctx, lambda c, t, m: None)
    for name in ("timeline.json", "video.mp4", "video.srt", "chapters.txt"):
        assert (job.dir / name).is_file(), name
    assert {str(p) for p in result.outputs} >= {"video.mp4", "video.srt", "chapters.txt", "timeline.json"}
    assert (job.dir / "chapters.txt").read_text().splitlines()[0] == "0:00 Section 1"
    assert stage.fingerprint(ctx) == before
    other = JobContext(**{**ctx.__dict__, "settings": job.settings.model_copy(update={"video": job.settings.video.model_copy(update={"crf": 30})})})
    assert stage.fingerprint(other) != before


def test_verify_rejects_a_wrong_duration(rendered, tmp_path):
    job, timeline, outputs = rendered
    longer = timeline.model_copy(update={"duration": timeline.duration + 1.0, "frames": timeline.frames + 30})
    with pytest.raises(RenderCheckFailed, match="lasts"):
        verify_video(outputs["segments"][0], longer)


def processes_using(folder: Path) -> list[str]:
    """Processes whose working folder or command line is inside ``folder`` (ffmpeg runs in its work folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(str(folder)) or str(folder) in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def _ffmpeg_children() -> list[int]:
    mine = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == mine and name == "ffmpeg":
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("mode", ["segments", "graph"])
def test_audio_covers_the_whole_video(rendered, mode):
    """The AAC track lasts as long as the video (graph mode used to end it up to 0.6 s early)."""
    job, timeline, outputs = rendered
    audio = next(s for s in probe(outputs[mode][0])["streams"] if s["codec_type"] == "audio")
    assert abs(float(audio["duration"]) - timeline.duration) <= 1024 / 48000 + 1 / timeline.fps


def test_segments_frames_show_the_planned_pictures(rendered, tmp_path):
    """Every decoded frame is its own picture (up to compression): the copies that reach back to an
    earlier x264 picture (mouth open, shut, open again) show the right one."""
    job, timeline, outputs = rendered
    plan = encode_plan(frame_runs(timeline), refs=REFERENCE_PICTURES, keyint=10**6, max_copies=MAX_COPY_RUN)
    assert any(back > 0 for item in plan for back, _ in item.spans), "the fixture should reuse an older picture"
    w, h = timeline.width, timeline.height
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(outputs["segments"][0]), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
        capture_output=True, check=True,
    ).stdout
    decoded = np.frombuffer(raw, dtype=np.uint8).reshape(-1, w * h * 3 // 2)
    assert len(decoded) == timeline.frames
    compositor = Compositor(timeline, tmp_path)
    frame = 0
    for run in frame_runs(timeline):
        expected = compositor.frame_yuv(run)
        for f in range(frame, frame + run.count):
            worst = max(
                np.abs(a.astype(int) - b)[: ph // 4 * 4, : pw // 4 * 4].reshape(ph // 4, 4, pw // 4, 4).mean(axis=(1, 3)).max()
                for a, b, (pw, ph) in zip(_split(decoded[f], w, h), _split(expected, w, h), ((w, h), (w // 2, h // 2), (w // 2, h // 2)))
            )
            assert worst < 24, f"frame {f} is not its picture ({worst:.0f})"
        frame += run.count


def _split(frame: np.ndarray, w: int, h: int) -> list[np.ndarray]:
    luma = w * h
    return [frame[:luma].reshape(h, w), frame[luma : luma * 5 // 4].reshape(h // 2, w // 2), frame[luma * 5 // 4 :].reshape(h // 2, w // 2)]


def test_encode_plan_covers_every_frame_and_stays_inside_each_gop(rendered):
    job, timeline, outputs = rendered
    runs = frame_runs(timeline)
    plan = encode_plan(runs, refs=3, keyint=20, max_copies=7)
    assert sum(1 + sum(c for _, c in item.spans) for item in plan) == timeline.frames
    assert plan[0].idr
    since_idr = 0
    for before, item in zip([None] + plan, plan):
        if before is not None and item.run.picture.slide != before.run.picture.slide:
            assert item.idr  # a GOP starts with each slide
        since_idr = 0 if item.idr else since_idr + 1
        assert sum(c for _, c in item.spans) <= 7
        assert all(0 <= back < 3 and back <= since_idr for back, _ in item.spans)
    assert len(plan) < sum(1 for _ in runs) + timeline.frames // 7  # copies replace most encodes


def test_full_decode_check(tmp_path):
    """decode_check="full" decodes every frame of the spliced stream (and passes)."""
    job = make_job(tmp_path, [[Phrase("a", seconds=1.0)]], characters={"narrator": (60, 60, 220)}, video={"decode_check": "full"})
    timeline = plan_timeline(job.dir, job.settings)
    out = render_timeline(timeline, tmp_path / "full.mp4", job.settings)
    verify_video(out, timeline)


def test_the_render_runs_in_a_child_process_and_reports_progress_here(tmp_path, monkeypatch):
    """Compositing and encoding happen in ``stages.video.render_process``; progress arrives in the calling thread."""
    job = make_job(tmp_path, [[Phrase("a", seconds=1.0)], [Phrase("b", seconds=1.0)]])
    timeline = plan_timeline(job.dir, job.settings)
    calls: list[tuple[int, int, str, int, list[str]]] = []

    def progress(current: int, total: int, message: str) -> None:
        calls.append((current, total, message, threading.get_ident(), _render_children()))

    children: list[subprocess.Popen] = []
    popen = render_process.subprocess.Popen

    def spy(*args, **kwargs):
        children.append(popen(*args, **kwargs))
        return children[-1]

    monkeypatch.setattr(render_process.subprocess, "Popen", spy)
    render_timeline(timeline, tmp_path / "v.mp4", job.settings, progress)
    # it ended cleanly: once a thread blocked reading stdin made its exit abort a second late
    assert [child.returncode for child in children] == [0]
    assert {c[3] for c in calls} == {threading.get_ident()}
    assert any(c[4] for c in calls), "no render process was seen while rendering"
    assert calls[-1][:2] == (timeline.frames, timeline.frames) and "rendering" in {c[2] for c in calls}
    assert _render_children() == []


def test_errors_in_the_render_process_keep_their_type(tmp_path):
    """An InputError stays an InputError; an ffmpeg failure stays a ProcessError with ffmpeg's words."""
    job = make_job(tmp_path, [[Phrase("a", seconds=0.5)]])
    timeline = plan_timeline(job.dir, job.settings)
    with pytest.raises(InputError, match="even width"):
        render_timeline(timeline.model_copy(update={"width": 321}), tmp_path / "odd.mp4", job.settings)
    settings = job.settings.model_copy(deep=True)
    settings.video.preset = "no-such-preset"
    with pytest.raises(ProcessError, match="x264") as caught:
        render_timeline(timeline, tmp_path / "bad.mp4", settings)
    assert caught.value.stderr_tail
    assert not (tmp_path / "bad.mp4").exists() and _render_children() == []


def test_the_render_process_ends_when_its_parent_is_killed(tmp_path):
    """SIGKILL to the process that asked for the render: the render process and its ffmpegs stop soon after."""
    job = make_job(tmp_path, [[Phrase(f"字幕{i}", seconds=3.0)] for i in range(20)], size=(640, 360))
    timeline_path = plan_timeline(job.dir, job.settings).save(tmp_path / "timeline.json")
    started = tmp_path / "started"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from stages.video import render_timeline
        from stages.video.timeline import Timeline
        from tests.test_video_fixtures import make_job
        settings = {job.settings.model_dump_json()!r}
        from stages.settings import Settings
        settings = Settings.model_validate_json(settings)
        timeline = Timeline.model_validate_json(Path({str(timeline_path)!r}).read_text())
        def progress(c, t, m):
            Path({str(started)!r}).touch()
        render_timeline(timeline, Path({str(tmp_path / "out.mp4")!r}), settings, progress)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert parent.poll() is None and time.monotonic() < deadline, "the render did not start"
            time.sleep(0.05)
        assert processes_using(tmp_path)
        parent.kill()
        parent.wait()
        def debris() -> list[str]:  # the work folder and the temporary output
            return [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]

        # A process may hold no file in tmp_path for a moment while it still cleans up: wait for both.
        deadline = time.monotonic() + 20
        while ((left := processes_using(tmp_path)) or debris()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert left == []
        assert not (tmp_path / "out.mp4").exists()
        assert debris() == []
    finally:
        if parent.poll() is None:
            parent.kill()


def _render_children() -> list[str]:
    """This process's children running the render process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and "stages.video.render_process" in cmdline:
            found.append(cmdline)
    return found


def test_patch_pictures_show_the_composited_frames(tmp_path):
    """Mouth and blink changes become patch pictures (exact samples spliced between x264 pictures);
    every decoded frame still shows the picture the compositor drew for it, around the characters
    too, so no picture was spliced against the wrong reference."""
    job = make_job(
        tmp_path,
        [[Phrase("最初の字幕なのだ", "zundamon", 2.0), Phrase("次の字幕です", "metan", 2.0)],
         [Phrase("最後なのだ", "zundamon", 1.5)]],
        size=(640, 360), characters={"zundamon": (60, 60, 220), "metan": (220, 120, 60)},
    )
    timeline = plan_timeline(job.dir, job.settings)
    runs = frame_runs(timeline)
    plan = encode_plan(runs, refs=REFERENCE_PICTURES, keyint=8 * timeline.fps, max_copies=MAX_COPY_RUN)
    w, h = timeline.width, timeline.height
    with Compositor(timeline, tmp_path / "work") as compositor:
        patches = patch_plan(plan, compositor, refs=REFERENCE_PICTURES, max_mbs=MAX_PATCH_MBS)
        expected = np.zeros((timeline.frames, w * h * 3 // 2), dtype=np.uint8)
        for run in runs:
            expected[run.start : run.start + run.count] = compositor.frame_yuv(run)
    assert sum(patches) >= 3, "no mouth change became a patch picture"
    out = render_timeline(timeline, tmp_path / "v.mp4", job.settings)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
                         capture_output=True, check=True).stdout
    decoded = np.frombuffer(raw, dtype=np.uint8).reshape(-1, w * h * 3 // 2)
    assert len(decoded) == timeline.frames
    luma = (decoded[:, : w * h].astype(np.int32) - expected[:, : w * h]).reshape(-1, h, w)
    for track in timeline.characters:
        x0, y0 = int(track.x), int(track.y)
        box = luma[:, max(0, y0 - 4) : y0 + int(track.height), x0 : x0 + int(track.width)]
        mse = (box.astype(np.float64) ** 2).mean(axis=(1, 2))
        psnr = 10 * np.log10(255.0**2 / np.maximum(mse, 1e-9))
        assert psnr.min() > 32, f"frame {int(psnr.argmin())}: {psnr.min():.1f} dB around a character"
    assert (np.abs(luma).reshape(len(luma), -1).mean(axis=1) < 3).all()


def test_graph_mode_enable_expressions_take_thousands_of_intervals(tmp_path):
    """A character's intervals in graph mode become one ``enable`` expression; ffmpeg refused a flat
    chain of ~100 ``between`` terms, so a few minutes of lip-sync failed to start the render."""
    from stages.video.ffmpeg import _enable

    job = make_job(tmp_path, [[Phrase("a", seconds=1.0)]])
    timeline = plan_timeline(job.dir, job.settings).model_copy(update={"fps": 30})
    intervals = [(i * 0.2, i * 0.2 + 0.1) for i in range(2000)]
    graph = tmp_path / "g.txt"
    graph.write_text(f"color=c=red:s=32x32:d=400:r=30[a];color=c=blue:s=8x8:d=400:r=30[b];[a][b]overlay=x=0:y=0{_enable(intervals, timeline)}[out]")
    done = subprocess.run(["ffmpeg", "-v", "error", "-filter_complex_script", str(graph), "-map", "[out]", "-frames:v", "12",
                           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True)
    assert done.returncode == 0, done.stderr[-300:]
    frames = np.frombuffer(done.stdout, dtype=np.uint8).reshape(12, 32, 32, 3)
    blue = frames[:, 0, 0, 2] > 128  # the overlay shows in the first 3 frames of every 6 (0.1 s of each 0.2 s)
    assert blue.tolist() == [True, True, True, False, False, False] * 2
