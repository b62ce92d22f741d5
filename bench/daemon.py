"""Daemon benchmarks: each function measures one thing and returns ``{name: value}``.

Run: ``.venv/bin/python bench/daemon.py [name ...]`` prints ``name=value`` lines. Add a benchmark
by writing a function returning a dict and listing it in ``BENCHMARKS``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
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


BENCHMARKS: list[Callable[[], dict[str, float]]] = [progress_rows_10min_render]


def main(argv: list[str]) -> None:
    # Only the figures go to stdout.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    wanted = set(argv)
    for bench in BENCHMARKS:
        if wanted and bench.__name__ not in wanted:
            continue
        for name, value in bench().items():
            print(f"{name}={value}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
