"""The Remotion renderer: ``timeline.json`` through React and Chromium, with frame progress.

Opt-in (``video.renderer = "remotion"``): Remotion is source-available under its own licence
(free for individuals and companies of up to 3 people). It needs Node, a local Chromium
(Debian's ``chromium``) and ``npm ci`` in ``remotion/``; nothing is downloaded at render time.

``remotion/render.mjs`` does the work and prints one JSON line per event; this module runs it in
its own process group (so a cancel kills node and Chromium together), turns the lines into
``progress(frame, total, message)`` calls, and commits the output atomically once ffprobe agrees
with the timeline.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from stages.base import InputError, Progress, StageError, atomic_temp_path, commit_temp, no_progress
from stages.process import ProcessError, run_process
from stages.video.timeline import ExpressionImages, MouthImages, Timeline

if TYPE_CHECKING:
    from stages.settings import Settings

DEFAULT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "remotion"

# Every child gets this variable; tests find a render's processes (node, Chromium, ffmpeg) by it.
MARKER_ENV = "MOVIEGEN_REMOTION_RENDER"


class RemotionUnavailable(InputError):
    """Node, Chromium or remotion/node_modules is missing; the message names the fix."""


class RemotionError(StageError):
    """render.mjs failed for a reason other than the input (a crash, a browser error)."""


def render_with_remotion(
    timeline_path: Path,
    out_path: Path,
    settings: "Settings",
    progress: Progress = no_progress,
    *,
    cancel: threading.Event | None = None,
) -> Path:
    """Render ``timeline_path`` to ``out_path`` (H.264 + AAC) with Remotion.

    Args:
        timeline_path: a ``timeline.json`` (stages.video.timeline.Timeline).
        out_path: the MP4 to write; written to a temporary sibling, then renamed.
        settings: reads ``settings.remotion`` (node, browser, concurrency, timeout) and
            ``settings.video`` (crf, preset).
        progress: called with ``(rendered_frames, total_frames, "<stage> <encoded>/<total>")``,
            never going backwards.
        cancel: when set, the render's whole process group is killed.

    Raises:
        RemotionUnavailable: node, Chromium or node_modules is missing.
        InputError: the timeline is invalid or names a missing asset.
        Cancelled, ProcessTimeout: from :func:`stages.process.run_process`.
        RemotionError: the render failed.
        RenderCheckFailed: the output does not match the timeline (nothing is written then).
    """
    tools = _require_tools(settings)
    timeline = _load_timeline(Path(timeline_path))
    out_path = Path(out_path)
    tmp = atomic_temp_path(out_path)
    scratch = Path(tempfile.mkdtemp(prefix="moviegen-remotion-"))
    drawn = scratch / "timeline.json"  # written first thing in the try below
    reader = _LineReader(timeline.frames, progress)
    args = [
        tools.node,
        tools.project_dir / "render.mjs",
        "--timeline", drawn,
        "--out", tmp,
        "--concurrency", str(settings.remotion.concurrency),
        "--browser", tools.browser,
        "--crf", str(settings.video.crf),
        "--preset", settings.video.preset,
        "--bundle-cache", _bundle_cache(settings, tools.project_dir),
    ]  # fmt: skip
    try:
        _sized_characters(timeline, scratch / "characters").save(drawn)
        progress(0, timeline.frames, "starting Remotion")
        try:
            run_process(
                args,
                cancel=cancel,
                timeout=settings.remotion.timeout_seconds,
                on_line=reader.feed,
                cwd=tools.project_dir,
                env=_child_env(scratch),
                what="remotion render",
            )
        except ProcessError as exc:
            raise reader.failure(exc) from exc
        _verify(tmp, timeline)
        commit_temp(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
        _clean_up(scratch)
    progress(timeline.frames, timeline.frames, f"done {timeline.frames}/{timeline.frames}")
    return out_path


def doctor_checks(settings: "Settings") -> list[tuple[str, bool, str]]:
    """What ``moviegen doctor`` reports for Remotion: node, chromium, node_modules."""
    checks = []
    for name, probe in (("node", _find_node), ("chromium", _find_browser), ("remotion node_modules", _find_modules)):
        try:
            checks.append((name, True, str(probe(settings))))
        except RemotionUnavailable as exc:
            checks.append((name, False, str(exc)))
    return checks


def project_dir(settings: "Settings") -> Path:
    """The ``remotion/`` folder: ``remotion.project_dir``, else the one beside the package."""
    return Path(settings.remotion.project_dir or DEFAULT_PROJECT_DIR)


# --- tools ------------------------------------------------------------------------------------


@dataclass
class _Tools:
    node: str
    browser: Path
    project_dir: Path


def _require_tools(settings: "Settings") -> _Tools:
    return _Tools(node=_find_node(settings), browser=_find_browser(settings), project_dir=_find_modules(settings))


def _find_node(settings: "Settings") -> str:
    found = shutil.which(settings.remotion.node)
    if found is None:
        raise RemotionUnavailable(
            f"node not found ({settings.remotion.node!r}): install Node.js 20+ "
            "(`apt-get install nodejs npm`) or set remotion.node to its path"
        )
    try:
        version = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RemotionUnavailable(f"node at {found} does not run ({exc}): reinstall Node.js 20+") from exc
    major = version.lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < 18:
        raise RemotionUnavailable(f"node at {found} is {version or 'unknown'}; Remotion needs Node.js 18+")
    return found


def _find_browser(settings: "Settings") -> Path:
    browser = Path(settings.remotion.browser_executable)
    if not (browser.is_file() and os.access(browser, os.X_OK)):
        raise RemotionUnavailable(
            f"Chromium not found at {browser}: `apt-get install chromium`, "
            "or set remotion.browser_executable to a local Chromium"
        )
    return browser


def _find_modules(settings: "Settings") -> Path:
    folder = project_dir(settings)
    if not (folder / "render.mjs").is_file():
        raise RemotionUnavailable(f"{folder} has no render.mjs: set remotion.project_dir to the repository's remotion/")
    if not (folder / "node_modules" / "@remotion" / "renderer" / "package.json").is_file():
        raise RemotionUnavailable(
            f"{folder}/node_modules is missing: run `MOVIEGEN_VIDEO__RENDERER=remotion make setup` "
            "(Chromium, Node.js and npm ci in remotion/), "
            f"or `cd {folder} && npm ci`"
        )
    return folder


def _bundle_cache(settings: "Settings", folder: Path) -> Path:
    if settings.remotion.bundle_cache is not None:
        return Path(settings.remotion.bundle_cache)
    in_repo = folder / ".bundle-cache"
    # Under systemd (ProtectSystem=strict) the code is read-only: keep bundles in the cache.
    if os.access(in_repo if in_repo.exists() else folder, os.W_OK):
        return in_repo
    return settings.cache_dir / "remotion-bundles"


def _child_env(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "TMPDIR": str(scratch),  # Chromium's profile, Remotion's downloads: removed afterwards
            MARKER_ENV: scratch.name,
            "DO_NOT_TRACK": "1",
            "BROWSERSLIST_IGNORE_OLD_DATA": "1",
            "NO_UPDATE_NOTIFIER": "1",
            "npm_config_update_notifier": "false",
        }
    )
    return env


def _clean_up(scratch: Path) -> None:
    """Kill what is left of the render (Chromium helpers outlive node briefly), drop its files.

    The scratch folder holds Chromium's profile and Remotion's downloads; a Chromium process
    still shutting down can write into it while it is being removed, so stragglers go first.
    """
    marker = f"{MARKER_ENV}={scratch.name}".encode() + b"\0"
    for attempt in range(20):
        left = [pid for pid in _pids_with(marker) if pid != os.getpid()]
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        shutil.rmtree(scratch, ignore_errors=True)
        if not left and not scratch.exists():
            return
        time.sleep(0.05)


def _pids_with(marker: bytes) -> list[int]:
    """Processes whose environment holds ``marker`` (``NAME=value\\0``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _load_timeline(path: Path) -> Timeline:
    try:
        return Timeline.load(path)
    except FileNotFoundError as exc:
        raise InputError(f"timeline not found: {path}") from exc
    except ValueError as exc:
        raise InputError(f"{path} is not a valid timeline: {exc}") from exc


def _sized_characters(timeline: Timeline, folder: Path) -> Timeline:
    """``timeline`` with every character picture resized to its track's box, as the ffmpeg renderer draws it.

    The ffmpeg renderer resizes each picture once with Lanczos (``frames.Compositor.pose_sprite``);
    left to Chromium, the picture would be scaled with the browser's own filter, which differs at
    every edge. Resized here, the composition draws the very same pixels 1:1 (and the browser
    decodes small pictures instead of full-size 立ち絵).
    """
    if not timeline.characters:
        return timeline
    folder.mkdir(parents=True, exist_ok=True)
    tracks = []
    for track in timeline.characters:
        size = (round(track.width), round(track.height))
        sized: dict[str, str] = {}

        def fit(path: str, size=size, sized=sized, n=len(tracks)) -> str:
            if path not in sized:
                out = folder / f"{n}-{len(sized)}.png"
                try:
                    with Image.open(path) as image:
                        image.convert("RGBA").resize(size, Image.LANCZOS).save(out, compress_level=1)
                except OSError as exc:  # missing, unreadable or not an image
                    raise InputError(f"character picture {path}: {exc}") from exc
                sized[path] = str(out)
            return sized[path]

        def row(pictures: MouthImages) -> MouthImages:
            return MouthImages(closed=fit(pictures.closed), half=fit(pictures.half), open=fit(pictures.open))

        tracks.append(track.model_copy(update={
            "base": fit(track.base),
            "mouth_open": fit(track.mouth_open) if track.mouth_open else None,
            "eyes_closed": fit(track.eyes_closed) if track.eyes_closed else None,
            "expressions": {
                name: ExpressionImages(eyes_open=row(e.eyes_open), eyes_closed=row(e.eyes_closed))
                for name, e in track.expressions.items()
            },
        }))  # fmt: skip
    return timeline.model_copy(update={"characters": tracks})


# --- progress lines ---------------------------------------------------------------------------


@dataclass
class _LineReader:
    """Turns render.mjs's JSON lines into monotonic progress calls; remembers errors."""

    total: int
    progress: Progress
    current: int = 0
    error: dict = field(default_factory=dict)
    done: dict = field(default_factory=dict)

    def feed(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "progress":
            total = int(event.get("totalFrames") or self.total)
            self.total = total
            self.current = max(self.current, min(int(event.get("renderedFrames", 0)), total))
            encoded = int(event.get("encodedFrames", 0))
            self.progress(self.current, total, f"{event.get('stage', 'rendering')} {encoded}/{total}")
        elif kind == "status":
            self.progress(self.current, self.total, str(event.get("message", "")))
        elif kind == "error":
            self.error = event
        elif kind == "done":
            self.done = event

    def failure(self, exc: ProcessError) -> StageError:
        message = self.error.get("message") or exc.stderr_tail.strip()[-2000:] or str(exc)
        if self.error.get("kind") == "input":
            return InputError(f"Remotion: {message}")
        return RemotionError(f"Remotion render failed: {message}")


# --- verification -----------------------------------------------------------------------------


def _verify(path: Path, timeline: Timeline) -> None:
    """The shared check (size, duration within a frame, audio, clean decode) before committing."""
    from stages.video.probe import verify_video

    verify_video(path, timeline)
