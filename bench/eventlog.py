"""What a long-lived event log costs at start and in the README's queries.

Builds a log as months of work would leave it (``--jobs`` jobs, each with its five stages, progress
rows, and one attempt in ten interrupted by a crash), then times what runs on every start
(``check_log``: quick_check and the schema; closing the open attempts) and the stage-duration
query of the README and Datasette. Prints ``name=value`` lines.

    .venv/bin/python bench/eventlog.py --jobs 5000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from daemon.events import EventStore, check_log  # noqa: E402

STAGES = ("fetch", "script", "audio", "slides", "video")


def fill(store: EventStore, jobs: int) -> int:
    """Write the events of ``jobs`` finished jobs straight into the table; return the count."""
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = []

    def add(job_id: str | None, kind: str, stage: str | None = None, /, **data) -> None:
        nonlocal at
        at += timedelta(milliseconds=250)
        rows.append({"at": at.isoformat(), "job_id": job_id, "kind": kind, "stage": stage,
                     "data": json.dumps(data)})

    for n in range(jobs):
        job = f"job-{n:06d}"
        add(job, "job.submitted", source=f"{job}.md", kind="article", sha256=f"{n:064x}", name=f"{job}.md")
        add(job, "job.started", stage="fetch")
        for stage in STAGES:
            attempt = 1
            if n % 10 == 0 and stage == "video":  # one job in ten lost its render to a crash
                add(job, "stage.started", stage, attempt=attempt)
                add(job, "stage.interrupted", stage, attempt=attempt, reason="crash")
                attempt += 1
            add(job, "stage.started", stage, attempt=attempt)
            for current in range(5):
                add(job, "stage.progress", stage, current=current, total=5, percent=current * 20.0)
            add(job, "stage.finished", stage, attempt=attempt, seconds=1.0)
        add(job, "job.finished", output=f"/out/{job}.mp4")
    with store._write():
        for start in range(0, len(rows), 5000):
            store.db["events"].insert_all(rows[start:start + 5000])
    store.rebuild_jobs()
    return len(rows)


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    args = parser.parse_args()
    sql = yaml.safe_load((ROOT / "datasette" / "metadata.yml").read_text())["databases"]["moviegen"]["queries"][
        "stage_durations"]["sql"]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "state" / "moviegen.db"
        store = EventStore(db)
        events = fill(store, args.jobs)
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        print(f"jobs={args.jobs}")
        print(f"events={events}")
        print(f"log_mb={db.stat().st_size / 1e6:.1f}")
        print(f"check_log_seconds={timed(lambda: check_log(db, db.parent / 'jobs')):.3f}")
        print(f"open_attempts_seconds={timed(store.open_attempts):.3f}")
        print(f"stage_durations_query_seconds={timed(lambda: store.db.execute(sql).fetchall()):.3f}")
        store.close()


if __name__ == "__main__":
    main()
