"""Crash recovery with a real `python -m daemon run` process: every attempt ends, and a job that
keeps killing the daemon stops being resumed.

The stages are the small real ones in ``tests/fixtures_service.py``; a ``gates/hold-<stage>`` file
keeps a stage running until the test has killed or stopped the daemon.
"""

from __future__ import annotations

import re
import signal
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from tests.fixtures_service import ServiceDaemon, drop, wait_for
from tests.test_daemon_process import assert_projection, runs

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("fetch", "script", "audio", "slides", "video")


@pytest.fixture
def daemons():
    started: list[ServiceDaemon] = []
    yield started
    for daemon in started:
        if daemon.alive():
            daemon.kill9()


def durations_queries() -> dict[str, str]:
    """The "average duration of each stage" query as Datasette ships it and as the README prints it."""
    metadata = yaml.safe_load((ROOT / "datasette" / "metadata.yml").read_text(encoding="utf-8"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"-- average duration of each stage.*?\n(SELECT .*?;)", readme, re.S)
    assert block, "the README lost its stage-duration query"
    return {"datasette": metadata["databases"]["moviegen"]["queries"]["stage_durations"]["sql"],
            "readme": block.group(1)}


def attempts(daemon: ServiceDaemon) -> list[tuple]:
    """(job, stage, attempt, start seq, start at, [(kind, seq, at, data)] of its ends), by start."""
    starts = daemon.query("SELECT job_id, stage, json_extract(data, '$.attempt'), seq, at FROM events"
                          " WHERE kind = 'stage.started' ORDER BY seq")
    found = []
    for job_id, stage, number, seq, at in starts:
        ends = daemon.query(
            "SELECT kind, seq, at, json_extract(data, '$.reason') FROM events WHERE job_id = ? AND stage = ?"
            " AND kind IN ('stage.finished', 'stage.failed', 'stage.skipped', 'stage.interrupted')"
            " AND json_extract(data, '$.attempt') = ?", (job_id, stage, number))
        found.append((job_id, stage, number, seq, at, ends))
    return found


def seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


@pytest.mark.parametrize("how", ["kill9", "sigterm"])
def test_a_dead_daemon_leaves_no_attempt_open_in_any_stage(tmp_path: Path, daemons, how: str) -> None:
    """Killed (SIGKILL) or stopped (SIGTERM) in each stage in turn, then restarted: every
    stage.started has exactly one end, the interrupted ones end stage.interrupted with the
    reason, and the README/Datasette duration query counts 5 runs per stage for 5 jobs with
    durations that never span a restart."""
    daemon = ServiceDaemon(tmp_path / "home")
    daemons.append(daemon)
    daemon.start()
    jobs: dict[str, str] = {}
    for stage in STAGES:
        gate = daemon.home / "gates" / f"hold-{stage}"
        gate.touch()
        name = f"stopped-in-{stage}.md"
        drop(daemon.home / "inbox", name, f"# Stopped in {stage}\n\nA paragraph.\n")
        job = wait_for(lambda n=name: daemon.job_of(n), 20, f"{name} to be claimed", daemon)
        wait_for(lambda j=job, s=stage: s in runs(daemon.home, j), 20, f"the {stage} stage to run", daemon)
        if how == "kill9":
            daemon.kill9()
        else:
            assert daemon.stop() == 0
        gate.unlink()
        daemon.start()
        wait_for(lambda j=job: daemon.state(j) == "done", 30, f"{name} to finish after the restart", daemon)
        jobs[stage] = job
    assert daemon.stop() == 0

    found = attempts(daemon)
    assert found and all(len(ends) == 1 for *_, ends in found), [a for a in found if len(a[-1]) != 1]
    reason = "crash" if how == "kill9" else "shutdown"
    interrupted = sorted((stage, job_id, number, ends[0][3]) for job_id, stage, number, _, _, ends in found
                         if ends[0][0] == "stage.interrupted")
    assert interrupted == sorted((stage, jobs[stage], 1, reason) for stage in STAGES)
    for stage, job in jobs.items():  # the rerun is the stage's second attempt, and it finished
        numbers = [(number, ends[0][0]) for job_id, s, number, _, _, ends in found if (job_id, s) == (job, stage)]
        assert numbers == [(1, "stage.interrupted"), (2, "stage.finished")]

    restarts = [seq for (seq,) in daemon.query("SELECT seq FROM events WHERE kind = 'daemon.started'")]
    pairs: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for job_id, stage, number, seq, at, ends in found:
        kind, end_seq, end_at, _ = ends[0]
        if kind == "stage.finished":
            assert not [r for r in restarts if seq < r < end_seq], "a paired run spans a daemon restart"
            pairs[stage].append(seconds(at, end_at))
    for source, sql in durations_queries().items():
        rows = {row[0]: row[1:] for row in daemon.query(sql)}
        assert set(rows) == set(STAGES), source
        for stage in STAGES:
            runs_, avg, longest, unfinished = rows[stage]
            assert (runs_, unfinished) == (5, 1), (source, stage, rows[stage])
            assert longest == pytest.approx(max(pairs[stage]), abs=0.006), (source, stage)
            assert avg == pytest.approx(sum(pairs[stage]) / 5, abs=0.006), (source, stage)
    assert_projection(daemon.db)


def test_a_job_that_crashes_the_daemon_twice_in_one_stage_fails(tmp_path: Path, daemons) -> None:
    """SIGKILL twice while the same job's audio stage runs: the next start fails the job with a
    note in failed/ instead of resuming it a third time; the daemon stays up, other jobs go
    through, and `moviegen retry` gives the job a fresh start."""
    daemon = ServiceDaemon(tmp_path / "home")
    daemons.append(daemon)
    gate = daemon.home / "gates" / "hold-audio"
    gate.touch()
    daemon.start()
    body = "# Too big\n\nThis article eats all the memory.\n"
    drop(daemon.home / "inbox", "too-big.md", body)
    job = wait_for(lambda: daemon.job_of("too-big.md"), 20, "the claim", daemon)
    for crash in (1, 2):
        wait_for(lambda c=crash: runs(daemon.home, job).count("audio") == c, 30, f"audio run {crash}", daemon)
        daemon.kill9()
        daemon.start()
    wait_for(lambda: daemon.state(job) == "failed", 20, "the job to fail at recovery", daemon)
    note = daemon.home / "failed" / "too-big.md.error.txt"
    wait_for(note.exists, 10, "the failure note", daemon)
    text = note.read_text()
    assert "crashed the daemon twice in a row in the audio stage" in text
    assert "out of memory" in text and "MemoryMax" in text and f"moviegen retry {job}" in text
    assert (daemon.home / "failed" / "too-big.md").read_text() == body
    assert runs(daemon.home, job).count("audio") == 2  # not resumed into a third crash
    interrupted = daemon.query("SELECT json_extract(data, '$.attempt'), json_extract(data, '$.reason') FROM events"
                               " WHERE job_id = ? AND kind = 'stage.interrupted' ORDER BY seq", (job,))
    assert interrupted == [(1, "crash"), (2, "crash")]
    assert daemon.query("SELECT stage, json_extract(data, '$.crashes') FROM events WHERE job_id = ?"
                        " AND kind = 'stage.failed'", (job,)) == [("audio", 2)]

    gate.unlink()
    drop(daemon.home / "inbox", "small.md", "# Small\n\nFine.\n")
    small = wait_for(lambda: daemon.job_of("small.md"), 20, "the second claim", daemon)
    wait_for(lambda: daemon.state(small) == "done", 30, "another job to go through", daemon)
    assert daemon.cli("retry", job).returncode == 0
    wait_for(lambda: daemon.state(job) == "done", 30, "the retried job to finish", daemon)
    assert daemon.alive()
    assert daemon.stop() == 0
    assert not (daemon.home / "failed" / "too-big.md").exists()
    assert_projection(daemon.db)


def test_a_job_running_beside_the_culprit_is_not_blamed(tmp_path: Path, daemons) -> None:
    """Two jobs mid-stage at a crash resume one at a time, each alone: the culprit (held in slides)
    crashes the daemon again and fails; its neighbour (held in fetch) waits meanwhile, so its
    stage was not running at the second crash, and it is made once the culprit is gone."""
    daemon = ServiceDaemon(tmp_path / "home")
    daemons.append(daemon)
    gates = daemon.home / "gates"
    (gates / "hold-slides").touch()
    daemon.start()
    drop(daemon.home / "inbox", "culprit.md", "# Culprit\n\nHeavy.\n")
    culprit = wait_for(lambda: daemon.job_of("culprit.md"), 20, "the culprit's claim", daemon)
    wait_for(lambda: "slides" in runs(daemon.home, culprit), 20, "the culprit's slides", daemon)
    (gates / "hold-fetch").touch()
    drop(daemon.home / "inbox", "neighbour.md", "# Neighbour\n\nLight.\n")
    neighbour = wait_for(lambda: daemon.job_of("neighbour.md"), 20, "the neighbour's claim", daemon)
    wait_for(lambda: "fetch" in runs(daemon.home, neighbour), 20, "the neighbour's fetch", daemon)
    daemon.kill9()

    daemon.start()
    wait_for(lambda: runs(daemon.home, culprit).count("slides") == 2, 30, "the culprit's slides again", daemon)
    assert runs(daemon.home, neighbour) == ["fetch"]  # waiting for the culprit: nothing of it runs
    daemon.kill9()

    (gates / "hold-fetch").unlink()
    (gates / "hold-slides").unlink()
    daemon.start()
    wait_for(lambda: daemon.state(neighbour) == "done", 30, "the neighbour to be made", daemon)
    assert daemon.state(culprit) == "failed"
    assert "in the slides stage" in daemon.jobs()[culprit]["error"]
    assert runs(daemon.home, culprit).count("slides") == 2
    assert daemon.stop() == 0
    assert_projection(daemon.db)


def test_a_forced_stop_is_not_counted_as_a_crash(tmp_path: Path, daemons) -> None:
    """A second SIGTERM while the daemon waits for a stage that ignores cancellation exits at once;
    the attempt still ends as a stop (shutdown), so the next start finds nothing open."""
    daemon = ServiceDaemon(tmp_path / "home")
    daemons.append(daemon)
    (daemon.home / "fixture.json").write_text('{"sleep": 60}')  # time.sleep: deaf to the cancel token
    daemon.start()
    drop(daemon.home / "inbox", "slow.md", "# Slow\n")
    job = wait_for(lambda: daemon.job_of("slow.md"), 20, "the claim", daemon)
    wait_for(lambda: "fetch" in runs(daemon.home, job), 20, "the fetch stage", daemon)
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "daemon.stopping" in daemon.log.read_text(), 10, "the stop to begin", daemon)
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=10) == 1
    (daemon.home / "fixture.json").unlink()
    daemon.start()
    wait_for(lambda: daemon.state(job) == "done", 30, "the job to finish", daemon)
    assert daemon.stop() == 0
    reasons = daemon.query("SELECT json_extract(data, '$.reason') FROM events WHERE kind = 'stage.interrupted'")
    assert reasons == [("shutdown",)]
    assert all(len(ends) == 1 for *_, ends in attempts(daemon))
