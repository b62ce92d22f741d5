"""Debris: what a stage killed mid-write leaves in a job's folder, and its removal.

Stages write through temporary names and rename when done (:mod:`stages.base`), so a crash, a
SIGKILL or a timeout leaves only temporaries behind, never a half file under a real name:

- ``.<name>.<random>.tmp``: :func:`stages.base.atomic_write_bytes` and the slide sidecars;
- ``.<stem>.<random>.part.<ext>``: :func:`stages.base.atomic_temp_path` (ffmpeg's and Remotion's
  ``.video.….part.mp4``) and the render cache's hard-link placement;
- ``.render-<random>/``: the ffmpeg renderer's work folder (stills, segments, the soundtrack),
  tens of MB for a few minutes of video.

All are hidden names. Nothing else in a job folder is hidden, so :func:`remove_debris` may delete
them whenever no stage of that job runs: the runner calls it before each stage starts.

Outside the job folder, a killed Remotion render leaves its scratch folder (Chromium's profile,
``$TMPDIR/moviegen-remotion-*``) and a killed espeak-ng call ``moviegen-espeak-*``.
:func:`stale_scratch` finds those older than the longest their process may run: a folder whose
newest change is older than the render's timeout cannot belong to a live render.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stages.settings import Settings

SCRATCH_MARGIN_SECONDS = 3600.0


def is_debris(name: str, is_dir: bool) -> bool:
    """True for the temporary names above (a file or folder name, not a path)."""
    if not name.startswith("."):
        return False
    if is_dir:
        return name.startswith(".render-")
    return name.endswith(".tmp") or ".part." in name or name.endswith(".part")


def find_debris(job_dir: Path) -> list[tuple[Path, int]]:
    """The debris under ``job_dir`` with its size in bytes (a folder's is its files' total)."""
    found: list[tuple[Path, int]] = []
    for root, dirs, files in os.walk(job_dir):
        for name in list(dirs):
            path = Path(root) / name
            if path.is_symlink():
                dirs.remove(name)
            elif is_debris(name, True):
                dirs.remove(name)
                found.append((path, _tree_size(path)))
        for name in files:
            if is_debris(name, False):
                path = Path(root) / name
                try:
                    found.append((path, path.lstat().st_size))
                except FileNotFoundError:
                    pass
    return found


def remove_debris(job_dir: Path) -> list[tuple[Path, int]]:
    """Delete the debris under ``job_dir``; return what went, with sizes.

    Only call it while no stage of the job runs (its live temporaries look the same).
    """
    found = find_debris(Path(job_dir))
    for path, _ in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found


def stale_scratch(settings: "Settings", *, now: float | None = None, tmp_dir: Path | None = None
                  ) -> list[tuple[Path, int]]:
    """Scratch folders of killed renderers in ``tmp_dir`` (default: the temp folder), with sizes:
    those unchanged for longer than their process's timeout plus an hour."""
    now = time.time() if now is None else now
    limits = {
        "moviegen-remotion-": settings.remotion.timeout_seconds,
        "moviegen-espeak-": settings.audio.espeak_timeout,
    }
    found: list[tuple[Path, int]] = []
    try:
        entries = list(os.scandir(tmp_dir or tempfile.gettempdir()))
    except OSError:
        return found
    for entry in entries:
        limit = next((t for prefix, t in limits.items() if entry.name.startswith(prefix)), None)
        if limit is None or not entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        if now - _newest_change(path) > limit + SCRATCH_MARGIN_SECONDS:
            found.append((path, _tree_size(path)))
    return found


def _newest_change(folder: Path) -> float:
    newest = 0.0
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files, "."]:
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except OSError:
                pass
    return newest


def _tree_size(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except FileNotFoundError:
                pass
    return total
