"""End to end: real stages, a real daemon subprocess, a real home folder (issue 8)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from stages.pipeline import stages_for
from tests.e2e import (
    ROOT,
    RUNNING,
    SHORT_HTML,
    SHORT_MD,
    ArticleServer,
    DaemonProcess,
    ffprobe_duration,
    wait_for,
)

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")

SCRIPT_YAML = (ROOT / "samples" / "dialogue-script.yaml").read_text(encoding="utf-8")


@pytest.fixture()
def daemon(tmp_path: Path):
    process = DaemonProcess(tmp_path / "home")
    yield process
    process.stop()


def _stage_sequence(events: list[dict]) -> list[str]:
    return [e["stage"] for e in events if e["kind"] in ("stage.finished", "stage.skipped")]


def _audio_stats(events: list[dict]) -> dict:
    for event in events:
        if event["kind"] == "stage.note" and event["stage"] == "audio" and "synthesized" in event["data"]:
            return event["data"]
    raise AssertionError("the audio stage recorded no cache statistics")


def _check_delivery(daemon: DaemonProcess, job) -> None:
    assert job["state"] == "done", (job["job_id"], job["error"])
    mp4 = Path(job["output"])
    assert mp4.parent == daemon.home / "outbox" and mp4.suffix == ".mp4"
    assert mp4.with_suffix(".srt").stat().st_size > 0
    sidecar = json.loads(mp4.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["job_id"] == job["job_id"]
    timeline = json.loads((daemon.home / "state" / "jobs" / job["job_id"] / "timeline.json").read_text())
    duration, streams = ffprobe_duration(mp4)
    assert abs(duration - timeline["duration"]) <= 1.0 / timeline["fps"] + 1e-6
    assert "video" in streams and "audio" in streams
    srt = mp4.with_suffix(".srt").read_text(encoding="utf-8")
    assert re.search(r"\d\d:\d\d:\d\d,\d\d\d --> \d\d:\d\d:\d\d,\d\d\d", srt)


def test_every_input_kind_reaches_the_outbox(daemon: DaemonProcess):
    """A .md, an .html, a .url served locally and a two-persona script each become MP4 + SRT + JSON."""
    server = ArticleServer({"/walk.html": SHORT_HTML.replace("夜の散歩", "朝の散歩")})
    try:
        daemon.start()
        daemon.drop("coffee.md", SHORT_MD)
        daemon.drop("walk.html", SHORT_HTML)
        daemon.drop("walk.url", server.url("/walk.html") + "\n")
        daemon.drop("wal.yaml", SCRIPT_YAML)
        jobs = daemon.wait_jobs(4, timeout=400)
    finally:
        server.close()
    assert len(jobs) == 4
    for job in jobs:
        _check_delivery(daemon, job)
        events = daemon.events(job["job_id"])
        assert _stage_sequence(events) == list(stages_for(job["kind"]))
        assert [e["kind"] for e in events][-1] == "job.finished"
    assert sorted(job["kind"] for job in jobs) == ["article", "article", "script", "url"]
    speakers = {
        clip["speaker"]
        for job in jobs if job["kind"] == "script"
        for clip in json.loads((daemon.home / "state/jobs" / job["job_id"] / "audio/index.json").read_text())["clips"].values()
    }
    assert speakers == {"mint", "kohaku"}  # samples/dialogue-script.yaml's personas
    assert sorted(p.name for p in (daemon.home / "done").iterdir()) == ["coffee.md", "wal.yaml", "walk.html", "walk.url"]


def test_reruns_are_cached_and_one_edit_synthesizes_one_clip(daemon: DaemonProcess):
    """The same article again synthesizes nothing; one edited narration line synthesizes exactly one clip."""
    daemon.start()
    daemon.drop("coffee.md", SHORT_MD)
    first = daemon.wait_jobs(1)[0]
    assert _audio_stats(daemon.events(first["job_id"]))["synthesized"] > 0

    started = time.monotonic()
    daemon.drop("coffee-again.md", SHORT_MD)
    second = daemon.wait_jobs(2)[-1]
    rerun_seconds = time.monotonic() - started
    _check_delivery(daemon, second)
    stats = _audio_stats(daemon.events(second["job_id"]))
    assert stats["synthesized"] == 0 and stats["cached"] > 0
    print(f"rerun_seconds={rerun_seconds:.2f}")

    daemon.drop("wal.yaml", SCRIPT_YAML)
    base = daemon.wait_jobs(3)[-1]
    _check_delivery(daemon, base)
    edited = yaml.safe_load(SCRIPT_YAML)
    edited["sections"][1]["narrations"][1]["text"] = "読む人は、古いページを読み続けられます。"
    edited["sections"][1]["narrations"][1]["reading"] = "ヨムヒトワ、フルイページヲ、ヨミツヅケラレマス。"
    daemon.drop("wal-edited.yaml", yaml.safe_dump(edited, allow_unicode=True))
    job = daemon.wait_jobs(4)[-1]
    _check_delivery(daemon, job)
    events = daemon.events(job["job_id"])
    assert _audio_stats(events)["synthesized"] == 1
    synthesized = [e for e in events if e["kind"] == "stage.note" and e["data"].get("phrase")
                   and "synthesized" in e["data"].get("message", "")]
    assert [e["data"]["phrase"] for e in synthesized] == ["001-001"]


def test_kill_9_in_each_stage_then_restart_completes_once(daemon: DaemonProcess):
    """SIGKILL the daemon in every stage in turn; after each restart the job resumes, and ends exactly once."""
    server = ArticleServer({"/slow.html": SHORT_HTML}, delay=1.5)
    killed_in: list[str] = []
    try:
        daemon.start()
        daemon.drop("slow.url", server.url("/slow.html") + "\n")
        wait_for(lambda: daemon.job_rows(), 30, "the job to be submitted", daemon)
        job_id = daemon.job_rows()[0]["job_id"]
        seen = 0
        for stage in stages_for("url"):
            def started() -> bool:
                rows = daemon.rows(
                    "SELECT seq FROM events WHERE job_id = ? AND kind = 'stage.started' AND stage = ? AND seq > ?",
                    job_id, stage, seen)
                return bool(rows)
            wait_for(lambda: started() or daemon.job_rows()[0]["state"] == "done", 240, f"stage {stage}", daemon)
            if daemon.job_rows()[0]["state"] == "done":
                break
            daemon.kill9()
            killed_in.append(stage)
            seen = daemon.scalar("SELECT max(seq) FROM events")
            daemon.start()
        jobs = daemon.wait_jobs(1, timeout=300)
    finally:
        server.close()
    assert killed_in[:3] == ["fetch", "script", "audio"], killed_in
    assert len(jobs) == 1 and jobs[0]["state"] == "done", jobs[0]["error"]
    _check_delivery(daemon, jobs[0])
    assert len(list((daemon.home / "outbox").glob("*.mp4"))) == 1
    events = daemon.events(job_id)
    assert sum(e["kind"] == "job.finished" for e in events) == 1
    assert any(e["kind"] == "stage.skipped" for e in events)
    assert daemon.scalar(f"SELECT count(*) FROM jobs WHERE state IN ({','.join('?' * len(RUNNING))})", *RUNNING) == 0


def test_disk_full_fails_the_job_clearly_and_the_daemon_lives(daemon: DaemonProcess):
    """With the cache on a tiny full filesystem the job fails with a clear message; the daemon stays up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    cache = daemon.home / "state" / "cache"
    cache.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(cache)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {mounted.stderr.decode(errors='replace')}")
    try:
        daemon.start()
        daemon.drop("coffee.md", SHORT_MD)
        job = daemon.wait_jobs(1)[0]
        assert job["state"] == "failed"
        assert job["error"].startswith("disk full"), job["error"]
        error_txt = daemon.home / "failed" / "coffee.md.error.txt"
        wait_for(error_txt.exists, 10, "the failure note", daemon)
        assert "free some disk space" in error_txt.read_text(encoding="utf-8")
        assert (daemon.home / "failed" / "coffee.md").read_text(encoding="utf-8") == SHORT_MD
        assert daemon.alive()
        daemon.drop("wal.yaml", "title: [unclosed\n")
        wait_for(lambda: len(daemon.job_rows()) == 2 and daemon.job_rows()[-1]["state"] == "failed", 60, "a second job", daemon)
        note = daemon.home / "failed" / "wal.yaml.error.txt"
        wait_for(note.exists, 10, "the second failure note", daemon)
        text = note.read_text(encoding="utf-8")
        assert "wal.yaml:" in text and "source.yaml" not in text, "errors name the file as the user dropped it"
        assert daemon.alive()
    finally:
        daemon.stop()
        subprocess.run(["umount", "-l", str(cache)], capture_output=True)


def test_soak_30_jobs_no_leaks(daemon: DaemonProcess):
    """30 small real jobs all finish; RSS stays within 20 % of after the first; no descriptors leak."""
    daemon.start()

    def script(n: int) -> str:
        return yaml.safe_dump({
            "title": f"ソーク試験 {n}",
            "sections": [{"title": "ひとつめ", "narrations": ["短いテストの文です。", f"番号は{n % 3}です。"]}],
        }, allow_unicode=True)

    daemon.drop("soak-00.yaml", script(0))
    first = daemon.wait_jobs(1)[0]
    assert first["state"] == "done", first["error"]
    time.sleep(0.5)
    rss_first, fds_first = daemon.rss_kb(), daemon.fd_count()
    for n in range(1, 30):
        daemon.drop(f"soak-{n:02d}.yaml", script(n))
    jobs = daemon.wait_jobs(30, timeout=600)
    assert [job["state"] for job in jobs] == ["done"] * 30
    assert len(list((daemon.home / "outbox").glob("*.mp4"))) == 30
    time.sleep(0.5)
    rss_after, fds_after = daemon.rss_kb(), daemon.fd_count()
    print(f"soak_rss_first_kb={rss_first} soak_rss_after_kb={rss_after} fds_first={fds_first} fds_after={fds_after}")
    assert rss_after <= rss_first * 1.2, (rss_first, rss_after)
    assert fds_after <= fds_first, (fds_first, fds_after)


def test_voicevox_down_mid_job_then_retry_succeeds(tmp_path: Path):
    """The engine goes down mid-job: retries, a clear failure naming the URL; `moviegen retry` then succeeds."""
    from tests.doubles.voicevox import VoicevoxDouble

    engine = VoicevoxDouble(synthesis_delay=0.3).start()
    # Quick client retries: the default backoff waits about a minute to outlast an engine restart.
    daemon = DaemonProcess(tmp_path / "home", f'[voicevox]\nurl = "{engine.url}"\nspeaker = 3\nattempts = 2\n'
                           'retry_base_seconds = 0.2\nretry_max_seconds = 0.5\n', engine="voicevox")
    try:
        daemon.start()
        daemon.drop("wal.yaml", SCRIPT_YAML)
        wait_for(lambda: engine.calls("POST", "/synthesis"), 120, "the first synthesis", daemon)
        engine.stop()
        job = daemon.wait_jobs(1, timeout=120)[0]
        assert job["state"] == "failed" and job["stage"] == "audio"
        assert engine.url in job["error"], job["error"]
        attempts = [e for e in daemon.events(job["job_id"]) if e["kind"] == "stage.failed" and e["stage"] == "audio"]
        assert len(attempts) >= 2, "a transient failure must be retried before the job fails"
        wait_for((daemon.home / "failed" / "wal.yaml.error.txt").exists, 10, "the failure note", daemon)

        engine.start()
        retried = daemon.cli("retry", job["job_id"])
        assert retried.returncode == 0, retried.stderr
        wait_for(lambda: daemon.job_rows()[0]["state"] == "done", 180, "the retried job", daemon)
        job = daemon.job_rows()[0]
        _check_delivery(daemon, job)
        kinds = [e["kind"] for e in daemon.events(job["job_id"])]
        assert "job.retry_scheduled" in kinds and kinds[-1] == "job.finished"
        script_runs = [e for e in daemon.events(job["job_id"]) if e["kind"] == "stage.started" and e["stage"] == "script"]
        assert len(script_runs) == 1, "the retry resumes at the failed stage, not from the start"
    finally:
        daemon.stop()
        engine.stop()
