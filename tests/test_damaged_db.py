"""A damaged event log stops the daemon before it claims anything, with a message that names the
file and the remedy; read-only commands say the same; `moviegen rebuild` salvages what it can.

Real logs made by a real daemon, then damaged the way disks and people damage them: a page
overwritten with garbage, the file truncated to zero, a file that is not SQLite at all, the log
deleted beside its job folders.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures_service import ROOT, ServiceDaemon, drop, wait_for
from tests.test_daemon_process import assert_projection

EXIT_DAMAGED_LOG = 4


@pytest.fixture
def daemons():
    started: list[ServiceDaemon] = []
    yield started
    for daemon in started:
        if daemon.alive():
            daemon.kill9()


def home_with_history(tmp_path: Path, daemons: list) -> ServiceDaemon:
    """A home where a real daemon made three videos and stopped cleanly (the WAL checkpointed)."""
    daemon = ServiceDaemon(tmp_path / "home")
    daemons.append(daemon)
    daemon.start()
    for i in range(3):
        drop(daemon.home / "inbox", f"old-{i}.md", f"# Old {i}\n\nA paragraph.\n")
    wait_for(lambda: sum(r["state"] == "done" for r in daemon.jobs().values()) == 3, 30, "three jobs", daemon)
    assert daemon.stop() == 0
    assert not Path(f"{daemon.db}-wal").exists() or Path(f"{daemon.db}-wal").stat().st_size == 0
    return daemon


def overwrite_root_page(db: Path, name: str) -> None:
    """Overwrite the root page of table or index ``name`` with random bytes."""
    conn = sqlite3.connect(db)
    try:
        page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    with open(db, "r+b") as fh:
        fh.seek((page - 1) * size)
        fh.write(os.urandom(size))


def damage(db: Path, how: str) -> None:
    for companion in (Path(f"{db}-wal"), Path(f"{db}-shm")):
        companion.unlink(missing_ok=True)
    if how == "garbage page":
        overwrite_root_page(db, "events")
    elif how == "zero length":
        os.truncate(db, 0)
    elif how == "not sqlite":
        db.write_bytes(b"these are someone's holiday notes, not a database\n" * 200)
    elif how == "deleted":
        db.unlink()


def run_daemon_once(daemon: ServiceDaemon) -> subprocess.CompletedProcess:
    """`moviegen run` as a real process, expected to exit on its own."""
    return subprocess.run([sys.executable, "-m", "daemon", "run", "--home", str(daemon.home)],
                          capture_output=True, text=True, env=daemon.env, cwd=ROOT, timeout=60)


@pytest.mark.parametrize("how, problem", [
    ("garbage page", "is damaged"),
    ("zero length", "is empty (0 bytes)"),
    ("not sqlite", "is not an SQLite database"),
    ("deleted", "is missing"),
])
def test_run_refuses_a_damaged_log_and_claims_nothing(tmp_path: Path, daemons, how: str, problem: str) -> None:
    """`moviegen run` exits 4 with the file's path, the problem and what to do; the file dropped
    meanwhile stays in inbox/, no job folder appears, and the read-only commands say the same."""
    daemon = home_with_history(tmp_path, daemons)
    jobs_before = sorted(p.name for p in (daemon.home / "state" / "jobs").iterdir())
    old_job = jobs_before[0]
    damage(daemon.db, how)
    dropped = drop(daemon.home / "inbox", "new.md", "# New\n\nPlease make me.\n")

    result = run_daemon_once(daemon)
    assert result.returncode == EXIT_DAMAGED_LOG, result.stdout + result.stderr
    message = result.stderr
    assert f"the event log {daemon.db} {problem}" in message
    assert "What to do" in message and "before taking anything from the inbox" in message
    assert ("moviegen rebuild" in message) if how in ("garbage page", "not sqlite") else ("jobs.old" in message)
    assert "Traceback" not in result.stdout + result.stderr
    assert dropped.exists() and dropped.read_text() == "# New\n\nPlease make me.\n"
    assert sorted(p.name for p in (daemon.home / "state" / "jobs").iterdir()) == jobs_before
    assert not list((daemon.home / "outbox").glob("*new*"))

    for args in (("status",), ("status", "--json"), ("events", old_job), ("cancel", old_job), ("gc",)):
        cli = daemon.cli(*args)
        assert cli.returncode == EXIT_DAMAGED_LOG, (args, cli.stdout, cli.stderr)
        assert f"the event log {daemon.db} {problem}" in cli.stderr, args
        assert "Traceback" not in cli.stdout + cli.stderr, args
    assert daemon.db.exists() == (how != "deleted")  # neither run nor status made a new log
    if how == "zero length":
        assert daemon.db.stat().st_size == 0  # neither run nor status recreated it
    assert dropped.exists()


def test_rebuild_salvages_a_log_with_a_damaged_page(tmp_path: Path, daemons) -> None:
    """The jobs table's root page is garbage but the events survive: `moviegen rebuild` moves the
    damaged file aside, copies every event into a new log and rebuilds the jobs; the daemon then
    starts, makes the new file's video and does not redo the old jobs."""
    daemon = home_with_history(tmp_path, daemons)
    events_before = daemon.query("SELECT seq, kind, job_id FROM events ORDER BY seq")
    jobs_before = daemon.jobs()
    overwrite_root_page(daemon.db, "jobs")
    dropped = drop(daemon.home / "inbox", "new.md", "# New\n\nPlease make me.\n")
    assert run_daemon_once(daemon).returncode == EXIT_DAMAGED_LOG
    assert dropped.exists()

    result = daemon.cli("rebuild")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "moved the damaged log to" in result.stdout and f"copied {len(events_before)} readable" in result.stdout
    assert list((daemon.home / "state").glob("moviegen.db.damaged-*"))
    assert daemon.query("SELECT seq, kind, job_id FROM events ORDER BY seq") == events_before
    assert daemon.jobs() == jobs_before

    daemon.start()
    new_job = wait_for(lambda: daemon.job_of("new.md"), 20, "the new file to be claimed", daemon)
    wait_for(lambda: daemon.state(new_job) == "done", 30, "the new job", daemon)
    assert daemon.stop() == 0
    submitted = [name for (name,) in daemon.query(
        "SELECT json_extract(data, '$.name') FROM events WHERE kind = 'job.submitted'")]
    assert sorted(submitted) == ["new.md", "old-0.md", "old-1.md", "old-2.md"]  # nothing redone
    assert len(list((daemon.home / "outbox").glob("*.mp4"))) == 4
    assert_projection(daemon.db)


def test_a_fresh_home_still_starts(tmp_path: Path, daemons) -> None:
    """No log and no job folders is a new home, not a lost one: the daemon starts and works."""
    daemon = ServiceDaemon(tmp_path / "home")
    daemons.append(daemon)
    assert not daemon.db.exists()
    daemon.start()
    drop(daemon.home / "inbox", "first.md", "# First\n")
    job = wait_for(lambda: daemon.job_of("first.md"), 20, "the claim", daemon)
    wait_for(lambda: daemon.state(job) == "done", 30, "the job", daemon)
    assert daemon.stop() == 0


def test_damage_found_while_running_stops_the_claims_and_loses_nothing(tmp_path: Path, daemons) -> None:
    """The content-hash index a claim reads is garbage after the start-up check passed: the first
    claim meets the damage, the daemon stops (exit 4) instead of swallowing file after file, the
    other dropped files stay in inbox/, and after `moviegen rebuild` every file becomes a video."""
    daemon = home_with_history(tmp_path, daemons)
    daemon.start()
    conn = sqlite3.connect(daemon.db)
    page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events_submitted_sha256'").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(daemon.db, "r+b") as fh:
        fh.seek((page - 1) * size)
        fh.write(b"\xff" * size)
    staging = daemon.home / "staging"
    staging.mkdir()
    names = [f"new-{i}.md" for i in range(3)]
    for name in names:
        (staging / name).write_text(f"# {name}\n\nPlease make me.\n")
    for name in names:
        os.rename(staging / name, daemon.home / "inbox" / name)
    assert daemon.proc is not None
    assert daemon.proc.wait(timeout=30) == EXIT_DAMAGED_LOG
    log = daemon.log.read_text()
    assert f"the event log {daemon.db} was found damaged while the daemon ran" in log
    assert "moviegen rebuild" in log
    left = sorted(p.name for p in (daemon.home / "inbox").iterdir())
    assert len(left) >= 2 and set(left) <= set(names)  # at most the one claim that met the damage

    result = daemon.cli("rebuild")
    assert result.returncode == 0, result.stdout + result.stderr
    daemon.start()
    wait_for(lambda: sum(r["state"] == "done" for r in daemon.jobs().values()) == 6, 30, "all six videos", daemon)
    assert daemon.stop() == 0
    submitted = sorted(name for (name,) in daemon.query(
        "SELECT json_extract(data, '$.name') FROM events WHERE kind = 'job.submitted'"))
    assert submitted == sorted(["old-0.md", "old-1.md", "old-2.md", *names])
    assert not list((daemon.home / "inbox").iterdir())
    assert_projection(daemon.db)
