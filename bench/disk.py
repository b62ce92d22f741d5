"""Disk benchmark: what a home holds after many jobs through the real pipeline, and after gc.

Usage: bench/disk.py [--jobs 100] [--size 320x180] [--audio-cap-gb G] [--slides-cap-gb G]

Starts `moviegen run` in a fresh home with the default retention and caps (unless given), drops
``--jobs`` small distinct scripts (three sections, five Japanese lines: two shared by every job,
three its own) and waits until all are delivered. It measures the home (`du`-style, hard links
counted once) as the daemon left it: the daemon's own trim ran after every job, but with the default
``daemon.keep_done_days = 7`` no job folder is old enough to go yet. Then it runs one
:func:`daemon.retention.collect_garbage` as the daemon's daily trim would 8 days later (``now``
moved forward; nothing is waited for), and measures again; then once more with every cache capped
at ``--then-caps-gb`` (to show the caps at work on a home too small to reach the default ones).
Prints ``name=value`` lines.
"""

from __future__ import annotations

import argparse
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

from daemon.events import EventStore  # noqa: E402
from daemon.inbox import submit_to_inbox  # noqa: E402
from daemon.retention import DAY, collect_garbage  # noqa: E402
from stages.settings import load_settings  # noqa: E402

MB = 1_000_000
SHARED = ["今日はディスクの使い方を測るのだ。", "最後まで見てくれてありがとう。"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--audio-cap-gb", type=float, default=None, help="audio.cache_max_gb (default: the default)")
    parser.add_argument("--slides-cap-gb", type=float, default=None)
    parser.add_argument("--then-caps-gb", type=float, default=0.02,
                        help="after the 8-days-later gc, one more with every cache capped at this many GB")
    parser.add_argument("--timeout", type=float, default=1200.0)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    home = Path(tempfile.mkdtemp(prefix="moviegen-bench-disk-"))
    config = f"[daemon]\nsettle_seconds = 0.2\nrescan_seconds = 1.0\n[video]\nwidth = {width}\nheight = {height}\n"
    if args.audio_cap_gb is not None:
        config += f"[audio]\ncache_max_gb = {args.audio_cap_gb}\n"
    if args.slides_cap_gb is not None:
        config += f"[slides]\ncache_max_gb = {args.slides_cap_gb}\n"
    (home / "moviegen.toml").write_text(config, encoding="utf-8")
    scripts = Path(tempfile.mkdtemp(prefix="moviegen-bench-disk-scripts-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEGEN_")}
    daemon = subprocess.Popen([sys.executable, "-m", "daemon", "run", "--home", str(home)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    db = home / "state" / "moviegen.db"
    started = time.monotonic()
    try:
        _wait(lambda: db.exists() and _count(db, "SELECT count(*) FROM events WHERE kind = 'daemon.started'"),
              60, daemon, "the daemon to start")
        for i in range(args.jobs):
            submit_to_inbox(home / "inbox", str(_script(scripts, i)))
        _wait(lambda: _count(db, "SELECT count(*) FROM jobs WHERE state IN ('done', 'failed', 'cancelled')")
              >= args.jobs, args.timeout, daemon, f"{args.jobs} jobs")
        time.sleep(3)  # the trim after the last job
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
    wall = time.monotonic() - started
    done = _count(db, "SELECT count(*) FROM jobs WHERE state = 'done'")
    print(f"jobs={args.jobs}")
    print(f"jobs_done={done}")
    print(f"size={width}x{height}")
    print(f"wall_seconds={wall:.1f}")
    before = _measure(home)
    for key, value in before.items():
        print(f"{key}_after_{args.jobs}_jobs={value}")
    print(f"disk_mb_after_{args.jobs}_jobs={before['state_mb']}")

    settings = load_settings(home=home)
    store = EventStore(settings.db_path)
    report = collect_garbage(settings, store, trigger="bench", now=time.time() + 8 * DAY)
    store.close()
    after = _measure(home)
    print(f"gc_freed_mb={report.bytes_freed / MB:.1f}")
    print(f"gc_jobs_removed={len(report.jobs)}")
    for key, value in after.items():
        print(f"{key}_after_gc_8_days_later={value}")
    print(f"disk_mb_after_gc_8_days_later={after['state_mb']}")

    caps = {"cache_max_gb": args.then_caps_gb}
    small = load_settings(home=home, audio=caps, slides=caps, video=caps)
    store = EventStore(small.db_path)
    report = collect_garbage(small, store, trigger="bench", now=time.time() + 8 * DAY)
    store.close()
    capped = _measure(home)
    print(f"caps_gb={args.then_caps_gb}")
    print(f"caps_gc_freed_mb={report.bytes_freed / MB:.1f}")
    for key, value in capped.items():
        print(f"{key}_after_caps_gc={value}")
    print(f"disk_mb_after_caps_gc={capped['state_mb']}")
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(scripts, ignore_errors=True)


def _script(folder: Path, i: int) -> Path:
    path = folder / f"disk-{i:03d}.yaml"
    path.write_text(
        f"title: ディスク測定 {i}\nlanguage: ja\nsections:\n"
        f"  - title: はじめに\n    narrations: [\"{SHARED[0]}\", \"これは{i}番目の動画なのだ。\"]\n"
        f"    slide: {{heading: ディスク測定 {i}, bullets: [ジョブ {i}]}}\n"
        f"  - title: 中身\n    narrations: [\"キャッシュは{i}回目の実行で増えるのだ。\", \"フォルダは七日後に消えるのだ。{i}\"]\n"
        f"    slide: {{heading: 中身 {i}, bullets: [キャッシュ, 保持期間]}}\n"
        f"  - title: おわりに\n    narrations: [\"{SHARED[1]}\"]\n"
        f"    slide: {{heading: おわりに, bullets: [ありがとう]}}\n",
        encoding="utf-8",
    )
    return path


def _measure(home: Path) -> dict[str, float]:
    """MB used under the home's folders (each inode counted once, in the first folder met)."""
    seen: set[tuple[int, int]] = set()
    state = home / "state"
    parts = {
        "jobs_mb": state / "jobs",
        "cache_audio_mb": state / "cache" / "audio",
        "cache_slides_mb": state / "cache" / "slides",
        "cache_video_mb": state / "cache" / "video",
        "db_and_other_mb": state,  # what remains of state/: the event log, article images
        "outbox_mb": home / "outbox",
        "done_inputs_mb": home / "done",
    }
    out: dict[str, float] = {}
    for key, folder in parts.items():
        total = 0
        for root, _, files in os.walk(folder):
            for name in files:
                try:
                    st = os.lstat(os.path.join(root, name))
                except FileNotFoundError:
                    continue
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
        out[key] = round(total / MB, 2)
    out["state_mb"] = round(sum(v for k, v in out.items() if k not in ("outbox_mb", "done_inputs_mb")), 2)
    out["job_folders"] = len(list((state / "jobs").iterdir())) if (state / "jobs").is_dir() else 0
    return out


def _count(db: Path, sql: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _wait(predicate, timeout: float, daemon: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon exited ({daemon.returncode}) waiting for {what}")
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


if __name__ == "__main__":
    main()
