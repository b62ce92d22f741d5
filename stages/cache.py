"""The shared caches' size bound: least recently used entries go first.

Every cache under ``<cache>`` (audio clips, slides, article images, renders) is content-addressed:
a file's name is its key, so dropping an entry only costs redrawing or re-synthesizing it when it
is wanted again. An **entry** is the group of files in one folder sharing a stem (a slide's
``<key>.png`` and its ``<key>.json`` sidecar go together). Its **recency** is the newest mtime or
atime of its files; a cache hit refreshes it with :func:`touch` (``relatime`` mounts do not).

:func:`trim` deletes the least recently used entries until the folder is under its limit. It
never deletes what the caller protects: entries named in ``keep`` (files a running job uses) and
entries used since ``protect_since`` (a job still writing may not have named them anywhere yet).
Hidden files are the atomic writers' temporaries; they go once older than an hour (a crash
mid-write), never while a writer may still be busy with them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Iterable

GB = 1_000_000_000
STALE_TEMP_SECONDS = 3600.0
# A hit refreshes an entry's recency only when older than this: one utime per entry and 10 minutes,
# not one per use (a refreshed mtime also makes the render cache re-hash the file once).
TOUCH_SECONDS = 600.0


@dataclass
class Trimmed:
    """What :func:`trim` deleted (or, in a dry run, would delete)."""

    entries: int = 0
    removed: list[tuple[Path, int]] = field(default_factory=list)  # each file with the bytes its removal freed
    bytes_before: int = 0  # the entries' total size before and after
    bytes_after: int = 0

    @property
    def bytes_freed(self) -> int:
        """Bytes really released: a file still hard-linked elsewhere (a job's video) frees nothing."""
        return sum(freed for _, freed in self.removed)


def touch(path: Path, min_age: float = TOUCH_SECONDS) -> None:
    """Mark a cache entry as just used (its mtime), unless it was marked within ``min_age`` seconds."""
    try:
        if time.time() - Path(path).stat().st_mtime >= min_age:
            os.utime(path)
    except OSError:
        pass  # vanished or read-only: the entry is simply older than it should be


def trim(
    folders: Path | Iterable[Path],
    limit: int,
    *,
    keep: Collection[Path] = (),
    protect_since: float | None = None,
    dry_run: bool = False,
) -> Trimmed:
    """Delete least recently used entries under ``folder`` until they total at most ``limit`` bytes.

    Args:
        folders: a cache folder, or several sharing one limit (any depth: ``<ab>/<key>.wav`` and
            flat ``<key>.png`` alike; a missing folder is empty).
        limit: the bound in bytes; 0 keeps only the protected entries.
        keep: files never deleted (with the rest of their entry).
        protect_since: a Unix time: entries used at or after it are never deleted.
        dry_run: report what would go, delete nothing.
    """
    result = Trimmed()
    now = time.time()
    entries: dict[Path, _Entry] = {}
    for path in _files([folders] if isinstance(folders, (str, Path)) else folders):
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if path.name.startswith("."):
            if now - st.st_mtime > STALE_TEMP_SECONDS:
                _remove(path, st, dry_run, result)
            continue
        entry = entries.setdefault(path.parent / path.name.split(".", 1)[0], _Entry())
        entry.files.append((path, st))
        entry.size += st.st_size
        entry.recency = max(entry.recency, st.st_mtime, st.st_atime)
    kept = {Path(p) for p in keep}
    total = sum(e.size for e in entries.values())
    result.bytes_before = total
    for entry in sorted(entries.values(), key=lambda e: e.recency):
        if total <= limit:
            break
        if protect_since is not None and entry.recency >= protect_since:
            continue
        if any(path in kept for path, _ in entry.files):
            continue
        if not dry_run and _used_since_listed(entry):
            continue  # a job took it in the meantime
        for path, st in entry.files:
            _remove(path, st, dry_run, result)
        result.entries += 1
        total -= entry.size
    result.bytes_after = total
    return result


@dataclass
class _Entry:
    files: list[tuple[Path, os.stat_result]] = field(default_factory=list)
    size: int = 0
    recency: float = 0.0


def _files(folders: Iterable[Path]) -> list[Path]:
    """The files under ``folders`` (links to folders are not followed)."""
    found: list[Path] = []
    for folder in folders:
        for root, dirs, names in os.walk(folder):
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
            found.extend(Path(root) / name for name in names)
    return found


def _used_since_listed(entry: _Entry) -> bool:
    for path, st in entry.files:
        try:
            now = path.lstat()
        except FileNotFoundError:
            continue
        if now.st_mtime != st.st_mtime:
            return True
    return False


def _remove(path: Path, st: os.stat_result, dry_run: bool, result: Trimmed) -> None:
    if not dry_run:
        try:
            st = path.lstat()  # the link count now: an earlier removal may have left this the last link
            path.unlink()
        except FileNotFoundError:
            return
    result.removed.append((path, st.st_size if st.st_nlink <= 1 else 0))
