"""End-to-end benchmark: the sample article through a real daemon, inbox to outbox.

Usage: bench/e2e.py [ARTICLE] [--size WxH] [--renderer ffmpeg|remotion] [--only narration|dialogue]

Starts `moviegen run` as a subprocess in a fresh home, drops the article into the inbox, and waits
for the MP4 in the outbox; then drops it again (the rerun: every stage cached or skipped but the
render). Prints `name=value` lines: wall time, peak RSS of the daemon and its children (sampled from
/proc), the video's duration, and per-stage seconds from the event log.

Then the dialogue figure (issue 13's target: under 30 s on a quiet machine): a second daemon in a
fresh home (no cached clip) with `samples/offline-personas.toml` (the bundled pair ミント and
コハク, `script.style = "dialogue"`) and `script.max_minutes = 2.25` makes a video of about three
minutes from the same article, end to end; `dialogue_3min_seconds` is its wall time, inbox to
outbox, and the `dialogue_*` lines give its length and stages. `dialogue_cpu_seconds` is the CPU
time of the daemon and every process it started (TTS workers, ffmpeg) from the drop until the
video is delivered, and `dialogue_cpu_<stage>_seconds` that of each stage: on a machine shared with
other work, wall times stretch with the load but these figures hardly move.

Each daemon is given its article once it is ready and its warm-up is recorded (`daemon.warmed`:
the TTS worker processes loaded), as a daemon that has been running is; caches stay cold.

`--keep` leaves the homes in place (and prints them) so their event logs can be queried afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from daemon.events import EventStore, stage_timings  # noqa: E402
from daemon.inbox import submit_to_inbox  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("article", nargs="?", default=str(ROOT / "samples" / "ja-article.md"))
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--renderer", default="ffmpeg")
    parser.add_argument("--only", choices=("narration", "dialogue"), help="run one of the two figures")
    parser.add_argument("--keep", action="store_true", help="keep the homes (their event logs) and print where")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.only != "dialogue":
        _narration(args, width, height)
    if args.only != "narration":
        _dialogue(args, width, height)


def _narration(args: argparse.Namespace, width: int, height: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="moviegen-bench-e2e-"))
    (home / "moviegen.toml").write_text(
        f'[daemon]\nsettle_seconds = 0.2\nrescan_seconds = 1.0\n'
        f'[video]\nwidth = {width}\nheight = {height}\nrenderer = "{args.renderer}"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEGEN_")}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "daemon", "run", "--home", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        _wait_ready(home, daemon)
        article = Path(args.article)
        first = _drop_and_wait(home, daemon, article, "first")
        second = _drop_and_wait(home, daemon, article, "rerun")
    finally:
        _stop(daemon)
    for label, result in (("first", first), ("rerun", second)):
        result.pop("job_id", None)
        for key, value in result.items():
            print(f"{label}_{key}={value}")
    _done_with(home, args.keep)


def _dialogue(args: argparse.Namespace, width: int, height: int) -> None:
    """The bundled pair talk the article through in about three minutes, from a cold home."""
    home = Path(tempfile.mkdtemp(prefix="moviegen-bench-dialogue-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEGEN_")}
    env.update({
        # the writer's estimate leaves out the pauses between turns: 3 gave a 241 s video, 2.25 about 180 s
        "MOVIEGEN_SCRIPT__MAX_MINUTES": "2.25", "MOVIEGEN_DAEMON__SETTLE_SECONDS": "0.2",
        "MOVIEGEN_DAEMON__RESCAN_SECONDS": "1.0", "MOVIEGEN_VIDEO__WIDTH": str(width),
        "MOVIEGEN_VIDEO__HEIGHT": str(height), "MOVIEGEN_VIDEO__RENDERER": args.renderer,
    })  # fmt: skip
    config = ROOT / "samples" / "offline-personas.toml"  # its character folders are relative to it
    daemon = subprocess.Popen(
        [sys.executable, "-m", "daemon", "run", "--home", str(home), "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True, cwd=home,
    )
    try:
        _wait_ready(home, daemon)
        result = _drop_and_wait(home, daemon, Path(args.article).resolve(), "dialogue")
        job_dir = home / "state" / "jobs" / str(result.pop("job_id"))
        timeline = json.loads((job_dir / "timeline.json").read_text(encoding="utf-8"))
        speakers = {clip["speaker"] for clip in timeline["narration"]}
        result["speakers"] = len(speakers)
        result["characters"] = len(timeline.get("characters") or [])
    finally:
        _stop(daemon)
    wall = result.pop("wall_seconds")
    print(f"dialogue_3min_seconds={wall}")
    # per minute of video, so a run whose video is not exactly 3 minutes still compares
    print(f"dialogue_seconds_per_video_minute={round(float(wall) * 60 / float(result['video_seconds']), 2)}")
    for key, value in result.items():
        print(f"dialogue_{key}={value}")
    _done_with(home, args.keep, "dialogue_")


def _done_with(home: Path, keep: bool, prefix: str = "") -> None:
    """Remove a benchmark home, or keep it (its event log, its job folders) and say where."""
    if keep:
        print(f"{prefix}home={home}")
    else:
        shutil.rmtree(home, ignore_errors=True)


def _stop(daemon: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL to its process group if it has not exited within 15 s."""
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(daemon.pid, signal.SIGKILL)


def _wait_ready(home: Path, daemon: subprocess.Popen, timeout: float = 60) -> None:
    """Until the daemon has started and recorded its warm-up (see the module doc)."""
    deadline = time.monotonic() + timeout
    db = home / "state" / "moviegen.db"
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon exited with {daemon.returncode}")
        try:
            if db.exists() and _query(db, "SELECT count(*) FROM events WHERE kind = 'daemon.warmed'")[0][0]:
                return
        except sqlite3.OperationalError:
            pass  # the daemon is still creating the log's tables
        time.sleep(0.1)
    raise SystemExit("the daemon did not start")


def _drop_and_wait(home: Path, daemon: subprocess.Popen, article: Path, tag: str) -> dict[str, object]:
    db = home / "state" / "moviegen.db"
    before = {row[0] for row in _query(db, "SELECT job_id FROM jobs")}
    started = time.monotonic()
    submit_to_inbox(home / "inbox", str(article))
    job_id = None
    cpu_by_state: dict[str, float] = {}
    peak_kb, last_cpu = _tree_usage(daemon.pid)
    cpu_at_drop = last_cpu
    last_state, next_sample = "queued", time.monotonic() + _TREE_SAMPLE_SECONDS
    while True:
        rows = _query(db, "SELECT job_id, state, error FROM jobs")
        new = [row for row in rows if row[0] not in before]
        state = new[0][1] if new else "queued"
        # The process tree is read (about 4 ms of CPU, taken from the daemon on a busy machine)
        # when the job changes state and every _TREE_SAMPLE_SECONDS, not at every 50 ms poll; the
        # CPU since the last reading goes to the state the job was in until now.
        if state != last_state or time.monotonic() >= next_sample:
            rss_kb, cpu = _tree_usage(daemon.pid)
            peak_kb = max(peak_kb, rss_kb)
            cpu_by_state[last_state] = cpu_by_state.get(last_state, 0.0) + cpu - last_cpu
            last_cpu, last_state, next_sample = cpu, state, time.monotonic() + _TREE_SAMPLE_SECONDS
        if new:
            job_id, state, error = new[0]
            if state == "done":
                break
            if state in ("failed", "cancelled"):
                raise SystemExit(f"job {job_id} {state}: {error}")
        if daemon.poll() is not None:
            raise SystemExit("the daemon died")
        time.sleep(0.05)
    wall = time.monotonic() - started
    # (the process tree's time, not this process's RUSAGE_CHILDREN after the daemon's exit: a
    # daemon that leaves through os._exit never waits for its TTS workers, whose time is then lost)
    _, cpu = _tree_usage(daemon.pid)
    output = _query(db, "SELECT output FROM jobs WHERE job_id = ?", job_id)[0][0]
    timeline = json.loads((home / "state" / "jobs" / job_id / "timeline.json").read_text(encoding="utf-8"))
    result: dict[str, object] = {
        "wall_seconds": round(wall, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "video_seconds": round(float(timeline["duration"]), 2),
        "output": output,
        "job_id": job_id,
        "cpu_seconds": round(cpu - cpu_at_drop, 2),
    }
    store = EventStore(db)
    events = store.events(job_id)
    store.close()
    for timing in stage_timings(events):
        result[f"stage_{timing['stage']}_seconds"] = round(timing["seconds"] or 0.0, 3)
        if timing["result"] == "skipped":
            result[f"stage_{timing['stage']}_skipped"] = 1
    # "queued": until the job's first stage; the delivery counts with the last stage (the job's
    # state stays "video" until it is delivered)
    for state, seconds in cpu_by_state.items():
        result[f"cpu_{state}_seconds"] = round(seconds, 2)
    for event in events:
        if event["kind"] == "stage.note" and event["stage"] == "audio" and "synthesized" in event["data"]:
            result["audio_clips_synthesized"] = event["data"]["synthesized"]
            result["audio_clips_cached"] = event["data"].get("cached", 0)
    return result


def _query(db: Path, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return conn.execute(sql, params).fetchall()


_TICK = os.sysconf("SC_CLK_TCK")
_TREE_SAMPLE_SECONDS = 0.5
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _tree_usage(pid: int) -> tuple[int, float]:
    """RSS (KiB) and CPU seconds of a process and all its descendants.

    The CPU figure counts each live process's own time and that of the children it has waited
    for, so it only grows: a TTS worker or ffmpeg that ended moves into its parent's total.
    """
    children: dict[int, list[int]] = {}
    usage: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is fields[0]
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        ticks = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
        usage[int(entry.name)] = (int(fields[21]) * _PAGE_KB, ticks / _TICK)
    rss, cpu, stack = 0, 0.0, [pid]
    while stack:
        current = stack.pop()
        kb, seconds = usage.get(current, (0, 0.0))
        rss, cpu = rss + kb, cpu + seconds
        stack.extend(children.get(current, []))
    return rss, cpu


if __name__ == "__main__":
    main()
