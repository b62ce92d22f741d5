"""The job state machine: kinds choose the stages, bad moves raise, restore re-enters."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.events import EventStore
from daemon.machine import MACHINE, STATES, JobModel, MachineError, add, remove, restore, step


@pytest.fixture
def model_factory():
    made: list[JobModel] = []

    def make(kind: str = "url", state: str = "queued", listener=None) -> JobModel:
        model = add(JobModel(f"job{len(made)}", kind, listener), state)
        made.append(model)
        return model

    yield make
    for model in made:
        remove(model)


@pytest.mark.parametrize(
    "kind, visited",
    [
        ("url", ["fetch", "script", "audio", "slides", "video", "done"]),
        ("article", ["fetch", "script", "audio", "slides", "video", "done"]),
        ("script", ["script", "audio", "slides", "video", "done"]),
    ],
)
def test_kind_decides_the_stages(model_factory, kind: str, visited: list[str]) -> None:
    """advance walks queued → the kind's stages → done, firing on_enter for each state."""
    entered: list[str] = []
    model = model_factory(kind, listener=lambda m, state: entered.append(state))
    while model.state != "done":
        step(model, "advance")
    assert entered == visited


@pytest.mark.parametrize(
    "state, trigger",
    [
        ("done", "advance"),
        ("done", "fail"),
        ("done", "cancel"),
        ("failed", "advance"),
        ("cancelled", "cancel"),
        ("audio", "retry"),
        ("queued", "retry"),
        ("queued", "resume"),
        ("done", "retry"),
    ],
)
def test_invalid_transitions_raise(model_factory, state: str, trigger: str) -> None:
    """Moves the design does not allow raise MachineError and leave the state alone."""
    model = model_factory("url", state)
    with pytest.raises(MachineError):
        step(model, trigger)
    assert model.state == state


def test_unknown_kind_cannot_advance(model_factory) -> None:
    """A job of an unknown kind can only fail (or be cancelled)."""
    model = model_factory("pdf")
    with pytest.raises(MachineError):
        step(model, "advance")
    assert step(model, "fail") == "failed"


def test_script_job_never_visits_fetch(model_factory) -> None:
    """A script job's machine refuses nothing it needs and skips fetch entirely."""
    model = model_factory("script")
    assert step(model, "advance") == "script"
    assert model.next_state() == "audio"


def test_fail_then_retry_returns_to_the_failed_stage(model_factory) -> None:
    """retry goes back to the stage where the job failed; cancel from queued retries to queued."""
    model = model_factory("url")
    step(model, "advance")
    step(model, "advance")
    assert step(model, "fail") == "failed"
    assert model.failed_stage == "script"
    assert step(model, "retry") == "script"
    other = model_factory("url")
    step(other, "cancel")
    assert step(other, "retry") == "queued"


def test_resume_restarts_at_the_first_stage(model_factory) -> None:
    """A job found mid-stage after a restart resumes from its kind's first stage."""
    model = model_factory("script", "slides")
    assert step(model, "resume") == "script"


def test_one_shared_machine(model_factory) -> None:
    """Every job is a model of the same Machine; finished jobs are removed."""
    before = len(MACHINE.models)
    a, b = model_factory(), model_factory()
    assert len(MACHINE.models) == before + 2
    step(a, "advance")
    assert (a.state, b.state) == ("fetch", "queued")
    remove(a)
    assert len(MACHINE.models) == before + 1
    assert MACHINE.has_queue and not MACHINE.auto_transitions
    assert list(MACHINE.states) == STATES


def _events(tmp_path: Path, script: list[tuple]) -> list[dict]:
    store = EventStore(tmp_path / "m.db")
    for job_id, kind, stage, data in script:
        store.append(job_id, kind, stage, **data)
    events = store.events()
    store.close()
    return events


def test_restore_derives_state_and_reenters(tmp_path: Path) -> None:
    """restore puts the job in the state its events say and fires that state's on_enter once."""
    events = _events(tmp_path, [
        ("j", "job.submitted", None, {"source": "a.url", "kind": "url"}),
        ("j", "job.started", None, {"stage": "fetch"}),
        ("j", "stage.started", "fetch", {}),
        ("j", "stage.finished", "fetch", {"next": "script"}),
        ("j", "stage.started", "script", {}),
        ("other", "job.submitted", None, {"source": "b.md", "kind": "article"}),
    ])
    entered: list[tuple[str, str]] = []
    model = restore("j", events, lambda m, state: entered.append((m.job_id, state)))
    try:
        assert model.state == "script"
        assert entered == [("j", "script")]
        assert model in MACHINE.models
        assert step(model, "resume") == "fetch"
    finally:
        remove(model)


def test_restore_failed_job_knows_where_to_retry(tmp_path: Path) -> None:
    """A failed job restored from events retries at the stage that failed."""
    events = _events(tmp_path, [
        ("j", "job.submitted", None, {"source": "a.yaml", "kind": "script"}),
        ("j", "job.started", None, {"stage": "script"}),
        ("j", "stage.finished", "script", {"next": "audio"}),
        ("j", "stage.started", "audio", {}),
        ("j", "stage.failed", "audio", {"error": "no voice"}),
        ("j", "job.failed", "audio", {"stage": "audio", "error": "no voice"}),
    ])
    model = restore("j", events)
    try:
        assert (model.state, model.failed_stage) == ("failed", "audio")
        assert step(model, "retry") == "audio"
    finally:
        remove(model)


def test_restore_unknown_job_raises(tmp_path: Path) -> None:
    """Without a job.submitted there is nothing to restore."""
    with pytest.raises(LookupError):
        restore("ghost", _events(tmp_path, [(None, "daemon.started", None, {})]))
