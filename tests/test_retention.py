"""Bounded disk: cache trimming, job-folder retention, debris, `moviegen gc` and the daemon's own trim."""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest

from daemon.events import EventStore
from daemon.retention import DAY, collect_garbage
from stages.audio.cache import ClipCache
from stages.base import atomic_temp_path
from stages.cache import TOUCH_SECONDS, trim
from stages.debris import find_debris, remove_debris, stale_scratch
from stages.settings import load_settings
from tests.fixtures_service import ServiceDaemon, drop, wait_for


def backdate(path: Path, seconds: float) -> None:
    """Make ``path`` look last used ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def write(path: Path, size: int, age: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if age:
        backdate(path, age)
    return path


# --- trim ----------------------------------------------------------------------------------------


def test_trim_drops_least_recently_used_entries_down_to_the_cap(tmp_path: Path) -> None:
    """Oldest first until under the cap; a kept entry and stale temporaries are handled apart."""
    folder = tmp_path / "video"
    paths = [write(folder / f"{i:02d}" / f"{i:02d}{'0' * 62}.mp4", 1000, age=100 - i) for i in range(5)]
    stale = write(folder / "00" / ".leftover.part.mp4", 10, age=7200)
    fresh_temp = write(folder / "00" / ".writing.part.mp4", 10)
    backdate(paths[1], 0)  # used just now: it stays

    result = trim(folder, 2500, keep=[paths[0]])
    assert result.entries == 3  # 2, 3, 4; 0 is kept, 1 is the most recent
    assert [p.exists() for p in paths] == [True, True, False, False, False]
    assert not stale.exists() and fresh_temp.exists()  # a temp still being written is not debris yet
    assert result.bytes_before == 5000 and result.bytes_after == 2000
    assert result.bytes_freed == 3010
    assert trim(folder, 0, keep=[paths[1]]).entries == 1 and paths[1].exists() and not paths[0].exists()


def test_a_slide_and_its_sidecar_go_together_and_recent_entries_are_protected(tmp_path: Path) -> None:
    """An entry is every file of one stem; entries used since ``protect_since`` stay over the cap."""
    folder = tmp_path / "slides"
    old_png, old_json = write(folder / "aaa.png", 500, age=3 * DAY), write(folder / "aaa.json", 50, age=3 * DAY)
    new_png = write(folder / "bbb.png", 500, age=60)
    result = trim(folder, 0, protect_since=time.time() - 3600)
    assert not old_png.exists() and not old_json.exists() and new_png.exists()
    assert result.entries == 1 and result.bytes_after == 500


def test_trim_dry_run_deletes_nothing_and_hard_links_free_nothing(tmp_path: Path) -> None:
    """A dry run reports the same entries; a file still linked elsewhere frees 0 bytes."""
    folder = tmp_path / "video"
    entry = write(folder / "ab" / "abc.mp4", 4000, age=DAY)
    os.link(entry, tmp_path / "job-video.mp4")
    dry = trim(folder, 0, dry_run=True)
    assert dry.entries == 1 and entry.exists() and dry.bytes_freed == 0
    assert trim(folder, 0).entries == 1 and not entry.exists()
    assert (tmp_path / "job-video.mp4").stat().st_size == 4000


def test_a_clip_cache_hit_refreshes_the_clips_recency(tmp_path: Path) -> None:
    """get() marks an old clip as used, so the LRU trim takes clips nobody uses instead."""
    cache = ClipCache(tmp_path / "audio")
    used = cache.put("a" * 64, b"RIFF" + b"\0" * 100)
    unused = cache.put("b" * 64, b"RIFF" + b"\0" * 100)
    backdate(used, 2 * TOUCH_SECONDS)
    backdate(unused, TOUCH_SECONDS)
    assert cache.get("a" * 64) == used
    assert time.time() - used.stat().st_mtime < 60
    trim(tmp_path / "audio", 150)
    assert used.exists() and not unused.exists()


# --- debris -------------------------------------------------------------------------------------


def plant_debris(job_dir: Path) -> list[Path]:
    """What a render killed mid-way leaves, made by the same calls the renderer makes."""
    work = Path(tempfile.mkdtemp(prefix=".render-", dir=job_dir))
    write(work / "still-000.png", 20_000)
    write(work / "seg" / "0001.h264", 30_000)
    part = atomic_temp_path(job_dir / "video.mp4")
    part.write_bytes(b"\0" * 5000)
    tmp = write(job_dir / "audio" / ".index.json.k2j3.tmp", 100)
    return [work, part, tmp]


def test_debris_is_found_and_removed_and_nothing_else(tmp_path: Path) -> None:
    """Render folders, .part files and .tmp files go; outputs and manifests stay."""
    job_dir = tmp_path / "job"
    keep = [write(job_dir / "video.mp4", 10), write(job_dir / "audio" / "index.json", 10),
            write(job_dir / "stages" / "video.json", 10), write(job_dir / "source.md", 10)]
    debris = plant_debris(job_dir)
    found = dict(find_debris(job_dir))
    assert set(found) == set(debris) and found[debris[0]] == 50_000
    assert sum(size for _, size in remove_debris(job_dir)) == 55_100
    assert not any(p.exists() for p in debris) and all(p.exists() for p in keep)


def test_stale_scratch_of_killed_renderers_is_found_and_live_scratch_is_not(tmp_path: Path) -> None:
    """A Remotion scratch folder unchanged for longer than the render timeout is stale; a fresh one,
    one with a recent file inside, and other programs' folders are not."""
    settings = load_settings(home=tmp_path / "home")
    old = settings.remotion.timeout_seconds + 2 * 3600

    def scratch(name: str, age: float, inner_age: float | None = None) -> Path:
        folder = tmp_path / "tmp" / name
        inner = write(folder / "profile" / "Cookies", 3000, age=age if inner_age is None else inner_age)
        for path in (inner.parent, folder):
            backdate(path, age)
        return folder

    stale = scratch("moviegen-remotion-abc", old)
    scratch("moviegen-remotion-live", 60)
    scratch("moviegen-remotion-busy", old, inner_age=60)
    scratch("someone-elses-remotion-x", old)
    espeak = scratch("moviegen-espeak-q", settings.audio.espeak_timeout + 2 * 3600)
    found = stale_scratch(settings, tmp_dir=tmp_path / "tmp")
    assert sorted(found) == sorted([(stale, 3000), (espeak, 3000)])


def test_debris_of_a_killed_stage_is_removed_when_the_stage_reruns(tmp_path: Path, daemons) -> None:
    """kill -9 during the video stage, restart: the rerun starts in a clean folder and says so."""
    daemon = ServiceDaemon(tmp_path / "home")
    daemons.append(daemon)
    gate = daemon.home / "gates" / "hold-video"
    gate.touch()
    daemon.start()
    drop(daemon.home / "inbox", "story.md", "# A story\n\ntext\n")
    job = wait_for(lambda: daemon.job_of("story.md"), 20, "the claim", daemon)
    job_dir = daemon.home / "state" / "jobs" / job
    runs = job_dir / "runs.log"  # the fixture stage writes it once running (so past the runner's own cleanup)
    wait_for(lambda: runs.exists() and "video" in runs.read_text().split(), 20, "the video stage", daemon)
    debris = plant_debris(job_dir)
    daemon.kill9()
    gate.unlink()
    daemon.start()
    wait_for(lambda: daemon.state(job) == "done", 30, "the job to finish after the restart", daemon)
    assert not any(p.exists() for p in debris)
    notes = [json.loads(d) for (d,) in daemon.query(
        "SELECT data FROM events WHERE job_id = ? AND kind = 'stage.note' AND stage = 'video'", (job,))]
    assert any(n.get("message") == "debris removed" and n.get("bytes") == 55_100 for n in notes), notes


# --- job folders ----------------------------------------------------------------------------------


def ended_job(store: EventStore, settings, job_id: str, how: str) -> Path:
    """A job recorded as submitted then ``how`` (job.finished / job.failed / job.cancelled / stage.started)."""
    store.submit(job_id, f"{job_id}.md", "article")
    if how == "stage.started":
        store.append(job_id, "job.started", stage="fetch")
        store.append(job_id, "stage.started", "fetch")
    else:
        store.append(job_id, how, stage="video")
    folder = settings.jobs_dir / job_id
    write(folder / "source.md", 1000)
    write(folder / "video.mp4", 9000)
    return folder


@pytest.fixture
def home(tmp_path: Path):
    settings = load_settings(home=tmp_path / "home")
    settings.jobs_dir.mkdir(parents=True)
    return settings, EventStore(settings.db_path)


def test_job_folders_go_after_their_retention_and_never_while_unfinished(home) -> None:
    """done/cancelled after keep_done_days, failed after keep_failed_days, running never; events stay."""
    settings, store = home
    done, cancelled = ended_job(store, settings, "j-done", "job.finished"), ended_job(store, settings, "j-cxl", "job.cancelled")
    failed, running = ended_job(store, settings, "j-failed", "job.failed"), ended_job(store, settings, "j-run", "stage.started")
    debris = plant_debris(failed)
    events_before = len(store.events("j-done"))

    report = collect_garbage(settings, store)  # today: nothing expired, but the failed job's debris goes
    assert {r.what for r in report.removals} == {"debris"} and not any(p.exists() for p in debris)

    report = collect_garbage(settings, store, now=time.time() + 8 * DAY)
    assert sorted(report.jobs) == ["j-cxl", "j-done"]
    assert not done.exists() and not cancelled.exists() and failed.exists() and running.exists()
    assert report.bytes_freed == 2 * 10_000

    report = collect_garbage(settings, store, now=time.time() + 31 * DAY)
    assert report.jobs == ["j-failed"] and not failed.exists() and running.exists()
    assert len(store.events("j-done")) == events_before
    gc_events = [json.loads(row[0]) for row in sqlite3.connect(settings.db_path).execute(
        "SELECT data FROM events WHERE kind = 'daemon.gc' AND job_id IS NULL ORDER BY seq")]
    assert [sorted(e["jobs"]) for e in gc_events] == [[], ["j-cxl", "j-done"], ["j-failed"]]
    assert gc_events[1]["bytes_freed"] == 20_000 and gc_events[0]["debris"] == 3


def test_cache_trim_spares_what_an_unfinished_job_uses(home) -> None:
    """Over the cap, the clips a running job's manifest names and recent clips stay; others go."""
    settings, store = home
    settings.audio.cache_max_gb = 0
    audio = settings.cache_dir / "audio"
    named = write(audio / "aa" / "aa01.wav", 1000, age=10 * DAY)
    orphan = write(audio / "bb" / "bb01.wav", 1000, age=10 * DAY)
    recent = write(audio / "cc" / "cc01.wav", 1000, age=60)
    folder = ended_job(store, settings, "j-run", "stage.started")
    (folder / "stages").mkdir()
    (folder / "stages" / "audio.json").write_text(json.dumps(
        {"outputs": [{"path": "audio/index.json", "size": 1}, {"path": str(named), "size": 1000}]}))
    report = collect_garbage(settings, store)
    assert named.exists() and recent.exists() and not orphan.exists()
    assert report.caches["audio"]["entries"] == 1 and report.bytes_freed == 1000


def test_gc_command_prints_what_it_removed_and_dry_run_removes_nothing(tmp_path: Path) -> None:
    """`moviegen gc --dry-run` lists without deleting; `moviegen gc` deletes and prints the bytes."""
    daemon = ServiceDaemon(tmp_path / "home", extra="keep_done_days = 0\n")
    settings = load_settings(home=daemon.home)
    store = EventStore(settings.db_path)
    folder = ended_job(store, settings, "j-done", "job.finished")
    store.close()

    dry = daemon.cli("gc", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would remove job {folder}" in dry.stdout and "would free 0.0 MB (10000 bytes)" in dry.stdout
    assert folder.exists() and daemon.count("daemon.gc") == 0

    real = daemon.cli("gc")
    assert real.returncode == 0, real.stderr
    assert f"removed job {folder}" in real.stdout and "freed 0.0 MB (10000 bytes)" in real.stdout
    assert not folder.exists() and daemon.count("daemon.gc") == 1

    store = EventStore(settings.db_path)
    ended_job(store, settings, "j-failed", "job.failed")
    collect_garbage(settings, store, now=time.time() + 31 * DAY)
    store.close()
    retry = daemon.cli("retry", "j-failed")
    assert retry.returncode == 2 and "its folder was removed by the disk trim at 20" in retry.stderr

    missing = ServiceDaemon(tmp_path / "nothing").cli("gc")
    assert missing.returncode == 2 and "no moviegen event log" in missing.stderr


def test_the_daemon_trims_after_each_job_but_not_a_running_one(tmp_path: Path, daemons) -> None:
    """With keep_done_days = 0 a finished job's folder goes by itself; a job held mid-stage keeps its own."""
    daemon = ServiceDaemon(tmp_path / "home", extra="keep_done_days = 0\n")
    daemons.append(daemon)
    daemon.start()
    drop(daemon.home / "inbox", "first.md", "# First\n\ntext\n")
    first = wait_for(lambda: daemon.job_of("first.md"), 20, "the claim", daemon)
    wait_for(lambda: daemon.state(first) == "done", 30, "the first job", daemon)
    (daemon.home / "gates" / "hold-audio").touch()
    drop(daemon.home / "inbox", "second.md", "# Second\n\ntext\n")
    second = wait_for(lambda: daemon.job_of("second.md"), 20, "the claim", daemon)
    wait_for(lambda: daemon.state(second) == "audio", 20, "the second job's audio stage", daemon)
    jobs = daemon.home / "state" / "jobs"

    def gc_of_first() -> list[dict]:
        events = [json.loads(d) for (d,) in daemon.query("SELECT data FROM events WHERE kind = 'daemon.gc'")]
        return [e for e in events if first in e["jobs"]]

    event = wait_for(gc_of_first, 20, "a daemon.gc event removing the finished job's folder", daemon)[0]
    assert event["bytes_freed"] > 0 and not (jobs / first).exists()
    assert (jobs / second / "source.md").exists()
    (daemon.home / "gates" / "hold-audio").unlink()
    wait_for(lambda: daemon.state(second) == "done", 30, "the second job", daemon)
    assert list((daemon.home / "outbox").glob("*.mp4"))  # deliveries are never collected
    assert daemon.stop() == 0


@pytest.fixture
def daemons():
    started: list[ServiceDaemon] = []
    yield started
    for daemon in started:
        if daemon.alive():
            daemon.kill9()


def test_an_idle_daemon_trims_on_its_own(tmp_path: Path, daemons) -> None:
    """No job needed: an idle daemon runs its periodic trim (first soon after the start)."""
    daemon = ServiceDaemon(tmp_path / "home", extra="keep_done_days = 0\n")
    daemons.append(daemon)
    settings = load_settings(home=daemon.home)
    store = EventStore(settings.db_path)
    folder = ended_job(store, settings, "j-old", "job.finished")
    store.close()
    daemon.start()
    wait_for(lambda: daemon.query("SELECT data FROM events WHERE kind = 'daemon.gc'"), 20, "the idle trim", daemon)
    (data,), = daemon.query("SELECT data FROM events WHERE kind = 'daemon.gc'")
    assert json.loads(data)["trigger"] == "idle" and json.loads(data)["jobs"] == ["j-old"]
    assert not folder.exists()
    assert daemon.stop() == 0
