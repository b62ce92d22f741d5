"""stage_timings reads a job's stage outcomes from its events (what `make demo` prints)."""

from __future__ import annotations

from pathlib import Path

from daemon.events import EventStore, stage_timings


def test_timings_come_from_the_runner_measurements(tmp_path: Path):
    """Finished stages report the measured seconds, skips 0, failures None, in order."""
    store = EventStore(tmp_path / "moviegen.db")
    store.submit("j", source="a.md", kind="article")
    store.append("j", "job.started")
    store.append("j", "stage.skipped", stage="fetch")
    store.append("j", "stage.started", stage="script")
    store.append("j", "stage.finished", stage="script", seconds=1.25)
    store.append("j", "stage.started", stage="audio")
    store.append("j", "stage.failed", stage="audio", error="engine down")
    timings = stage_timings(store.events("j"))
    store.close()
    assert timings == [
        {"stage": "fetch", "result": "skipped", "seconds": 0.0},
        {"stage": "script", "result": "finished", "seconds": 1.25},
        {"stage": "audio", "result": "failed", "seconds": None},
    ]
