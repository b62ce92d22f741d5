"""OpenJTalk in worker processes, so that phrases are synthesized on every core at once.

pyopenjtalk's HTS engine runs one synthesis at a time per process (threads do not help), so the
pool is made of processes: ``spawn``ed, never forked, because the daemon has threads. One pool
per process, created on first use and kept for the next jobs (starting a worker costs about a
second: an interpreter, numpy, pyopenjtalk and its dictionary); it is shut down at exit.

A worker never outlives its parent: a thread in each worker compares ``os.getppid()`` with the
parent's pid twice a second and ends the worker when they differ (the parent was killed, even by
SIGKILL). ``PR_SET_PDEATHSIG`` would not do: it fires when the *thread* that spawned the worker
ends, and the pool spawns workers from whichever stage thread submits first.

A worker that dies (a crash, the OOM killer) breaks the pool: the phrases in flight fail with a
:class:`~stages.base.TransientError` and the next job starts a fresh pool.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from stages.base import Cancelled, TransientError

_PARENT_POLL_SECONDS = 0.5
_CANCEL_POLL_SECONDS = 0.1


class JTalkPool:
    """``size`` worker processes speaking with pyopenjtalk; :meth:`speak` is thread-safe."""

    def __init__(self, size: int):
        self.size = size
        self.created = time.monotonic()
        self.startup_seconds: float | None = None  # creation to the first finished phrase
        self._executor = ProcessPoolExecutor(
            max_workers=size,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )
        self.broken = False
        self.phrases = 0  # phrases spoken by the workers
        self._count_lock = threading.Lock()

    def speak(
        self, text: str, speed: float, half_tone: float, userdic: str | None, cancel: threading.Event | None
    ) -> tuple[np.ndarray, int]:
        """``pyopenjtalk.tts`` in a worker; the same samples the calling process would make.

        Raises:
            Cancelled: ``cancel`` was set while waiting (the phrase is withdrawn if not started).
            TransientError: a worker died; this pool is done, the next one is fresh.
        """
        from stages.audio.openjtalk import speak

        try:
            future: Future = self._executor.submit(speak, text, speed, half_tone, userdic)
            while True:
                try:
                    result = future.result(timeout=_CANCEL_POLL_SECONDS)
                    break
                except FutureTimeout:
                    if cancel is not None and cancel.is_set():
                        future.cancel()
                        raise Cancelled("audio generation was cancelled") from None
        except BrokenProcessPool as exc:
            self.broken = True
            raise TransientError(
                "an OpenJTalk worker process died while speaking (killed, or out of memory?); "
                "the next try starts new workers"
            ) from exc
        except RuntimeError as exc:  # submit after shutdown (the process is exiting)
            if "shutdown" not in str(exc):
                raise
            self.broken = True
            raise TransientError(f"the OpenJTalk workers are shut down: {exc}") from exc
        with self._count_lock:
            self.phrases += 1
            if self.startup_seconds is None:
                self.startup_seconds = time.monotonic() - self.created
        return result

    def warm_up(self) -> None:
        """Start every worker now (each loads pyopenjtalk and its dictionary) and wait for them."""
        seen: set[int] = set()
        for _ in range(20):  # a worker still starting leaves the calls to the ready ones: ask again
            seen.update(f.result() for f in [self._executor.submit(_ready, 0.1) for _ in range(self.size)])
            if len(seen) >= self.size:
                break
        if self.startup_seconds is None:
            self.startup_seconds = time.monotonic() - self.created

    def pids(self) -> list[int]:
        """The worker processes' ids (those started so far)."""
        return sorted((self._executor._processes or {}).keys())

    def shutdown(self) -> None:
        """Withdraw queued phrases, let running ones end, and stop the workers."""
        self.broken = True
        self._executor.shutdown(wait=True, cancel_futures=True)


_POOL: JTalkPool | None = None
_POOL_LOCK = threading.Lock()


def shared_pool(size: int) -> JTalkPool:
    """The process's pool of ``size`` workers: the live one, else a new one (see the module doc)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None and (_POOL.broken or _POOL.size != size):
            old, _POOL = _POOL, None
            old.shutdown()
        if _POOL is None:
            _POOL = JTalkPool(size)
        return _POOL


def warm_pool(size: int) -> bool:
    """Whether a pool of ``size`` workers is alive and has already spoken (so costs no start-up)."""
    pool = _POOL
    return pool is not None and not pool.broken and pool.size == size and pool.startup_seconds is not None


def shutdown_pool() -> None:
    """Stop the shared pool if there is one (registered with :mod:`atexit`)."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown()


atexit.register(shutdown_pool)


# --- in the worker --------------------------------------------------------------------------------


def _init_worker(parent_pid: int) -> None:
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()
    from stages.audio.openjtalk import speak

    speak("あ", 1.0, 0.0, None)  # loads pyopenjtalk, MeCab's dictionary and the voice


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_POLL_SECONDS)
    os._exit(1)


def _ready(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()
