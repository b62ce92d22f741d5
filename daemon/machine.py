"""The job state machine: which state a job may move to next, and nothing else.

One shared ``transitions`` Machine holds every job as a model. The runner moves a job with the
triggers below and records the matching event; the machine refuses anything the design does not
allow (a ``MachineError``)::

    queued → fetch → script → audio → slides → video → done      (advance; the stages of its kind)
    queued / any running state → failed   (fail)     failed → the failed stage   (retry)
    queued / any running state → cancelled (cancel)  cancelled → where it stopped (retry)
    any running state → the first stage   (resume: a job found mid-stage after a restart)

A job's state is never stored by the machine alone: :func:`restore` derives it from the job's
events, with the same fold as the ``jobs`` table.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from transitions import EventData, Machine, MachineError, State

from daemon.events import RUNNING_STATES, apply_event
from stages.pipeline import stages_for

STATES = ["queued", "fetch", "script", "audio", "slides", "video", "done", "failed", "cancelled"]

__all__ = ["MACHINE", "STATES", "JobModel", "MachineError", "restore", "step"]


class JobModel:
    """One job as the machine sees it.

    Attributes:
        job_id: the job's id.
        kind: the input kind (``url``, ``article``, ``script``).
        stages: the stage names this kind visits, in order (empty for an unknown kind).
        failed_stage: where a failed or cancelled job stopped; ``retry`` goes back there.
        listener: called as ``listener(model, state)`` whenever the job enters a state.
    """

    state: str

    def __init__(self, job_id: str, kind: str, listener: Callable[["JobModel", str], None] | None = None):
        self.job_id = job_id
        self.kind = kind
        try:
            self.stages: tuple[str, ...] = tuple(stages_for(kind))
        except KeyError:
            self.stages = ()
        self.failed_stage: str | None = None
        self.listener = listener
        self.moves = 0  # transitions completed; queued triggers always return True, so count

    def next_state(self) -> str | None:
        """Where ``advance`` goes from the current state: the next stage, ``done``, or None."""
        if not self.stages:
            return None
        if self.state == "queued":
            return self.stages[0]
        index = self.stages.index(self.state)
        return self.stages[index + 1] if index + 1 < len(self.stages) else "done"

    def first_stage(self) -> str | None:
        """The first stage of this job's kind, or None for an unknown kind."""
        return self.stages[0] if self.stages else None

    def is_last_stage(self) -> bool:
        """True when the current state is the last stage of the job's kind."""
        return bool(self.stages) and self.state == self.stages[-1]

    # Callbacks the machine calls (send_event=True: each gets the EventData).

    def _remember_stage(self, event: EventData) -> None:
        source = event.transition.source if event.transition else None
        if source in RUNNING_STATES:
            self.failed_stage = source
        elif source == "queued":
            self.failed_stage = None

    def _moved(self, event: EventData) -> None:
        self.moves += 1

    def _entered(self, event: EventData) -> None:
        if self.listener is not None:
            self.listener(self, self.state)

    def __repr__(self) -> str:
        return f"JobModel({self.job_id!r}, {self.kind!r}, state={getattr(self, 'state', None)!r})"


def _goes_to(dest: str, event: EventData) -> bool:
    return event.model.next_state() == dest


def _retries_to(dest: str, event: EventData) -> bool:
    return event.model.failed_stage == dest or (dest == "queued" and event.model.failed_stage is None)


def _resumes_at(dest: str, event: EventData) -> bool:
    return event.model.first_stage() == dest


def _transitions() -> list[dict[str, Any]]:
    order = ["queued", *RUNNING_STATES, "done"]
    table: list[dict[str, Any]] = []
    for i, source in enumerate(order[:-1]):
        for dest in order[i + 1:]:
            table.append({"trigger": "advance", "source": source, "dest": dest,
                          "conditions": [partial(_goes_to, dest)]})
    active = ["queued", *RUNNING_STATES]
    table.append({"trigger": "fail", "source": active, "dest": "failed", "before": "_remember_stage"})
    table.append({"trigger": "cancel", "source": active, "dest": "cancelled", "before": "_remember_stage"})
    for dest in ["queued", *RUNNING_STATES]:
        table.append({"trigger": "retry", "source": ["failed", "cancelled"], "dest": dest,
                      "conditions": [partial(_retries_to, dest)]})
    for dest in RUNNING_STATES:
        table.append({"trigger": "resume", "source": list(RUNNING_STATES), "dest": dest,
                      "conditions": [partial(_resumes_at, dest)]})
    return table


MACHINE = Machine(
    model=None,
    states=[State(name, on_enter=["_entered"]) for name in STATES],
    transitions=_transitions(),
    initial="queued",
    queued=True,
    auto_transitions=False,
    send_event=True,
    after_state_change="_moved",
)


def step(model: JobModel, trigger: str) -> str:
    """Fire ``trigger`` on ``model`` and return the new state.

    Raises:
        MachineError: the trigger is not allowed from the current state, or no destination
            fits (e.g. ``advance`` for a job whose kind has no stages).
    """
    before, moves = model.state, model.moves
    model.trigger(trigger)
    if model.moves == moves:
        raise MachineError(f"{trigger!r} from {before!r} leads nowhere for job {model.job_id} ({model.kind})")
    return model.state


def add(model: JobModel, state: str = "queued") -> JobModel:
    """Put a job into the shared machine in ``state`` (no ``on_enter`` fires)."""
    MACHINE.add_model(model, initial=state)
    return model


def remove(model: JobModel) -> None:
    """Take a finished job out of the shared machine."""
    if model in MACHINE.models:
        MACHINE.remove_model(model)


def restore(job_id: str, events: list[dict], listener: Callable[[JobModel, str], None] | None = None) -> JobModel:
    """A job's model rebuilt from its events, added to :data:`MACHINE` and explicitly re-entered.

    ``transitions`` fires no ``on_enter`` for a model added in a state, so this enters the state
    by hand: whatever reacts to entering (the listener) runs as if the job had just got there.

    Raises:
        LookupError: the events hold no ``job.submitted`` for ``job_id``.
    """
    row: dict | None = None
    last_active: str | None = None
    for event in events:
        if event.get("job_id") != job_id:
            continue
        row = apply_event(row, event)
        if row is not None and row["state"] in RUNNING_STATES:
            last_active = row["state"]
        elif row is not None and row["state"] == "queued":
            last_active = None
    if row is None:
        raise LookupError(f"no job.submitted event for job {job_id}")
    model = JobModel(job_id, row["kind"] or "", listener)
    if row["state"] in ("failed", "cancelled"):
        model.failed_stage = last_active
    add(model, row["state"])
    MACHINE.get_state(model.state).enter(EventData(MACHINE.get_state(model.state), None, MACHINE, model, (), {}))
    return model
