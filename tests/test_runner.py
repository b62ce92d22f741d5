"""The runner: real stages in threads, real SQLite, real job folders, real child processes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from daemon.events import EventStore, fold
from daemon.manifest import manifest_path, read_manifest
from daemon.runner import Runner
from stages.pipeline import KIND_STAGES, STAGE_ORDER
from stages.settings import Settings, load_settings
from tests.fixtures_stages import (
    BuggyStage,
    ChildProcessStage,
    FailUntilFixed,
    FileStage,
    FlakyStage,
    GateStage,
    IgnoresCancelGate,
    InputErrorStage,
    ManyProgressStage,
    NoteStage,
    pipeline,
    slot_peaks,
    submit,
)

REPO = Path(__file__).resolve().parents[1]


def make_settings(home: Path, **daemon) -> Settings:
    fast = {"retry_base_seconds": 0.01, "retry_max_seconds": 0.05, "progress_interval_seconds": 0.0,
            "shutdown_grace_seconds": 2.0}
    return load_settings(home=home, daemon={**fast, **daemon})


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def store(home: Path):
    s = EventStore(home / "state" / "moviegen.db")
    yield s
    # Whatever a test did, the projection must equal the fold of the log.
    assert {row["job_id"]: row for row in s.jobs()} == fold(s.events())
    s.close()


def kinds(store: EventStore, job_id: str) -> list[tuple[str, str | None]]:
    return [(e["kind"], e["stage"]) for e in store.events(job_id) if e["kind"] != "stage.progress"]


def started(store: EventStore, job_id: str) -> list[str]:
    return [e["stage"] for e in store.events(job_id, kinds=["stage.started"])]


async def until(predicate) -> None:
    """Poll the log until ``predicate()``; the pytest timeout bounds it."""
    while not predicate():
        await asyncio.sleep(0.01)


def run_jobs(store: EventStore, settings: Settings, stages: dict, job_kinds: dict[str, str], **runner_kw) -> Runner:
    async def main() -> Runner:
        runner = Runner(store, settings, stages, **runner_kw)
        for job_id, kind in job_kinds.items():
            submit(store, settings, job_id, kind)
            await runner.start_job(job_id)
        await runner.wait_idle()
        return runner

    return asyncio.run(main())


# --- the happy path ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["url", "article", "script"])
def test_job_runs_the_stages_of_its_kind(home: Path, store: EventStore, kind: str) -> None:
    """Each kind visits its stages in order, writes manifests, and delivers once."""
    settings = make_settings(home)
    delivered: list[str] = []
    changes: list[str] = []
    run_jobs(store, settings, pipeline(), {"j": kind},
             deliver=lambda job_id: delivered.append(job_id) or f"/outbox/{job_id}.mp4", on_change=changes.append)
    assert started(store, "j") == list(KIND_STAGES[kind])
    row = store.job("j")
    assert (row["state"], row["percent"], row["output"], row["attempts"]) == ("done", 100.0, "/outbox/j.mp4", 1)
    assert delivered == ["j"]
    assert any("j: done" in line for line in changes)
    for name in KIND_STAGES[kind]:
        manifest = read_manifest(settings.jobs_dir / "j", name)
        assert manifest["version"] == "1" and manifest["outputs"][0]["path"] == f"{name}.txt"
        assert manifest["outputs"][0]["size"] == (settings.jobs_dir / "j" / f"{name}.txt").stat().st_size
    finished = store.events("j", kinds=["stage.finished"])
    assert all(e["data"]["seconds"] >= 0 for e in finished)
    assert store.stage_durations()


def test_note_becomes_an_event(home: Path, store: EventStore) -> None:
    """A stage's note callback records stage.note with its data."""
    settings = make_settings(home)
    run_jobs(store, settings, pipeline(slides=NoteStage("slides")), {"j": "script"})
    notes = store.events("j", kinds=["stage.note"])
    assert [(n["stage"], n["data"]) for n in notes] == [
        ("slides", {"message": "slide 2 text was shortened", "slide": 2})]
    assert store.job("j")["state"] == "done"


# --- skipping through manifests ---------------------------------------------------------------


async def _interrupt_at_video(store: EventStore, settings: Settings, job_id: str) -> dict:
    """Run a job until its video stage is running, then stop the runner like a daemon shutdown."""
    stages = pipeline(video=GateStage("video"))
    runner = Runner(store, settings, stages)
    submit(store, settings, job_id, "url")
    await runner.start_job(job_id)
    await asyncio.to_thread(stages["video"].entered.wait, 30)
    await runner.shutdown(grace=5)
    return stages


def test_shutdown_leaves_the_job_for_recover(home: Path, store: EventStore) -> None:
    """Shutdown stops the running stage without a terminal event; recover resumes the job:
    finished stages are skipped through their manifests and the interrupted one reruns."""
    settings = make_settings(home)
    first = asyncio.run(_interrupt_at_video(store, settings, "j"))
    row = store.job("j")
    assert row["state"] == "video"
    assert not store.events("j", kinds=["job.cancelled", "job.failed", "stage.failed"])

    async def again() -> list[str]:
        stages = pipeline()
        runner = Runner(store, settings, stages)
        ids = await runner.recover()
        await runner.wait_idle()
        assert sum(stage.runs["j"] for stage in stages.values()) == 1  # only video ran
        return ids

    assert asyncio.run(again()) == ["j"]
    assert [e["stage"] for e in store.events("j", kinds=["stage.skipped"])] == list(STAGE_ORDER[:-1])
    assert started(store, "j") == [*STAGE_ORDER, "video"]
    assert store.job("j")["state"] == "done"
    assert all(first[name].runs["j"] == 1 for name in STAGE_ORDER)
    resumed = store.events("j", kinds=["job.started"])[-1]
    assert resumed["data"]["resumed"] is True and resumed["stage"] == "fetch"


def test_changed_output_and_fingerprint_rerun(home: Path, store: EventStore) -> None:
    """An output with a different size reruns its stage; a changed fingerprint reruns too,
    and a downstream stage whose input content is unchanged still skips."""
    settings = make_settings(home)
    asyncio.run(_interrupt_at_video(store, settings, "j"))
    job_dir = settings.jobs_dir / "j"
    script_txt = job_dir / "script.txt"
    script_txt.write_text(script_txt.read_text() + "extra")  # same fingerprint, wrong size

    async def again() -> dict:
        stages = pipeline(audio=FileStage("audio", salt="a new voice"))  # a settings change
        runner = Runner(store, settings, stages)
        await runner.recover()
        await runner.wait_idle()
        return stages

    stages = asyncio.run(again())
    ran = {name for name, stage in stages.items() if stage.runs["j"]}
    assert ran == {"script", "audio", "video"}
    assert [e["stage"] for e in store.events("j", kinds=["stage.skipped"])] == ["fetch", "slides"]
    assert store.job("j")["state"] == "done"


def test_torn_manifest_counts_as_missing(home: Path, store: EventStore) -> None:
    """A manifest that is not valid JSON makes its stage rerun rather than crash."""
    settings = make_settings(home)
    asyncio.run(_interrupt_at_video(store, settings, "j"))
    manifest_path(settings.jobs_dir / "j", "audio").write_text('{"fingerprint": ')

    async def again() -> dict:
        stages = pipeline()
        runner = Runner(store, settings, stages)
        await runner.recover()
        await runner.wait_idle()
        return stages

    stages = asyncio.run(again())
    assert {name for name, stage in stages.items() if stage.runs["j"]} == {"audio", "video"}


CRASH_SCRIPT = """
import asyncio, sys
from pathlib import Path
from daemon.events import EventStore
from daemon.runner import Runner
from stages.settings import load_settings
from tests.fixtures_stages import GateStage, pipeline

settings = load_settings(home=Path(sys.argv[1]), daemon={"progress_interval_seconds": 0})
store = EventStore(settings.db_path)

async def main():
    runner = Runner(store, settings, pipeline(video=GateStage("video")))
    await runner.start_job("j")
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_sigkill_mid_stage_loses_nothing(home: Path, store: EventStore) -> None:
    """A process killed with SIGKILL mid-render leaves a log that recover() finishes from."""
    settings = make_settings(home)
    submit(store, settings, "j", "url")
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(home)], cwd=REPO)
    try:
        asyncio.run(until(lambda: "video" in started(store, "j")))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert store.job("j")["state"] == "video"

    async def again() -> dict:
        stages = pipeline()
        runner = Runner(store, settings, stages)
        assert await runner.recover() == ["j"]
        await runner.wait_idle()
        return stages

    stages = asyncio.run(again())
    assert {name for name, stage in stages.items() if stage.runs["j"]} == {"video"}
    assert [e["stage"] for e in store.events("j", kinds=["stage.skipped"])] == list(STAGE_ORDER[:-1])
    assert len(store.events("j", kinds=["job.finished"])) == 1
    assert store.job("j")["state"] == "done"


# --- errors -----------------------------------------------------------------------------------


def test_transient_errors_retry_then_succeed(home: Path, store: EventStore) -> None:
    """Each transient failure is a stage.failed with its attempt and backoff, then success."""
    settings = make_settings(home, retry_attempts=3)
    stages = pipeline(audio=FlakyStage("audio", fail_times=2))
    run_jobs(store, settings, stages, {"j": "url"})
    failures = store.events("j", kinds=["stage.failed"])
    assert [(f["stage"], f["data"]["attempt"], f["data"]["transient"]) for f in failures] == [
        ("audio", 1, True), ("audio", 2, True)]
    assert all(0 < f["data"]["retry_in"] <= 0.05 for f in failures)
    assert started(store, "j").count("audio") == 3
    finished = store.events("j", kinds=["stage.finished"])
    assert [f["data"]["attempt"] for f in finished if f["stage"] == "audio"] == [3]
    row = store.job("j")
    assert (row["state"], row["error"]) == ("done", None)


def test_transient_errors_exhaust_attempts(home: Path, store: EventStore) -> None:
    """After the last attempt the job fails with a hint to retry, and on_failed hears of it."""
    settings = make_settings(home, retry_attempts=3)
    failed: list[tuple] = []
    run_jobs(store, settings, pipeline(fetch=FlakyStage("fetch", fail_times=10)), {"j": "url"},
             on_failed=lambda *args: failed.append(args))
    attempts = [(f["data"]["attempt"], f["data"]["retry_in"]) for f in store.events("j", kinds=["stage.failed"])]
    assert [a for a, _ in attempts] == [1, 2, 3]
    assert attempts[-1][1] is None
    job_failed = store.events("j", kinds=["job.failed"])[0]["data"]
    assert job_failed["stage"] == "fetch" and "503" in job_failed["error"]
    assert "moviegen retry" in job_failed["hint"]
    assert failed == [("j", "fetch", job_failed["error"])]
    assert store.job("j")["state"] == "failed"


def test_retry_after_is_honoured(home: Path, store: EventStore) -> None:
    """A server's Retry-After sets the wait (within retry_max_seconds)."""
    settings = make_settings(home, retry_attempts=2, retry_max_seconds=5.0)
    run_jobs(store, settings, pipeline(fetch=FlakyStage("fetch", fail_times=1, retry_after=0.3)), {"j": "url"})
    failure = store.events("j", kinds=["stage.failed"])[0]
    assert failure["data"]["retry_in"] == pytest.approx(0.3, abs=0.001)
    assert store.job("j")["state"] == "done"


def test_input_error_fails_at_once(home: Path, store: EventStore) -> None:
    """InputError is not retried: one attempt, the stage's message, a hint to fix the input."""
    settings = make_settings(home, retry_attempts=5)
    stages = pipeline(script=InputErrorStage("script"))
    run_jobs(store, settings, stages, {"j": "script"})
    assert stages["script"].runs["j"] == 1
    assert kinds(store, "j")[-2:] == [("stage.failed", "script"), ("job.failed", "script")]
    data = store.events("j", kinds=["job.failed"])[0]["data"]
    assert data == {"stage": "script", "error": "script.yaml line 3: mapping values are not allowed here",
                    "hint": "fix the input and drop it again"}
    assert stages["audio"].runs["j"] == 0


def test_bug_keeps_the_traceback(home: Path, store: EventStore) -> None:
    """Any other exception fails the job with its type, message and traceback in the event."""
    settings = make_settings(home)
    run_jobs(store, settings, pipeline(slides=BuggyStage("slides")), {"j": "script"})
    failure = store.events("j", kinds=["stage.failed"])[0]["data"]
    assert failure["error"] == "ZeroDivisionError: division by zero"
    assert "fixtures_stages.py" in failure["traceback"] and "during" in failure["traceback"]
    assert store.job("j")["error"] == "ZeroDivisionError: division by zero"


def test_missing_stage_and_unknown_kind_fail_clearly(home: Path, store: EventStore) -> None:
    """A stage that is not installed, or an input kind nobody knows, fails the job, not the runner."""
    settings = make_settings(home)
    stages = pipeline()
    del stages["slides"]
    run_jobs(store, settings, stages, {"a": "script", "b": "pdf", "c": "script"})
    assert "no stage named 'slides'" in store.job("a")["error"]
    assert "unknown input kind 'pdf'" in store.job("b")["error"]
    assert store.job("c")["state"] == "failed"


def test_delivery_failure_then_retry(home: Path, store: EventStore) -> None:
    """A failing deliver fails the job at stage "deliver"; retry skips the render and delivers."""
    settings = make_settings(home)
    outcomes = iter([OSError("outbox is read-only"), "/outbox/j.mp4"])

    def deliver(job_id: str) -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    stages = pipeline()

    async def main() -> None:
        runner = Runner(store, settings, stages, deliver=deliver)
        submit(store, settings, "j", "script")
        await runner.start_job("j")
        await runner.wait_idle()
        assert store.job("j")["stage"] == "deliver"
        assert await runner.retry("j")
        await runner.wait_idle()

    asyncio.run(main())
    assert "OSError: outbox is read-only" in store.events("j", kinds=["job.failed"])[0]["data"]["error"]
    assert stages["video"].runs["j"] == 1
    assert [e["stage"] for e in store.events("j", kinds=["stage.skipped"])] == ["video"]
    assert store.job("j")["output"] == "/outbox/j.mp4"


# --- timeouts and cancellation ----------------------------------------------------------------


@pytest.mark.parametrize("stage_cls", [GateStage, IgnoresCancelGate])
def test_stage_timeout(home: Path, store: EventStore, stage_cls) -> None:
    """A stage past its timeout has its token set and the job fails saying so,
    even when the stage ignores the token."""
    settings = make_settings(home, stage_timeout_seconds={"audio": 0.3}, shutdown_grace_seconds=0.3)
    stages = pipeline(audio=stage_cls("audio"))
    try:
        run_jobs(store, settings, stages, {"j": "script"})
    finally:
        stages["audio"].gate.set()
    failure = store.events("j", kinds=["stage.failed"])[0]
    assert failure["stage"] == "audio" and failure["data"]["timeout"] is True
    assert "timed out after 0.3 s" in failure["data"]["error"]
    assert store.job("j")["state"] == "failed"
    assert stages["slides"].runs["j"] == 0


def test_cancel_mid_stage(home: Path, store: EventStore) -> None:
    """cancel() sets the token; the running stage stops; the job ends cancelled."""
    settings = make_settings(home)
    stages = pipeline(audio=GateStage("audio"))

    async def main() -> None:
        runner = Runner(store, settings, stages)
        submit(store, settings, "j", "url")
        await runner.start_job("j")
        await asyncio.to_thread(stages["audio"].entered.wait, 30)
        assert runner.running() == ["j"]
        assert runner.cancel("j") is True
        await runner.wait_idle()
        assert runner.cancel("j") is False  # nothing left to cancel

    asyncio.run(main())
    assert kinds(store, "j")[-3:] == [("stage.started", "audio"), ("stage.interrupted", "audio"),
                                      ("job.cancelled", "audio")]
    assert store.events("j", kinds=["stage.interrupted"])[0]["data"]["reason"] == "cancel"
    assert store.job("j")["state"] == "cancelled"
    assert stages["slides"].runs["j"] == 0


def _alive(pid: int) -> bool:
    """True when the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_cancel_kills_child_processes(home: Path, store: EventStore) -> None:
    """Cancelling a stage that waits on a child kills the child and its own children."""
    settings = make_settings(home)
    stages = pipeline(video=ChildProcessStage("video"))
    job_dir = settings.jobs_dir / "j"

    async def main() -> list[int]:
        runner = Runner(store, settings, stages)
        submit(store, settings, "j", "script")
        await runner.start_job("j")
        await asyncio.to_thread(stages["video"].entered.wait, 30)
        pids = [int((job_dir / name).read_text()) for name in ("child.pid", "grandchild.pid")]
        assert all(_alive(pid) for pid in pids)
        assert runner.cancel("j")
        await runner.wait_idle()
        return pids

    pids = asyncio.run(main())
    deadline = time.monotonic() + 10  # the group was SIGKILLed; give the kernel a moment to reap
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(_alive(pid) for pid in pids)
    assert store.job("j")["state"] == "cancelled"


def test_cancel_waiting_job_at_once(home: Path, store: EventStore) -> None:
    """A job waiting for a job slot is cancelled on the spot and never starts."""
    settings = make_settings(home, max_jobs=1)
    stages = pipeline(script=GateStage("script"))

    async def main() -> None:
        runner = Runner(store, settings, stages)
        for job_id in ("a", "b"):
            submit(store, settings, job_id, "script")
            await runner.start_job(job_id)
        await asyncio.to_thread(stages["script"].entered.wait, 30)
        assert runner.cancel("b")
        assert store.job("b")["state"] == "cancelled"  # recorded before anything else runs
        stages["script"].gate.set()
        await runner.wait_idle()

    asyncio.run(main())
    assert kinds(store, "b") == [("job.submitted", None), ("job.cancelled", None)]
    assert store.job("a")["state"] == "done"


def test_retry_resumes_at_the_failed_stage(home: Path, store: EventStore) -> None:
    """After a failure, retry starts again at the failed stage; earlier stages do not rerun."""
    settings = make_settings(home)
    stages = pipeline(slides=FailUntilFixed("slides"))

    async def main() -> None:
        runner = Runner(store, settings, stages)
        submit(store, settings, "j", "url")
        await runner.start_job("j")
        await runner.wait_idle()
        assert store.job("j")["state"] == "failed"
        assert not await runner.retry("nope")
        stages["slides"].broken = False
        assert await runner.retry("j")
        await runner.wait_idle()
        assert not await runner.retry("j")  # done jobs are not retried

    asyncio.run(main())
    runs = {name: stage.runs["j"] for name, stage in stages.items()}
    assert runs == {"fetch": 1, "script": 1, "audio": 1, "slides": 2, "video": 1}
    after = kinds(store, "j")[[k for k, _ in kinds(store, "j")].index("job.retry_scheduled"):]
    assert after[:3] == [("job.retry_scheduled", "slides"), ("job.started", "slides"), ("stage.started", "slides")]
    row = store.job("j")
    assert (row["state"], row["attempts"], row["error"]) == ("done", 2, None)


def test_retry_a_cancelled_job(home: Path, store: EventStore) -> None:
    """A cancelled job can be retried from where it stopped."""
    settings = make_settings(home)
    stages = pipeline(audio=GateStage("audio"))

    async def main() -> None:
        runner = Runner(store, settings, stages)
        submit(store, settings, "j", "url")
        await runner.start_job("j")
        await asyncio.to_thread(stages["audio"].entered.wait, 30)
        runner.cancel("j")
        await runner.wait_idle()
        stages["audio"].gate.set()
        assert await runner.retry("j")
        await runner.wait_idle()

    asyncio.run(main())
    assert store.job("j")["state"] == "done"
    assert started(store, "j") == ["fetch", "script", "audio", "audio", "slides", "video"]


# --- concurrency ------------------------------------------------------------------------------


def test_fifty_jobs_respect_max_jobs_and_slots(home: Path, store: EventStore) -> None:
    """50 jobs all finish exactly once; the log's timeline never exceeds max_jobs or a slot."""
    slots = {"render": 1, "tts": 1, "network": 4, "cpu": 2}
    settings = make_settings(home, max_jobs=2, slots=slots, progress_interval_seconds=1.0)
    job_kinds = {f"j{i:02d}": ("url", "article", "script")[i % 3] for i in range(50)}
    run_jobs(store, settings, pipeline(audio=FlakyStage("audio", fail_times=1)), job_kinds)
    events = store.events()
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    finished = Counter(e["job_id"] for e in events if e["kind"] == "job.finished")
    assert finished == Counter({job_id: 1 for job_id in job_kinds})
    peak_jobs, peak = slot_peaks(events)
    assert peak_jobs == 2
    assert all(peak[resource] <= slots[resource] for resource in peak)
    assert peak["render"] == 1 and peak["tts"] == 1


def test_audio_runs_while_another_job_renders(home: Path, store: EventStore) -> None:
    """Job B synthesizes audio while job A holds the render slot; B then waits for render."""
    settings = make_settings(home, max_jobs=2)
    stages = pipeline(video=GateStage("video"))

    async def main() -> None:
        runner = Runner(store, settings, stages)
        submit(store, settings, "a", "script")
        await runner.start_job("a")
        await asyncio.to_thread(stages["video"].entered.wait, 30)
        submit(store, settings, "b", "script")
        await runner.start_job("b")
        await until(lambda: store.events("b", kinds=["stage.finished"]) and
                    store.events("b", kinds=["stage.finished"])[-1]["stage"] == "slides")
        assert sorted(runner.running()) == ["a", "b"]
        assert "video" not in started(store, "b")  # render slot is taken
        stages["video"].gate.set()
        await runner.wait_idle()

    asyncio.run(main())
    events = store.events()
    seq = {(e["job_id"], e["kind"], e["stage"]): e["seq"] for e in events}
    assert seq[("a", "stage.started", "video")] < seq[("b", "stage.finished", "audio")] \
        < seq[("a", "stage.finished", "video")] < seq[("b", "stage.started", "video")]


def test_a_job_waiting_on_a_server_holds_no_job_slot(home: Path, store: EventStore) -> None:
    """With one job slot, a URL job stuck in its fetch does not keep a script job out: the script
    is delivered while the fetch still waits, and the URL job takes the slot afterwards."""
    settings = make_settings(home, max_jobs=1)
    stages = pipeline(fetch=GateStage("fetch"))

    async def main() -> None:
        runner = Runner(store, settings, stages)
        submit(store, settings, "slow", "url")
        await runner.start_job("slow")
        await asyncio.to_thread(stages["fetch"].entered.wait, 30)
        submit(store, settings, "ready", "script")
        await runner.start_job("ready")
        await until(lambda: store.job("ready")["state"] == "done")
        assert store.job("slow")["state"] == "fetch"
        stages["fetch"].gate.set()
        await runner.wait_idle()

    asyncio.run(main())
    assert store.job("slow")["state"] == "done"
    peak_jobs, peak = slot_peaks(store.events())
    assert peak_jobs == 1


# --- progress ---------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 0.01) -> None:
        self.now += seconds


def test_progress_is_throttled_and_monotonic(home: Path, store: EventStore) -> None:
    """1,000 progress calls over 10 s of clock give the first, the last and about one a second;
    the overall percent never goes back even when the stage's counter does."""
    clock = FakeClock()
    settings = make_settings(home, progress_interval_seconds=1.0)
    stages = pipeline(video=ManyProgressStage("video", calls=1000, tick=clock.tick))
    run_jobs(store, settings, stages, {"j": "script"}, clock=clock)
    video = [e["data"] for e in store.events("j", kinds=["stage.progress"]) if e["data"]["total"] == 1000]
    assert 10 <= len(video) <= 12
    assert video[0]["current"] == 1 and video[-1]["current"] == 1000
    percents = [e["data"]["percent"] for e in store.events("j", kinds=["stage.progress", "stage.started",
                                                                        "stage.finished", "job.finished"])]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert store.job("j")["percent"] == 100.0


def test_unthrottled_progress_writes_every_change(home: Path, store: EventStore) -> None:
    """With no interval each distinct call is an event: throttling is what keeps rows down."""
    clock = FakeClock()
    settings = make_settings(home, progress_interval_seconds=0.0)
    run_jobs(store, settings, pipeline(video=ManyProgressStage("video", calls=50, tick=clock.tick)),
             {"j": "script"}, clock=clock)
    video = [e for e in store.events("j", kinds=["stage.progress"]) if e["data"]["total"] == 50]
    assert len(video) == 50


# --- waiting jobs: backoff ----------------------------------------------------------------------


def _first_failure_then(store: EventStore, settings: Settings, action) -> None:
    """Start a job whose fetch keeps failing with a long backoff; once waiting, run ``action``."""
    stages = pipeline(fetch=FlakyStage("fetch", fail_times=10))

    async def main() -> None:
        runner = Runner(store, settings, stages)
        submit(store, settings, "j", "url")
        await runner.start_job("j")
        await until(lambda: store.events("j", kinds=["stage.failed"]))
        await action(runner)
        await runner.wait_idle()

    asyncio.run(main())


def test_cancel_during_backoff(home: Path, store: EventStore) -> None:
    """A job sleeping before its next attempt is cancelled at once."""
    settings = make_settings(home, retry_base_seconds=60, retry_max_seconds=60)

    async def cancel(runner: Runner) -> None:
        assert runner.cancel("j")

    _first_failure_then(store, settings, cancel)
    assert kinds(store, "j")[-2:] == [("stage.failed", "fetch"), ("job.cancelled", "fetch")]


def test_shutdown_during_backoff_keeps_the_job(home: Path, store: EventStore) -> None:
    """Shutdown while a job waits to retry records nothing terminal; recover finishes it."""
    settings = make_settings(home, retry_base_seconds=60, retry_max_seconds=60)

    async def stop(runner: Runner) -> None:
        await runner.shutdown(grace=5)

    _first_failure_then(store, settings, stop)
    assert store.job("j")["state"] == "fetch"

    async def again() -> None:
        runner = Runner(store, settings, pipeline())
        assert await runner.recover() == ["j"]
        await runner.wait_idle()

    asyncio.run(again())
    assert store.job("j")["state"] == "done"
    assert not store.events("j", kinds=["job.cancelled", "job.failed"])


# --- network waits and cancel requests ----------------------------------------------------------


class RequestsCancelStage(FileStage):
    """Files a `moviegen cancel` request for its own job and returns at once: a stage shorter
    than the daemon's request poll."""

    def __init__(self, name: str, store: EventStore, **kwargs):
        super().__init__(name, **kwargs)
        self.store = store

    def before(self, job) -> None:
        self.store.request(job.job_id, "cancel")


def test_cancel_request_is_honoured_before_the_next_stage(home: Path, store: EventStore) -> None:
    """A cancel requested during a short stage stops the job before its next stage starts (no
    request poller runs here at all: the runner looks before each stage), and is taken."""
    settings = make_settings(home)
    run_jobs(store, settings, pipeline(script=RequestsCancelStage("script", store)), {"j": "url"})
    assert started(store, "j") == ["fetch", "script"]
    assert kinds(store, "j")[-1] == ("job.cancelled", "audio")
    assert store.take_requests() == []


def _real_fetch_pipeline() -> dict:
    from stages.fetch import FetchStage

    return pipeline(fetch=FetchStage())


def _trickle_settings(home: Path, **daemon):
    return load_settings(home=home, fetch={"allow_private": True, "read_timeout": 600, "total_timeout": 600},
                         daemon={"retry_base_seconds": 0.01, "retry_max_seconds": 0.05, "progress_interval_seconds": 0.0,
                                 "shutdown_grace_seconds": 600.0, **daemon})


def test_cancel_during_fetch_ends_cancelled_and_hangs_up(home: Path, store: EventStore) -> None:
    """A cancel while the real fetch stage is blocked on a trickling server ends the job
    ``cancelled`` (not failed), and the connection is closed. Every timeout and the shutdown grace
    are far away, so only the hang-up can have freed the worker thread."""
    from tests.fixtures_slow import TrickleServer

    settings = _trickle_settings(home)

    async def main(slow: TrickleServer) -> None:
        runner = Runner(store, settings, _real_fetch_pipeline())
        submit(store, settings, "j", "url", text=slow.url() + "\n")
        await runner.start_job("j")
        await until(lambda: slow.accepted() == 1 and slow.connections[0].sent > 0)
        assert runner.cancel("j")
        await runner.wait_idle()
        await until(lambda: slow.hung_up() == 1)

    with TrickleServer(interval=0.2) as slow:
        asyncio.run(main(slow))
    assert store.job("j")["state"] == "cancelled"
    assert kinds(store, "j")[-1] == ("job.cancelled", "fetch")
    assert not store.events("j", kinds=["job.failed"])


def test_stage_timeout_hangs_up_and_frees_the_slot(home: Path, store: EventStore) -> None:
    """A fetch past its stage timeout fails with the timeout, its connection is closed, and the
    single network slot goes to the next job, whose fetch then succeeds."""
    from tests.fixtures_slow import TrickleServer

    settings = _trickle_settings(home, max_jobs=2, slots={"network": 1},
                                 stage_timeout_seconds={"fetch": 1.0, "script": 600, "audio": 600, "slides": 600,
                                                        "video": 600})
    with TrickleServer(interval=0.2) as slow, _ArticleServer() as good:
        async def main() -> None:
            runner = Runner(store, settings, _real_fetch_pipeline())
            submit(store, settings, "slow", "url", text=slow.url() + "\n")
            await runner.start_job("slow")
            await until(lambda: slow.accepted() == 1)
            submit(store, settings, "good", "url", text=good.url + "\n")
            await runner.start_job("good")
            await runner.wait_idle()

        asyncio.run(main())
        assert slow.hung_up() == 1
    assert store.job("slow")["state"] == "failed"
    failed = store.events("slow", kinds=["job.failed"])[0]["data"]
    assert "timed out" in failed["error"]
    assert store.job("good")["state"] == "done"
    seq = {(e["job_id"], e["kind"], e["stage"]): e["seq"] for e in store.events()}
    assert seq[("slow", "job.failed", "fetch")] < seq[("good", "stage.started", "fetch")]


class _ArticleServer:
    """A plain, fast web server with one article page."""

    def __enter__(self) -> "_ArticleServer":
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        body = ("<html><head><title>Fast page</title></head><body><article><h1>Fast page</h1>"
                + "<p>This page answers at once, with enough text to count as an article body.</p>" * 8
                + "</article></body></html>").encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/article"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class StuckForSome(IgnoresCancelGate):
    """Ignores its token until the gate opens, but only for jobs whose id starts with ``stuck``."""

    def before(self, job) -> None:
        if job.job_id.startswith("stuck"):
            self.entered.set()
            self.gate.wait(600)


def test_stages_that_ignore_a_timeout_do_not_wedge_other_jobs(home: Path, store: EventStore) -> None:
    """Eight jobs whose audio stage ignores its token time out one after another; their threads
    stay stuck (more of them than the runner's pool has workers), yet the next job still runs
    every stage and is delivered: a stage run never occupies a pool worker."""
    timeouts = {"fetch": 600, "script": 600, "audio": 0.3, "slides": 600, "video": 600}
    settings = make_settings(home, max_jobs=1, stage_timeout_seconds=timeouts, shutdown_grace_seconds=0.1)
    stuck = StuckForSome("audio")
    job_kinds = {**{f"stuck-{i}": "script" for i in range(8)}, "good": "script"}
    try:
        run_jobs(store, settings, pipeline(audio=stuck), job_kinds)
    finally:
        stuck.gate.set()
    assert [store.job(f"stuck-{i}")["state"] for i in range(8)] == ["failed"] * 8
    assert all("timed out" in store.job(f"stuck-{i}")["error"] for i in range(8))
    assert store.job("good")["state"] == "done"
