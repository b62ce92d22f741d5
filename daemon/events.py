"""The event log: an append-only SQLite table of what happened, and the ``jobs`` projection.

Every change to a job is an event. The ``jobs`` table is the fold of the events, updated in the
same transaction as the event that changes it, so the two can never disagree; ``rebuild_jobs``
recomputes it from scratch with the same :func:`fold`. One file, WAL mode: the daemon writes, CLI
processes read (and write ``requests``) at the same time.

Job fields the fold reads from event data (so a rebuild never depends on code that may change):

- ``job.submitted``  ``source``, ``kind`` (plus anything else, e.g. ``sha256``, ``name``)
- ``job.started``    ``stage``: the state it starts in (the first stage, or the one it resumes at)
- ``stage.finished`` / ``stage.skipped``  ``next``: the state the job moves to (None: stays)
- ``job.retry_scheduled``  ``stage``: the state it resumes at (None: queued)
- ``stage.progress`` and others: ``percent``, ``message`` when present
- ``job.failed`` / ``stage.failed``  ``error``; ``job.finished``  ``output``

Attempts are numbered by the store, not by its callers: a ``stage.started`` gets ``attempt`` one
higher than any earlier start of the same job and stage, and the event that ends it
(:data:`CLOSING_KINDS`) carries the same number, so each start pairs with exactly its own end.
``stage.interrupted`` ends an attempt nobody finished: ``reason`` ``crash`` (found open at the next
start: the daemon died), ``shutdown`` (SIGTERM) or ``cancel``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import sqlite_utils

EVENT_KINDS = {
    "job.submitted",
    "job.started",
    "stage.started",
    "stage.progress",
    "stage.skipped",
    "stage.finished",
    "stage.failed",
    "stage.interrupted",
    "stage.note",
    "input.rejected",  # an inbox file went to failed/ without a job (job_id NULL): name, reason
    "input.duplicate",  # an inbox file's content was already in flight: name, duplicate_of, moved_to
    "input.ignored",  # a symlink, folder or other non-file left in the inbox: name, inode, reason
    "job.retry_scheduled",
    "job.finished",
    "job.failed",
    "job.cancelled",
    "daemon.started",
    "daemon.stopped",
    "daemon.gc",
    "daemon.warmed",  # the stages' warm-up at start ended (job_id NULL): seconds per stage, failed
}
TERMINAL_STATES = {"done", "failed", "cancelled"}
# The events that end an attempt (a ``stage.started``); each carries the attempt's number.
CLOSING_KINDS = ("stage.finished", "stage.failed", "stage.skipped", "stage.interrupted")
RUNNING_STATES = ("fetch", "script", "audio", "slides", "video")
JOB_COLUMNS = (
    "job_id",
    "source",
    "kind",
    "state",
    "stage",
    "percent",
    "message",
    "error",
    "attempts",
    "created_at",
    "updated_at",
    "output",
)
REQUEST_COMMANDS = {"cancel", "retry"}


class UnknownEventKind(ValueError):
    """An event kind outside :data:`EVENT_KINDS`."""


class AmbiguousJobId(LookupError):
    """A job id prefix that matches more than one job."""


class DamagedLog(RuntimeError):
    """The event log cannot be trusted: damaged, empty, or not the log of the job folders beside it.

    The message names the file and says what to do; nothing may claim inputs on such a log.
    """

    def __init__(self, path: Path, problem: str, remedy: str, *, lost: bool = False):
        self.path = Path(path)
        self.problem = problem
        self.lost = lost  # empty or missing beside job folders: nothing to salvage from this file
        super().__init__(f"the event log {self.path} {problem}.\n{remedy}")


SQLITE_HEADER = b"SQLite format 3\x00"


def check_log(path: Path, jobs_dir: Path) -> None:
    """Check the event log before anything uses it; raise :class:`DamagedLog` if it is unusable.

    Runs ``PRAGMA quick_check``, checks the schema, and refuses a log that is empty (missing, zero
    bytes, or without a single event) while ``jobs_dir`` holds job folders: that log is not the one
    those jobs were recorded in, and starting on it would submit and deliver them all again. A fresh
    home (no log, no job folders) passes. Opens the file read-only; creates and changes nothing.
    """
    path = Path(path)
    folders = _job_folders(jobs_dir)
    if not path.exists() or path.stat().st_size == 0:
        if folders:
            size = "is missing" if not path.exists() else "is empty (0 bytes)"
            raise DamagedLog(path, f"{size}, but {jobs_dir} holds {folders} job folder(s)", _remedy_lost(path, jobs_dir), lost=True)
        return
    with open(path, "rb") as fh:
        header = fh.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise DamagedLog(path, f"is not an SQLite database (it begins {header!r})", _remedy_damaged(path))
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise DamagedLog(path, f"cannot be opened ({exc})", _remedy_damaged(path)) from None
    try:
        result = [row[0] for row in conn.execute("PRAGMA quick_check(5)").fetchall()]
        if result != ["ok"]:
            found = [line for text in result for line in text.splitlines() if not line.startswith("***")]
            raise DamagedLog(path, f"is damaged (quick_check: {'; '.join(found[:3])})", _remedy_damaged(path))
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version == 0 and not tables:
            events = 0
        else:
            missing = sorted({"events", "jobs", "requests"} - tables)
            if missing or version < 1:
                raise DamagedLog(path, f"lacks the moviegen schema (missing: {', '.join(missing) or 'its version'})",
                                 _remedy_damaged(path))
            events = conn.execute("SELECT count(*) FROM (SELECT 1 FROM events LIMIT 1)").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise DamagedLog(path, f"is damaged or not a database ({exc})", _remedy_damaged(path)) from None
    finally:
        conn.close()
    if not events and folders:
        raise DamagedLog(path, f"holds no events, but {jobs_dir} holds {folders} job folder(s)",
                         _remedy_lost(path, jobs_dir), lost=True)


def salvage_log(path: Path) -> dict:
    """Move a damaged log aside and copy every event that can still be read into a new one.

    The damaged file (with its ``-wal`` and ``-shm``) becomes ``<name>.damaged-<UTC time>``; the
    new log at ``path`` gets the readable events with their original ``seq`` and a ``jobs`` table
    folded from them. Returns ``{"moved_to", "events", "unreadable"}`` (``unreadable``: rows or
    ranges of ``seq`` that could not be read).
    """
    path = Path(path)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("-wal", "-shm", ""):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.rename(aside.with_name(aside.name + suffix))
    rows, unreadable = _readable_events(aside)
    store = EventStore(path)
    try:
        with store._write():
            for start in range(0, len(rows), 500):
                store.db["events"].insert_all(rows[start:start + 500], pk="seq")
        store.rebuild_jobs()
    finally:
        store.close()
    return {"moved_to": str(aside), "events": len(rows), "unreadable": unreadable}


_SALVAGE_CHUNK = 256
_SALVAGE_MAX_FAILURES = 5000  # a log whose every page is garbage gives up after this many reads


def _readable_events(path: Path) -> tuple[list[dict], int]:
    """The events of a damaged log that can be read, in ``seq`` order, and the count that cannot."""
    columns = ("seq", "at", "job_id", "kind", "stage", "data")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return [], 0
    rows: list[dict] = []
    failures = unreadable = 0

    def read(lo: int, hi: int) -> list[tuple] | None:
        nonlocal failures
        try:
            return conn.execute(f"SELECT {', '.join(columns)} FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq",
                                [lo, hi]).fetchall()
        except sqlite3.DatabaseError:
            failures += 1
            return None

    try:
        try:
            top = conn.execute("SELECT max(seq) FROM events").fetchone()[0] or 0
        except sqlite3.DatabaseError:
            # The table's index pages are gone too: guess generously (a page holds well under 500 rows).
            top = conn.execute("PRAGMA page_count").fetchone()[0] * 500
        for lo in range(1, top + 1, _SALVAGE_CHUNK):
            if failures > _SALVAGE_MAX_FAILURES:
                unreadable += 1
                break
            chunk = read(lo, lo + _SALVAGE_CHUNK - 1)
            if chunk is None:
                chunk = []
                for seq in range(lo, lo + _SALVAGE_CHUNK):
                    one = read(seq, seq) if failures <= _SALVAGE_MAX_FAILURES else None
                    if one is None:
                        unreadable += 1
                    chunk += one or []
            rows += [dict(zip(columns, row)) for row in chunk if row[3] in EVENT_KINDS and row[1]]
    except sqlite3.DatabaseError:
        unreadable += 1
    finally:
        conn.close()
    return rows, unreadable


def is_damage(exc: BaseException) -> bool:
    """True for SQLite's "the file is damaged" errors (corrupt page, not a database), not for busy or I/O."""
    return isinstance(exc, sqlite3.DatabaseError) and getattr(exc, "sqlite_errorname", "") in (
        "SQLITE_CORRUPT", "SQLITE_NOTADB")


def damaged_while_running(path: Path, exc: BaseException) -> DamagedLog:
    """The :class:`DamagedLog` for damage found after the start-up check passed."""
    return DamagedLog(path, f"was found damaged while the daemon ran ({exc})",
                      "A file being claimed at that moment stays in its job folder and is taken up again at the "
                      "first start on a repaired log.\n" + _remedy_damaged(path).replace(
                          "moviegen stopped before taking anything from the inbox", "moviegen stopped taking files "
                          "from the inbox"))


def _job_folders(jobs_dir: Path) -> int:
    try:
        return sum(1 for entry in Path(jobs_dir).iterdir() if entry.is_dir())
    except OSError:
        return 0


def _remedy_damaged(path: Path) -> str:
    home = path.parent.parent
    return (
        "moviegen stopped before taking anything from the inbox; inputs, outputs and job folders are untouched.\n"
        "What to do:\n"
        f"  1. keep a copy: cp {path}* /a/safe/place/\n"
        f"  2. run: moviegen rebuild --home {home}\n"
        f"     it moves the damaged file aside ({path.name}.damaged-<time>), copies every event that can still be\n"
        "     read into a new log and rebuilds the jobs table from them\n"
        "  3. start the daemon again (systemctl restart moviegen, or moviegen run)\n"
        f"  Or restore {path.name} from a backup."
    )


def _remedy_lost(path: Path, jobs_dir: Path) -> str:
    return (
        "moviegen stopped before taking anything from the inbox, so those jobs are not made again.\n"
        "What to do:\n"
        f"  - restore {path} from a backup (with its -wal file, if any), or\n"
        f"  - if a damaged copy was moved aside, salvage it: move it back to {path} and run moviegen rebuild, or\n"
        f"  - start a new history: move the old job folders aside (mv {jobs_dir} {jobs_dir}.old) and start again"
    )


def now_iso() -> str:
    """The current time as ISO 8601 UTC with microseconds (the ``at`` of events)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


# --- the fold ---------------------------------------------------------------------------------


def fold(events: Iterable[dict]) -> dict[str, dict]:
    """The ``jobs`` rows, by job id, that a sequence of events (in ``seq`` order) produces.

    Pure: the same events always give the same rows. Events of unknown jobs (no
    ``job.submitted`` yet) and daemon events change nothing.
    """
    rows: dict[str, dict] = {}
    for event in events:
        job_id = event.get("job_id")
        if job_id is None:
            continue
        row = apply_event(rows.get(job_id), event)
        if row is not None:
            rows[job_id] = row
    return rows


def stage_timings(events: Iterable[dict]) -> list[dict]:
    """One job's stage outcomes in order: ``{stage, result, seconds}``.

    ``result`` is ``finished``, ``skipped`` or ``failed``; ``seconds`` is what the runner measured
    (``stage.finished`` carries it), 0 for a skip, None for a failure. ``events`` as from
    :meth:`EventStore.events` (``data`` decoded).
    """
    results = {"stage.finished": "finished", "stage.skipped": "skipped", "stage.failed": "failed"}
    timings = []
    for event in events:
        result = results.get(event["kind"])
        if result is None or event.get("stage") is None:
            continue
        seconds = {"finished": (event.get("data") or {}).get("seconds"), "skipped": 0.0}.get(result)
        timings.append({"stage": event["stage"], "result": result, "seconds": seconds})
    return timings


def crash_streak(events: Iterable[dict]) -> tuple[str | None, int]:
    """How often in a row one job's stage was interrupted by the daemon dying: ``(stage, count)``.

    Counts ``stage.interrupted`` with reason ``crash`` of the same stage; a stage finishing, a
    retry or a crash in another stage starts the count again. Stops (``shutdown``) neither count
    nor reset: a service restarted while a job climbs towards the memory limit proves nothing.
    """
    stage: str | None = None
    count = 0
    for event in events:
        kind = event["kind"]
        if kind in ("stage.finished", "job.retry_scheduled", "job.submitted"):
            stage, count = None, 0
        elif kind == "stage.interrupted" and (event.get("data") or {}).get("reason") == "crash":
            if event.get("stage") == stage:
                count += 1
            else:
                stage, count = event.get("stage"), 1
    return stage, count


def apply_event(row: dict | None, event: dict) -> dict | None:
    """One step of the fold: the job's row after ``event`` (a new dict; ``row`` is not changed)."""
    kind = event["kind"]
    data = event.get("data") or {}
    if kind == "job.submitted":
        return {
            "job_id": event["job_id"],
            "source": data.get("source"),
            "kind": data.get("kind"),
            "state": "queued",
            "stage": None,
            "percent": 0.0,
            "message": data.get("message", "queued"),
            "error": None,
            "attempts": 0,
            "created_at": event["at"],
            "updated_at": event["at"],
            "output": None,
        }
    if row is None:
        return None
    row = dict(row, updated_at=event["at"])
    stage = event.get("stage")
    _STEPS.get(kind, _no_change)(row, stage, data)
    if "percent" in data and data["percent"] is not None:
        row["percent"] = float(data["percent"])
    if "message" in data and kind != "stage.note":
        row["message"] = data["message"]
    return row


def _no_change(row: dict, stage: str | None, data: dict) -> None:
    pass


def _started(row: dict, stage: str | None, data: dict) -> None:
    row["attempts"] = (row["attempts"] or 0) + 1
    row["error"] = None
    row["output"] = None
    if data.get("stage"):
        row["state"] = row["stage"] = data["stage"]
    row["message"] = "started"


def _stage_started(row: dict, stage: str | None, data: dict) -> None:
    row["state"] = row["stage"] = stage
    row["message"] = f"{stage} running"


def _stage_done(row: dict, stage: str | None, data: dict) -> None:
    nxt = data.get("next")
    row["state"] = row["stage"] = nxt or stage
    row["error"] = None  # a transient failure before it is history
    row["message"] = f"{stage} {'skipped' if data.get('skipped') else 'finished'}"


def _stage_skipped(row: dict, stage: str | None, data: dict) -> None:
    _stage_done(row, stage, dict(data, skipped=True))


def _stage_interrupted(row: dict, stage: str | None, data: dict) -> None:
    row["message"] = f"{stage} interrupted ({data.get('reason', 'unknown')})"


def _stage_failed(row: dict, stage: str | None, data: dict) -> None:
    row["stage"] = stage
    row["error"] = data.get("error")
    row["message"] = f"{stage} failed" + (", will retry" if data.get("retry_in") is not None else "")


def _retry_scheduled(row: dict, stage: str | None, data: dict) -> None:
    row["state"] = data.get("stage") or "queued"
    row["stage"] = data.get("stage")
    row["error"] = None
    row["output"] = None
    row["message"] = "retry scheduled"


def _finished(row: dict, stage: str | None, data: dict) -> None:
    row["state"] = "done"
    row["percent"] = 100.0
    row["output"] = data.get("output")
    row["message"] = "done"


def _failed(row: dict, stage: str | None, data: dict) -> None:
    row["state"] = "failed"
    row["stage"] = data.get("stage", stage)
    row["error"] = data.get("error")
    row["message"] = f"failed in {row['stage']}" if row["stage"] else "failed"


def _cancelled(row: dict, stage: str | None, data: dict) -> None:
    row["state"] = "cancelled"
    row["message"] = "cancelled"


_STEPS: dict[str, Callable[[dict, str | None, dict], None]] = {
    "job.started": _started,
    "stage.started": _stage_started,
    "stage.finished": _stage_done,
    "stage.skipped": _stage_skipped,
    "stage.failed": _stage_failed,
    "stage.interrupted": _stage_interrupted,
    "job.retry_scheduled": _retry_scheduled,
    "job.finished": _finished,
    "job.failed": _failed,
    "job.cancelled": _cancelled,
}


# --- migrations -------------------------------------------------------------------------------


def _v1(db: sqlite_utils.Database) -> None:
    db["events"].create(
        {"seq": int, "at": str, "job_id": str, "kind": str, "stage": str, "data": str},
        pk="seq", not_null={"at", "kind", "data"}, defaults={"data": "{}"}, if_not_exists=True,
    )
    db["jobs"].create(
        {"job_id": str, "source": str, "kind": str, "state": str, "stage": str, "percent": float,
         "message": str, "error": str, "attempts": int, "created_at": str, "updated_at": str, "output": str},
        pk="job_id", if_not_exists=True,
    )


def _v2(db: sqlite_utils.Database) -> None:
    # CLI processes ask the daemon for cancel/retry through this table; it is not part of the log.
    db["requests"].create(
        {"id": int, "at": str, "job_id": str, "command": str, "taken_at": str},
        pk="id", not_null={"at", "job_id", "command"}, if_not_exists=True,
    )
    db["events"].create_index(["job_id", "seq"], index_name="events_job", if_not_exists=True)
    db["events"].create_index(["kind"], index_name="events_kind", if_not_exists=True)
    db["jobs"].create_index(["state"], index_name="jobs_state", if_not_exists=True)
    db["requests"].create_index(["taken_at"], index_name="requests_open", if_not_exists=True)


def _v3(db: sqlite_utils.Database) -> None:
    # Inbox dedupe looks submitted jobs up by content hash.
    db.execute(
        "CREATE INDEX IF NOT EXISTS events_submitted_sha256 ON events (json_extract(data, '$.sha256'))"
        " WHERE kind = 'job.submitted'"
    )


def _v4(db: sqlite_utils.Database) -> None:
    # Pairing a start with its end (the stage-duration query, open attempts, numbering an append)
    # looks events up by job, stage and kind; with only the kind index that query was quadratic.
    db["events"].create_index(["job_id", "stage", "kind"], index_name="events_attempt", if_not_exists=True)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2, _v3, _v4]
"""Schema versions in order; ``PRAGMA user_version`` is the number applied. Only ever append."""

SCHEMA_VERSION = len(MIGRATIONS)


# --- the store --------------------------------------------------------------------------------


class EventStore:
    """The event log and its ``jobs`` projection in one SQLite file.

    Safe to share between threads (one connection behind a lock) and between processes
    (WAL, ``busy_timeout``, ``BEGIN IMMEDIATE`` for every write).
    """

    def __init__(self, path: Path, *, busy_timeout: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=busy_timeout, check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        with self.db.ensure_autocommit_on():
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
        self._migrate()

    # --- writing ------------------------------------------------------------------------------

    def append(self, job_id: str | None, kind: str, stage: str | None = None, /, **data: Any) -> int:
        """Record an event and update the job's row in one transaction; return its ``seq``.

        ``job_id``, ``kind`` and ``stage`` are positional, so ``data`` may hold keys of those names
        (``job.submitted`` has an input ``kind``; ``job.failed`` names its ``stage``). A ``stage``
        given only as a keyword also fills the ``stage`` column.

        Raises:
            UnknownEventKind: ``kind`` is not one of :data:`EVENT_KINDS`.
        """
        if kind not in EVENT_KINDS:
            raise UnknownEventKind(kind)
        if stage is None and isinstance(data.get("stage"), str):
            stage = data["stage"]
        with self._write():
            if job_id is not None and stage is not None and (kind == "stage.started" or kind in CLOSING_KINDS):
                data = self._numbered(job_id, kind, stage, data)
            blob = json.dumps(data, ensure_ascii=False, default=str, sort_keys=True)
            at = now_iso()
            seq = self.db["events"].insert(
                {"at": at, "job_id": job_id, "kind": kind, "stage": stage, "data": blob}
            ).last_pk
            if job_id is not None:
                current = self._row(job_id) if kind != "job.submitted" else None
                event = {"seq": seq, "at": at, "job_id": job_id, "kind": kind, "stage": stage,
                         "data": json.loads(blob)}
                row = apply_event(current, event)
                if row is not None:
                    self.db["jobs"].upsert(row, pk="job_id")
        return int(seq)

    def submit(self, job_id: str, source: str, kind: str, **data: Any) -> int:
        """Record ``job.submitted``: a new job in state ``queued``."""
        return self.append(job_id, "job.submitted", source=source, kind=kind, **data)

    def request(self, job_id: str, command: str) -> None:
        """Ask the daemon to ``cancel`` or ``retry`` a job (written by CLI processes)."""
        if command not in REQUEST_COMMANDS:
            raise ValueError(f"unknown command {command!r}; expected one of {sorted(REQUEST_COMMANDS)}")
        with self._write():
            self.db["requests"].insert({"at": now_iso(), "job_id": job_id, "command": command})

    def open_attempts(self, job_id: str | None = None) -> list[dict]:
        """The attempts started and never ended (of one job, or all), oldest first; ``data`` decoded.

        While the daemon runs these are the stages at work; at its start, those its predecessor
        left when it died.
        """
        where, params = "", []
        if job_id is not None:
            where, params = " AND s.job_id = ?", [job_id]
        with self._lock:
            return list(self._iter_events(
                "SELECT s.* FROM events s WHERE s.kind = 'stage.started'" + where + " AND NOT EXISTS ("
                " SELECT 1 FROM events c WHERE c.job_id = s.job_id AND c.stage = s.stage AND c.seq > s.seq"
                f" AND c.kind IN ({','.join('?' * len(CLOSING_KINDS))})"
                " AND json_extract(c.data, '$.attempt') = json_extract(s.data, '$.attempt'))"
                " ORDER BY s.seq", [*params, *CLOSING_KINDS]))

    def close_open_attempts(self, reason: str, job_id: str | None = None) -> list[dict]:
        """Append ``stage.interrupted`` (with ``reason``) for each open attempt; return them.

        ``last_event_at`` is the job's last event before the interruption: after a crash the
        interruption is recorded at the next start, and the time in between was downtime.
        """
        closed = []
        for started in self.open_attempts(job_id):
            last = self._rows("SELECT at FROM events WHERE job_id = ? ORDER BY seq DESC LIMIT 1",
                              [started["job_id"]])
            self.append(started["job_id"], "stage.interrupted", started["stage"], reason=reason,
                        last_event_at=last[0]["at"] if last else None)
            closed.append(started)
        return closed

    def take_request(self, job_id: str, command: str) -> bool:
        """Take one job's open ``command`` requests now (marked taken); True if there was one."""
        with self._write():
            taken = self.db.execute(
                "UPDATE requests SET taken_at = ? WHERE taken_at IS NULL AND job_id = ? AND command = ?",
                [now_iso(), job_id, command],
            ).rowcount
        return taken > 0

    def take_requests(self) -> list[tuple[str, str]]:
        """The requests not yet taken, oldest first, marked taken in the same transaction."""
        with self._write():
            rows = self.db.execute(
                "SELECT id, job_id, command FROM requests WHERE taken_at IS NULL ORDER BY id"
            ).fetchall()
            if rows:
                self.db.execute(
                    f"UPDATE requests SET taken_at = ? WHERE id IN ({','.join('?' * len(rows))})",
                    [now_iso(), *[r[0] for r in rows]],
                )
        return [(job_id, command) for _, job_id, command in rows]

    def rebuild_jobs(self) -> int:
        """Recompute the whole ``jobs`` table from the events; return the number of rows."""
        with self._write():
            rows = fold(self._iter_events("SELECT * FROM events ORDER BY seq", []))
            self.db.execute("DELETE FROM jobs")
            if rows:
                self.db["jobs"].insert_all(rows.values(), pk="job_id")
        return len(rows)

    # --- reading ------------------------------------------------------------------------------

    def job(self, job_id: str) -> dict | None:
        """The job's row; a unique prefix of the id is enough.

        Raises:
            AmbiguousJobId: the prefix matches several jobs.
        """
        with self._lock:
            row = self._row(job_id)
            if row is not None:
                return row
            escaped = job_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = self._rows("SELECT * FROM jobs WHERE job_id LIKE ? ESCAPE '\\' LIMIT 2", [escaped + "%"])
        if len(rows) > 1:
            raise AmbiguousJobId(f"{job_id!r} matches several jobs; give more of the id")
        return rows[0] if rows else None

    def jobs(self, state: str | None = None) -> list[dict]:
        """All job rows (or those in ``state``), oldest first."""
        if state is None:
            return self._rows("SELECT * FROM jobs ORDER BY created_at, job_id", [])
        return self._rows("SELECT * FROM jobs WHERE state = ? ORDER BY created_at, job_id", [state])

    def events(
        self, job_id: str | None = None, after: int = 0, kinds: Iterable[str] | None = None
    ) -> list[dict]:
        """Events with ``seq > after`` (of one job, of some kinds), in order; ``data`` decoded."""
        where, params = ["seq > ?"], [after]
        if job_id is not None:
            where.append("job_id = ?")
            params.append(job_id)
        if kinds is not None:
            kinds = list(kinds)
            where.append(f"kind IN ({','.join('?' * len(kinds))})")
            params.extend(kinds)
        sql = f"SELECT * FROM events WHERE {' AND '.join(where)} ORDER BY seq"
        with self._lock:
            return list(self._iter_events(sql, params))

    def find_active_by_hash(self, sha256: str) -> str | None:
        """The id of a job still in flight whose submitted input had this content hash."""
        rows = self._rows(
            "SELECT e.job_id FROM events e JOIN jobs j ON j.job_id = e.job_id"
            " WHERE e.kind = 'job.submitted' AND json_extract(e.data, '$.sha256') = ?"
            f" AND j.state NOT IN ({','.join('?' * len(TERMINAL_STATES))}) ORDER BY e.seq LIMIT 1",
            [sha256, *sorted(TERMINAL_STATES)],
        )
        return rows[0]["job_id"] if rows else None

    def daemon_last_seen(self) -> str | None:
        """When a daemon last worked on this log: its ``daemon.stopped``, or after a crash the last event."""
        last = self._rows("SELECT kind, at FROM events WHERE kind IN ('daemon.started', 'daemon.stopped')"
                          " ORDER BY seq DESC LIMIT 1", [])
        if last and last[0]["kind"] == "daemon.stopped":
            return last[0]["at"]
        latest = self._rows("SELECT at FROM events ORDER BY seq DESC LIMIT 1", [])
        return latest[0]["at"] if latest else None

    def stage_durations(self) -> list[dict]:
        """Per stage: runs finished, mean / max / total seconds (from ``stage.finished``)."""
        return self._rows(STAGE_DURATIONS_SQL, [])

    def failures_by_error(self) -> list[dict]:
        """Failed jobs grouped by stage and error message, most frequent first."""
        return self._rows(FAILURES_BY_ERROR_SQL, [])

    @property
    def schema_version(self) -> int:
        """The schema version this file is at."""
        with self._lock:
            return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.db.close()

    # --- private ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` under the lock; ``with conn`` rolls back on an exception.

        IMMEDIATE takes the write lock up front, so a reader turned writer never hits
        SQLITE_BUSY_SNAPSHOT when another process wrote in between; ``busy_timeout`` waits instead.
        """
        with self._lock, self.db.conn:
            self.db.conn.execute("BEGIN IMMEDIATE")
            yield

    def _numbered(self, job_id: str, kind: str, stage: str, data: dict) -> dict:
        """``data`` with the store's ``attempt``: the next number for a start, else the open one's.

        An end with no open attempt (a stage that failed before it started) carries no number.
        """
        data = {k: v for k, v in data.items() if k != "attempt"}
        starts = self.db.execute(
            "SELECT seq, json_extract(data, '$.attempt') FROM events WHERE job_id = ? AND stage = ?"
            " AND kind = 'stage.started' ORDER BY seq DESC", [job_id, stage]).fetchall()
        if kind == "stage.started":
            data["attempt"] = max((n for _, n in starts if isinstance(n, int)), default=0) + 1
            return data
        if starts and isinstance(starts[0][1], int):
            seq, number = starts[0]
            ended = self.db.execute(
                f"SELECT 1 FROM events WHERE job_id = ? AND stage = ? AND seq > ?"
                f" AND kind IN ({','.join('?' * len(CLOSING_KINDS))})"
                " AND json_extract(data, '$.attempt') = ? LIMIT 1",
                [job_id, stage, seq, *CLOSING_KINDS, number]).fetchone()
            if ended is None:
                data["attempt"] = number
        return data

    def _row(self, job_id: str) -> dict | None:
        rows = self._rows("SELECT * FROM jobs WHERE job_id = ?", [job_id])
        return rows[0] if rows else None

    def _rows(self, sql: str, params: list) -> list[dict]:
        with self._lock:
            cursor = self.db.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, values)) for values in cursor.fetchall()]

    def _iter_events(self, sql: str, params: list) -> Iterable[dict]:
        for row in self._rows(sql, params):
            row["data"] = json.loads(row["data"]) if row["data"] else {}
            yield row

    def _migrate(self) -> None:
        with self._write():
            version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has schema version {version}, newer than this moviegen ({SCHEMA_VERSION})"
                )
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                migration(self.db)
                self.db.execute(f"PRAGMA user_version = {number}")


# Ready-to-paste queries (the README shows them too).

STAGE_DURATIONS_SQL = """
SELECT stage,
       COUNT(*) AS runs,
       ROUND(AVG(json_extract(data, '$.seconds')), 3) AS mean_seconds,
       ROUND(MAX(json_extract(data, '$.seconds')), 3) AS max_seconds,
       ROUND(SUM(json_extract(data, '$.seconds')), 3) AS total_seconds
FROM events WHERE kind = 'stage.finished'
GROUP BY stage ORDER BY total_seconds DESC
""".strip()

FAILURES_BY_ERROR_SQL = """
SELECT json_extract(data, '$.stage') AS stage,
       json_extract(data, '$.error') AS error,
       COUNT(*) AS jobs,
       MAX(at) AS last_at
FROM events WHERE kind = 'job.failed'
GROUP BY stage, error ORDER BY jobs DESC, last_at DESC
""".strip()
