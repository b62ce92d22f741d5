"""`make demo`: run the bundled sample article through a real daemon and show what happened.

Usage: python -m daemon.demo ARTICLE OUT_DIR [CONFIG]

Starts `moviegen run` in `demo-home/` next to OUT_DIR (with the settings file CONFIG, if given:
`make demo` passes samples/offline-personas.toml, two bundled characters in a dialogue), drops the article into its inbox the safe
way, waits for the outbox, copies the MP4, SRT and JSON into OUT_DIR, and prints how long each
stage took (from the event log) and where the video is. Offline, with the embedded defaults.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from daemon.events import EventStore, stage_timings
from daemon.inbox import submit_to_inbox

console = Console()


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the process exit code."""
    args = argv if argv is not None else sys.argv[1:]
    if len(args) not in (2, 3):
        console.print("usage: python -m daemon.demo ARTICLE OUT_DIR [CONFIG]")
        return 2
    article, out_dir = Path(args[0]), Path(args[1])
    config = ["--config", str(Path(args[2]).resolve())] if len(args) == 3 else []
    home = out_dir.resolve().parent / "demo-home"
    shutil.rmtree(home, ignore_errors=True)
    (home / "inbox").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEGEN_") or k == "MOVIEGEN_VIDEO__RENDERER"}
    console.print(f"[bold]moviegen demo[/]: {article} → daemon home {home}")
    log = open(home / "daemon.log", "ab")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "daemon", "run", "--home", str(home), *config],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    try:
        db = home / "state" / "moviegen.db"
        _wait(lambda: db.exists() and _rows(db, "SELECT 1 FROM events WHERE kind = 'daemon.started'"), daemon, 60)
        started = time.monotonic()
        submit_to_inbox(home / "inbox", str(article))
        _wait(lambda: _terminal(db), daemon, 1800, progress=lambda: _progress(db))
        wall = time.monotonic() - started
        job = _rows(db, "SELECT job_id, state, error, output FROM jobs")[0]
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
        log.close()
    job_id, state, error, output = job
    console.print()
    _print_stages(db, job_id)
    if state != "done":
        console.print(f"[red]the job {state}[/]: {error}\nlog: {home / 'daemon.log'}")
        return 1
    out_dir.mkdir(parents=True, exist_ok=True)
    video = Path(output)
    for suffix in (".mp4", ".srt", ".json"):
        source = video.with_suffix(suffix)
        if source.exists():
            shutil.copy2(source, out_dir / source.name)
    console.print(f"done in {wall:.1f} s")
    console.print(f"[bold green]video:[/] {(out_dir / video.name).resolve()}")
    console.print(f"subtitles and metadata beside it; the daemon's log is {db}")
    return 0


def _wait(predicate, daemon: subprocess.Popen, timeout: float, progress=None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
            if progress is not None:
                line = progress()
                if line and line != last:
                    console.print(line)
                    last = line
        except sqlite3.OperationalError:
            pass
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon exited with {daemon.returncode}; see its log")
        time.sleep(0.2)
    raise SystemExit("the demo timed out")


def _rows(db: Path, sql: str, *params: object) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _terminal(db: Path) -> bool:
    rows = _rows(db, "SELECT state FROM jobs")
    return bool(rows) and rows[0][0] in ("done", "failed", "cancelled")


def _progress(db: Path) -> str:
    rows = _rows(db, "SELECT state, percent FROM jobs")
    if not rows or rows[0][0] is None:
        return ""
    state, percent = rows[0]
    return f"  {state:<7} {int(percent or 0):>3d} %"


def _print_stages(db: Path, job_id: str) -> None:
    table = Table(title="stages")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("result")
    store = EventStore(db)
    try:
        timings = stage_timings(store.events(job_id))
    finally:
        store.close()
    for timing in timings:
        seconds = "-" if timing["seconds"] is None else f"{timing['seconds']:.2f}"
        table.add_row(timing["stage"], seconds, timing["result"])
    console.print(table)


if __name__ == "__main__":
    raise SystemExit(main())
