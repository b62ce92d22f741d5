"""The daemon process, and the two things the CLI runs without one (``make``, ``doctor``).

:class:`Daemon` wires the pieces: the event store, the runner, the inbox (watchdog + rescans),
the outbox, the CLI's request queue and systemd's notify socket, all on one asyncio loop::

    start:    folders → lock → check_log (damaged or foreign: exit 4, nothing claimed) → store →
              daemon.started → open attempts end (crash) → runner.recover() → unfinished claims → READY=1
    running:  inbox events/rescans → claim → runner.start_job; requests (cancel/retry) every 0.5 s;
              STATUS= on every state change; WATCHDOG=1 at half of $WATCHDOG_USEC
    SIGTERM:  STOPPING=1 → stop claiming → runner.shutdown(grace), open attempts end (shutdown) →
              daemon.stopped → exit

SIGKILL at any moment loses nothing: a claim is one rename, everything else is an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from daemon.events import damaged_while_running, is_damage
from daemon.inbox import URL_PATTERN, Inbox, InboxWatcher, new_job_id
from daemon.logs import get_logger
from daemon.lock import AlreadyRunning, hold_home_lock, lock_path
from daemon.notify import Notifier, watchdog_interval
from daemon.outbox import Outbox, job_metadata
from stages.base import InputError, JobContext, Stage, atomic_copy, atomic_write_text
from stages.pipeline import INPUT_KINDS, input_kind, stages_for

if TYPE_CHECKING:
    from stages.settings import Settings

REQUEST_POLL_SECONDS = 0.5
# `moviegen run` on a damaged or foreign event log; the unit's RestartPreventExitStatus= names it,
# so systemd does not restart into the same refusal every few seconds.
EXIT_DAMAGED_LOG = 4
GC_CHECK_SECONDS = 2.0  # how often the daemon asks whether a trim is due (after a job, or idle and daily)
VERSION = "0.1.0"
STRAGGLER_GRACE_SECONDS = 1.0  # at exit, for threads that are ending anyway (see run_daemon)


def load_stages(settings: "Settings") -> dict[str, Stage]:
    """The stages by name, from ``settings.daemon.stage_factory`` (``"module:function"``)."""
    module_name, _, func_name = settings.daemon.stage_factory.partition(":")
    if not func_name:
        raise ValueError(f"daemon.stage_factory must be 'module:function', got {settings.daemon.stage_factory!r}")
    factory = getattr(importlib.import_module(module_name), func_name)
    return dict(factory())


def prepare_home(settings: "Settings") -> None:
    """Create ``inbox/ outbox/ failed/ done/ state/jobs state/cache`` under the home."""
    for folder in (settings.inbox, settings.outbox, settings.failed, settings.done, settings.jobs_dir,
                   settings.cache_dir):
        folder.mkdir(parents=True, exist_ok=True)


# --- the daemon --------------------------------------------------------------------------------


class Daemon:
    """One running ``moviegen run``: construct, then ``await run()`` (or call :func:`run_daemon`)."""

    def __init__(self, settings: "Settings", *, notifier: Notifier | None = None, log: Any = None):
        self.settings = settings
        self.notifier = notifier or Notifier.from_environ()
        self.log = log or get_logger("moviegen.daemon")
        self.store: Any = None
        self.runner: Any = None
        self.inbox: Inbox | None = None
        self._stop: asyncio.Event | None = None
        self._lock: Any = None
        self._wake: asyncio.Event | None = None
        self._status = ""
        self._damaged = False  # the log was found damaged while running: exit EXIT_DAMAGED_LOG
        self._ended: set[str] = set()  # jobs delivered or failed since the last trim

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (or :meth:`request_stop`); return the exit code."""
        from daemon.events import DamagedLog, EventStore, check_log
        from daemon.runner import Runner

        loop = asyncio.get_running_loop()
        self._stop, self._wake = asyncio.Event(), asyncio.Event()
        prepare_home(self.settings)
        try:
            self._lock = hold_home_lock(self.settings.state, self.settings.home)
        except AlreadyRunning as exc:
            self.log.error("daemon.already_running", home=str(self.settings.home), pid=exc.pid,
                           lock=str(lock_path(self.settings.state)))
            print(f"moviegen: {exc}", file=sys.stderr, flush=True)
            return 1
        try:
            check_log(self.settings.db_path, self.settings.jobs_dir)
        except DamagedLog as exc:
            self._lock.close()
            return self._refuse_damaged_log(exc)
        self.store = EventStore(self.settings.db_path)
        outbox = Outbox(self.settings, store=self.store, log=self.log)
        self.runner = Runner(
            self.store,
            self.settings,
            load_stages(self.settings),
            deliver=self._after_job(outbox.deliver),
            on_failed=self._after_job(outbox.fail),
            on_cancelled=self._after_job(outbox.cancelled),
            on_change=self._on_change,
        )
        self.runner.warm_up()  # TTS workers and the like load while recovery runs and the inbox is watched
        self.inbox = Inbox(self.settings, self.store, log=self.log)
        self.store.append(None, "daemon.started", pid=os.getpid(), version=VERSION, home=str(self.settings.home))
        self.log.info("daemon.started", home=str(self.settings.home), pid=os.getpid())
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

        # Requests made while no daemon ran (cancel, retry) apply before recovery resumes the
        # jobs, so a cancelled job is recorded in the stage where it stopped, not rerun first.
        # Attempts a crash left open end first: a cancel waiting for this start must not claim them.
        self.store.close_open_attempts("crash")
        await self._apply_requests()
        await self.runner.recover()
        for job_id in self.inbox.recover():
            await self.runner.start_job(job_id)
        watcher = InboxWatcher(self.settings.inbox, lambda: loop.call_soon_threadsafe(self._wake.set),
                               complete=self.inbox.mark_complete)
        watcher.start()
        self.notifier.ready(self._summary())
        self.log.info("daemon.ready", status=self._summary())
        tasks = [
            asyncio.create_task(self._watch_inbox(), name="inbox"),
            asyncio.create_task(self._take_requests(), name="requests"),
            asyncio.create_task(self._ping_watchdog(), name="watchdog"),
            asyncio.create_task(self._trim_disk(), name="gc"),
        ]
        try:
            await self._stop.wait()
        finally:
            await self._shutdown(watcher, tasks)
        return EXIT_DAMAGED_LOG if self._damaged else 0

    def _refuse_damaged_log(self, exc: Exception) -> int:
        """Stop claiming: say why in the log, on stderr and in systemd's STATUS=; the exit code."""
        self.log.error("daemon.damaged_log", path=str(getattr(exc, "path", self.settings.db_path)),
                       problem=getattr(exc, "problem", str(exc)))
        self.notifier.status(f"stopped: the event log {getattr(exc, 'problem', 'is damaged')}; see the journal")
        print(f"moviegen: {exc}", file=sys.stderr, flush=True)
        self._damaged = True
        return EXIT_DAMAGED_LOG

    def request_stop(self) -> None:
        """Begin a clean shutdown (what SIGTERM does)."""
        if self._stop is not None:
            self._stop.set()

    # --- loops ---------------------------------------------------------------------------------

    async def _watch_inbox(self) -> None:
        assert self.inbox is not None and self._wake is not None
        rescan = self.settings.daemon.rescan_seconds
        while True:
            self._wake.clear()
            try:
                for job_id in self.inbox.poll():
                    await self.runner.start_job(job_id)
            except Exception as exc:  # an unreadable inbox must not end the watching
                if is_damage(exc):  # a damaged log must: stop before another file is claimed
                    self._refuse_damaged_log(damaged_while_running(self.settings.db_path, exc))
                    self.request_stop()
                    return
                self.log.error("inbox.poll_failed", error=repr(exc))
            due = self.inbox.next_due()
            timeout = rescan if due is None else min(rescan, due + 0.01)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def _take_requests(self) -> None:
        while True:
            await self._apply_requests()
            await asyncio.sleep(REQUEST_POLL_SECONDS)

    async def _apply_requests(self) -> None:
        for job_id, command in await asyncio.to_thread(self.store.take_requests):
            self.log.info("daemon.request", job_id=job_id, command=command)
            try:
                if command == "cancel":
                    self.runner.cancel(job_id)
                elif command == "retry":
                    await self.runner.retry(job_id)
            except Exception as exc:  # a bad request (unknown job, wrong state) is only logged
                self.log.warning("daemon.request_refused", job_id=job_id, command=command, error=str(exc))

    async def _trim_disk(self) -> None:
        """Collect garbage (:mod:`daemon.retention`) after each job, and when idle once per
        ``daemon.gc_interval_hours``; the first idle check after the start counts as due."""
        from daemon.retention import collect_garbage

        interval = self.settings.daemon.gc_interval_hours * 3600
        last: float | None = None
        while True:
            await asyncio.sleep(GC_CHECK_SECONDS)
            running = set(self.runner.running())
            ended = {job_id for job_id in set(self._ended) if job_id not in running}  # its end is recorded
            after_job = bool(ended)
            idle = not running and (self.inbox is None or not self.inbox.pending())
            now = time.monotonic()
            if not (after_job or (idle and (last is None or now - last >= interval))):
                continue
            self._ended -= ended
            last = now
            try:
                report = await asyncio.to_thread(collect_garbage, self.settings, self.store,
                                                 trigger="job" if after_job else "idle")
            except Exception as exc:  # a failed trim must not stop the daemon; the next one retries
                self.log.error("daemon.gc_failed", error=repr(exc))
                continue
            if report.removals:
                self.log.info("daemon.gc", **report.event_data())

    def _after_job(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """``callback(job_id, ...)`` (delivery or the failure note), then a disk trim due once the
        job's end is recorded."""

        def wrapped(job_id: str, *args: Any) -> Any:
            try:
                return callback(job_id, *args)
            finally:
                self._ended.add(job_id)

        return wrapped

    async def _ping_watchdog(self) -> None:
        interval = watchdog_interval()
        if interval is None:
            return
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    # --- callbacks -----------------------------------------------------------------------------

    def _on_change(self, status_line: str) -> None:
        self._status = status_line
        self.notifier.status(status_line)

    def _on_signal(self, sig: int) -> None:
        if self._stop is not None and self._stop.is_set():
            # A second signal while stopping: the user insists. Everything is in the log already,
            # but the attempts still running end as stopped, not as a crash the poison rule counts.
            self.log.warning("daemon.forced_exit", signal=signal.Signals(sig).name)
            with contextlib.suppress(Exception):
                self.store.close_open_attempts("shutdown")
            sys.stdout.flush()
            os._exit(1)
        self.log.info("daemon.stopping", signal=signal.Signals(sig).name)
        self.request_stop()

    def _summary(self) -> str:
        if self._status:
            return self._status
        running = len(self.runner.running()) if self.runner is not None else 0
        pending = self.inbox.pending() if self.inbox is not None else 0
        return f"ready: {running} running, {pending} settling in inbox"

    async def _shutdown(self, watcher: InboxWatcher, tasks: list[asyncio.Task]) -> None:
        self.notifier.stopping("stopping: finishing the current step")
        watcher.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        grace = self.settings.daemon.shutdown_grace_seconds
        try:
            await asyncio.wait_for(self.runner.shutdown(grace), grace + 1.0)
        except asyncio.TimeoutError:
            self.log.warning("daemon.shutdown_timeout", grace=grace)
        except Exception as exc:  # a damaged log may refuse the last writes: stop all the same
            if not is_damage(exc):
                raise
            self.log.error("daemon.stop_not_recorded", error=repr(exc))
        try:
            self.store.append(None, "daemon.stopped", pid=os.getpid())
        except Exception as exc:
            if not is_damage(exc):
                raise
            self.log.error("daemon.stop_not_recorded", error=repr(exc))
        self.log.info("daemon.stopped")
        self.store.close()
        self._lock.close()


def run_daemon(settings: "Settings") -> int:
    """Run the daemon in this process until it is stopped; return the exit code.

    Does not wait for stage threads that ignored cancellation: their job is recorded as stopped
    and resumes at the next start, so the process may leave without them.
    """
    loop = asyncio.new_event_loop()
    try:
        code = loop.run_until_complete(Daemon(settings).run())
    finally:
        loop.close()
    stragglers = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    # Threads that are only finishing (asyncio's executor, told to stop by loop.close()) get a
    # moment: leaving through os._exit skips the exit handlers, the TTS workers' shutdown among them.
    deadline = time.monotonic() + STRAGGLER_GRACE_SECONDS
    for thread in stragglers:
        thread.join(max(0.0, deadline - time.monotonic()))
    stragglers = [t for t in stragglers if t.is_alive()]
    if stragglers:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


# --- one job without a daemon ------------------------------------------------------------------

StageProgress = Callable[[str, int, int, str], None]
"""``progress(stage, current, total, message)`` for :func:`make_video`."""


def make_video(
    source: str,
    out: Path,
    settings: "Settings",
    progress: StageProgress | None = None,
    work_dir: Path | None = None,
) -> Path:
    """Make one video in this process, no daemon: SOURCE (a URL, article or script) → ``out``.

    Runs the stages of the source's kind in order in a temporary job folder (or ``work_dir``),
    then writes ``out``'s ``.srt`` and ``.json`` sidecar (the same metadata the daemon delivers:
    title, source, duration, chapters, credits) and, last, copies ``video.mp4`` to ``out``.

    Raises:
        InputError: the source is not a URL or an existing file of an accepted type.
        StageError and others: a stage failed.
    """
    stages = load_stages(settings)
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="moviegen-make-") as tmp:
        job_id = new_job_id()
        job_dir = Path(work_dir) if work_dir is not None else Path(tmp) / job_id
        job_dir.mkdir(parents=True, exist_ok=True)
        source_path, kind = _place_source(source, job_dir)
        job = JobContext(job_id=job_id, job_dir=job_dir, settings=settings, cache_dir=settings.cache_dir,
                         source=source_path, kind=kind,
                         source_name=None if kind == "url" else Path(source).name)  # notes name the user's file
        for name in stages_for(kind):
            report = (lambda c, t, m, _n=name: progress(_n, c, t, m)) if progress else (lambda c, t, m: None)
            stages[name].run(job, report)
            report(1, 1, "done")
        video = job_dir / "video.mp4"
        if not video.is_file():
            raise RuntimeError("the video stage finished without writing video.mp4")
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        files = {"video": out.name}
        if (job_dir / "video.srt").is_file():
            atomic_copy(job_dir / "video.srt", out.with_suffix(".srt"))
            files["subtitles"] = out.with_suffix(".srt").name
        url = source.strip() if kind == "url" else None
        meta = job_metadata(job_dir, job_id, {"name": url or Path(source).name, "kind": kind, "url": url})
        meta["files"] = files
        atomic_write_text(out.with_suffix(".json"), json.dumps(meta, ensure_ascii=False, indent=2) + "\n")
        atomic_copy(video, out)  # last, as the daemon does: when the video is there, so are its sidecars
    return out


def _place_source(source: str, job_dir: Path) -> tuple[Path, str]:
    if URL_PATTERN.fullmatch(source.strip()):
        path = job_dir / "source.url"
        path.write_text(source.strip() + "\n", encoding="utf-8")
        return path, "url"
    original = Path(source)
    if not original.is_file():
        raise InputError(f"{source}: not a URL and not a file")
    kind = input_kind(original)
    if kind is None:
        raise InputError(f"{original.name}: unknown file type; accepted: {', '.join(sorted(INPUT_KINDS))}")
    path = job_dir / f"source{original.suffix.lower()}"
    shutil.copyfile(original, path)
    return path, kind


# --- doctor ------------------------------------------------------------------------------------


@dataclass
class Check:
    """One line of ``moviegen doctor``: what was checked, whether it is fine, and details."""

    name: str
    ok: bool
    detail: str
    required: bool = True


def doctor(settings: "Settings") -> list[Check]:
    """What is configured and reachable: tools, fonts, voices, services, renderer."""
    checks = [
        _home_check(settings),
        _tool_check("ffmpeg", ["ffmpeg", "-hide_banner", "-version"]),
        _tool_check("ffprobe", ["ffprobe", "-hide_banner", "-version"]),
        _font_check(settings),
    ]
    engines = {settings.audio.engine, *(p.engine for p in settings.personas if p.engine)}
    if "openjtalk" in engines:
        found = importlib.util.find_spec("pyopenjtalk") is not None
        checks.append(Check("pyopenjtalk", found, "bundled Japanese voice" if found else "pip install pyopenjtalk-plus"))
    checks.append(_tool_check("espeak-ng", ["espeak-ng", "--version"], required="espeak" in engines))
    if "voicevox" in engines:
        checks.append(_http_check("voicevox", settings.voicevox.url.rstrip("/") + "/version", settings.voicevox.timeout))
    if settings.script.writer == "llm":
        checks.append(_http_check("llm", settings.llm.base_url.rstrip("/") + "/models", 10.0))
        has_key = bool(settings.llm.api_key and settings.llm.api_key.get_secret_value())
        checks.append(Check("llm api key", has_key, "set" if has_key else "missing (llm.api_key or llm.api_key_env)",
                            required=False))
    if settings.video.renderer == "remotion":  # opt-in: not a missing piece for anyone else
        checks += _remotion_checks(settings)
    return checks


def _home_check(settings: "Settings") -> Check:
    home = settings.home
    if home.exists():
        return Check("home", os.access(home, os.W_OK), f"{home} (exists)")
    # Not an error (`moviegen run` creates it), but the usual cause of an empty `status`.
    return Check("home", False, f"{home} does not exist yet: `moviegen run` creates it; the systemd service's "
                 "home is /var/lib/moviegen (use --home or MOVIEGEN_HOME to look there)", required=False)


def _tool_check(name: str, argv: list[str], required: bool = True) -> Check:
    path = shutil.which(argv[0])
    if path is None:
        return Check(name, False, "not found on PATH", required)
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=15)
        first = (out.stdout or out.stderr).strip().splitlines()[:1]
        return Check(name, out.returncode == 0, f"{path}: {first[0] if first else ''}", required)
    except (OSError, subprocess.SubprocessError) as exc:
        return Check(name, False, f"{path}: {exc}", required)


def _font_check(settings: "Settings") -> Check:
    try:
        out = subprocess.run(["fc-list", ":lang=ja", "family"], capture_output=True, text=True, timeout=15).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return Check("fonts (ja)", False, f"fc-list failed: {exc}")
    families = sorted({line.split(",")[0].strip() for line in out.splitlines() if line.strip()})
    wanted = settings.theme.font
    if not families:
        return Check("fonts (ja)", False, "no Japanese font: apt-get install fonts-noto-cjk")
    has_wanted = Path(wanted).is_file() or any(wanted.lower() in f.lower() for f in families)
    detail = f"{len(families)} families; theme.font {wanted!r} {'found' if has_wanted else 'NOT found'}"
    return Check("fonts (ja)", has_wanted, detail)


def _http_check(name: str, url: str, timeout: float) -> Check:
    import httpx

    try:
        response = httpx.get(url, timeout=min(timeout, 10.0))
    except httpx.HTTPError as exc:
        return Check(name, False, f"{url}: {type(exc).__name__}: {exc}")
    ok = response.status_code < 500
    return Check(name, ok, f"{url}: HTTP {response.status_code} {response.text[:60].strip()}")


def _remotion_checks(settings: "Settings") -> list[Check]:
    required = True
    try:
        module = importlib.import_module("stages.video.remotion")
        found = module.doctor_checks(settings)
    except (ImportError, AttributeError):
        return [Check("remotion", not required, "renderer not installed in this checkout", required)]
    except Exception as exc:  # a broken check must not hide the others
        return [Check("remotion", False, f"check failed: {exc}", required)]
    return [Check(f"remotion: {name}", bool(ok), str(detail), required) for name, ok, detail in found]


_SECRET_NAME = re.compile(r"key|token|secret|password", re.IGNORECASE)


def mask_secrets(data: Any) -> Any:
    """A copy of settings data with anything that looks like a secret masked."""
    if isinstance(data, dict):
        return {k: ("**********" if _SECRET_NAME.search(k) and not k.endswith("_env") and v else mask_secrets(v))
                for k, v in data.items()}
    if isinstance(data, list):
        return [mask_secrets(v) for v in data]
    return data
