"""Issue 2's acceptance tests: a real `python -m daemon run` subprocess, real folders, real SQLite.

The stages are the small real ones in ``tests/fixtures_service.py``, steered by gate files.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from daemon.events import EventStore, fold
from tests.fixtures_service import ServiceDaemon, children_with, drop, wait_for
from tests.fixtures_stages import slot_peaks

RUNNING = {"queued", "fetch", "script", "audio", "slides", "video"}


def assert_projection(db: Path) -> None:
    """The jobs table equals the fold of the events (acceptance 5)."""
    store = EventStore(db)
    try:
        assert {row["job_id"]: row for row in store.jobs()} == fold(store.events())
    finally:
        store.close()


def runs(home: Path, job_id: str) -> list[str]:
    """The stages that really ran for a job, in order (the fixture stages log each run)."""
    try:
        return (home / "state" / "jobs" / job_id / "runs.log").read_text().split()
    except FileNotFoundError:
        return []


def job_events(daemon: ServiceDaemon, job_id: str, after: int = 0) -> list[tuple[str, str | None]]:
    return [(k, s) for k, s in daemon.query(
        "SELECT kind, stage FROM events WHERE job_id = ? AND seq > ? AND kind != 'stage.progress' ORDER BY seq",
        (job_id, after))]


def max_seq(daemon: ServiceDaemon) -> int:
    return daemon.query("SELECT coalesce(max(seq), 0) FROM events")[0][0]


@pytest.fixture
def daemons():
    started: list[ServiceDaemon] = []
    yield started
    for daemon in started:
        if daemon.alive():
            daemon.kill9()


def test_sigkill_mid_job_then_restart_resumes(tmp_path: Path, daemons) -> None:
    """Killed in the slides stage and restarted: finished stages are skipped, slides reruns,
    exactly one video reaches the outbox and no job is left running."""
    daemon = ServiceDaemon(tmp_path / "home")
    daemons.append(daemon)
    gate = daemon.home / "gates" / "hold-slides"
    gate.touch()
    daemon.start()
    drop(daemon.home / "inbox", "story.md", "# A story\n\ntext\n")
    job = wait_for(lambda: daemon.job_of("story.md"), 20, "the claim", daemon)
    wait_for(lambda: "slides" in runs(daemon.home, job), 20, "the slides stage to run", daemon)
    daemon.kill9()
    assert daemon.state(job) == "slides"
    gate.unlink()
    before = max_seq(daemon)
    daemon.start()
    wait_for(lambda: daemon.state(job) == "done", 30, "the job to finish after the restart", daemon)
    assert daemon.stop() == 0

    after = job_events(daemon, job, before)
    assert after[:2] == [("stage.interrupted", "slides"), ("job.started", "fetch")]  # closed at the restart
    assert daemon.query("SELECT json_extract(data, '$.reason'), json_extract(data, '$.attempt') FROM events"
                        " WHERE kind = 'stage.interrupted'") == [("crash", 1)]
    assert ("stage.skipped", "fetch") in after and ("stage.skipped", "script") in after
    assert ("stage.skipped", "audio") in after
    assert ("stage.started", "slides") in after and ("stage.finished", "video") in after
    assert runs(daemon.home, job) == ["fetch", "script", "audio", "slides", "slides", "video"]
    videos = list((daemon.home / "outbox").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].name.endswith("a-story.mp4")
    assert not [j for j, row in daemon.jobs().items() if row["state"] in RUNNING]
    assert daemon.count("daemon.stopped") == 1  # the SIGKILLed run recorded none
    assert_projection(daemon.db)
    assert_json_logs(daemon.log, job)


def assert_json_logs(log: Path, job_id: str) -> None:
    """Not a terminal, so the daemon logs JSON lines; the runner's carry job_id and stage."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(e.get("event") == "daemon.started" for e in lines)
    assert any(e.get("job_id") == job_id and e.get("stage") == "slides" for e in lines)
    assert all("timestamp" in e and "level" in e for e in lines)


def test_readable_logs_on_a_terminal() -> None:
    """The console renderer gives readable lines (not JSON) with the bound fields."""
    import io

    from daemon.logs import configure_logging, get_logger

    import structlog

    try:
        out = io.StringIO()
        configure_logging(json_lines=False, stream=out)
        get_logger("moviegen.test", job_id="J1").bind(stage="audio").info("stage started")
        text = out.getvalue()
        assert "stage started" in text and "job_id=J1" in text and "stage=audio" in text
        assert not text.lstrip().startswith("{")
        out = io.StringIO()
        configure_logging(stream=out)  # a StringIO is not a TTY: JSON
        get_logger("moviegen.test").info("hello", n=1)
        assert json.loads(out.getvalue())["n"] == 1
    finally:
        structlog.reset_defaults()  # other tests in this process keep the default logging


def test_sigterm_stops_cleanly_and_the_job_resumes(tmp_path: Path, daemons) -> None:
    """SIGTERM mid-stage: daemon.stopped is recorded, exit code 0, the job stays resumable."""
    daemon = ServiceDaemon(tmp_path / "home")
    daemons.append(daemon)
    gate = daemon.home / "gates" / "hold-audio"
    gate.touch()
    daemon.start()
    drop(daemon.home / "inbox", "calm.md", "# Calm\n")
    job = wait_for(lambda: daemon.job_of("calm.md"), 20, "the claim", daemon)
    wait_for(lambda: daemon.state(job) == "audio", 20, "the audio stage", daemon)
    second = subprocess.run([sys.executable, "-m", "daemon", "run", "--home", str(daemon.home)],
                            capture_output=True, text=True, env=daemon.env, timeout=60)
    assert second.returncode == 1 and "already_running" in second.stdout  # one daemon per home
    assert daemon.stop() == 0
    assert daemon.count("daemon.stopped") == 1
    assert daemon.state(job) == "audio"
    assert job_events(daemon, job)[-1] == ("stage.interrupted", "audio")  # closed by the stop itself
    assert daemon.query("SELECT json_extract(data, '$.reason') FROM events WHERE kind = 'stage.interrupted'") == [
        ("shutdown",)]
    gate.unlink()
    daemon.start()
    wait_for(lambda: daemon.state(job) == "done", 30, "the job to finish", daemon)
    assert daemon.stop() == 0
    assert_projection(daemon.db)


def test_stages_warm_up_at_start_and_a_failing_warm_up_changes_nothing(tmp_path: Path, daemons) -> None:
    """At start the daemon calls each stage's warm(settings) once, before any job; one that raises
    is logged and the daemon runs jobs as usual."""
    daemon = ServiceDaemon(tmp_path / "home")
    daemons.append(daemon)
    (daemon.home / "gates" / "fail-warm-script").touch()
    daemon.start()
    warmed = daemon.home / "warmed.log"
    wait_for(lambda: warmed.exists() and len(warmed.read_text().split()) == 4, 20, "the warm-ups", daemon)
    assert sorted(warmed.read_text().split()) == ["audio", "fetch", "slides", "video"]
    assert daemon.query("SELECT count(*) FROM jobs") == [(0,)]  # nothing was submitted: it ran at start
    wait_for(lambda: "stage warm-up failed" in daemon.log.read_text(), 20, "the warm-up failure in the log", daemon)
    (data,), = wait_for(lambda: daemon.query("SELECT data FROM events WHERE kind = 'daemon.warmed' AND job_id IS NULL"),
                        20, "daemon.warmed", daemon)
    warmed_event = json.loads(data)
    assert sorted(warmed_event["seconds"]) == ["audio", "fetch", "slides", "video"]
    assert warmed_event["failed"] == ["script"]
    drop(daemon.home / "inbox", "warm.md", "# Warm\n")
    job = wait_for(lambda: daemon.job_of("warm.md"), 20, "the claim", daemon)
    wait_for(lambda: daemon.state(job) == "done", 30, "the job to finish", daemon)
    assert sorted(warmed.read_text().split()) == ["audio", "fetch", "slides", "video"]  # once, not per job
    assert daemon.stop() == 0
    assert warmed.read_text().split()[-1] == "exit-handlers-ran"  # a clean stop, not os._exit


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_bad_inputs_end_in_failed_and_the_daemon_lives(tmp_path: Path, daemons) -> None:
    """Each bad input ends in failed/ with a note; a symlink is left alone; a slowly written
    file is claimed only once complete."""
    cap = 16 * 1024
    daemon = ServiceDaemon(tmp_path / "home", settle=1.0, cap=cap)
    daemons.append(daemon)
    daemon.start()
    inbox = daemon.home / "inbox"
    broken_yaml = "title: broken\nsections:\n  - title: one\n   narrations: [a]\n"
    with pytest.raises(yaml.YAMLError) as info:
        yaml.safe_load(broken_yaml)
    broken_line = info.value.problem_mark.line + 1
    bad = {
        "empty.md": b"",
        "random.yaml": os.urandom(4096),
        "broken.yaml": broken_yaml.encode(),
        "nourl.url": b"nothing to see here\n",
        "ftp.url": b"ftp://files.example/file.txt\n",
        "closed.url": f"http://127.0.0.1:{closed_port()}/post\n".encode(),
        "badutf8.txt": b"https://example.com/caf\xe9\n",
        "report.pdf": b"%PDF-1.4\n",
        "huge.md": b"#" * (cap + 1),
    }
    os.symlink("/etc/passwd", inbox / "passwd.md")
    slow_body = "".join(f"line {i}\n" for i in range(20))

    def write_slowly() -> None:
        with open(inbox / "slow.md", "w") as fh:
            for line in slow_body.splitlines(keepends=True):
                fh.write(line)
                fh.flush()
                time.sleep(0.25)

    writer = threading.Thread(target=write_slowly)
    writer.start()
    for name, data in bad.items():
        drop(inbox, name, data)
    failed = daemon.home / "failed"
    for name, data in bad.items():
        wait_for(lambda n=name: (failed / f"{n}.error.txt").exists(), 30, f"{name} in failed/", daemon)
        assert (failed / name).read_bytes() == data, name
    writer.join()
    slow_job = wait_for(lambda: daemon.job_of("slow.md"), 30, "the slow file to be claimed", daemon)
    wait_for(lambda: daemon.state(slow_job) == "done", 30, "the slow file's job", daemon)
    assert daemon.alive()
    assert daemon.stop() == 0

    notes = {name: (failed / f"{name}.error.txt").read_text() for name in bad}
    assert f"line {broken_line}" in notes["broken.yaml"]
    assert "empty" in notes["empty.md"] and "UTF-8" in notes["badutf8.txt"]
    assert "no URL" in notes["nourl.url"] and "ftp" in notes["ftp.url"]
    assert "cannot connect" in notes["closed.url"] and "unknown file type" in notes["report.pdf"]
    assert "over the limit" in notes["huge.md"]
    assert all("what to do" in note for note in notes.values())
    assert (inbox / "passwd.md").is_symlink() and os.readlink(inbox / "passwd.md") == "/etc/passwd"
    assert not (failed / "passwd.md").exists()
    assert (daemon.home / "state" / "jobs" / slow_job / "source.md").read_text() == slow_body
    assert daemon.query("SELECT count(*) FROM events WHERE kind = 'job.submitted' "
                        "AND json_extract(data, '$.name') = 'slow.md'")[0][0] == 1
    assert_projection(daemon.db)


def test_fifty_files_at_once_finish_exactly_once_within_the_limits(tmp_path: Path, daemons) -> None:
    """50 files dropped together: each job finishes once; the event log shows at most max_jobs
    jobs and at most each resource's slots at any moment."""
    slots = {"render": 1, "tts": 1, "network": 4, "cpu": 2}
    daemon = ServiceDaemon(tmp_path / "home", extra="max_jobs = 2\n")
    (daemon.home / "fixture.json").write_text(json.dumps({"sleep": 0.01}))
    daemons.append(daemon)
    daemon.start()
    staging = daemon.home / "staging"
    staging.mkdir()
    for i in range(50):
        (staging / f"article-{i:02d}.md").write_text(f"# Article {i}\n\nbody {i}\n")
    for path in sorted(staging.iterdir()):
        os.rename(path, daemon.home / "inbox" / path.name)
    wait_for(lambda: sum(1 for r in daemon.jobs().values() if r["state"] == "done") == 50, 180,
             "all 50 jobs to finish", daemon)
    assert daemon.stop() == 0

    names = [r[0] for r in daemon.query("SELECT json_extract(data, '$.name') FROM events WHERE kind = 'job.submitted'")]
    assert sorted(names) == [f"article-{i:02d}.md" for i in range(50)]
    finished = Counter(r[0] for r in daemon.query("SELECT job_id FROM events WHERE kind = 'job.finished'"))
    assert len(finished) == 50 and set(finished.values()) == {1}
    assert len(list((daemon.home / "outbox").glob("*.mp4"))) == 50

    rows = daemon.query("SELECT job_id, kind, stage, data FROM events WHERE job_id IS NOT NULL ORDER BY at, seq")
    peak_jobs, peak = slot_peaks([{"job_id": job_id, "kind": kind, "stage": stage, "data": json.loads(data)}
                                  for job_id, kind, stage, data in rows])
    assert peak_jobs == 2
    for resource, count in peak.items():
        assert count <= slots[resource], resource
    assert_projection(daemon.db)


def test_cancel_and_retry_through_the_cli(tmp_path: Path, daemons) -> None:
    """`moviegen cancel` mid-stage ends the job cancelled and kills its child process;
    `moviegen retry` after a failure resumes at the failed stage."""
    daemon = ServiceDaemon(tmp_path / "home")
    daemons.append(daemon)
    gates = daemon.home / "gates"
    (gates / "child-audio").touch()
    (gates / "fail-slides").touch()
    daemon.start()
    inbox = daemon.home / "inbox"

    drop(inbox, "cancel-me.md", "# Cancel me\n")
    job = wait_for(lambda: daemon.job_of("cancel-me.md"), 20, "the claim", daemon)
    marker = f"fixture-child-{job}"
    wait_for(lambda: children_with(marker), 20, "the stage's child process", daemon)
    result = daemon.cli("cancel", job)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: daemon.state(job) == "cancelled", 20, "the job to be cancelled", daemon)
    wait_for(lambda: not children_with(marker), 10, "the child to be killed", daemon)
    (gates / "child-audio").unlink()

    drop(inbox, "retry-me.md", "# Retry me\n")
    job2 = wait_for(lambda: daemon.job_of("retry-me.md"), 20, "the claim", daemon)
    wait_for(lambda: daemon.state(job2) == "failed", 20, "the job to fail", daemon)
    failed = daemon.home / "failed"
    note = failed / "retry-me.md.error.txt"  # written by the on_failed hook, just after job.failed
    wait_for(note.exists, 10, "the failure note", daemon)
    assert "fixture failure in slides" in note.read_text()
    (gates / "fail-slides").unlink()  # first: the cancelled job's retry must not meet the gate
    assert daemon.cli("retry", job).returncode == 0  # a cancelled job may be retried too
    before = max_seq(daemon)
    result = daemon.cli("retry", job2[:17])  # a unique prefix is enough
    assert result.returncode == 0, result.stderr
    wait_for(lambda: daemon.state(job2) == "done", 20, "the retried job to finish", daemon)
    wait_for(lambda: daemon.state(job) == "done", 20, "the retried cancelled job to finish", daemon)
    assert daemon.cli("retry", job2).returncode == 2  # nothing to retry
    assert daemon.stop() == 0

    after = [e for e in job_events(daemon, job2, before)]
    started = [s for k, s in after if k == "stage.started"]
    assert started[0] == "slides"
    assert runs(daemon.home, job2) == ["fetch", "script", "audio", "slides", "slides", "video"]
    assert not (failed / "retry-me.md").exists()  # delivered now: its failed/ entry is gone
    assert not children_with(marker)
    assert_projection(daemon.db)
