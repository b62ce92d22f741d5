"""The Remotion renderer: real node, real Chromium, real ffmpeg, on a tiny 320x180 timeline.

Needs ``npm ci`` in ``remotion/`` (``make setup-test`` does it). The first render bundles the
composition (about 10 s); later renders reuse the bundle.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from stages.base import Cancelled, InputError
from stages.video.remotion import (
    DEFAULT_PROJECT_DIR,
    MARKER_ENV,
    RemotionUnavailable,
    doctor_checks,
    render_with_remotion,
)
from stages.video.probe import probe
from stages.video.ffmpeg import render_with_ffmpeg
from stages.video.plan import plan_timeline
from stages.video.timeline import Timeline
from tests.test_video_fixtures import MOUTH_COLOR, RATE, SLIDE_COLORS, Phrase, make_job

pytestmark = pytest.mark.skipif(
    not (DEFAULT_PROJECT_DIR / "node_modules" / "@remotion" / "renderer").is_dir(),
    reason="remotion/node_modules missing: run `make setup-test` (npm ci in remotion/)",
)

# Mean absolute difference (0-255 per RGB channel) allowed in the slide area. Both sides go
# through yuv420p and x264 at 320x180, which alone costs 1-3; a wrong slide, a misplaced
# transition or a shifted layout costs tens.
SLIDE_MAD_LIMIT = 6.0

# The same for the subtitle band: glyph edges are anti-aliased by two different rasterizers
# (FreeType through libass, Skia), so the band differs more than flat slide areas.
SUBTITLE_MAD_LIMIT = 12.0

# Every frame of the two renders, whole: catches a transition, a mouth or a cue off by frames.
# Measured: at most 2.8 on this timeline.
FRAME_MAD_LIMIT = 6.0

# Soundtracks: mean difference of the 20 ms loudness envelopes, as a share of the peak level.
# Measured: 1 %; audio 43 ms late (Remotion's AAC delay) gave 6 %, mono clips at -3 dB 10 %.
AUDIO_DRIFT_LIMIT = 0.03

SECTIONS = [[Phrase("こんにちは、世界", seconds=1.0)], [Phrase("二つ目のスライドです", seconds=0.8)]]
VIDEO = {
    "timing": {"initial_pause": 0.3, "section_pause": 0.5, "ending_pause": 0.3},
    "transition": {"type": "fade", "duration": 0.3},
}


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A 2.9 s job: two slides, a fade, subtitles, one talking character, looping ducked BGM."""
    root = tmp_path_factory.mktemp("remotion")
    bgm = _write_tone(root / "bgm.wav", 1.5, 220.0)
    video = {**VIDEO, "bgm": {"path": str(bgm), "volume": 0.5, "fade_in": 0.5, "fade_out": 0.5, "duck_volume": 0.3}}
    job = make_job(root, SECTIONS, characters={"narrator": (0, 200, 0)}, video=video)
    timeline = plan_timeline(job.dir, job.settings)
    timeline.save(job.dir / "timeline.json")
    return job, timeline


@pytest.fixture(scope="module")
def rendered(job):
    """The job rendered once by Remotion, with the progress calls it made."""
    the_job, timeline = job
    calls: list[tuple[int, int, str]] = []
    before = _scratch_dirs()
    out = render_with_remotion(
        the_job.dir / "timeline.json",
        the_job.dir / "remotion.mp4",
        the_job.settings,
        lambda current, total, message: calls.append((current, total, message)),
    )
    assert _scratch_dirs() <= before, "the render left its scratch folder (Chromium profile) behind"
    return out, calls


def test_render_matches_timeline_duration_and_has_audio(job, rendered):
    """The output's video lasts the timeline's frames (within one frame) and has an audio stream."""
    _, timeline = job
    out, _ = rendered
    streams = probe_streams(out)
    assert abs(streams["video"] - timeline.frames / timeline.fps) <= 1 / timeline.fps
    assert streams["audio"] > 0
    assert not list(out.parent.glob(".remotion.*.part.mp4")), "the temporary output was left behind"


def test_progress_is_monotonic_and_reaches_total(job, rendered):
    """Progress calls never go backwards, keep one total, and end at the total frame count."""
    _, timeline = job
    _, calls = rendered
    frames = [c for c in calls if c[0] > 0]
    assert len(frames) >= 3
    currents = [c[0] for c in calls]
    assert currents == sorted(currents)
    assert {c[1] for c in calls} == {timeline.frames}
    assert calls[-1][0] == timeline.frames
    assert any(m.startswith(("encoding", "muxing")) and m.endswith(f"/{timeline.frames}") for _, _, m in calls)


def test_slide_mid_frame_shows_the_slide(job, rendered):
    """Mid-slide, the slide area of each slide equals its PNG (colour and layout)."""
    _, timeline = job
    out, _ = rendered
    from PIL import Image

    for index, clip in enumerate(timeline.slides):
        t = _mid_slide(timeline, index)
        frame = frame_at(out, t, timeline)
        with Image.open(clip.image) as image:
            slide = np.asarray(image.convert("RGB"), dtype=np.float64)
        mad = _slide_area_mad(frame, slide)
        assert mad < SLIDE_MAD_LIMIT, f"slide {index} at {t:.2f}s differs by {mad:.1f}"
        assert np.allclose(frame[5:15, 150:170].mean(axis=(0, 1)), SLIDE_COLORS[index], atol=12)


def test_character_mouth_opens_only_when_the_timeline_says(job, rendered):
    """The magenta open mouth shows inside a mouth-open interval and not in silence."""
    _, timeline = job
    out, _ = rendered
    track = timeline.characters[0]
    start, end = track.mouth_open_intervals[0]
    inside = frame_at(out, (start + end) / 2, timeline)
    silent = frame_at(out, 0.1, timeline)
    assert _magenta_pixels(inside, track) > 100
    assert _magenta_pixels(silent, track) == 0


def test_subtitle_drawn_in_the_safe_box(job, rendered):
    """During a cue, text pixels appear in the subtitle band inside the safe box; not before."""
    _, timeline = job
    out, _ = rendered
    cue = timeline.subtitles[0]
    box = timeline.subtitle_style.safe_box
    during = frame_at(out, (cue.start + cue.end) / 2, timeline)
    before = frame_at(out, cue.start / 2, timeline)
    band = slice(int(box.y), timeline.height)
    cols = slice(int(box.x), int(box.x + box.width))
    bright = lambda f: int((f[band, cols].min(axis=2) > 200).sum())  # noqa: E731 (white text)
    assert bright(during) > 20
    assert bright(during) > 5 * max(1, bright(before))


def test_parity_with_ffmpeg_renderer(job, rendered, tmp_path):
    """Both renderers agree: duration within a frame, audio present, mid-slide frames and subtitles alike."""
    the_job, timeline = job
    out, _ = rendered
    reference = render_with_ffmpeg(timeline, tmp_path / "ffmpeg.mp4", the_job.settings)
    ours, theirs = probe_streams(out), probe_streams(reference)
    assert abs(ours["video"] - theirs["video"]) <= 1 / timeline.fps
    assert "audio" in ours and "audio" in theirs
    for index in range(len(timeline.slides)):
        t = _mid_slide(timeline, index)
        mad = _slide_area_mad(frame_at(out, t, timeline), frame_at(reference, t, timeline))
        assert mad < SLIDE_MAD_LIMIT, f"slide {index} at {t:.2f}s: renderers differ by {mad:.1f}"
    ours_frames, their_frames = all_frames(out, timeline), all_frames(reference, timeline)
    assert ours_frames.shape == their_frames.shape
    per_frame = np.abs(ours_frames - their_frames).mean(axis=(1, 2, 3))
    worst = int(per_frame.argmax())
    assert per_frame[worst] < FRAME_MAD_LIMIT, f"frame {worst} differs by {per_frame[worst]:.1f}"
    ours_level, their_level = loudness(out), loudness(reference)
    assert ours_level.size == pytest.approx(their_level.size, abs=2)
    n = min(ours_level.size, their_level.size)
    drift = np.abs(ours_level[:n] - their_level[:n]).mean() / their_level.max()
    assert drift < AUDIO_DRIFT_LIMIT, f"soundtracks differ by {drift:.1%} of the peak level"
    onset = lambda level: int(np.argmax(level > 0.5 * level.max()))  # noqa: E731
    assert abs(onset(ours_level) - onset(their_level)) <= 1, "narration starts at different times"
    box = timeline.subtitle_style.safe_box
    for cue in timeline.subtitles:
        t = (cue.start + cue.end) / 2
        a, b = frame_at(out, t, timeline), frame_at(reference, t, timeline)
        rows_a, rows_b = _text_rows(a, box), _text_rows(b, box)
        assert abs(rows_a[0] - rows_b[0]) <= 2 and abs(rows_a[1] - rows_b[1]) <= 2, (rows_a, rows_b)
        band = (slice(int(box.y), timeline.height), slice(int(box.x), int(box.x + box.width)))
        mad = float(np.abs(a[band] - b[band]).mean())
        assert mad < SUBTITLE_MAD_LIMIT, f"cue {cue.phrase_id}: subtitle bands differ by {mad:.1f}"


def test_cancel_kills_node_and_chromium(job, tmp_path):
    """Cancelling mid-render kills node and Chromium and leaves no output or temp file."""
    the_job, timeline = job
    long = timeline.model_copy(update={"duration": 20.0, "frames": 20 * timeline.fps})
    long.save(tmp_path / "timeline.json")
    cancel = threading.Event()
    seen: dict[int, str] = {}
    errors: list[BaseException] = []

    # Renders already running (another test run, a benchmark) are not this render's processes.
    before = set(_marked_processes())

    def on_progress(current: int, total: int, message: str) -> None:
        if current > 0 and not cancel.is_set():
            seen.update({pid: name for pid, name in _marked_processes().items() if pid not in before})
            cancel.set()

    def run() -> None:
        try:
            render_with_remotion(tmp_path / "timeline.json", tmp_path / "out.mp4", the_job.settings, on_progress, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 (handed to the test thread)
            errors.append(exc)

    before = _scratch_dirs()
    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=240)
    assert not worker.is_alive()
    assert errors and isinstance(errors[0], Cancelled), errors
    names = set(seen.values())
    assert "node" in names and any("chrom" in n for n in names), names
    deadline = time.monotonic() + 10
    while _alive(seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(seen), f"left running: {_alive(seen)}"
    assert not _marked_processes()
    assert _scratch_dirs() <= before
    assert not (tmp_path / "out.mp4").exists()
    assert not list(tmp_path.glob(".out.*"))


def test_renders_with_no_network_at_all(job, tmp_path):
    """In a network namespace with only loopback, the render still succeeds: nothing is fetched."""
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0 or not shutil.which("ip"):
        pytest.skip("cannot create a network namespace here (needs root, unshare and ip)")
    the_job, timeline = job
    wrapper = tmp_path / "node-offline"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec unshare -n sh -c 'ip link set lo up && exec \"$0\" \"$@\"' {shutil.which('node')} \"$@\"\n"
    )
    wrapper.chmod(0o755)
    remotion = the_job.settings.remotion.model_copy(update={"node": str(wrapper)})
    settings = the_job.settings.model_copy(update={"remotion": remotion})
    out = render_with_remotion(the_job.dir / "timeline.json", tmp_path / "offline.mp4", settings)
    assert abs(probe_streams(out)["video"] - timeline.frames / timeline.fps) <= 1 / timeline.fps


def test_missing_node_names_the_fix(job, tmp_path):
    """A node that is not there gives RemotionUnavailable saying how to install it."""
    the_job, _ = job
    settings = the_job.settings.model_copy(
        update={"remotion": the_job.settings.remotion.model_copy(update={"node": str(tmp_path / "no-node")})}
    )
    with pytest.raises(RemotionUnavailable, match="install Node.js"):
        render_with_remotion(the_job.dir / "timeline.json", tmp_path / "out.mp4", settings)
    assert doctor_checks(settings)[0][:2] == ("node", False)


def test_missing_chromium_names_the_fix(job, tmp_path):
    """A browser path that does not exist gives RemotionUnavailable naming apt-get install chromium."""
    the_job, _ = job
    remotion = the_job.settings.remotion.model_copy(update={"browser_executable": tmp_path / "chromium"})
    settings = the_job.settings.model_copy(update={"remotion": remotion})
    with pytest.raises(RemotionUnavailable, match="apt-get install chromium"):
        render_with_remotion(the_job.dir / "timeline.json", tmp_path / "out.mp4", settings)
    assert ("chromium", False) in [c[:2] for c in doctor_checks(settings)]


def test_missing_node_modules_names_the_fix(job, tmp_path):
    """A remotion/ folder without node_modules gives RemotionUnavailable naming `make setup`."""
    the_job, _ = job
    bare = tmp_path / "remotion"
    bare.mkdir()
    (bare / "render.mjs").write_text((DEFAULT_PROJECT_DIR / "render.mjs").read_text())
    remotion = the_job.settings.remotion.model_copy(update={"project_dir": bare})
    settings = the_job.settings.model_copy(update={"remotion": remotion})
    with pytest.raises(RemotionUnavailable, match=r"make setup.*npm ci"):
        render_with_remotion(the_job.dir / "timeline.json", tmp_path / "out.mp4", settings)
    assert doctor_checks(settings)[2][:2] == ("remotion node_modules", False)
    assert [c[1] for c in doctor_checks(the_job.settings)] == [True, True, True]


def test_missing_asset_is_an_input_error(job, tmp_path):
    """A timeline naming a file that does not exist fails as InputError naming the file."""
    the_job, timeline = job
    broken = timeline.model_copy(deep=True)
    broken.slides[1].image = str(tmp_path / "gone.png")
    broken.save(tmp_path / "timeline.json")
    with pytest.raises(InputError, match="gone.png"):
        render_with_remotion(tmp_path / "timeline.json", tmp_path / "out.mp4", the_job.settings)
    assert not (tmp_path / "out.mp4").exists()


def test_types_are_generated_from_the_schema_and_the_composition_typechecks():
    """src/timeline.generated.ts is up to date with timeline.schema.json and tsc accepts src/."""
    check = subprocess.run(["node", "gen-types.mjs", "--check"], cwd=DEFAULT_PROJECT_DIR, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    tsc = subprocess.run(
        ["node", "node_modules/typescript/bin/tsc", "--noEmit", "-p", "."],
        cwd=DEFAULT_PROJECT_DIR,
        capture_output=True,
        text=True,
    )
    assert tsc.returncode == 0, tsc.stdout + tsc.stderr


def test_package_pins_one_exact_remotion_version():
    """package.json pins every Remotion package to one exact 4.0.x version, and nothing else floats."""
    import json

    package = json.loads((DEFAULT_PROJECT_DIR / "package.json").read_text())
    deps = {**package["dependencies"], **package["devDependencies"]}
    assert all(v[0].isdigit() for v in deps.values()), deps
    remotion = {k: v for k, v in deps.items() if k == "remotion" or k.startswith("@remotion/")}
    assert set(remotion) >= {
        "remotion",
        "@remotion/renderer",
        "@remotion/bundler",
        "@remotion/transitions",
        "@remotion/compositor-linux-x64-gnu",
    }
    assert len(set(remotion.values())) == 1 and next(iter(remotion.values())).startswith("4.0.")


# --- helpers ----------------------------------------------------------------------------------


def probe_streams(path: Path) -> dict[str, float]:
    """Stream type -> duration in seconds (the first stream of each type)."""
    found: dict[str, float] = {}
    for stream in probe(path)["streams"]:
        found.setdefault(stream["codec_type"], float(stream.get("duration") or 0.0))
    return found


def frame_at(video: Path, t: float, timeline: Timeline) -> np.ndarray:
    """The decoded RGB frame shown at time ``t``."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", f"{t:.3f}", "-i", str(video), "-frames:v", "1",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, dtype=np.uint8).reshape(timeline.height, timeline.width, 3).astype(np.float64)


def all_frames(video: Path, timeline: Timeline) -> np.ndarray:
    """Every decoded RGB frame: (frames, height, width, 3)."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(video), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, timeline.height, timeline.width, 3).astype(np.int16)


def loudness(video: Path, window: float = 0.02) -> np.ndarray:
    """RMS of the mono-mixed soundtrack per ``window`` seconds."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(video), "-ac", "1", "-ar", "48000", "-f", "f32le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    samples = np.frombuffer(raw, dtype="<f4").astype(np.float64)
    size = int(48000 * window)
    count = samples.size // size
    return np.sqrt((samples[: count * size].reshape(count, size) ** 2).mean(axis=1))


def _mid_slide(timeline: Timeline, index: int) -> float:
    clip = timeline.slides[index]
    settled = clip.start + clip.transition_in.duration
    return (settled + clip.end) / 2


def _slide_area_mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference above the subtitle band, between the character corners."""
    h, w = a.shape[:2]
    area = (slice(0, int(h * 0.7)), slice(int(w * 0.25), int(w * 0.75)))
    return float(np.abs(a[area] - b[area]).mean())


def _text_rows(frame: np.ndarray, box) -> tuple[int, int]:
    """First and last row of bright (text) pixels inside the safe box."""
    region = frame[int(box.y) :, int(box.x) : int(box.x + box.width)]
    rows = np.where((region.min(axis=2) > 200).any(axis=1))[0]
    assert rows.size, "no subtitle text found"
    return int(box.y) + int(rows[0]), int(box.y) + int(rows[-1])


def _write_tone(path: Path, seconds: float, freq: float) -> Path:
    """A steady mono tone (the BGM loop)."""
    t = np.arange(int(seconds * RATE)) / RATE
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes((0.4 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2").tobytes())
    return path


def _magenta_pixels(frame: np.ndarray, track) -> int:
    y0, x0 = int(track.y), int(track.x)
    region = frame[y0 : y0 + int(track.height), x0 : x0 + int(track.width)]
    target = np.array(MOUTH_COLOR, dtype=np.float64)
    return int((np.abs(region - target).max(axis=2) < 50).sum())


def _marked_processes() -> dict[int, str]:
    """Live (non-zombie) processes carrying the render marker: pid -> command name."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            status = (entry / "stat").read_text()
        except OSError:
            continue
        if f"{MARKER_ENV}=".encode() in environ and status.rsplit(")", 1)[1].split()[0] != "Z":
            found[int(entry.name)] = status[status.index("(") + 1 : status.rindex(")")]
    return found


def _scratch_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("moviegen-remotion-*"))


def _alive(pids: dict[int, str]) -> dict[int, str]:
    now = _marked_processes()
    return {pid: name for pid, name in pids.items() if pid in now}
