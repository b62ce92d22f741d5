"""The event store: append-only log, the jobs projection, migrations, requests, queries."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from daemon.events import (
    EVENT_KINDS,
    SCHEMA_VERSION,
    AmbiguousJobId,
    DamagedLog,
    EventStore,
    UnknownEventKind,
    check_log,
    crash_streak,
    fold,
    salvage_log,
)
from stages.pipeline import KIND_STAGES, PERCENT_RANGES


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    s = EventStore(tmp_path / "state" / "moviegen.db")
    yield s
    s.close()


def table(store: EventStore) -> dict[str, dict]:
    return {row["job_id"]: row for row in store.jobs()}


# --- a random but valid life for each job -----------------------------------------------------


@st.composite
def job_life(draw: st.DrawFn, job_id: str) -> list[tuple]:
    """The events of one job as (job_id, kind, stage, data), following the state machine."""
    kind = draw(st.sampled_from(sorted(KIND_STAGES)))
    events: list[tuple] = [(job_id, "job.submitted", None, {"source": f"{job_id}.in", "kind": kind,
                                                          "sha256": draw(st.sampled_from("abc"))})]
    stages = KIND_STAGES[kind]
    start = 0
    for _ in range(draw(st.integers(0, 2))):  # attempts
        if draw(st.booleans()) and len(events) == 1:
            events.append((job_id, "job.cancelled", None, {}))
            return events
        events.append((job_id, "job.started", None, {"stage": stages[start], "percent": 0.0}))
        for index in range(start, len(stages)):
            name = stages[index]
            nxt = stages[index + 1] if index + 1 < len(stages) else None
            lo, hi = PERCENT_RANGES[name]
            outcome = draw(st.sampled_from(["finished", "finished", "skipped", "transient", "failed",
                                            "cancelled", "note", "crash"]))
            if outcome == "skipped":
                events.append((job_id, "stage.skipped", name, {"next": nxt, "percent": hi}))
                continue
            events.append((job_id, "stage.started", name, {"attempt": 1, "percent": lo}))
            for current in draw(st.lists(st.integers(0, 10), max_size=3)):
                events.append((job_id, "stage.progress", name,
                               {"current": current, "total": 10, "message": f"{current}/10",
                                "percent": lo + (hi - lo) * current / 10}))
            if outcome == "note":
                events.append((job_id, "stage.note", name, {"message": "slide 2 shortened", "slide": 2}))
            if outcome == "transient":
                events.append((job_id, "stage.failed", name, {"error": "503", "attempt": 1, "transient": True,
                                                              "retry_in": 0.1}))
                events.append((job_id, "stage.started", name, {"attempt": 2, "percent": lo}))
            if outcome == "crash":
                return events  # the daemon died here: the job stays non-terminal
            if outcome == "failed":
                events.append((job_id, "stage.failed", name, {"error": "bad input"}))
                events.append((job_id, "job.failed", name, {"stage": name, "error": "bad input", "hint": "fix"}))
                break
            if outcome == "cancelled":
                events.append((job_id, "job.cancelled", name, {}))
                break
            events.append((job_id, "stage.finished", name, {"next": nxt, "percent": hi, "seconds": 0.5}))
        else:
            events.append((job_id, "job.finished", None, {"output": f"/out/{job_id}.mp4", "percent": 100.0}))
            return events
        start = index
        events.append((job_id, "job.retry_scheduled", None, {"stage": stages[start]}))
    return events


@st.composite
def interleaved_lives(draw: st.DrawFn) -> list[tuple]:
    lives = [draw(job_life(f"job{i}")) for i in range(draw(st.integers(1, 4)))]
    merged: list[tuple] = [(None, "daemon.started", None, {})]
    while any(lives):
        life = draw(st.sampled_from([life for life in lives if life]))
        merged.append(life.pop(0))
    return merged


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(interleaved_lives())
def test_projection_equals_fold_and_rebuild(sequence: list[tuple]) -> None:
    """A random valid event sequence gives a jobs table equal to fold(events) and to a rebuild."""
    with tempfile.TemporaryDirectory() as tmp:
        store = EventStore(Path(tmp) / "m.db")
        try:
            for job_id, kind, stage, data in sequence:
                store.append(job_id, kind, stage, **data)
            events = store.events()
            assert [e["kind"] for e in events] == [s[1] for s in sequence]
            expected = fold(events)
            assert table(store) == expected
            assert store.rebuild_jobs() == len(expected)
            assert table(store) == expected
        finally:
            store.close()


def test_append_updates_row_in_step(store: EventStore) -> None:
    """Each event moves the jobs row: state, stage, percent, message, attempts, output."""
    store.submit("j1", "a.url", "url", sha256="s1")
    assert store.job("j1")["state"] == "queued"
    store.append("j1", "job.started", stage="fetch", percent=0.0)
    store.append("j1", "stage.started", "fetch", percent=0.0)
    store.append("j1", "stage.progress", "fetch", current=1, total=2, message="half", percent=2.5)
    row = store.job("j1")
    assert (row["state"], row["stage"], row["percent"], row["message"], row["attempts"]) == (
        "fetch", "fetch", 2.5, "half", 1)
    store.append("j1", "stage.finished", "fetch", next="script", percent=5.0, seconds=0.25)
    assert (store.job("j1")["state"], store.job("j1")["percent"]) == ("script", 5.0)
    store.append("j1", "job.failed", "script", stage="script", error="boom", hint="fix")
    row = store.job("j1")
    assert (row["state"], row["stage"], row["error"]) == ("failed", "script", "boom")
    store.append("j1", "job.retry_scheduled", stage="script")
    assert (store.job("j1")["state"], store.job("j1")["error"]) == ("script", None)
    store.append("j1", "job.started", stage="script", percent=5.0)
    store.append("j1", "job.finished", output="/out/x.mp4", percent=100.0)
    row = store.job("j1")
    assert (row["state"], row["output"], row["attempts"], row["percent"]) == ("done", "/out/x.mp4", 2, 100.0)


def test_events_have_utc_microsecond_times_and_json_data(store: EventStore) -> None:
    """``at`` is ISO 8601 UTC with microseconds; ``data`` is JSON text in the table."""
    store.submit("j1", "a.md", "article", title="日本語")
    raw = sqlite3.connect(store.path).execute("SELECT at, data, kind, stage FROM events").fetchone()
    assert raw[0].endswith("+00:00") and len(raw[0].split(".")[1]) == len("123456+00:00")
    assert json.loads(raw[1]) == {"source": "a.md", "kind": "article", "title": "日本語"}
    assert raw[2:] == ("job.submitted", None)


def test_unknown_kind_is_refused(store: EventStore) -> None:
    """Only the documented event kinds can be written."""
    with pytest.raises(UnknownEventKind):
        store.append("j1", "job.exploded")
    assert store.events() == []
    assert "stage.note" in EVENT_KINDS


def test_event_filters(store: EventStore) -> None:
    """events() filters by job, by seq and by kinds, always in seq order."""
    store.append(None, "daemon.started")
    store.submit("a", "a.url", "url")
    store.submit("b", "b.url", "url")
    seq = store.append("a", "job.cancelled")
    assert [e["job_id"] for e in store.events(kinds=["job.submitted"])] == ["a", "b"]
    assert [e["kind"] for e in store.events("a")] == ["job.submitted", "job.cancelled"]
    assert [e["seq"] for e in store.events(after=seq - 1)] == [seq]
    assert store.events("a", kinds=[]) == []


def test_job_prefix_lookup(store: EventStore) -> None:
    """A unique prefix finds a job; an ambiguous one says so; LIKE wildcards are literal."""
    store.submit("20240101-abc", "a.url", "url")
    store.submit("20240101-abd", "b.url", "url")
    assert store.job("20240101-abc")["source"] == "a.url"
    assert store.job("20240101-abd")["source"] == "b.url"
    with pytest.raises(AmbiguousJobId):
        store.job("20240101-ab")
    assert store.job("2024%") is None
    assert store.job("nope") is None


def test_find_active_by_hash_ignores_finished_jobs(store: EventStore) -> None:
    """Dedupe sees only jobs in flight."""
    store.submit("old", "a.url", "url", sha256="same")
    store.append("old", "job.finished", output="x")
    assert store.find_active_by_hash("same") is None
    store.submit("new", "a.url", "url", sha256="same")
    assert store.find_active_by_hash("same") == "new"
    store.append("new", "job.failed", error="x")
    assert store.find_active_by_hash("same") is None


def test_requests_are_taken_once(store: EventStore, tmp_path: Path) -> None:
    """CLI requests land in `requests`, not in the log, and are handed out exactly once."""
    other = EventStore(store.path)  # a CLI process has its own connection
    other.request("j1", "cancel")
    other.request("j2", "retry")
    with pytest.raises(ValueError):
        other.request("j1", "explode")
    assert store.take_requests() == [("j1", "cancel"), ("j2", "retry")]
    assert store.take_requests() == []
    assert store.events() == []
    other.close()


def test_writers_in_several_processes_lose_nothing(store: EventStore, tmp_path: Path) -> None:
    """Two other processes and this one append at once; every event lands with a unique seq."""
    code = (
        "import sys; from pathlib import Path; from daemon.events import EventStore\n"
        "s = EventStore(Path(sys.argv[1]))\n"
        "for i in range(150): s.append(sys.argv[2], 'stage.note', 'audio', message=str(i))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(store.path), f"p{n}"],
                              cwd=Path(__file__).resolve().parents[1]) for n in range(2)]
    for i in range(150):
        store.append("main", "stage.note", "audio", message=str(i))
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    events = store.events()
    assert len(events) == 450
    assert len({e["seq"] for e in events}) == 450
    for writer in ("main", "p0", "p1"):
        mine = [e["data"]["message"] for e in events if e["job_id"] == writer]
        assert mine == [str(i) for i in range(150)]


def test_migration_from_v1_keeps_the_log(tmp_path: Path) -> None:
    """A database made by schema v1 is upgraded in place; its events and jobs survive."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE events (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, job_id TEXT,
                             kind TEXT NOT NULL, stage TEXT, data TEXT NOT NULL DEFAULT '{}');
        CREATE TABLE jobs (job_id TEXT PRIMARY KEY, source TEXT, kind TEXT, state TEXT, stage TEXT,
                           percent REAL, message TEXT, error TEXT, attempts INTEGER, created_at TEXT,
                           updated_at TEXT, output TEXT);
        INSERT INTO events VALUES (1, '2024-01-01T00:00:00.000000+00:00', 'j1', 'job.submitted', NULL,
                                   '{"source": "a.url", "kind": "url", "sha256": "h1"}');
        INSERT INTO events VALUES (2, '2024-01-01T00:00:01.000000+00:00', 'j1', 'job.started', 'fetch',
                                   '{"stage": "fetch"}');
        INSERT INTO jobs VALUES ('j1', 'a.url', 'url', 'fetch', 'fetch', 0, 'started', NULL, 1,
                                 '2024-01-01T00:00:00.000000+00:00', '2024-01-01T00:00:01.000000+00:00', NULL);
        PRAGMA user_version = 1;
        """
    )
    conn.commit()
    conn.close()
    store = EventStore(path)
    assert store.schema_version == SCHEMA_VERSION > 1
    assert [e["kind"] for e in store.events()] == ["job.submitted", "job.started"]
    assert store.job("j1")["state"] == "fetch"
    assert store.find_active_by_hash("h1") == "j1"
    store.request("j1", "cancel")
    assert store.take_requests() == [("j1", "cancel")]
    store.append("j1", "job.cancelled")
    assert table(store) == fold(store.events())
    store.close()
    assert EventStore(path).schema_version == SCHEMA_VERSION  # reopening changes nothing


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file written by a later moviegen is not touched."""
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        EventStore(path)


def test_wal_mode(store: EventStore) -> None:
    """The log runs in WAL mode so the CLI can read while the daemon writes."""
    assert sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_queries_for_readme(store: EventStore) -> None:
    """Stage durations and failures by error come straight from the log."""
    for job_id, seconds in (("a", 1.0), ("b", 3.0)):
        store.submit(job_id, f"{job_id}.url", "url")
        store.append(job_id, "stage.finished", "fetch", seconds=seconds, next="script")
    store.append("a", "job.failed", "script", stage="script", error="bad yaml", hint="fix")
    store.append("b", "job.failed", "script", stage="script", error="bad yaml", hint="fix")
    assert store.stage_durations() == [
        {"stage": "fetch", "runs": 2, "mean_seconds": 2.0, "max_seconds": 3.0, "total_seconds": 4.0}]
    failures = store.failures_by_error()
    assert [(f["stage"], f["error"], f["jobs"]) for f in failures] == [("script", "bad yaml", 2)]


# --- attempts, interruptions, damaged logs ----------------------------------------------------


def test_the_store_numbers_attempts(store: EventStore) -> None:
    """A start gets one more than any earlier start of its job and stage, whatever the caller
    says; its end carries the same number; an end with nothing open carries none."""
    store.submit("j", "a.md", "article")
    store.append("j", "stage.started", "fetch")
    store.append("j", "stage.failed", "fetch", error="503", attempt=7, transient=True)
    store.append("j", "stage.started", "fetch", attempt=1)
    store.append("j", "stage.interrupted", "fetch", reason="crash")
    store.append("j", "stage.started", "fetch")
    store.append("j", "stage.finished", "fetch", next="script")
    store.append("j", "stage.started", "script")
    store.append("j", "stage.failed", "audio", error="no stage named audio")
    numbered = [(e["kind"], e["stage"], e["data"].get("attempt")) for e in store.events("j")[1:]]
    assert numbered == [
        ("stage.started", "fetch", 1), ("stage.failed", "fetch", 1),
        ("stage.started", "fetch", 2), ("stage.interrupted", "fetch", 2),
        ("stage.started", "fetch", 3), ("stage.finished", "fetch", 3),
        ("stage.started", "script", 1), ("stage.failed", "audio", None),
    ]
    assert [(a["job_id"], a["stage"], a["data"]["attempt"]) for a in store.open_attempts()] == [("j", "script", 1)]


def test_close_open_attempts_ends_each_once(store: EventStore) -> None:
    """Every open attempt gets one stage.interrupted with the reason and the job's last event
    time; a second call finds nothing open."""
    for job in ("a", "b"):
        store.submit(job, f"{job}.md", "article")
        store.append(job, "stage.started", "fetch")
    store.append("b", "stage.progress", "fetch", current=1, total=2)
    last_b = store.events("b")[-1]["at"]
    closed = store.close_open_attempts("crash")
    assert [(c["job_id"], c["stage"]) for c in closed] == [("a", "fetch"), ("b", "fetch")]
    ends = store.events(kinds=["stage.interrupted"])
    assert [(e["job_id"], e["data"]["reason"], e["data"]["attempt"]) for e in ends] == [("a", "crash", 1),
                                                                                       ("b", "crash", 1)]
    assert ends[1]["data"]["last_event_at"] == last_b
    assert store.job("a")["state"] == "fetch" and store.job("a")["message"] == "fetch interrupted (crash)"
    assert store.open_attempts() == [] and store.close_open_attempts("shutdown") == []


def _crash(stage: str, reason: str = "crash") -> dict:
    return {"kind": "stage.interrupted", "stage": stage, "data": {"reason": reason}}


def test_crash_streak_counts_only_crashes_in_a_row_without_progress() -> None:
    """Crashes of one stage count; a stop neither counts nor resets; a finished stage, a retry or
    a crash elsewhere starts again."""
    finished = {"kind": "stage.finished", "stage": "audio", "data": {}}
    retry = {"kind": "job.retry_scheduled", "stage": None, "data": {}}
    assert crash_streak([]) == (None, 0)
    assert crash_streak([_crash("audio"), _crash("audio")]) == ("audio", 2)
    assert crash_streak([_crash("audio"), _crash("audio", "shutdown"), _crash("audio")]) == ("audio", 2)
    assert crash_streak([_crash("audio"), finished, _crash("audio")]) == ("audio", 1)
    assert crash_streak([_crash("audio"), _crash("audio"), retry]) == (None, 0)
    assert crash_streak([_crash("audio"), _crash("video")]) == ("video", 1)
    assert crash_streak([_crash("audio", "cancel"), _crash("audio", "shutdown")]) == (None, 0)


def test_check_log_passes_fresh_and_healthy_homes(tmp_path: Path) -> None:
    """No log and no job folders, a 0-byte file with no job folders (a first start killed at once),
    and a healthy log beside its job folders are all fine."""
    db, jobs = tmp_path / "state" / "moviegen.db", tmp_path / "state" / "jobs"
    check_log(db, jobs)
    db.parent.mkdir(parents=True)
    db.touch()
    check_log(db, jobs)
    db.unlink()
    store = EventStore(db)
    check_log(db, jobs)  # the schema and no events, no folders: a daemon that never claimed
    jobs.mkdir()
    (jobs / "j1").mkdir()
    with pytest.raises(DamagedLog, match="holds no events"):
        check_log(db, jobs)
    store.submit("j1", "a.md", "article")
    store.close()
    check_log(db, jobs)


def test_salvage_of_a_log_with_no_readable_events_keeps_the_file(tmp_path: Path) -> None:
    """Garbage where the events table's root was: nothing is copied, the damaged file is kept
    beside the new, empty log."""
    db = tmp_path / "moviegen.db"
    store = EventStore(db)
    for i in range(200):
        store.append(None, "daemon.started", pid=i, padding="x" * 200)
    store.close()
    conn = sqlite3.connect(db)
    page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(db, "r+b") as fh:
        fh.seek((page - 1) * size)
        fh.write(b"\xff" * size)
    with pytest.raises(DamagedLog, match="is damaged"):
        check_log(db, tmp_path / "jobs")
    report = salvage_log(db)
    assert report["events"] == 0 and report["unreadable"] > 0
    assert Path(report["moved_to"]).stat().st_size > 0
    check_log(db, tmp_path / "jobs")
