"""The default renderer: a timeline to H.264 + AAC in MP4 with ffmpeg.

Two ways to the same picture (``settings.video.ffmpeg_mode``):

``segments`` (default, fast)
    Every *distinct* picture is drawn once (slide + characters + libass subtitle, composited in
    numpy on yuv420p) and x264 encodes only those; each is then held for its run of identical frames
    by splicing exact-copy "skip" pictures into the bitstream (:mod:`stages.video.h264`). A copy can
    show any of the last few x264 pictures, so a mouth going open/shut/open is encoded once per
    state, not once per change (:func:`stages.video.frames.encode_plan`). A picture that differs
    from the last x264 picture only in a few dozen macroblocks (a mouth, a blink, an expression) is
    not given to x264 at all: it becomes a *patch picture*, those macroblocks as exact I_PCM samples
    over skipped ones (:func:`stages.video.frames.patch_plan`, :meth:`stages.video.h264.Splicer.patch`).
    Pictures are composited in a thread a few ahead of the writer. Transition frames are
    blended in numpy (:class:`stages.video.frames.Transition`). The decode check runs on the stream
    as it is written, and the AAC encode in a thread, both beside x264. Memory stays flat (one
    frame in flight).

``graph`` (simple, the benchmark's baseline)
    One filter graph: each slide decoded once and looped, ``xfade`` between slides (a fade is two:
    into the background alone and out of it, as in segments mode), characters as
    overlays enabled at their intervals (after the ``xfade`` chain: they never move in a
    transition), the ``ass`` filter on top. A visible video background is a looped input
    (``-stream_loop -1``) trimmed to each slide's span under the slide's RGBA image.

In ``segments`` mode a slide over a *visible* video background is the exception to "drawn once":
its frames are blended one by one over the decoded background (:class:`stages.video.frames.VideoLoop`);
with no video background, or an opaque full-frame slide over it, nothing is drawn per frame.

Colour: RGB is converted to limited-range BT.709 (numpy and ``scale=out_color_matrix=bt709``) and
the stream is tagged so (x264's VUI, kept by the splicer, and the MP4).

In both, the soundtrack is one WAV built in numpy (:mod:`stages.video.mix`); user text only ever
reaches ffmpeg inside the ASS file; filter graphs are built from numbers and fixed names and passed
with ``-filter_complex_script``, with ffmpeg running in a work folder so file names need no escaping.
Output is written to a temporary sibling and renamed into place only after :func:`verify_video`.
"""

from __future__ import annotations

import queue
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
from stages.video.chapters import embed_chapters, ffmetadata_text
from stages.video.frames import (
    COLOR_TAGS,
    SCALE_BT709,
    XFADE_NAMES,
    Compositor,
    _fonts_dir,
    background_image,
    changed_macroblocks,
    encode_plan,
    frame_runs,
    macroblock_samples,
    moving_backgrounds,
    patch_plan,
    slide_background,
    slide_rgba,
    video_fit_filter,
)
from stages.video.h264 import MAX_COPY_RUN, Splicer
from stages.video.mix import write_soundtrack
from stages.video.probe import verify_video
from stages.video.timeline import Timeline

if TYPE_CHECKING:
    from stages.settings import Settings

AUDIO_BITRATE = "192k"
# Pictures a copy can show: the last few x264 wrote (a mouth open/shut, a blink, both speakers).
# 4 fits the level-4 decoded picture buffer at 1080p; see stages.video.h264.
REFERENCE_PICTURES = 4
# x264's analysis for pictures that do not move: no sub-partitions, the diamond search and one
# sub-pixel refinement. Slides, subtitles and characters are still or step, so the partition and
# motion search a preset spends on camera footage finds nothing: on bench/render.py's pictures this
# took x264 from 6.2 to 4.1 CPU seconds (transition frames 40 -> 25 ms each) for 5 % more bytes and
# 0.2-0.4 dB less PSNR at the same CRF. No macroblock tree: x264 cannot know a picture is held
# for seconds (it sees one frame), so MB-tree starved short-lived changes of bits; a blink that
# came with a breath's lift kept ghosts of the open eyes' highlights. Without it the dialogue's
# file grew 11 % and x264 spent slightly less CPU.
SLIDE_ANALYSIS = "partitions=none:me=dia:subme=1:mbtree=0"
# A picture that differs from the last x264 picture in at most this many macroblocks (a mouth, a
# blink, an expression; 2 % of a 1080p frame) is a patch picture of exact samples instead
# (Splicer.patch): 60 KB at most, against x264's ~13 ms of CPU and the decode check's ~5 ms for a
# whole frame. On bench/render.py this is most of the characters' pictures.
MAX_PATCH_MBS = 160
KEYINT_SECONDS = 8  # a GOP starts at least this often (x264's default keyint is 250 frames)


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
        segments = settings.video.ffmpeg_mode == "segments"
        if segments:
            _render_segments(timeline, tmp, settings, progress, cancel, work)
        else:
            write_soundtrack(timeline, work / "soundtrack.wav", cancel=cancel)
            _check(cancel)
            _render_graph(timeline, tmp, settings, progress, cancel, work)
            embed_chapters(tmp, timeline.chapters, timeline.duration, cancel=cancel)
        _check(cancel)
        progress(timeline.frames, timeline.frames, "verifying")
        # segments mode decoded its stream while encoding it (see _render_segments)
        verify_video(tmp, timeline, decode=not segments)
        return commit_temp(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)


def encoder_args(settings: "Settings") -> list[str]:
    """x264 at the configured quality (the same CRF and preset in both modes), tagged BT.709 limited
    range in the stream's VUI and the container."""
    return ["-c:v", "libx264", "-preset", settings.video.preset, "-crf", str(settings.video.crf), "-pix_fmt", "yuv420p",
            *COLOR_TAGS]


# --- segments: distinct pictures encoded once, held by spliced skip pictures -----------------------


def _render_segments(
    timeline: Timeline, tmp: Path, settings: "Settings", progress: Progress, cancel: threading.Event | None, work: Path
) -> None:
    audio = _BackgroundAudio(timeline, work, cancel)  # soundtrack + AAC encode overlap the video
    try:
        _encode_video(timeline, settings, progress, cancel, work)
        audio_path = audio.result()
    except BaseException:
        audio.stop()  # nothing may outlive the render or write into its work folder
        raise
    # "-r" (not the demuxer's "-framerate") stamps frame n at exactly n/fps: with "-framerate" the raw
    # H.264 demuxer's timestamps ran 10 ppm short, 36 ms an hour, past verify_video's one frame.
    # The chapters go in with this mux (not a remux afterwards, which read and wrote the whole file again).
    meta = ffmetadata_text(timeline.chapters, timeline.duration)
    chapters: list[str] = []
    if "[CHAPTER]" in meta:
        (work / "chapters.ffmeta").write_text(meta, encoding="utf-8")
        chapters = ["-f", "ffmetadata", "-i", "chapters.ffmeta", "-map_chapters", "2"]
    run_process(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "h264", "-r", str(timeline.fps), "-i", "video.h264",
         "-i", audio_path.name, *chapters, "-map", "0:v", "-map", "1:a", "-c", "copy", "-movflags", "+faststart",
         "-f", "mp4", str(tmp)],
        cancel=cancel, cwd=work, what="ffmpeg (mux)",
    )


def _encode_video(
    timeline: Timeline, settings: "Settings", progress: Progress, cancel: threading.Event | None, work: Path
) -> None:
    """Composite, encode and splice the video to ``work/video.h264``, decoding it as it is written."""
    fps = timeline.fps
    plan = encode_plan(frame_runs(timeline), refs=REFERENCE_PICTURES, keyint=KEYINT_SECONDS * fps, max_copies=MAX_COPY_RUN)
    compositor = Compositor(timeline, work, cancel=cancel)
    try:
        _encode_pictures(timeline, settings, progress, cancel, work, plan, compositor)
    finally:
        compositor.close()


def _encode_pictures(
    timeline: Timeline, settings: "Settings", progress: Progress, cancel: threading.Event | None, work: Path,
    plan: list, compositor: Compositor,
) -> None:
    fps = timeline.fps
    splicer = Splicer(refs=REFERENCE_PICTURES)
    patches = patch_plan(plan, compositor, refs=REFERENCE_PICTURES, max_mbs=MAX_PATCH_MBS)
    w, h = timeline.width, timeline.height
    stream_path = work / "video.h264"
    x264_items = [item for item, patch in zip(plan, patches) if not patch]
    keyframes = keyframe_times([i for i, item in enumerate(x264_items) if item.idr], fps)
    # bframes=0 and ref=1: each picture predicts only from the one before (the splicer's copies are
    # non-reference pictures, invisible to that prediction). GOPs start where encode_plan says
    # (slide starts, every KEYINT_SECONDS), not at x264's own choice, so copies know what they can
    # reach.
    encoder = _Child(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}",
         "-framerate", str(fps), *COLOR_TAGS, "-i", "pipe:0", *encoder_args(settings),
         "-x264-params", f"bframes=0:ref=1:scenecut=0:keyint=infinite:{SLIDE_ANALYSIS}", "-force_key_frames", keyframes,
         "-forced-idr", "1", "-threads", str(settings.video.workers), "-f", "h264", "pipe:1"],
        "ffmpeg (x264)", stdout=True,
    )
    # The check that the video decodes runs here, on the spliced stream as it is written, so it
    # overlaps the encode instead of following it: exactly the bytes the MP4 then carries (the mux
    # copies the stream); verify_video(decode=False) afterwards checks the container: streams,
    # size, duration and one video packet per frame.
    # decode_check "full" decodes every frame. "encoded" (default) has the decoder skip the
    # non-reference pictures, i.e. the spliced copies, and decode every picture x264 made, in the
    # final stream with its rewritten SPS and slice headers. What that leaves undecoded is the copies:
    # all-skip slices written by one function (Splicer._skip_nal) from numbers only (frame_num, POC,
    # which picture), whose decoding to exact copies tests/test_video_h264.py checks for CAVLC and
    # CABAC; their presence is checked by the packet count. Decoding the copies costs ~1 ms of CPU
    # each at 1080p and there are ~10x more of them than x264 pictures, so this is most of the check.
    skip = ["-skip_frame", "noref"] if settings.video.decode_check == "encoded" else []
    decoder = _Child(["ffmpeg", "-nostdin", "-v", "error", "-threads", "1", *skip, "-f", "h264", "-i", "pipe:0", "-f", "null", "-"],
                     "ffmpeg (decode check)", stdout=False)
    errors: list[BaseException] = []

    def pump() -> None:
        try:
            with open(stream_path, "wb") as out:
                while chunk := encoder.proc.stdout.read(1 << 16):
                    _write_both(out, decoder, splicer.feed(chunk))
                _write_both(out, decoder, splicer.finish())
            decoder.proc.stdin.close()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            encoder.kill()
            decoder.kill()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    frames = _Frames(compositor, plan, patches, (w, h), cancel)
    try:
        for item, (frame, patch) in zip(plan, frames):
            _check(cancel)
            if errors:
                break
            if patch is not None:  # registered before the next x264 picture is written, so before it is spliced
                splicer.patch(item.spans, *patch)
                continue
            splicer.copies(item.spans)
            try:
                encoder.proc.stdin.write(memoryview(frame).cast("B"))
            except BrokenPipeError:  # x264 stopped reading: encoder.check() below says why
                break
            progress(min(splicer.frames_out, timeline.frames - 1), timeline.frames, "rendering")
        frames.stop()
        try:
            encoder.proc.stdin.close()
        except BrokenPipeError:
            pass
        for child in (encoder, decoder):
            while child.proc.poll() is None:
                _check(cancel)
                reader.join(timeout=0.05)
        reader.join()
    except BaseException:
        frames.stop()
        encoder.kill()
        decoder.kill()
        raise
    if encoder.proc.returncode and encoder.proc.returncode > 0:  # x264 failed by itself (not killed by us)
        encoder.check()
    if errors:
        raise errors[0]
    encoder.check()
    decoder.check(clean=True)
    if splicer.frames_out != timeline.frames:
        raise ProcessError("frame count mismatch", 1, f"wrote {splicer.frames_out} frames, expected {timeline.frames}")
    progress(timeline.frames - 1, timeline.frames, "muxing")


class _Frames:
    """The plan's frames, composited in a thread a few pictures ahead of the writer.

    Writing a frame blocks while x264 is busy with the ones before it; compositing in the same
    thread left a core idle during each (numpy and Pillow release the GIL, so the two overlap).
    Iterating yields contiguous yuv420p arrays in plan order and re-raises the compositor's error.
    """

    AHEAD = 6

    def __init__(self, compositor: Compositor, plan: list, patches: list[bool], size: tuple[int, int],
                 cancel: threading.Event | None):
        self._queue: queue.Queue = queue.Queue(maxsize=self.AHEAD)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(compositor, plan, patches, size, cancel), daemon=True)
        self._thread.start()

    def _run(self, compositor: Compositor, plan: list, patches: list[bool], size: tuple[int, int],
             cancel: threading.Event | None) -> None:
        """Yields ``(frame, None)`` for an x264 picture, ``(None, (mbs, samples))`` for a patch of the last one."""
        try:
            base = None  # the frame x264 was given last: what a patch's skipped macroblocks show
            for item, patch in zip(plan, patches):
                if self._stopped.is_set() or (cancel is not None and cancel.is_set()):
                    break
                frame = np.ascontiguousarray(compositor.frame_yuv(item.run))
                if patch:
                    mbs = changed_macroblocks(base, frame, *size)
                    self._put(("frame", (None, (mbs.tolist(), macroblock_samples(frame, *size, mbs)))))
                else:
                    base = frame
                    self._put(("frame", (frame, None)))
            self._put(("end", None))
        except BaseException as exc:  # handed to the writer, which raises it
            self._put(("error", exc))

    def _put(self, item: tuple) -> None:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self):
        while True:
            kind, value = self._queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value

    def stop(self) -> None:
        """Stop compositing and wait for the thread (the compositor is closed after this)."""
        self._stopped.set()
        self._thread.join()


def keyframe_times(pictures: list[int], fps: int) -> str:
    """``-force_key_frames`` as a list of timestamps: picture ``i`` of the raw input is at ``i / fps``.

    A list, not an ``expr:`` of ``eq(n,i)`` terms: ffmpeg's expression parser refuses more than 100
    terms (a video with over 100 slides, or longer than about 13 minutes, failed to start the
    encoder). ffmpeg rounds each time to the nearest tick of the encoder's 1/fps time base and
    forces the first picture at or after it, so six decimals name picture ``i`` exactly.

    Raises:
        InputError: the list would not fit in one command-line argument (more than about 10,000
            keyframes: a video of more than a day).
    """
    text = ",".join(f"{i / fps:.6f}" for i in pictures)
    if len(text) > _MAX_ARGUMENT:
        raise InputError(f"the video needs {len(pictures)} keyframes, more than one ffmpeg run can be given: "
                         "split the script into shorter videos")
    return text


_MAX_ARGUMENT = 120_000  # Linux's MAX_ARG_STRLEN is 128 KiB per argument


class _Child:
    """An ffmpeg fed through stdin (own process group), its stderr collected by a thread."""

    def __init__(self, cmd: list[str], what: str, *, stdout: bool):
        self.what = what
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True,
        )
        self._stderr: list[bytes] = []
        self._thread = threading.Thread(target=lambda: self._stderr.append(self.proc.stderr.read()), daemon=True)
        self._thread.start()

    def kill(self) -> None:
        kill_group(self.proc)

    def check(self, *, clean: bool = False) -> None:
        """Raise :class:`ProcessError` if it failed (or, with ``clean``, printed any error)."""
        self._thread.join(timeout=5)
        err = b"".join(self._stderr).decode("utf-8", "replace").strip()
        if self.proc.returncode != 0 or (clean and err):
            raise ProcessError(f"{self.what} failed", self.proc.returncode or 1, err)


def _write_both(out, decoder: _Child, data: bytes) -> None:
    if data:
        out.write(data)
        decoder.proc.stdin.write(data)


class _Stop:
    """Set when the caller cancels or when the render fails (``is_set`` is all run_process asks)."""

    def __init__(self, cancel: threading.Event | None):
        self._cancel = cancel
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set() or (self._cancel is not None and self._cancel.is_set())


class _BackgroundAudio:
    """Builds the soundtrack and encodes it to AAC in a thread while the pictures are encoded."""

    def __init__(self, timeline: Timeline, work: Path, cancel: threading.Event | None):
        self._error: BaseException | None = None
        self._path = work / "soundtrack.m4a"
        self._stop = _Stop(cancel)
        self._thread = threading.Thread(target=self._run, args=(timeline, work, self._stop), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Kill its ffmpeg (if running) and wait for the thread to end."""
        self._stop.set()
        self._thread.join()

    def _run(self, timeline: Timeline, work: Path, cancel: "_Stop") -> None:
        try:
            write_soundtrack(timeline, work / "soundtrack.wav", cancel=cancel)
            run_process(
                ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", "soundtrack.wav", "-c:a", "aac", "-b:a", AUDIO_BITRATE,
                 self._path.name],
                cancel=cancel, cwd=work, what="ffmpeg (aac)",
            )
            (work / "soundtrack.wav").unlink()  # 0.7 GB an hour: not kept until the render ends
            # the decode check for the audio (the video's is done while encoding)
            stderr = run_process(["ffmpeg", "-nostdin", "-v", "error", "-i", self._path.name, "-f", "null", "-"],
                                 cancel=cancel, cwd=work, what="ffmpeg (aac decode check)")
            if stderr.strip():
                raise ProcessError("the AAC track does not decode cleanly", 1, stderr)
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
    size = (timeline.width, timeline.height)
    moving = moving_backgrounds(timeline)

    def add_input(*items: str) -> int:
        args.extend(items)
        return sum(1 for a in args if a == "-i") - 1

    for k, slide in enumerate(slides):
        overlap = 0
        if k + 1 < len(slides) and slides[k + 1].transition_in.type != "none":
            overlap = frame(slides[k + 1].start + slides[k + 1].transition_in.duration) - frame(slides[k + 1].start)
        length = frame(slide.end) - frame(slide.start) + overlap
        if k in moving:  # the slide over its looping video background
            background, _ = slide_background(timeline, k)
            png = work / f"slide-{k}.png"
            Image.fromarray(slide_rgba(slide.image, size), "RGBA").save(png, compress_level=1)
            video = add_input("-stream_loop", "-1", "-i", str(background.path))
            image = add_input("-i", png.name)
            phase = frame(slide.start) - moving[k]
            lines.append(
                f"[{video}:v]{video_fit_filter(background.fit, size, fps)},trim=start_frame={phase}:end_frame={phase + length},"
                f"settb=1/{fps},setpts=N[bg{k}]"
            )
            lines.append(f"[{image}:v]format=rgba,scale={SCALE_BT709},format=yuva420p[sl{k}]")
            # Every slide chain leaves with timebase 1/fps and frame rate fps: xfade refuses a mix.
            lines.append(f"[bg{k}][sl{k}]overlay=x=0:y=0:format=yuv420:eof_action=repeat,fps={fps}[s{k}]")
            continue
        png = work / f"under-{k}.png"
        Image.fromarray(compositor.under(k)).save(png, compress_level=1)
        image = add_input("-i", png.name)
        lines.append(
            f"[{image}:v]scale={SCALE_BT709},format=yuv420p,loop=loop={max(length - 1, 0)}:size=1:start=0,"
            f"settb=1/{fps},setpts=N,fps={fps}[s{k}]"
        )
    current = "s0"
    for k in range(1, len(slides)):
        transition = slides[k].transition_in
        if transition.type == "none" or transition.duration <= 0:
            lines.append(f"[{current}][s{k}]concat=n=2:v=1:a=0[c{k}]")
        else:
            steps = frame(slides[k].start + transition.duration) - frame(slides[k].start)
            offset = frame(slides[k].start)
            half = (steps + 1) // 2  # the steps with less than half of the new slide (frames.Transition)
            if transition.type == "fade" and 0 < half < steps:
                # Dip through the background: the old slide fades out to the background alone, then
                # the new one fades in from it; the new slide's chain skips the frames the first
                # half took, so it stays on its frames and the total length does not change.
                png = work / f"ground-{k}.png"
                background_image(slide_background(timeline, k)[0], size).convert("RGB").save(png, compress_level=1)
                ground = add_input("-i", png.name)
                lines.append(
                    f"[{ground}:v]scale={SCALE_BT709},format=yuv420p,loop=loop={steps - 1}:size=1:start=0,"
                    f"settb=1/{fps},setpts=N,fps={fps}[g{k}]"
                )
                lines.append(f"[s{k}]trim=start_frame={half},setpts=N[n{k}]")
                lines.append(
                    f"[{current}][g{k}]xfade=transition=fade:duration={half / fps:.6f}:offset={offset / fps:.6f}[d{k}]"
                )
                lines.append(
                    f"[d{k}][n{k}]xfade=transition=fade:duration={(steps - half) / fps:.6f}"
                    f":offset={(offset + half) / fps:.6f}[c{k}]"
                )
                current = f"c{k}"
                continue
            lines.append(
                f"[{current}][s{k}]xfade=transition={XFADE_NAMES[transition.type]}:duration={steps / fps:.6f}"
                f":offset={offset / fps:.6f}[c{k}]"
            )
        current = f"c{k}"
    for c, track in enumerate(timeline.characters):
        layers = [("base", 0, [(0.0, timeline.duration)])]
        if track.eyes_closed:
            layers.append(("eyes", 2, track.blinks))
        if track.mouth_open:
            layers.append(("mouth", 1, track.mouth_open_intervals))
        for name, state, intervals in layers:
            enable = _enable(intervals, timeline) if name != "base" else ""
            if name != "base" and not enable:
                continue  # never shown: no input (an unused input shifted the soundtrack's index)
            x, y, pixels = compositor.sprite(c, state)
            png = work / f"char-{c}-{name}.png"
            Image.fromarray(pixels, "RGBA").save(png, compress_level=1)
            index = add_input("-i", png.name)
            # after the slides' xfade chain: characters stay put through every transition
            lines.append(f"[{index}:v]format=rgba,scale={SCALE_BT709},format=yuva420p[p{index}]")
            lines.append(f"[{current}][p{index}]overlay=x={x}:y={y}:format=yuv420{enable}[o{index}]")
            current = f"o{index}"
    if timeline.subtitles:
        # libass draws on a transparent RGBA band (the bottom half, where cues sit: PlayResY is the
        # band's height, so pixels are as on the whole frame), premultiplied, so unpremultiplied
        # after; the band then goes to yuva420p with BT.709 like every other layer. ``ass`` straight
        # on the yuv420p video converted the colours with BT.601 (ffmpeg 5.1's drawutils): pure
        # yellow came out (255, 238, 0) after a BT.709 decode.
        top = (timeline.height // 2) & ~1
        write_ass(timeline, work / "subs.ass", height=timeline.height - top)
        fonts = _fonts_dir(timeline, work)
        lines.append(
            f"color=c=black@0:s={timeline.width}x{timeline.height - top}:r={fps}:d={timeline.frames / fps:.6f},format=rgba,"
            "ass=subs.ass:alpha=1" + (f":fontsdir={fonts.name}" if fonts else "") + ","
            f"unpremultiply=inplace=1,scale={SCALE_BT709},format=yuva420p[subs]"
        )
        lines.append(f"[{current}][subs]overlay=x=0:y={top}:format=yuv420:eof_action=pass[v]")
    else:
        lines.append(f"[{current}]null[v]")
    (work / "graph.txt").write_text(";\n".join(lines), encoding="utf-8")
    soundtrack = add_input("-i", "soundtrack.wav")
    total = timeline.frames

    def on_line(line: str) -> None:
        key, _, value = line.partition("=")
        if key == "frame" and value.strip().isdigit():
            progress(min(int(value), total - 1), total, "rendering")

    # Both streams are cut to length with -t; -frames:v ended the output as soon as the last video
    # frame was written and dropped the audio still buffered (the AAC track was 0.1-0.6 s short).
    run_process(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", *args, "-filter_complex_script", "graph.txt",
         "-map", "[v]", "-map", f"{soundtrack}:a", *encoder_args(settings), "-r", str(fps), "-t", f"{total / fps:.6f}",
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
    return f":enable='{_balanced_sum(terms)}'" if terms else ""


def _balanced_sum(terms: list[str]) -> str:
    """``terms`` added as a balanced tree of parenthesised pairs: ffmpeg's expression parser recurses
    once per ``+`` of a flat chain and gave up near 100 terms (a character's mouth intervals in a
    few minutes of video), but a tree is only log2(n) deep."""
    if len(terms) == 1:
        return terms[0]
    middle = len(terms) // 2
    return f"({_balanced_sum(terms[:middle])}+{_balanced_sum(terms[middle:])})"


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("render was cancelled")
