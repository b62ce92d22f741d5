"""Retention: what may be deleted so the home's disk use stays bounded, and deleting it.

One garbage-collection run (:func:`collect_garbage`, what ``moviegen gc`` and the daemon's own
trim call) removes, in this order:

1. the folders (``state/jobs/<id>``) of jobs that ended long enough ago: ``daemon.keep_done_days``
   after a job finished or was cancelled, ``daemon.keep_failed_days`` after it failed (kept longer,
   since ``moviegen retry`` resumes from the folder). The job's events stay in the log;
2. debris (:mod:`stages.debris`) in the folders of ended jobs that are kept;
3. the least recently used entries of the shared caches beyond their caps: clips
   (``audio.cache_max_gb``), slides and article images (``slides.cache_max_gb``), renders
   (``video.cache_max_gb``), with :func:`stages.cache.trim`;
4. scratch folders that killed Remotion or espeak-ng runs left in the temp folder
   (:func:`stages.debris.stale_scratch`).

A job that has not ended (queued, running, or waiting to resume after a restart) loses nothing:
its folder is never touched, and no cache entry it may use is deleted: the files its stage
manifests name are kept, and so is every entry used since shortly before the oldest such job was
submitted (a running stage may not have named its new files anywhere yet). The outbox, ``done/``
and ``failed/`` are the user's and are never touched. A run that deleted something is one
``daemon.gc`` event (job id NULL) with the bytes freed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.events import TERMINAL_STATES, EventStore
from stages.cache import GB, TOUCH_SECONDS, Trimmed, trim
from stages.debris import find_debris, remove_debris, stale_scratch

if TYPE_CHECKING:
    from stages.settings import Settings

DAY = 86400.0
# Entries used this recently are never trimmed, whatever the store says: a `moviegen make` run
# shares the cache but is not in the event log.
GRACE_SECONDS = 900.0


@dataclass
class Removal:
    """One thing a gc run removed (or, in a dry run, would remove)."""

    what: str  # "job", "debris", "scratch", or a cache name: "audio", "slides", "video"
    path: Path
    bytes: int  # bytes freed: files still hard-linked elsewhere (the outbox, a job) count 0
    job_id: str | None = None


@dataclass
class GcReport:
    """What one :func:`collect_garbage` run did."""

    dry_run: bool
    removals: list[Removal] = field(default_factory=list)
    caches: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> entries, bytes_before, bytes_after

    @property
    def bytes_freed(self) -> int:
        """The bytes the run released (would release)."""
        return sum(r.bytes for r in self.removals)

    @property
    def jobs(self) -> list[str]:
        """The ids of the jobs whose folders were removed."""
        return [r.job_id for r in self.removals if r.what == "job" and r.job_id]

    def event_data(self) -> dict[str, Any]:
        """The ``daemon.gc`` event's data: totals, the removed job ids, the caches."""
        return {
            "bytes_freed": self.bytes_freed,
            "jobs_removed": len(self.jobs),
            "jobs": self.jobs,  # all of them: `moviegen retry` looks a job up here
            "debris": sum(1 for r in self.removals if r.what == "debris"),
            "scratch": sum(1 for r in self.removals if r.what == "scratch"),
            "cache_entries": sum(c["entries"] for c in self.caches.values()),
            "caches": self.caches,
        }


def collect_garbage(settings: "Settings", store: EventStore, *, dry_run: bool = False,
                    trigger: str = "cli", now: float | None = None) -> GcReport:
    """Remove expired job folders, debris of ended jobs and over-cap cache entries (module docstring).

    Args:
        settings: reads ``daemon.keep_*_days`` and the caches' ``cache_max_gb``.
        store: the event log: which jobs ended and when; a run that removed something is recorded.
        dry_run: only report what would be removed.
        trigger: why it ran (``cli``, ``job``, ``idle``), recorded in the event.
        now: the current Unix time (tests pass a later one instead of waiting days).
    """
    now = time.time() if now is None else now
    report = GcReport(dry_run=dry_run)
    rows = store.jobs()
    unfinished = [row for row in rows if row["state"] not in TERMINAL_STATES]
    for row in rows:
        if row["state"] in TERMINAL_STATES:
            _expire_job(settings, row, now, dry_run, report)
    keep = _files_in_use(settings, unfinished)
    protect_since = now - GRACE_SECONDS
    if unfinished:
        created = [_epoch(row["created_at"]) for row in unfinished]
        oldest = min((t for t in created if t is not None), default=None)
        # an unreadable time protects every entry: deleting too little is the safe mistake
        protect_since = 0.0 if oldest is None or None in created else min(protect_since, oldest - TOUCH_SECONDS)
    cache = settings.cache_dir
    for name, folders, cap in (
        ("audio", [cache / "audio"], settings.audio.cache_max_gb),
        ("slides", [cache / "slides", cache / "images"], settings.slides.cache_max_gb),
        ("video", [cache / "video"], settings.video.cache_max_gb),
    ):
        trimmed = trim(folders, int(cap * GB), keep=keep, protect_since=protect_since, dry_run=dry_run)
        report.caches[name] = {"entries": trimmed.entries, "bytes_before": trimmed.bytes_before,
                               "bytes_after": trimmed.bytes_after}
        _add_trimmed(report, name, trimmed)
    for path, _ in stale_scratch(settings):  # real time, even when ``now`` is moved: live renders are real
        report.removals.append(Removal("scratch", path, _remove_tree(path, dry_run)))
    if report.removals and not dry_run:
        store.append(None, "daemon.gc", trigger=trigger, **report.event_data())
    return report


def removed_at(store: EventStore, job_id: str) -> str | None:
    """When a gc run removed this job's folder (the ``daemon.gc`` event's time), or None."""
    rows = store.db.execute(
        "SELECT at FROM events WHERE kind = 'daemon.gc' AND job_id IS NULL AND EXISTS "
        "(SELECT 1 FROM json_each(events.data, '$.jobs') WHERE value = ?) ORDER BY seq DESC LIMIT 1",
        [job_id],
    ).fetchall()
    return rows[0][0] if rows else None


def job_expires_at(settings: "Settings", row: dict) -> float | None:
    """When an ended job's folder may go (Unix time); None for a job that has not ended."""
    if row["state"] not in TERMINAL_STATES:
        return None
    days = settings.daemon.keep_failed_days if row["state"] == "failed" else settings.daemon.keep_done_days
    ended = _epoch(row["updated_at"])
    return None if ended is None else ended + days * DAY


# --- private -----------------------------------------------------------------------------------


def _expire_job(settings: "Settings", row: dict, now: float, dry_run: bool, report: GcReport) -> None:
    job_id = row["job_id"]
    if not job_id or Path(job_id).name != job_id or job_id.startswith("."):
        return  # never a path outside state/jobs
    folder = settings.jobs_dir / job_id
    if not folder.is_dir() or folder.is_symlink():
        return
    expires = job_expires_at(settings, row)
    if expires is not None and now >= expires:
        report.removals.append(Removal("job", folder, _remove_tree(folder, dry_run), job_id))
        return
    for path, size in (find_debris(folder) if dry_run else remove_debris(folder)):
        report.removals.append(Removal("debris", path, size, job_id))


def _files_in_use(settings: "Settings", unfinished: list[dict]) -> set[Path]:
    """Every file the stage manifests of the unfinished jobs name (shared cache files among them)."""
    keep: set[Path] = set()
    for row in unfinished:
        folder = settings.jobs_dir / row["job_id"]
        for manifest in sorted((folder / "stages").glob("*.json")):
            try:
                outputs = json.loads(manifest.read_text(encoding="utf-8")).get("outputs") or []
            except (OSError, ValueError, AttributeError):
                continue
            for entry in outputs:
                path = Path(str(entry.get("path", ""))) if isinstance(entry, dict) else None
                if path is not None:
                    keep.add(path if path.is_absolute() else folder / path)
    return keep


def _remove_tree(folder: Path, dry_run: bool) -> int:
    """Delete ``folder`` bottom-up (symlinks unlinked, never followed); return the bytes freed."""
    freed = 0
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
                if not dry_run:
                    os.unlink(path)
            except FileNotFoundError:
                continue
            if st.st_nlink <= 1:
                freed += st.st_size
        if not dry_run:
            for name in dirs:
                path = os.path.join(root, name)
                if not os.path.islink(path):
                    try:
                        os.rmdir(path)
                    except OSError:
                        pass
    if not dry_run:
        try:
            os.rmdir(folder)
        except OSError:
            pass
    return freed


def _add_trimmed(report: GcReport, name: str, trimmed: Trimmed) -> None:
    for path, freed in trimmed.removed:
        report.removals.append(Removal(name, path, freed))


def _epoch(iso: str | None) -> float | None:
    try:
        return datetime.fromisoformat(str(iso)).timestamp()
    except ValueError:
        return None
