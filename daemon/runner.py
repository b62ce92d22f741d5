"""The runner: drives jobs through their stages, one worker thread per running stage.

Everything a job does is an event first; the runner keeps no state that the event log could not
give back. A job holds one of ``daemon.max_jobs`` job slots from its first stage that works on
this machine until it ends (a fetch, which waits on a server, holds only its network slot, so slow
servers never keep other jobs out), and each stage holds
its resource's slot (``daemon.slots``, e.g. one ``render`` at a time) while it works, so one job
synthesizes audio while another renders.

Failures are sorted by type (DESIGN.md, "The stage contract"):

- ``TransientError``: retried with exponential backoff and jitter, each attempt a ``stage.failed``;
- ``InputError``: the job fails at once with the stage's message;
- ``Cancelled`` with the job's token set by ``cancel``: the job ends ``cancelled``;
- anything else is a bug: the job fails with the traceback in the event.

On daemon shutdown the running stages are cancelled and their attempts end ``stage.interrupted``
(reason ``shutdown``), but nothing terminal is recorded: the jobs stay where the log says they
are, and :meth:`Runner.recover` resumes them on the next start. Attempts a crash left open are
ended there (reason ``crash``); a job whose stage crashed the daemon ``daemon.crash_limit`` times in
a row fails instead of being resumed into the same crash (a "poison" input, e.g. out of memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import errno
import gc
import json
import random
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, AsyncIterator, Callable

import structlog

from daemon import manifest
from daemon.events import RUNNING_STATES, TERMINAL_STATES, EventStore, crash_streak, now_iso
from daemon.machine import JobModel, MachineError, remove, restore, step
from stages.base import Cancelled, CancelToken, ConfigError, InputError, JobContext, Stage, TransientError
from stages.debris import remove_debris
from stages.jtalk import release_dictionaries
from stages.pipeline import PERCENT_RANGES, overall_percent
from stages.settings import Settings

HINT_INPUT = "fix the input and drop it again"
HINT_CONFIG = "fix the configuration ({config}), restart the daemon (it reads its settings at start), then `moviegen retry JOB`"
HINT_TRANSIENT = "check the service; `moviegen retry JOB`"
HINT_BUG = "this looks like a bug: the traceback is in `moviegen events JOB`; `moviegen retry JOB` once fixed"
HINT_TIMEOUT = "raise daemon.stage_timeout_seconds for this stage or shorten the input; `moviegen retry JOB`"
HINT_SETUP = "check the installation and daemon.stage_factory; `moviegen retry JOB`"
HINT_CRASHED = ("the input probably needs more memory than the daemon may use: shorten or split it and drop "
                "it again, or raise MemoryMax (systemctl edit moviegen) and run `moviegen retry JOB`")
HINT_DISK_FULL = "free some disk space (the job folder, the cache and the outbox need room), then `moviegen retry JOB`"

# What a stage run came to.
_OK, _FAILED, _CANCELLED, _STOPPED = "ok", "failed", "cancelled", "stopped"


class StageTimedOut(Exception):
    """A stage ran past ``daemon.stage_timeout_seconds``."""


@dataclass
class _Run:
    """One job in this process: its machine model, its cancellation token and its task."""

    model: JobModel
    mode: str  # "start" | "resume" | "retry": how it enters its first stage
    token: CancelToken = field(default_factory=CancelToken)  # setting it hangs up the stage's network waits
    reason: str | None = None  # why the token was set: "cancel" | "timeout" | "shutdown"
    task: asyncio.Task | None = None
    active: bool = False  # has started its first stage (a fetch may run before it holds a job slot)
    slots: contextlib.AsyncExitStack | None = None  # holds the job slot once taken, until the job ends
    slot_held: bool = False
    in_thread: bool = False  # awaiting a worker thread: only the token can stop it
    delivering: bool = False
    percent: float = 0.0  # the floor that keeps the overall percent monotonic within an attempt
    stage: str | None = None
    alone: bool = False  # running when the daemon died: holds every job slot, so a next crash is its own


class Runner:
    """Runs submitted jobs through their stages; see the module docstring."""

    def __init__(
        self,
        store: EventStore,
        settings: Settings,
        stages: dict[str, Stage],
        *,
        deliver: Callable[[str], str | None] | None = None,
        on_failed: Callable[[str, str, str], None] | None = None,
        on_cancelled: Callable[[str, str | None], None] | None = None,
        on_change: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        """
        Args:
            store: the event log.
            settings: the settings tree (``daemon`` section: slots, retries, timeouts).
            stages: the stages by name.
            deliver: called in a thread after the last stage with the job id; returns the output
                path recorded in ``job.finished``. An exception fails the job (stage ``deliver``).
            on_failed: ``(job_id, stage, error)`` after ``job.failed`` is recorded.
            on_cancelled: ``(job_id, stage)`` after ``job.cancelled`` is recorded.
            on_change: a short status line on every state change.
            clock: the time source of progress throttling (a bench runs a fake one).
        """
        self.store = store
        self.settings = settings
        self.stages = dict(stages)
        self._deliver = deliver
        self._on_failed = on_failed
        self._on_cancelled = on_cancelled
        self._on_change = on_change
        self._clock = clock
        daemon = settings.daemon
        self._job_slots = asyncio.Semaphore(daemon.max_jobs)
        self._alone = asyncio.Lock()  # suspects of a crash run one at a time (see _job_slot)
        self._slots = {name: asyncio.Semaphore(n) for name, n in daemon.slots.items()}
        self._executor = ThreadPoolExecutor(max_workers=daemon.max_jobs * 2 + 4, thread_name_prefix="stage")
        self._runs: dict[str, _Run] = {}
        self._stopping = False
        self._log = structlog.get_logger("moviegen.runner")

    # --- public API ---------------------------------------------------------------------------

    def warm_up(self) -> threading.Thread:
        """Let each stage that has a ``warm(settings)`` load now what its first run would need
        (worker processes, font hashes), in a background thread; returns that thread.

        A daemon's first job then starts as fast as the ones after it. A warm-up that fails is
        logged and forgotten: the stage meets the same problem when it runs and reports it there.
        When all are done, ``daemon.warmed`` records each stage's seconds and those that failed.
        """

        def warm() -> None:
            seconds: dict[str, float] = {}
            failed: list[str] = []
            for name, stage in self.stages.items():
                warm_stage = getattr(stage, "warm", None)
                if warm_stage is None:
                    continue
                t0 = time.monotonic()
                try:
                    warm_stage(self.settings)
                except Exception as exc:
                    failed.append(name)
                    self._log.warning("stage warm-up failed", stage=name, error=f"{type(exc).__name__}: {exc}")
                else:
                    seconds[name] = round(time.monotonic() - t0, 3)
            if not (seconds or failed):
                return
            try:
                self.store.append(None, "daemon.warmed", seconds=seconds, failed=failed)
            except Exception as exc:  # the daemon stopped meanwhile and closed its log
                self._log.warning("warm-up not recorded", error=f"{type(exc).__name__}: {exc}")

        thread = threading.Thread(target=warm, name="warm-up", daemon=True)
        thread.start()
        return thread

    async def start_job(self, job_id: str) -> None:
        """Schedule a submitted job; it starts when a job slot is free."""
        if self._stopping or job_id in self._runs:
            return
        model = self._restore(job_id)
        if model is None:
            return
        if model.state in TERMINAL_STATES:
            remove(model)
            return
        self._schedule(model, "resume" if model.state in RUNNING_STATES else "start")

    async def recover(self) -> list[str]:
        """Rebuild every non-terminal job from its events and schedule it; return their ids.

        A job found mid-stage starts again from its first stage: finished stages skip through
        their manifests, the interrupted one reruns. Attempts left open end ``stage.interrupted``
        (reason ``crash``) first; a job that crashed the daemon ``daemon.crash_limit`` times in a
        row in one stage fails with a note instead, and the others that were running when it died
        run alone, one after another (:meth:`_job_slot`), so the next crash is blamed on the right job.
        """
        self.store.close_open_attempts("crash")
        recovered: list[str] = []
        for row in self.store.jobs():
            if row["state"] in TERMINAL_STATES or row["job_id"] in self._runs:
                continue
            if self._fail_if_crashing(row["job_id"]):
                continue
            await self.start_job(row["job_id"])
            run = self._runs.get(row["job_id"])
            if run is not None:  # its task has not run yet: start_job never yields
                run.alone = crash_streak(self.store.events(row["job_id"]))[1] > 0
            if row["job_id"] in self._runs:
                recovered.append(row["job_id"])
        return recovered

    def cancel(self, job_id: str) -> bool:
        """Cancel a job: a waiting job ends ``cancelled`` at once, a running stage is stopped.

        Returns False when there is nothing to cancel (unknown, finished, or already delivering).
        """
        row = self.store.job(job_id)
        if row is None:
            return False
        job_id = row["job_id"]
        run = self._runs.get(job_id)
        if run is None:
            if row["state"] in TERMINAL_STATES:
                return False
            model = self._restore(job_id)
            if model is None:
                return False
            self._record_cancelled(model)
            remove(model)
            return True
        if run.delivering or run.model.state in TERMINAL_STATES:
            return False
        if run.reason != "cancel":
            run.reason = "cancel"
            run.token.set()
            if not run.in_thread:
                # Waiting for a slot or a backoff: nothing runs, so it ends right here.
                self._record_cancelled(run.model)
                if run.task is not None:
                    run.task.cancel()
        return True

    async def retry(self, job_id: str) -> bool:
        """Retry a failed or cancelled job from the stage where it stopped.

        Returns False when the job is unknown, still active, or finished well.
        """
        row = self.store.job(job_id)
        if self._stopping or row is None or row["state"] not in ("failed", "cancelled") or row["job_id"] in self._runs:
            return False
        model = self._restore(row["job_id"])
        if model is None:
            return False
        try:
            step(model, "retry")
        except MachineError:
            remove(model)
            return False
        self.store.append(model.job_id, "job.retry_scheduled",
                          stage=model.state if model.state in RUNNING_STATES else None)
        self._schedule(model, "retry")
        return True

    async def shutdown(self, grace: float) -> None:
        """Stop starting jobs, cancel the running stages and wait up to ``grace`` seconds.

        Interrupted jobs stay non-terminal in the log, so :meth:`recover` resumes them.
        """
        self._stopping = True
        for run in list(self._runs.values()):
            if run.reason is None:
                run.reason = "shutdown"
            run.token.set()
            if not run.in_thread and run.task is not None:
                run.task.cancel()
        tasks = [run.task for run in self._runs.values() if run.task is not None]
        try:
            if tasks:
                await asyncio.wait(tasks, timeout=grace)
        finally:
            # Also when the grace ran out: a stage thread still running is abandoned with the process.
            self.store.close_open_attempts("shutdown")
        self._executor.shutdown(wait=False, cancel_futures=True)

    def running(self) -> list[str]:
        """The ids of the jobs at work (in a stage, or waiting for the job slot after a fetch)."""
        return [job_id for job_id, run in self._runs.items() if run.active]

    async def wait_idle(self) -> None:
        """Wait until no job is scheduled or running."""
        while self._runs:
            tasks = [run.task for run in self._runs.values() if run.task is not None]
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.sleep(0)

    # --- one job ------------------------------------------------------------------------------

    def _restore(self, job_id: str) -> JobModel | None:
        try:
            return restore(job_id, self.store.events(job_id), self._entered)
        except LookupError:
            self._log.warning("unknown job", job_id=job_id)
            return None

    def _schedule(self, model: JobModel, mode: str) -> None:
        run = _Run(model=model, mode=mode)
        self._runs[model.job_id] = run
        run.task = asyncio.get_running_loop().create_task(self._drive(run), name=f"job-{model.job_id}")
        run.task.add_done_callback(lambda _task: self._forget(run))

    async def _drive(self, run: _Run) -> None:
        log = self._log.bind(job_id=run.model.job_id)
        try:
            async with contextlib.AsyncExitStack() as run.slots:
                if run.alone:
                    await self._hold_job_slot(run)
                await self._run_job(run, log)
        except asyncio.CancelledError:
            pass  # cancel() or shutdown(): whatever had to be recorded is recorded
        except Exception as exc:  # a bug in the runner must not take the daemon down
            log.exception("runner error")
            if run.model.state not in TERMINAL_STATES:
                with contextlib.suppress(Exception):
                    self._fail(run, run.stage, f"{type(exc).__name__}: {exc}", HINT_BUG,
                               traceback=traceback.format_exc())
        finally:
            self._forget(run)

    async def _hold_job_slot(self, run: _Run) -> None:
        """Take the job's slot (kept until the job ends) unless it holds it already."""
        assert run.slots is not None
        if not run.slot_held:
            await run.slots.enter_async_context(self._job_slot(run))
            run.slot_held = True

    def _needs_job_slot(self, run: _Run, name: str) -> bool:
        """A network stage waits on a server, not on this machine: it holds only its network slot,
        so jobs stuck on slow servers never keep a ready script out of the job slots."""
        return run.alone or getattr(self.stages.get(name), "resource", None) != "network"

    @contextlib.asynccontextmanager
    async def _job_slot(self, run: _Run) -> AsyncIterator[None]:
        """One job slot; for a job suspected of a crash, all of them.

        A job that was running when the daemon died runs alone after the restart (suspects one
        after another), so if the daemon dies again the crash is that job's own: a job that merely
        ran beside a memory hog is never failed for it.
        """
        if not run.alone:
            async with self._job_slots:
                yield
            return
        async with self._alone:
            taken = 0
            try:
                for _ in range(self.settings.daemon.max_jobs):
                    await self._job_slots.acquire()
                    taken += 1
                yield
            finally:
                for _ in range(taken):
                    self._job_slots.release()

    def _forget(self, run: _Run) -> None:
        """Drop a job that ended (or was cancelled before its task ever ran)."""
        run.active = False
        if self._runs.get(run.model.job_id) is run:
            del self._runs[run.model.job_id]
            remove(run.model)
            self._changed(run.model)

    async def _run_job(self, run: _Run, log: Any) -> None:
        model = run.model
        if not model.stages:
            self._fail(run, None, f"unknown input kind {model.kind!r}", HINT_INPUT)
            return
        first = model.stages[0] if model.state == "queued" else model.state
        if self._needs_job_slot(run, first):
            await self._hold_job_slot(run)  # before it starts: a job waiting for its slot is queued
        if model.state == "queued":
            step(model, "advance")
        elif run.mode == "resume":
            step(model, "resume")
        run.percent = PERCENT_RANGES[model.state][0] if run.mode == "retry" else 0.0
        self.store.append(model.job_id, "job.started", stage=model.state, percent=run.percent,
                          resumed=run.mode == "resume", retry=run.mode == "retry")
        log.info("job started", state=model.state, mode=run.mode)
        while True:
            if not run.token.is_set() and self.store.take_request(model.job_id, "cancel"):
                # A `moviegen cancel` made during a stage shorter than the daemon's request poll:
                # honour it before the next stage starts, not in the middle of it.
                run.reason = "cancel"
                run.token.set()
            if run.token.is_set():
                if run.reason == "cancel":
                    self._record_cancelled(model)
                return
            name = model.state
            if self._needs_job_slot(run, name):
                await self._hold_job_slot(run)
            run.active = True
            if await self._run_stage(run, name, log.bind(stage=name)) != _OK:
                return
            if model.state == name:  # the last stage: the job is done once delivered
                break
        await self._finish(run, log)

    async def _finish(self, run: _Run, log: Any) -> None:
        model = run.model
        output: str | None = None
        await self._hold_job_slot(run)
        if self._deliver is not None:
            run.delivering = True
            try:
                output = await self._in_thread(run, self._deliver, model.job_id)
            except Exception as exc:
                log.exception("delivery failed")
                self._fail(run, "deliver", f"{type(exc).__name__}: {exc}", HINT_BUG,
                           traceback=traceback.format_exc())
                return
        step(model, "advance")
        self.store.append(model.job_id, "job.finished", output=str(output) if output is not None else None,
                          percent=100.0)
        log.info("job finished", output=output)

    # --- one stage ----------------------------------------------------------------------------

    async def _run_stage(self, run: _Run, name: str, log: Any) -> str:
        """Run (or skip) the stage ``name`` with its retries; record its events."""
        run.stage = name
        stage = self.stages.get(name)
        if stage is None:
            installed = ", ".join(sorted(self.stages)) or "none"
            self._fail(run, name, f"no stage named {name!r} is installed (installed: {installed})", HINT_SETUP)
            return _FAILED
        ctx = self._context(run, name)
        attempts = self.settings.daemon.retry_attempts
        for attempt in range(1, attempts + 1):
            try:
                ctx.check_cancelled()
                fingerprint = await self._in_thread(run, stage.fingerprint, ctx)
                if attempt == 1 and await self._in_thread(run, manifest.is_current, ctx.job_dir, name, fingerprint):
                    self._advance(run, "stage.skipped", name, fingerprint=fingerprint[:16])
                    log.info("stage skipped")
                    return _OK
                async with self._slot(getattr(stage, "resource", None)):
                    return await self._attempt(run, stage, ctx, fingerprint, attempt, log)
            except TransientError as exc:
                if run.token.is_set() and run.reason in ("cancel", "shutdown"):
                    return self._interrupted(run, name)  # a network wait hung up by the cancel
                if attempt < attempts and not run.token.is_set():
                    delay = self._backoff(attempt, exc.retry_after)
                    self.store.append(run.model.job_id, "stage.failed", name, error=str(exc), attempt=attempt,
                                      transient=True, retry_in=round(delay, 3))
                    log.warning("stage failed, will retry", error=str(exc), attempt=attempt, retry_in=delay)
                    await asyncio.sleep(delay)
                    continue
                self._fail(run, name, str(exc), HINT_TRANSIENT, attempt=attempt, transient=True, retry_in=None)
            except Cancelled:
                return self._interrupted(run, name)
            except StageTimedOut as exc:
                self._fail(run, name, str(exc), HINT_TIMEOUT, attempt=attempt, timeout=True)
            except ConfigError as exc:  # before InputError, its base: the fix is in the settings
                self._fail(run, name, str(exc), HINT_CONFIG.format(config=self.settings.config_name()),
                           attempt=attempt)
            except InputError as exc:
                self._fail(run, name, str(exc), HINT_INPUT, attempt=attempt)
            except Exception as exc:
                if run.token.is_set() and run.reason in ("cancel", "shutdown"):
                    return self._interrupted(run, name)  # e.g. a child killed under a stage
                if _disk_full(exc):
                    log.error("disk full", error=str(exc))
                    self._fail(run, name, f"disk full: {exc}", HINT_DISK_FULL, attempt=attempt, disk_full=True)
                    return _FAILED
                log.exception("stage raised")
                self._fail(run, name, f"{type(exc).__name__}: {exc}", HINT_BUG, attempt=attempt,
                           traceback=traceback.format_exc())
            return _FAILED
        return _FAILED

    async def _attempt(self, run: _Run, stage: Stage, ctx: JobContext, fingerprint: str, attempt: int,
                       log: Any) -> str:
        """One run of a stage, inside its resource slot."""
        name = stage.name
        job_id = run.model.job_id
        ctx.check_cancelled()
        run.percent = max(run.percent, PERCENT_RANGES[name][0])
        started_at, t0 = now_iso(), time.monotonic()
        self.store.append(job_id, "stage.started", name, percent=run.percent,
                          resource=getattr(stage, "resource", None))
        log.info("stage started", attempt=attempt)
        # A killed earlier attempt (crash, SIGKILL, timeout) may have left temporaries, tens of MB of
        # render work among them; no stage of this job runs now, so they can go.
        debris = await self._in_thread(run, remove_debris, ctx.job_dir)
        if debris:
            ctx.note("debris removed", files=len(debris), bytes=sum(size for _, size in debris))
        progress = _Progress(self, run, name, self._clock, self.settings.daemon.progress_interval_seconds)
        timeout = self.settings.daemon.stage_timeout_seconds.get(name)
        try:
            result = await self._in_thread(run, stage.run, ctx, progress, timeout=timeout, name=name)
        finally:
            progress.closed = True
            await asyncio.to_thread(release_memory)
        seconds = time.monotonic() - t0
        await self._in_thread(
            run,
            partial(manifest.write_manifest, ctx.job_dir, name, version=str(stage.version), fingerprint=fingerprint,
                    outputs=result.outputs, started_at=started_at, finished_at=now_iso(), seconds=seconds),
        )
        progress.flush()
        self._advance(run, "stage.finished", name, seconds=round(seconds, 6),
                      outputs=len(result.outputs), fingerprint=fingerprint[:16], **_small(result.data))
        log.info("stage finished", seconds=round(seconds, 3))
        return _OK

    def _advance(self, run: _Run, kind: str, name: str, **data: Any) -> None:
        """Record a finished or skipped stage and move the job to its next state."""
        model = run.model
        nxt = model.next_state()
        run.percent = max(run.percent, PERCENT_RANGES[name][1])
        if nxt != "done":
            step(model, "advance")
        self.store.append(model.job_id, kind, name, next=nxt if nxt != "done" else None,
                          percent=run.percent, **data)

    def _interrupted(self, run: _Run, name: str) -> str:
        if run.reason == "timeout":
            timeout = self.settings.daemon.stage_timeout_seconds.get(name)
            self._fail(run, name, f"the {name} stage timed out after {timeout:g} s", HINT_TIMEOUT, timeout=True)
            return _FAILED
        if run.reason == "shutdown" or (self._stopping and run.reason != "cancel"):
            return _STOPPED
        self._record_cancelled(run.model)
        return _CANCELLED

    # --- recording ----------------------------------------------------------------------------

    def _fail(self, run: _Run, stage: str | None, error: str, hint: str, **data: Any) -> None:
        model = run.model
        job_id = model.job_id
        self.store.append(job_id, "stage.failed", stage, error=error, **data)
        step(model, "fail")
        self.store.append(job_id, "job.failed", stage, stage=stage, error=error, hint=hint)
        self._log.error("job failed", job_id=job_id, stage=stage, error=error)
        if self._on_failed is not None:
            try:
                self._on_failed(job_id, stage or "", error)
            except Exception:
                self._log.exception("on_failed callback raised", job_id=job_id)

    def _record_cancelled(self, model: JobModel) -> None:
        if model.state in TERMINAL_STATES:
            return
        stage = model.state if model.state in RUNNING_STATES else None
        self.store.close_open_attempts("cancel", model.job_id)
        step(model, "cancel")
        self.store.append(model.job_id, "job.cancelled", stage)
        self._log.info("job cancelled", job_id=model.job_id, stage=stage)
        if self._on_cancelled is not None:
            try:
                self._on_cancelled(model.job_id, stage)
            except Exception:
                self._log.exception("on_cancelled callback raised", job_id=model.job_id)

    def _fail_if_crashing(self, job_id: str) -> bool:
        """Fail a job whose stage took the daemon down ``crash_limit`` times in a row; True if so."""
        stage, crashes = crash_streak(self.store.events(job_id))
        if stage is None or crashes < self.settings.daemon.crash_limit:
            return False
        model = self._restore(job_id)
        if model is None or model.state in TERMINAL_STATES:
            return False
        times = "twice" if crashes == 2 else f"{crashes} times"
        error = (f"this job crashed the daemon {times} in a row in the {stage} stage (the process died while the "
                 f"stage ran, with no progress in between), so it is not resumed again; most likely it ran out "
                 f"of memory (killed at the service's MemoryMax or by the kernel's out-of-memory killer)")
        try:
            self._fail(_Run(model=model, mode="resume"), stage, error, HINT_CRASHED, crashes=crashes)
        finally:
            remove(model)
        return True

    def _entered(self, model: JobModel, state: str) -> None:
        self._changed(model)

    def _changed(self, model: JobModel) -> None:
        if self._on_change is None:
            return
        active = sum(1 for run in self._runs.values() if run.active)
        waiting = len(self._runs) - active
        try:
            self._on_change(f"{active} running, {waiting} waiting; {model.job_id}: {model.state}")
        except Exception:
            self._log.exception("on_change callback raised")

    # --- plumbing -----------------------------------------------------------------------------

    def _context(self, run: _Run, name: str) -> JobContext:
        job_id = run.model.job_id
        job_dir = self.settings.jobs_dir / job_id
        sources = sorted(job_dir.glob("source.*"))
        store = self.store

        def note(message: str, **data: Any) -> None:
            store.append(job_id, "stage.note", name, message=message, **data)

        return JobContext(
            job_id=job_id,
            job_dir=job_dir,
            settings=self.settings,
            cache_dir=self.settings.cache_dir,
            source=sources[0] if sources else job_dir / "source",
            kind=run.model.kind,
            cancel=run.token,
            note=note,
            source_name=(store.job(job_id) or {}).get("source"),
        )

    @contextlib.asynccontextmanager
    async def _slot(self, resource: str | None) -> AsyncIterator[None]:
        semaphore = self._slots.get(resource) if resource else None
        if semaphore is None:
            yield
            return
        async with semaphore:
            yield

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        daemon = self.settings.daemon
        delay = min(daemon.retry_max_seconds, daemon.retry_base_seconds * 2 ** (attempt - 1))
        delay *= random.uniform(0.5, 1.0)  # jitter: jobs failing together do not retry together
        if retry_after is not None:
            delay = max(delay, min(float(retry_after), daemon.retry_max_seconds))
        return delay

    async def _in_thread(self, run: _Run, fn: Callable[..., Any], *args: Any, timeout: float | None = None,
                         name: str | None = None) -> Any:
        """Run ``fn`` in a worker thread; past ``timeout`` set the job's token and fail the stage.

        A stage run (``name`` given) gets a thread of its own rather than one of the pool's: a stage
        that ignores its token past a timeout then keeps only its own thread, never a worker the
        other jobs' short calls (fingerprints, manifests, delivery) wait for.

        Raises:
            StageTimedOut: the timeout passed (after the stage stopped, or a grace period).
        """
        loop = asyncio.get_running_loop()
        call = partial(contextvars.copy_context().run, fn, *args)
        if name is not None:
            future = _in_own_thread(loop, call, f"stage-{name}-{run.model.job_id}")
        else:
            future = loop.run_in_executor(self._executor, call)
        run.in_thread = True
        try:
            done, _ = await asyncio.wait({future}, timeout=timeout)
            if not done:
                if run.reason is None:
                    run.reason = "timeout"
                run.token.set()
                await asyncio.wait({future}, timeout=self.settings.daemon.shutdown_grace_seconds)
                future.add_done_callback(_consume)
                if run.reason == "timeout" or not future.done():
                    raise StageTimedOut(f"the {name} stage timed out after {timeout:g} s")
            if run.reason == "shutdown" and not run.delivering:
                # Record nothing more: the interrupted step reruns after the restart.
                future.add_done_callback(_consume)
                raise Cancelled("the daemon is stopping")
            return future.result()
        finally:
            run.in_thread = False


class _Progress:
    """The progress callback handed to ``Stage.run``: throttled ``stage.progress`` events.

    Called from the stage's thread. Writes the first call, a call reaching ``total``, and at most
    one call per ``interval`` seconds of ``clock``; :meth:`flush` writes the last one held back.
    The overall percent never goes down within an attempt. Once the job's token is set it raises
    :class:`Cancelled`, so a stage that reports progress stops even if it never checks the token.
    """

    def __init__(self, runner: Runner, run: _Run, stage: str, clock: Callable[[], float], interval: float):
        self._runner = runner
        self._run = run
        self._stage = stage
        self._clock = clock
        self._interval = interval
        self._lock = threading.Lock()
        self._last_at: float | None = None
        self._last: tuple[int, int] | None = None
        self._pending: tuple[int, int, str, float] | None = None
        self.written = 0
        self.closed = False  # set when the attempt ended: late calls from stray threads are dropped

    def __call__(self, current: int, total: int, message: str = "") -> None:
        if self._run.token.is_set():
            raise Cancelled(f"job {self._run.model.job_id} was cancelled")
        if self.closed:
            return
        with self._lock:
            percent = max(overall_percent(self._stage, current, total), self._run.percent)
            self._run.percent = percent
            now = self._clock()
            reached_end = total > 0 and current >= total
            due = self._last_at is None or now - self._last_at >= self._interval
            if (due or reached_end) and (current, total) != self._last:
                self._write(current, total, message, percent, now)
            else:
                self._pending = (current, total, message, percent)

    def flush(self) -> None:
        """Write the last progress call if throttling held it back."""
        with self._lock:
            if self._pending is not None and self._pending[:2] != self._last:
                current, total, message, percent = self._pending
                self._write(current, total, message, percent, self._clock())
            self._pending = None

    def _write(self, current: int, total: int, message: str, percent: float, now: float) -> None:
        self._runner.store.append(self._run.model.job_id, "stage.progress", self._stage, current=current,
                                  total=total, message=message, percent=percent)
        self._last_at, self._last, self._pending = now, (current, total), None
        self.written += 1


def _small(data: dict[str, Any], limit: int = 2000) -> dict[str, Any]:
    """A stage's result data when small enough for an event, else just its keys."""
    try:
        blob = json.dumps(data, default=str)
    except (TypeError, ValueError):
        return {"result_keys": sorted(map(str, data))}
    if len(blob) <= limit:
        return {"result": data} if data else {}
    return {"result_keys": sorted(map(str, data))}


def _in_own_thread(loop: asyncio.AbstractEventLoop, call: Callable[[], Any], name: str) -> asyncio.Future:
    """Run ``call`` in a new daemon thread; its outcome lands in the returned future on ``loop``.

    A daemon thread, so one stuck in a call that ignores its token cannot hold up the exit.
    """
    future: asyncio.Future = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            future.set_result(value) if ok else future.set_exception(value)

    def target() -> None:
        try:
            outcome = (True, call())
        except BaseException as exc:  # handed to the awaiting task, which sorts it
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed while the thread ran on
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


def _consume(future: Any) -> None:
    with contextlib.suppress(BaseException):
        future.exception()


def _disk_full(exc: BaseException) -> bool:
    """True for a full disk or quota: from our own writes (ENOSPC, EDQUOT) or a child's stderr."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "No space left on device" in str(exc)


def release_memory() -> None:
    """Hand memory a stage freed (frames, audio buffers) back to the system.

    A long-running daemon otherwise keeps the high-water mark of its biggest render: glibc keeps
    freed heap pages, and pyopenjtalk-plus keeps its Sudachi dictionary mapped. ``malloc_trim`` is glibc-only; elsewhere only the garbage collector runs.
    """
    release_dictionaries()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
