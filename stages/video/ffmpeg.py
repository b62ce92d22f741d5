"""The default renderer: a timeline to H.264 + AAC in MP4 with ffmpeg.

Two ways to the same picture (``settings.video.ffmpeg_mode``):

``segments`` (default, fast)
    Every *distinct* picture is drawn once (slide + characters + libass subtitle, composited in
    numpy) and x264 encodes only those; each is then held for its run of identical frames by
    splicing exact-copy "skip" pictures into the bitstream (:mod:`stages.video.h264`). Transition
    frames come from ``xfade``. Per-frame work is spent only where a frame changes: transitions,
    mouths and blinks. Memory stays flat (one frame in flight).

``graph`` (simple, the benchmark's baseline)
    One filter graph: each slide decoded once and looped, ``xfade`` between slides, characters as
    overlays enabled at their intervals, the ``ass`` filter on top. Also used for video backgrounds.

In both, the soundtrack is one WAV built in numpy (:mod:`stages.video.mix`); user text only ever
reaches ffmpeg inside the ASS file; filter graphs are built from numbers and fixed names and passed
with ``-filter_complex_script``, with ffmpeg running in a work folder so file names need no escaping.
Output is written to a temporary sibling and renamed into place only after :func:`verify_video`.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from stages.base import Cancelled, InputError, Progress, atomic_temp_path, commit_temp, no_progress
from stages.process import ProcessError, kill_group, run_process
from stages.video.ass import write_ass
from stages.video.frames import XFADE_NAMES, Compositor, frame_runs, transition_frames, _fonts_dir
from stages.video.h264 import Splicer
from stages.video.mix import write_soundtrack
from stages.video.probe import verify_video
from stages.video.timeline import Timeline

if TYPE_CHECKING:
    from stages.settings import Settings

AUDIO_BITRATE = "192k"


def render_with_ffmpeg(
    timeline: Timeline,
    out_path: Path,
    settings: "Settings",
    progress: Progress = no_progress,
    *,
    cancel: threading.Event | None = None,
    work_dir: Path | None = None,
) -> Path:
    """Render ``timeline`` to ``out_path`` (MP4), calling ``progress(frame, frames, "rendering")``.

    Raises:
        Cancelled: ``cancel`` was set; ffmpeg's process group was killed and nothing was left behind.
        RenderCheckFailed: the result did not pass :func:`verify_video`.
        ProcessError: ffmpeg failed.
    """
    out_path = Path(out_path)
    if timeline.width % 2 or timeline.height % 2:
        raise InputError(f"video size {timeline.width}x{timeline.height}: H.264 yuv420p needs even width and height")
    tmp = atomic_temp_path(out_path)
    own_work = work_dir is None
    work = Path(tempfile.mkdtemp(prefix=".render-", dir=out_path.parent)) if own_work else Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        if settings.video.ffmpeg_mode == "segments" and not needs_graph(timeline):
            _render_segments(timeline, tmp, settings, progress, cancel, work)
        else:
            write_soundtrack(timeline, work / "soundtrack.wav", cancel=cancel)
            _check(cancel)
            _render_graph(timeline, tmp, settings, progress, cancel, work)
        _check(cancel)
        progress(timeline.frames, timeline.frames, "verifying")
        verify_video(tmp, timeline)
        return commit_temp(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)


def needs_graph(timeline: Timeline) -> bool:
    """True when only the filter-graph path can draw the timeline (a moving video background)."""
    backgrounds = [timeline.background.default] + [o.background for o in timeline.background.overrides]
    return any(b.type == "video" for b in backgrounds)


def encoder_args(settings: "Settings") -> list[str]:
    """x264 at the configured quality: the same CRF and preset in both modes."""
    return ["-c:v", "libx264", "-preset", settings.video.preset, "-crf", str(settings.video.crf), "-pix_fmt", "yuv420p"]


# --- segments: distinct pictures encoded once, held by spliced skip pictures -----------------------


def _render_segments(
    timeline: Timeline, tmp: Path, settings: "Settings", progress: Progress, cancel: threading.Event | None, work: Path
) -> None:
    audio = _BackgroundAudio(timeline, work, cancel)  # soundtrack + AAC encode overlap the video
    runs = frame_runs(timeline)
    compositor = Compositor(timeline, work, cancel=cancel)
    splicer = Splicer()
    for run in runs:
        splicer.hold(run.count)
    w, h, fps = timeline.width, timeline.height, timeline.fps
    stream_path = work / "video.h264"
    # bframes=0 and ref=1: each picture predicts only from the one before, so held copies can be
    # spliced in between without changing what x264's pictures decode to.
    cmd = [
        "ffmpeg", "-nostdin", "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}",
        "-framerate", str(fps), "-i", "pipe:0", *encoder_args(settings),
        "-x264-params", "bframes=0:ref=1", "-threads", "0", "-f", "h264", "pipe:1",
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    errors: list[BaseException] = []
    stderr: list[bytes] = []

    def pump() -> None:
        try:
            with open(stream_path, "wb") as out:
                while chunk := proc.stdout.read(1 << 16):
                    out.write(splicer.feed(chunk))
                out.write(splicer.finish())
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            kill_group(proc)

    reader = threading.Thread(target=pump, daemon=True)
    err_reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)
    reader.start()
    err_reader.start()
    try:
        transitions: dict[int, object] = {}
        for run in runs:
            _check(cancel)
            if errors:
                break
            if run.transition_from is None:
                frame = compositor.picture_yuv(run.picture)
            else:
                if run.picture.slide not in transitions:
                    kind = timeline.slides[run.picture.slide].transition_in.type
                    before = compositor.picture_yuv(run.transition_from)
                    after = compositor.picture_yuv(run.picture)
                    transitions.clear()
                    transitions[run.picture.slide] = transition_frames(before, after, kind, run.steps, (w, h), fps, work)
                frame = transitions[run.picture.slide][run.step]
            proc.stdin.write(memoryview(np.ascontiguousarray(frame)).cast("B"))
            progress(min(splicer.frames_out, timeline.frames - 1), timeline.frames, "rendering")
        proc.stdin.close()
        while proc.poll() is None:
            _check(cancel)
            reader.join(timeout=0.05)
        reader.join()
        err_reader.join(timeout=5)
    except BaseException:
        kill_group(proc)
        raise
    if errors:
        raise errors[0]
    if proc.returncode != 0:
        raise ProcessError("ffmpeg (x264) failed", proc.returncode, b"".join(stderr).decode("utf-8", "replace"))
    if splicer.frames_out != timeline.frames:
        raise ProcessError("frame count mismatch", 1, f"wrote {splicer.frames_out} frames, expected {timeline.frames}")
    progress(timeline.frames - 1, timeline.frames, "muxing")
    audio_path = audio.result()
    run_process(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "h264", "-framerate", str(fps), "-i", stream_path.name,
         "-i", audio_path.name, "-map", "0:v", "-map", "1:a", "-c", "copy", "-movflags", "+faststart", str(tmp)],
        cancel=cancel, cwd=work, what="ffmpeg (mux)",
    )


class _BackgroundAudio:
    """Builds the soundtrack and encodes it to AAC in a thread while the pictures are encoded."""

    def __init__(self, timeline: Timeline, work: Path, cancel: threading.Event | None):
        self._error: BaseException | None = None
        self._path = work / "soundtrack.m4a"
        self._thread = threading.Thread(target=self._run, args=(timeline, work, cancel), daemon=True)
        self._thread.start()

    def _run(self, timeline: Timeline, work: Path, cancel: threading.Event | None) -> None:
        try:
            write_soundtrack(timeline, work / "soundtrack.wav", cancel=cancel)
            run_process(
                ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", "soundtrack.wav", "-c:a", "aac", "-b:a", AUDIO_BITRATE,
                 self._path.name],
                cancel=cancel, cwd=work, what="ffmpeg (aac)",
            )
        except BaseException as exc:  # re-raised by result()
            self._error = exc

    def result(self) -> Path:
        """The encoded soundtrack; raises what the thread raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._path


# --- graph: one filter graph -----------------------------------------------------------------------


def _render_graph(
    timeline: Timeline, tmp: Path, settings: "Settings", progress: Progress, cancel: threading.Event | None, work: Path
) -> None:
    fps, frame = timeline.fps, timeline.frame
    compositor = Compositor(timeline, work, cancel=cancel, subtitles=False)
    args: list[str] = []
    lines: list[str] = []
    slides = timeline.slides
    for k, slide in enumerate(slides):
        png = work / f"under-{k}.png"
        Image.fromarray(compositor.under(k)).save(png, compress_level=1)
        args += ["-i", png.name]
        overlap = 0
        if k + 1 < len(slides) and slides[k + 1].transition_in.type != "none":
            overlap = frame(slides[k + 1].start + slides[k + 1].transition_in.duration) - frame(slides[k + 1].start)
        length = frame(slide.end) - frame(slide.start) + overlap
        lines.append(f"[{k}:v]format=yuv420p,loop=loop={max(length - 1, 0)}:size=1:start=0,setpts=N/({fps}*TB)[s{k}]")
    current = "s0"
    for k in range(1, len(slides)):
        transition = slides[k].transition_in
        if transition.type == "none" or transition.duration <= 0:
            lines.append(f"[{current}][s{k}]concat=n=2:v=1:a=0[c{k}]")
        else:
            steps = frame(slides[k].start + transition.duration) - frame(slides[k].start)
            lines.append(
                f"[{current}][s{k}]xfade=transition={XFADE_NAMES[transition.type]}:duration={steps / fps:.6f}"
                f":offset={frame(slides[k].start) / fps:.6f}[c{k}]"
            )
        current = f"c{k}"
    index = len(slides)
    for c, track in enumerate(timeline.characters):
        layers = [("base", 0, [(0.0, timeline.duration)])]
        if track.eyes_closed:
            layers.append(("eyes", 2, track.blinks))
        if track.mouth_open:
            layers.append(("mouth", 1, track.mouth_open_intervals))
        for name, state, intervals in layers:
            x, y, pixels = compositor.sprite(c, state)
            png = work / f"char-{c}-{name}.png"
            Image.fromarray(pixels, "RGBA").save(png, compress_level=1)
            args += ["-i", png.name]
            enable = _enable(intervals, timeline) if name != "base" else ""
            if name != "base" and not enable:
                continue
            lines.append(f"[{current}][{index}:v]overlay=x={x}:y={y}:format=auto{enable}[o{index}]")
            current = f"o{index}"
            index += 1
    if timeline.subtitles:
        write_ass(timeline, work / "subs.ass")
        fonts = _fonts_dir(timeline, work)
        lines.append(f"[{current}]ass=subs.ass" + (f":fontsdir={fonts.name}" if fonts else "") + "[v]")
    else:
        lines.append(f"[{current}]null[v]")
    (work / "graph.txt").write_text(";\n".join(lines), encoding="utf-8")
    args += ["-i", "soundtrack.wav"]
    total = timeline.frames

    def on_line(line: str) -> None:
        key, _, value = line.partition("=")
        if key == "frame" and value.strip().isdigit():
            progress(min(int(value), total - 1), total, "rendering")

    run_process(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", *args, "-filter_complex_script", "graph.txt",
         "-map", "[v]", "-map", f"{index}:a", *encoder_args(settings), "-r", str(fps), "-frames:v", str(total),
         "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-movflags", "+faststart", "-progress", "pipe:1", "-nostats", str(tmp)],
        cancel=cancel, cwd=work, on_line=on_line, what="ffmpeg (render)",
    )


def _enable(intervals: list[tuple[float, float]], timeline: Timeline) -> str:
    """``:enable='…'`` for frames inside ``intervals`` (numbers only; frame centres, so exact)."""
    half = 0.5 / timeline.fps
    terms = []
    for a, b in intervals:
        fa, fb = timeline.frame(a), timeline.frame(b)
        if fb > fa:
            terms.append(f"between(t,{fa / timeline.fps - half:.6f},{fb / timeline.fps - half:.6f})")
    return f":enable='{'+'.join(terms)}'" if terms else ""


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("render was cancelled")
