"""Small real stages for the daemon's tests: they honour the Stage protocol like the real ones.

Each stage reads its input (the previous stage's output in the job folder, else the job's
source), does real work (hashing), reports progress, checks the cancellation token and writes
``<name>.txt`` atomically. The fingerprint covers the stage's version, a ``salt`` standing in for
the settings it reads, and the content hash of its input. Variants fail on purpose, wait on a
gate, or run a child process.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from pathlib import Path
from typing import Callable

from stages.base import (
    InputError,
    JobContext,
    Progress,
    StageResult,
    TransientError,
    atomic_write_text,
    file_hash_or_none,
    fingerprint_of,
)
from stages.pipeline import STAGE_ORDER
from stages.process import run_process

RESOURCES = {"fetch": "network", "script": "cpu", "audio": "tts", "slides": "cpu", "video": "render"}


def busy(kib: int) -> str:
    """Real CPU work without sleeping: hash ``kib`` KiB; returns the digest."""
    digest = hashlib.sha256()
    block = b"x" * 1024
    for _ in range(kib):
        digest.update(block)
    return digest.hexdigest()


class FileStage:
    """Reads its input, hashes it with some busy work, writes ``<name>.txt``.

    Attributes:
        runs: how many times ``run`` was called, per job id.
        salt: part of the fingerprint (change it to force a rerun).
    """

    def __init__(self, name: str, *, resource: str | None = None, steps: int = 4, work_kib: int = 16,
                 version: str = "1", salt: str = ""):
        self.name = name
        self.version = version
        self.resource = resource if resource is not None else RESOURCES.get(name, "cpu")
        self.steps = steps
        self.work_kib = work_kib
        self.salt = salt
        self.runs: Counter[str] = Counter()
        self._lock = threading.Lock()

    def input_path(self, job: JobContext) -> Path:
        """The previous stage's output when present, else the job's source."""
        index = STAGE_ORDER.index(self.name) if self.name in STAGE_ORDER else 0
        for previous in reversed(STAGE_ORDER[:index]):
            candidate = job.job_dir / f"{previous}.txt"
            if candidate.exists():
                return candidate
        return job.source

    def fingerprint(self, job: JobContext) -> str:
        return fingerprint_of(self.version, self.name, self.salt, file_hash_or_none(self.input_path(job)))

    def run(self, job: JobContext, progress: Progress) -> StageResult:
        with self._lock:
            self.runs[job.job_id] += 1
        self.before(job)
        source = self.input_path(job)
        if not source.exists():
            raise InputError(f"{source.name} is missing")
        text = source.read_text(encoding="utf-8", errors="replace")
        digest = ""
        for step in range(1, self.steps + 1):
            job.check_cancelled()
            digest = busy(self.work_kib)
            self.during(job, step)
            progress(step, self.steps, f"{self.name} {step}/{self.steps}")
        out = job.job_dir / f"{self.name}.txt"
        atomic_write_text(out, f"{self.name}({len(text)}:{digest[:8]})\n{text}")
        return StageResult(outputs=[Path(out.name)], data={"chars": len(text)})

    def before(self, job: JobContext) -> None:
        """Hook run first in ``run``; variants fail or wait here."""

    def during(self, job: JobContext, step: int) -> None:
        """Hook run at each step; variants fail or wait here."""


class GateStage(FileStage):
    """Waits, checking the token, until ``gate`` is set; ``entered`` is set when it starts waiting."""

    def __init__(self, name: str, **kwargs):
        super().__init__(name, **kwargs)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def before(self, job: JobContext) -> None:
        self.entered.set()
        while not self.gate.wait(0.01):
            job.check_cancelled()


class IgnoresCancelGate(GateStage):
    """Waits for its gate without ever looking at the token (a badly behaved stage)."""

    def before(self, job: JobContext) -> None:
        self.entered.set()
        self.gate.wait(30)


class FlakyStage(FileStage):
    """Raises TransientError on its first ``fail_times`` runs for each job."""

    def __init__(self, name: str, fail_times: int, retry_after: float | None = None, **kwargs):
        super().__init__(name, **kwargs)
        self.fail_times = fail_times
        self.retry_after = retry_after

    def before(self, job: JobContext) -> None:
        if self.runs[job.job_id] <= self.fail_times:
            raise TransientError(f"service unavailable (503), run {self.runs[job.job_id]}", self.retry_after)


class InputErrorStage(FileStage):
    """Rejects the input, like a script with a syntax error."""

    def before(self, job: JobContext) -> None:
        raise InputError("script.yaml line 3: mapping values are not allowed here")


class BuggyStage(FileStage):
    """Fails with a plain bug (ZeroDivisionError) in the middle of its work."""

    def during(self, job: JobContext, step: int) -> None:
        if step == 2:
            _ = step / 0


class FailUntilFixed(FileStage):
    """Fails with InputError while ``broken`` is True; a test repairs it, then retries."""

    def __init__(self, name: str, **kwargs):
        super().__init__(name, **kwargs)
        self.broken = True

    def before(self, job: JobContext) -> None:
        if self.broken:
            raise InputError("the voice 'nope' does not exist")


class ChildProcessStage(FileStage):
    """Runs ``sh`` with a grandchild ``sleep`` and waits on it (like node spawning chromium).

    ``child.pid`` and ``grandchild.pid`` in the job folder name the processes; ``entered`` is set
    once both files exist.
    """

    def __init__(self, name: str, seconds: float = 60, **kwargs):
        super().__init__(name, **kwargs)
        self.seconds = seconds
        self.entered = threading.Event()

    def before(self, job: JobContext) -> None:
        script = (f'sleep {self.seconds} & echo $! > "{job.job_dir}/grandchild.pid"; '
                  f'echo $$ > "{job.job_dir}/child.pid"; wait')
        watcher = threading.Thread(target=self._watch, args=(job.job_dir,), daemon=True)
        watcher.start()
        run_process(["sh", "-c", script], cancel=job.cancel, what="sh")

    def _watch(self, job_dir: Path) -> None:
        names = [job_dir / "child.pid", job_dir / "grandchild.pid"]
        while not all(path.exists() and path.read_text().endswith("\n") for path in names):
            threading.Event().wait(0.01)
        self.entered.set()


class NoteStage(FileStage):
    """Records a ``stage.note`` through the job's note callback."""

    def before(self, job: JobContext) -> None:
        job.note("slide 2 text was shortened", slide=2)


class ManyProgressStage(FileStage):
    """Reports ``calls`` progress updates, advancing ``tick`` (a fake clock) between calls."""

    def __init__(self, name: str, calls: int, tick: Callable[[], None], **kwargs):
        super().__init__(name, steps=0, **kwargs)
        self.calls = calls
        self.tick = tick

    def before(self, job: JobContext) -> None:
        for i in range(1, self.calls + 1):
            self.tick()
            job.check_cancelled()
            # A real renderer's counter can stall or jump back (re-encoding): percent must not.
            current = i - 3 if i % 10 == 0 and i < self.calls else i
            self._progress(current, self.calls, f"frame {current}")

    def run(self, job: JobContext, progress: Progress) -> StageResult:
        self._progress = progress
        return super().run(job, progress)


def pipeline(**replace: FileStage) -> dict[str, FileStage]:
    """Plain stages for every name in STAGE_ORDER, with some replaced: ``pipeline(audio=...)``."""
    stages: dict[str, FileStage] = {name: FileStage(name) for name in STAGE_ORDER}
    stages.update(replace)
    return stages


def submit(store, settings, job_id: str, kind: str = "url", text: str = "https://example.org/a\n") -> Path:
    """Place ``source.<ext>`` in a new job folder (as the inbox claim does) and record the submission."""
    ext = {"url": "url", "article": "md", "script": "yaml"}.get(kind, "bin")
    job_dir = settings.jobs_dir / job_id
    job_dir.mkdir(parents=True, exist_ok=True)
    source = job_dir / f"source.{ext}"
    source.write_text(text, encoding="utf-8")
    store.submit(job_id, f"{job_id}.{ext}", kind, sha256=hashlib.sha256(text.encode()).hexdigest())
    return job_dir


def slot_peaks(events: list[dict]) -> tuple[int, Counter]:
    """The most jobs holding a job slot at once (from their first stage past a network one to
    their end), and the most stages holding each resource at once."""
    jobs_running, peak_jobs = 0, 0
    in_job_slot: set[str] = set()
    holding: Counter = Counter()
    peak: Counter = Counter()
    open_stages: dict[tuple[str, str], str] = {}
    for event in events:
        kind = event["kind"]
        if kind in ("job.finished", "job.failed", "job.cancelled") and event["job_id"] in in_job_slot:
            in_job_slot.discard(event["job_id"])
            jobs_running -= 1
        elif kind == "stage.started":
            resource = event["data"]["resource"]
            if resource != "network" and event["job_id"] not in in_job_slot:
                in_job_slot.add(event["job_id"])
                jobs_running += 1
                peak_jobs = max(peak_jobs, jobs_running)
            open_stages[(event["job_id"], event["stage"])] = resource
            holding[resource] += 1
            peak[resource] = max(peak[resource], holding[resource])
        elif kind in ("stage.finished", "stage.failed") and (event["job_id"], event["stage"]) in open_stages:
            holding[open_stages.pop((event["job_id"], event["stage"]))] -= 1
    return peak_jobs, peak
