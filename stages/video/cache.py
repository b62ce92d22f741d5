"""The render cache: the same timeline, rendered the same way, is rendered once.

A rendered MP4 is kept under ``<cache>/video/<key[:2]>/<key>.mp4``, where the key
(:func:`render_key`) is the sha256 of everything that decides the file's bytes:

- the timeline (canonical JSON: times, text, colours, sizes, fps, asset paths);
- the sha256 of every file the timeline names (slides, clips, character images, background
  image/video, BGM, the subtitle font). Clips and slides live at content-addressed cache paths
  already, but character images, backgrounds and BGM are the user's files, which can change under
  the same path; hashing them all costs ~1 ms per MB once per process (hashes are remembered by
  path, size, mtime and inode);
- the renderer: its name, :data:`RENDERER_VERSION`, the sha256 of its source (the modules that
  draw and encode; the Remotion project's files for Remotion), and what it runs: the
  ``ffmpeg -version`` text (Chromium's executable for Remotion);
- the settings that change pixels or bytes: ``crf``, ``preset``, ``ffmpeg_mode``, x264's thread
  count (``workers`` in segments mode, the CPU count in graph mode: x264's output depends on it),
  the colour conversion and tags, the Remotion settings.

Not in the key: ``decode_check`` and ``cache_max_gb`` (they change nothing in the file).

A hit is checked cheaply: ffprobe reads the header (streams, size, duration) and demuxes the file
counting the video packets (one per frame; a truncated file has fewer), no decoding: the entry was
fully verified when it was stored. It is then placed at the output path by a hard link (a copy
across file systems) through a temporary name and a rename. A miss renders, then links the result
into the cache (so it costs no space while the job's folder holds it) and evicts the least recently
used entries (by mtime, which a hit refreshes) with :func:`stages.cache.trim` until the cache is
under ``video.cache_max_gb``; the entry just stored stays. An entry that fails its check is deleted
and the timeline rendered again.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from stages.base import Note, Progress, StageError, atomic_copy, file_sha256, fingerprint_of, fsync_dir, no_note
from stages.cache import GB, touch, trim
from stages.video.probe import verify_video
from stages.video.timeline import Timeline

if TYPE_CHECKING:
    from stages.settings import Settings

# Bump when a renderer's output changes for a reason its source hash does not see.
RENDERER_VERSION = {"ffmpeg": "2", "remotion": "2"}  # 2: MP4 chapters (stages.video.chapters)

# The modules whose code decides the ffmpeg renderer's bytes (their sha256 is in the key).
FFMPEG_SOURCES = ("ffmpeg.py", "frames.py", "h264.py", "mix.py", "ass.py")
REMOTION_SKIP = {"node_modules", ".bundle-cache", ".git"}

_lock = threading.Lock()
_file_hashes: dict[tuple, str] = {}
_tool_versions: dict[tuple, str] = {}


def cache_folder(cache_dir: Path) -> Path:
    """Where rendered videos are kept."""
    return Path(cache_dir) / "video"


def entry_path(cache_dir: Path, key: str) -> Path:
    return cache_folder(cache_dir) / key[:2] / f"{key}.mp4"


def render_key(timeline: Timeline, settings: "Settings", renderer: str) -> str:
    """The sha256 naming the video ``renderer`` makes of ``timeline`` with ``settings``."""
    return fingerprint_of(
        "moviegen-video-render",
        timeline.model_dump(mode="json"),
        {path: _hash_file(Path(path)) for path in timeline_assets(timeline)},
        _renderer_identity(settings, renderer),
    )


def timeline_assets(timeline: Timeline) -> list[str]:
    """Every file the timeline names, sorted."""
    paths: set[str] = {s.image for s in timeline.slides} | {c.audio for c in timeline.narration}
    for track in timeline.characters:
        paths |= {p for p in (track.base, track.mouth_open, track.eyes_closed) if p}
    backgrounds = [timeline.background.default] + [o.background for o in timeline.background.overrides]
    paths |= {b.path for b in backgrounds if b.path and b.type in ("image", "video")}
    if timeline.bgm is not None:
        paths.add(timeline.bgm.path)
    if timeline.subtitle_style.font_file:
        paths.add(timeline.subtitle_style.font_file)
    return sorted(paths)


def cached_render(
    timeline: Timeline,
    out_path: Path,
    settings: "Settings",
    renderer: str,
    render: Callable[[], Path],
    *,
    cache_dir: Path,
    progress: Progress,
    note: Note = no_note,
) -> Path:
    """``render()`` (which writes and verifies ``out_path``) unless the cache has this video.

    With ``video.cache_max_gb`` 0 the cache is off: ``render()`` runs and nothing is stored.
    """
    limit = int(settings.video.cache_max_gb * GB)
    if limit <= 0:
        return render()
    out_path = Path(out_path)
    key = render_key(timeline, settings, renderer)
    entry = entry_path(cache_dir, key)
    discarded = None
    if entry.is_file():
        try:
            verify_video(entry, timeline, decode=False)  # header, then one packet per frame: no decoding
        except StageError as exc:
            discarded = str(exc)[:300]
            entry.unlink(missing_ok=True)
        else:
            how = place(entry, out_path)
            touch(entry, min_age=0)
            progress(timeline.frames, timeline.frames, "cached")
            note("video cache", hit=True, key=key, placed=how, renderer=renderer)
            return out_path
    out = Path(render())
    data: dict[str, Any] = {"hit": False, "key": key, "renderer": renderer}
    if discarded:
        data["discarded"] = discarded
    try:
        data["stored"] = store(out, entry)
        data["evicted"] = trim(cache_folder(cache_dir), limit, keep=[entry]).entries
    except OSError as exc:  # a full or read-only cache must not fail a good render
        data["store_error"] = str(exc)[:300]
    note("video cache", **data)
    return out


def place(source: Path, target: Path) -> str:
    """Put ``source``'s bytes at ``target`` atomically: ``"link"`` (same inode) or ``"copy"``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:12]}.part{target.suffix}")
    try:
        os.link(source, tmp)
    except OSError:  # another file system, or links not allowed: copy
        atomic_copy(source, target)
        return "copy"
    try:
        os.replace(tmp, target)
        tmp.unlink(missing_ok=True)  # rename(2) does nothing when both already name one inode
        fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return "link"


def store(video: Path, entry: Path) -> str:
    """Keep ``video`` as the cache entry ``entry`` (a hard link when possible)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    how = place(video, entry)
    touch(entry, min_age=0)
    return how


def _hash_file(path: Path) -> str | None:
    """sha256 of a file, remembered by (path, size, mtime, ctime, inode); None when it is missing."""
    try:
        st = path.stat()
    except OSError:
        return None
    memo = (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
    with _lock:
        known = _file_hashes.get(memo)
    if known is not None:
        return known
    digest = file_sha256(path)
    with _lock:
        if len(_file_hashes) > 20000:
            _file_hashes.clear()
        _file_hashes[memo] = digest
    return digest


def _renderer_identity(settings: "Settings", renderer: str) -> dict[str, Any]:
    video = settings.video
    if renderer == "ffmpeg":
        from stages.video.ffmpeg import AUDIO_BITRATE
        from stages.video.frames import COLOR_TAGS, SCALE_BT709

        here = Path(__file__).parent
        segments = video.ffmpeg_mode == "segments"
        return {
            "renderer": "ffmpeg",
            "version": RENDERER_VERSION["ffmpeg"],
            "source": {name: _hash_file(here / name) for name in FFMPEG_SOURCES},
            "ffmpeg": _tool_version(["ffmpeg", "-hide_banner", "-version"]),
            "crf": video.crf,
            "preset": video.preset,
            "mode": video.ffmpeg_mode,
            "x264_threads": video.workers if segments else (os.cpu_count() or 1),
            "colour": [COLOR_TAGS, SCALE_BT709],
            "audio_bitrate": AUDIO_BITRATE,
            "machine": platform.machine(),
        }
    if renderer == "remotion":
        from stages.video import remotion

        project = Path(settings.remotion.project_dir or remotion.DEFAULT_PROJECT_DIR)
        browser = Path(settings.remotion.browser_executable)
        return {
            "renderer": "remotion",
            "version": RENDERER_VERSION["remotion"],
            "module": _hash_file(Path(remotion.__file__)),
            "project": _tree_hash(project),
            "browser": _stat_identity(browser),
            "node": _tool_version([settings.remotion.node, "--version"]),
            "ffmpeg": _tool_version(["ffmpeg", "-hide_banner", "-version"]),
            "crf": video.crf,
            "preset": video.preset,
            "concurrency": settings.remotion.concurrency,
        }
    return {"renderer": renderer}


def _tree_hash(folder: Path) -> dict[str, str | None]:
    """sha256 of each file under ``folder`` except node_modules and caches."""
    out: dict[str, str | None] = {}
    if not folder.is_dir():
        return out
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in REMOTION_SKIP)
        for name in sorted(files):
            path = Path(root) / name
            out[str(path.relative_to(folder))] = _hash_file(path)
    return out


def _stat_identity(path: Path) -> list[Any]:
    """What identifies an installed executable without running it: its real path, size and mtime
    (and those of Debian's real Chromium binary behind the ``/usr/bin/chromium`` wrapper)."""
    out: list[Any] = []
    for item in (path, Path("/usr/lib/chromium/chromium")):
        try:
            real = item.resolve()
            st = real.stat()
            out.append([str(real), st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([str(item), None])
    return out


def _tool_version(cmd: list[str]) -> str | None:
    """sha256 of ``cmd``'s output (``ffmpeg -version``), remembered while the executable is unchanged."""
    exe = shutil.which(cmd[0])
    if exe is None:
        return None
    try:
        st = Path(exe).resolve().stat()
    except OSError:
        return None
    memo = (tuple(cmd), exe, st.st_size, st.st_mtime_ns, st.st_ino)
    with _lock:
        known = _tool_versions.get(memo)
    if known is not None:
        return known
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    digest = hashlib.sha256(done.stdout).hexdigest()
    with _lock:
        _tool_versions[memo] = digest
    return digest
