"""Daemon benchmarks: each function measures one thing and returns ``{name: value}``.

Run: ``.venv/bin/python bench/daemon.py [--quick] [--jobs N] [name ...]`` prints ``name=value`` lines
(``--jobs``: how many real jobs ``soak_after_jobs`` makes, default 15). Add a benchmark
by writing a function returning a dict and listing it in ``BENCHMARKS``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.events import EventStore  # noqa: E402
from daemon.runner import Runner  # noqa: E402
from stages.base import JobContext, Progress, StageResult, atomic_write_text, fingerprint_of  # noqa: E402
from stages.settings import load_settings  # noqa: E402


class _FakeClock:
    """Time that moves only when the simulated renderer says a frame took 1/fps seconds."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _RenderStage:
    """A render that reports every frame, each frame advancing the fake clock by 1/fps."""

    name = "video"
    version = "bench"
    resource = "render"

    def __init__(self, clock: _FakeClock, frames: int, fps: int):
        self.clock, self.frames, self.fps = clock, frames, fps

    def fingerprint(self, job: JobContext) -> str:
        return fingerprint_of(self.version, time.time_ns())  # never skipped

    def run(self, job: JobContext, progress: Progress) -> StageResult:
        for frame in range(1, self.frames + 1):
            self.clock.now += 1 / self.fps
            progress(frame, self.frames, f"frame {frame}/{self.frames}")
        out = atomic_write_text(job.job_dir / "video.mp4", "not really a video\n")
        return StageResult(outputs=[out])


def progress_rows_10min_render(minutes: float = 10, fps: int = 30) -> dict[str, float]:
    """Event rows a 10-minute render writes when its renderer reports every frame.

    Drives a real Runner and EventStore with the default ``progress_interval_seconds``; the
    throttle reads a fake clock that advances 1/fps per frame, so 10 minutes pass in seconds.
    """
    frames = int(minutes * 60 * fps)
    clock = _FakeClock()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(home=Path(tmp))
        store = EventStore(settings.db_path)
        job_dir = settings.jobs_dir / "bench"
        job_dir.mkdir(parents=True)
        (job_dir / "source.yaml").write_text("title: bench\n", encoding="utf-8")
        store.submit("bench", "bench.yaml", "script")
        stages = {name: _Passthrough(name) for name in ("script", "audio", "slides")}
        stages["video"] = _RenderStage(clock, frames, fps)
        started = time.perf_counter()

        async def main() -> None:
            runner = Runner(store, settings, stages, clock=clock)
            await runner.start_job("bench")
            await runner.wait_idle()

        asyncio.run(main())
        wall = time.perf_counter() - started
        progress = store.events("bench", kinds=["stage.progress"])
        rows = len([e for e in progress if e["stage"] == "video"])
        total = len(store.events("bench"))
        state = store.job("bench")["state"]
        store.close()
    if state != "done":
        raise RuntimeError(f"the bench job ended {state}")
    return {
        "progress_rows_10min_render": rows,
        "event_rows_10min_render_job": total,
        "progress_calls_10min_render": frames,
        "progress_calls_per_second": round(frames / wall),
    }


class _Passthrough:
    """A stage with nothing to do but one output, so the job reaches the render."""

    version = "bench"
    resource = "cpu"

    def __init__(self, name: str):
        self.name = name

    def fingerprint(self, job: JobContext) -> str:
        return fingerprint_of(self.name, self.version)

    def run(self, job: JobContext, progress: Progress) -> StageResult:
        progress(1, 1, "done")
        return StageResult(outputs=[atomic_write_text(job.job_dir / f"{self.name}.txt", self.name)])


# --- the service: inbox pickup, idle cost, a burst of 500 files (a real daemon subprocess) -------

QUICK = False  # --quick: shorter windows and fewer samples


def _service_daemon(home: Path, settle: float):
    """A real `python -m daemon run` on the test fixture stages, every job held in fetch."""
    from tests.fixtures_service import ServiceDaemon

    daemon = ServiceDaemon(home, settle=settle, rescan=5.0)
    (daemon.home / "gates" / "hold-fetch").touch()  # measure the inbox, not the stages
    return daemon.start()


def inbox_pickup_latency() -> dict[str, float]:
    """Rename into the inbox → ``job.submitted`` (median, p95), also beyond the settle window."""
    settle = 1.0
    latencies = []
    with tempfile.TemporaryDirectory(prefix="moviegen-bench-pickup-") as tmp:
        daemon = _service_daemon(Path(tmp), settle)
        try:
            for i in range(10 if QUICK else 30):
                staged = daemon.home / f"pickup-{i}.md"
                staged.write_text(f"# Pickup {i}\n")
                t0 = time.time()
                os.rename(staged, daemon.home / "inbox" / staged.name)
                deadline = time.monotonic() + 30
                while (at := _submitted_at(daemon, staged.name)) is None and time.monotonic() < deadline:
                    time.sleep(0.01)
                if at is None:
                    raise RuntimeError(f"{staged.name} was never submitted")
                latencies.append(at - t0)
        finally:
            daemon.stop()
    latencies.sort()
    median = statistics.median(latencies)
    p95 = latencies[round(0.95 * (len(latencies) - 1))]
    return {
        "pickup_settle_seconds": settle,
        "pickup_latency_median_s": round(median, 3),
        "pickup_latency_p95_s": round(p95, 3),
        "pickup_beyond_settle_median_s": round(median - settle, 3),
        "pickup_beyond_settle_p95_s": round(p95 - settle, 3),
    }


def idle_cpu_and_rss() -> dict[str, float]:
    """CPU % and peak RSS of an idle daemon over 60 s (10 s with --quick)."""
    window = 10.0 if QUICK else 60.0
    with tempfile.TemporaryDirectory(prefix="moviegen-bench-idle-") as tmp:
        daemon = _service_daemon(Path(tmp), 1.0)
        try:
            time.sleep(1.0)  # past start-up
            pid = daemon.proc.pid
            cpu0, t0 = _cpu_seconds(pid), time.monotonic()
            peak_rss = 0
            while time.monotonic() - t0 < window:
                peak_rss = max(peak_rss, _rss_kib(pid))
                time.sleep(0.5)
            cpu1, t1 = _cpu_seconds(pid), time.monotonic()
        finally:
            daemon.stop()
    return {
        "idle_window_s": window,
        "idle_cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
        "idle_rss_mb": round(peak_rss / 1024, 1),
    }


def burst_500_files() -> dict[str, float]:
    """500 files renamed into the inbox at once: time until all are submitted; none lost or doubled."""
    count = 500
    with tempfile.TemporaryDirectory(prefix="moviegen-bench-burst-") as tmp:
        daemon = _service_daemon(Path(tmp), 0.2)
        try:
            staging = daemon.home / "staging"
            staging.mkdir()
            for i in range(count):
                (staging / f"burst-{i:03d}.md").write_text(f"# Burst {i}\n")
            t0 = time.monotonic()
            for path in sorted(staging.iterdir()):
                os.rename(path, daemon.home / "inbox" / path.name)
            while daemon.count("job.submitted") < count and time.monotonic() < t0 + 120:
                time.sleep(0.02)
            elapsed = time.monotonic() - t0
            names = [r[0] for r in daemon.query(
                "SELECT json_extract(data, '$.name') FROM events WHERE kind = 'job.submitted'")]
        finally:
            daemon.stop()
    return {
        "burst_files": count,
        "burst_submit_all_s": round(elapsed, 2),
        "burst_lost": count - len(set(names)),
        "burst_duplicated": len(names) - len(set(names)),
    }


SOAK_JOBS = 15  # --jobs N
SOAK_CONFIG = """
[daemon]
settle_seconds = 0.2
rescan_seconds = 1.0
"""
SOAK_SCRIPT = """title: 耐久テスト {k}
sections:
  - title: はじめに {k}
    narrations: ["これは{k}番目の動画なのだ。", "待機中のメモリが増えないか確かめます。"]
    slide: {{heading: "耐久テスト {k}", bullets: ["{k}本目の動画", "待機中のメモリ", "ファイルとスレッド"]}}
  - title: まとめ {k}
    narrations: ["以上、{k}本目なのだ。"]
"""


def soak_after_jobs() -> dict[str, float]:
    """RSS, open fds and threads of a real daemon (Open JTalk, Pillow slides, ffmpeg at 1920x1080),
    idle at start and idle after ``--jobs N`` (default 15) different scripts made one after another."""
    with tempfile.TemporaryDirectory(prefix="moviegen-bench-soak-") as tmp:
        from tests.fixtures_service import ServiceDaemon, drop

        daemon = ServiceDaemon(Path(tmp), config=SOAK_CONFIG).start()
        try:
            time.sleep(2.0)  # past start-up
            pid = daemon.proc.pid
            start = _process_figures(pid)
            peak_rss = 0
            for k in range(1, SOAK_JOBS + 1):
                name = f"soak-{k:03d}.yaml"
                drop(daemon.home / "inbox", name, SOAK_SCRIPT.format(k=k))
                deadline = time.monotonic() + 300
                while (job := daemon.job_of(name)) is None or daemon.state(job) not in ("done", "failed", "cancelled"):
                    if time.monotonic() > deadline or not daemon.alive():
                        raise RuntimeError(f"{name} did not finish\n{daemon.tail()}")
                    peak_rss = max(peak_rss, _rss_kib(pid))
                    time.sleep(0.1)
                if daemon.state(job) != "done":
                    raise RuntimeError(f"{name} ended {daemon.state(job)}\n{daemon.tail()}")
                if k == 1:
                    time.sleep(1.0)
                    first = _process_figures(pid)
            time.sleep(3.0)  # idle again
            after = _process_figures(pid)
        finally:
            daemon.stop()
    return {
        "soak_jobs": SOAK_JOBS,
        "soak_rss_mb_at_start": start["rss_mb"],
        "soak_peak_rss_mb_during_jobs": round(peak_rss / 1024, 1),
        "soak_rss_mb_after_first_job": first["rss_mb"],
        "soak_rss_mb_after_jobs": after["rss_mb"],
        # file-backed pages (mapped dictionaries, voices, libraries) the kernel may drop and reread;
        # anonymous memory is what the process itself holds
        "soak_rss_file_mb_after_jobs": after["rss_file_mb"],
        "soak_rss_anon_mb_after_jobs": after["rss_anon_mb"],
        "soak_fds_at_start": start["fds"],
        "soak_fds_after_jobs": after["fds"],
        "soak_threads_at_start": start["threads"],
        "soak_threads_after_jobs": after["threads"],
    }


def _process_figures(pid: int) -> dict[str, float]:
    """One process's RSS (MB; also split into file-backed and anonymous), open file descriptors and threads."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)

    def mb(key: str) -> float:
        return round(int(status[key].split()[0]) / 1024, 1)

    return {"rss_mb": mb("VmRSS"), "rss_file_mb": mb("RssFile"), "rss_anon_mb": mb("RssAnon"),
            "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": int(status["Threads"])}


def _submitted_at(daemon, name: str) -> float | None:
    rows = daemon.query("SELECT at FROM events WHERE kind = 'job.submitted' AND json_extract(data, '$.name') = ?",
                        (name,))
    return datetime.fromisoformat(rows[0][0]).timestamp() if rows else None


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


BENCHMARKS: list[Callable[[], dict[str, float]]] = [
    progress_rows_10min_render, inbox_pickup_latency, idle_cpu_and_rss, burst_500_files, soak_after_jobs,
]


def main(argv: list[str]) -> None:
    # Only the figures go to stdout.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    global QUICK, SOAK_JOBS
    QUICK = "--quick" in argv
    if "--jobs" in argv:
        at = argv.index("--jobs")
        SOAK_JOBS = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2:]
    wanted = set(argv) - {"--quick"}
    for bench in BENCHMARKS:
        if wanted and bench.__name__ not in wanted:
            continue
        for name, value in bench().items():
            print(f"{name}={value}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
