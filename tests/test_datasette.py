"""The README's SQL ships as Datasette canned queries; each one runs on a real event log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from daemon.events import EventStore

ROOT = Path(__file__).resolve().parents[1]
METADATA = ROOT / "datasette" / "metadata.yml"


def _fill(db_path: Path) -> None:
    store = EventStore(db_path)
    store.submit("job-ok", source="a.md", kind="article", sha256="a" * 64)
    store.append("job-ok", "job.started")
    for stage in ("fetch", "script", "audio", "slides", "video"):
        if stage == "video":  # the daemon died in the first render
            store.append("job-ok", "stage.started", stage=stage)
            store.append("job-ok", "stage.interrupted", stage=stage, reason="crash")
        store.append("job-ok", "stage.started", stage=stage)
        store.append("job-ok", "stage.progress", stage=stage, current=1, total=2, message="half")
        store.append("job-ok", "stage.finished", stage=stage)
    store.append("job-ok", "job.finished", output="/out/x.mp4")
    store.submit("job-bad", source="b.url", kind="url", sha256="b" * 64)
    store.append("job-bad", "job.started")
    store.append("job-bad", "stage.started", stage="fetch")
    store.append("job-bad", "stage.failed", stage="fetch", error="HTTP 404 from https://example.com/x")
    store.append("job-bad", "job.failed", stage="fetch", error="HTTP 404 from https://example.com/x")
    store.append(None, "input.rejected", name="notes.pdf", reason="unknown file type '.pdf'",
                 moved_to="failed/notes.pdf")
    store.append(None, "input.ignored", name="link.md", inode=42, reason="a symbolic link")
    store.close()


@pytest.fixture()
def datasette_app(tmp_path: Path):
    datasette = pytest.importorskip("datasette.app")
    db_path = tmp_path / "moviegen.db"
    _fill(db_path)
    metadata = yaml.safe_load(METADATA.read_text(encoding="utf-8"))
    return datasette.Datasette([str(db_path)], metadata=metadata, immutables=[])


def _query(app, name: str, **params: str) -> list[dict]:
    async def go():
        query = "&".join(f"{k}={v}" for k, v in params.items())
        response = await app.client.get(f"/moviegen/{name}.json?_shape=array&{query}")
        assert response.status_code == 200, response.text
        return response.json()

    return asyncio.run(go())


def test_every_canned_query_runs(datasette_app):
    """Every query in datasette/metadata.yml runs against a real log and returns rows."""
    queries = yaml.safe_load(METADATA.read_text(encoding="utf-8"))["databases"]["moviegen"]["queries"]
    assert set(queries) == {"jobs_by_state", "stage_durations", "slowest_jobs", "failures_by_error", "job_history",
                            "input_fates", "interrupted_attempts"}
    for name in queries:
        params = {"job_id": "job-ok"} if name == "job_history" else {}
        assert _query(datasette_app, name, **params), name


def test_queries_answer_correctly(datasette_app):
    """The answers match what the events say."""
    states = {row["state"]: row["jobs"] for row in _query(datasette_app, "jobs_by_state")}
    assert states == {"done": 1, "failed": 1}
    stages = {row["stage"]: (row["runs"], row["unfinished"]) for row in _query(datasette_app, "stage_durations")}
    assert stages == {"fetch": (1, 1), "script": (1, 0), "audio": (1, 0), "slides": (1, 0), "video": (1, 1)}
    interrupted = _query(datasette_app, "interrupted_attempts")
    assert [(row["stage"], row["reason"], row["attempts"]) for row in interrupted] == [("video", "crash", 1)]
    failures = _query(datasette_app, "failures_by_error")
    assert failures[0]["jobs"] == 1 and "404" in failures[0]["error"]
    fates = _query(datasette_app, "input_fates")
    assert [(row["kind"], row["name"]) for row in fates] == [("input.ignored", "link.md"),
                                                             ("input.rejected", "notes.pdf")]
    assert fates[1]["moved_to"] == "failed/notes.pdf"
    history = _query(datasette_app, "job_history", job_id="job-bad")
    assert [row["kind"] for row in history][-1] == "job.failed"
