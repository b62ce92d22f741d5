"""OpenJTalk in worker processes, so that phrases are synthesized on every core at once.

pyopenjtalk's HTS engine runs one synthesis at a time per process (threads do not help), so the
pool is made of processes: ``python -m stages.audio.jtalk_worker``, started with
:class:`subprocess.Popen` (fork+exec, safe in the daemon's threads), talking pickled frames over
their stdin and stdout. multiprocessing's ``spawn`` would re-run the parent's ``__main__`` (the
whole CLI) in every worker, tripling the start-up; a plain interpreter needs only numpy and
pyopenjtalk. One pool per process, created on first use and kept for the next jobs, shut down at
exit.

A worker never outlives its parent: when the parent dies, even by SIGKILL, the worker reads the
end of its stdin and exits; a thread in the worker also compares ``os.getppid()`` with the
parent's pid, in case someone else holds the pipe open. A worker that dies (a crash, the OOM
killer) breaks the pool: the phrases waiting fail with a :class:`~stages.base.TransientError` and
the next job starts a fresh pool.
"""

from __future__ import annotations

import atexit
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import IO, Any

import numpy as np

from stages.base import Cancelled, TransientError

_CANCEL_POLL_SECONDS = 0.1
_STOP_SECONDS = 5.0
_HEADER = struct.Struct("<Q")


class JTalkPool:
    """``size`` worker processes speaking with pyopenjtalk; :meth:`speak` is thread-safe.

    The workers start at once, in the background; :attr:`ready` tells when the first can speak.
    """

    def __init__(self, size: int):
        self.size = size
        self.created = time.monotonic()
        self.startup_seconds: float | None = None  # creation until a first worker is ready
        self.broken = False
        self.phrases = 0  # phrases spoken by the workers
        self._lock = threading.Lock()
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._workers = [_Worker(self) for _ in range(size)]

    @property
    def ready(self) -> bool:
        """Whether a worker has started (until then a phrase waits for the start-up)."""
        return self.startup_seconds is not None

    def speak(
        self, text: str, speed: float, half_tone: float, userdic: str | None, cancel: threading.Event | None
    ) -> tuple[np.ndarray, int]:
        """``pyopenjtalk.tts`` in a worker; the same samples the calling process would make.

        Raises:
            Cancelled: ``cancel`` was set while waiting (the phrase is withdrawn if not started).
            TransientError: a worker died; this pool is done, the next one is fresh.
        """
        call = _Call((text, speed, half_tone, userdic))
        self._calls.put(call)
        while True:
            if self.broken and call.future.cancel():
                raise TransientError(self._death())
            if cancel is not None and cancel.is_set():
                call.future.cancel()
                raise Cancelled("audio generation was cancelled")
            try:
                return call.future.result(timeout=_CANCEL_POLL_SECONDS)
            except FutureTimeout:
                continue
            except CancelledError as exc:  # withdrawn while queued: a worker died, or a shutdown
                if cancel is not None and cancel.is_set():
                    raise Cancelled("audio generation was cancelled") from exc
                raise TransientError(self._death()) from exc
            except _WorkerDied as exc:
                raise TransientError(self._death()) from exc

    def warm_up(self, timeout: float = 60.0) -> None:
        """Wait until every worker has started (loaded pyopenjtalk, its dictionary and voice)."""
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            if not worker.started.wait(max(0.0, deadline - time.monotonic())) or self.broken:
                raise TransientError(self._death())

    def pids(self) -> list[int]:
        """The worker processes' ids."""
        return sorted(worker.process.pid for worker in self._workers)

    def shutdown(self) -> None:
        """Withdraw waiting phrases, let running ones end, and stop the workers."""
        self.broken = True
        self._fail_waiting()
        for _ in self._workers:
            self._calls.put(None)
        deadline = time.monotonic() + _STOP_SECONDS
        for worker in self._workers:
            worker.stop(max(0.1, deadline - time.monotonic()))

    def _death(self) -> str:
        codes = [w.process.poll() for w in self._workers]
        dead = ", ".join(f"pid {w.process.pid} exit {c}" for w, c in zip(self._workers, codes) if c is not None)
        return (
            f"an OpenJTalk worker process died while speaking ({dead or 'stopped'}; killed, or out of memory?); "
            "the next try starts new workers"
        )

    def _started(self) -> None:
        with self._lock:
            if self.startup_seconds is None:
                self.startup_seconds = time.monotonic() - self.created

    def _spoken(self) -> None:
        with self._lock:
            self.phrases += 1

    def _break(self) -> None:
        self.broken = True
        self._fail_waiting()

    def _fail_waiting(self) -> None:
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                return
            if call is not None:
                call.future.cancel()


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
    """Whether a pool of ``size`` workers is alive and started (so costs no start-up)."""
    pool = _POOL
    return pool is not None and not pool.broken and pool.size == size and pool.ready


def shutdown_pool() -> None:
    """Stop the shared pool if there is one (registered with :mod:`atexit`)."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown()


atexit.register(shutdown_pool)


def write_frame(stream: IO[bytes], value: Any) -> None:
    """One pickled value, length first (the pipe protocol of pool and worker)."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """The next value :func:`write_frame` wrote; EOFError when the other side is gone."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the pipe closed")
    size = _HEADER.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the pipe closed mid-frame")
    return pickle.loads(data)


class _WorkerDied(Exception):
    pass


class _Call:
    def __init__(self, args: tuple):
        self.args = args
        self.future: Future = Future()


class _Worker:
    """One worker process and the thread in this process that feeds it phrases."""

    def __init__(self, pool: JTalkPool):
        self.pool = pool
        self.started = threading.Event()
        root = str(Path(__file__).resolve().parents[2])  # the folder holding the stages package
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stages.audio.jtalk_worker", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.thread = threading.Thread(target=self._serve, name=f"jtalk-{self.process.pid}", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        try:
            read_frame(stdout)  # "ready": pyopenjtalk and the voice are loaded
        except (EOFError, OSError, pickle.UnpicklingError):
            self.pool._break()
            self.started.set()
            return
        self.pool._started()
        self.started.set()
        while (call := self.pool._calls.get()) is not None:
            if not call.future.set_running_or_notify_cancel():
                continue
            try:
                write_frame(stdin, call.args)
                ok, value = read_frame(stdout)
            except (EOFError, OSError, ValueError, pickle.UnpicklingError) as exc:  # ValueError: stdin closed
                call.future.set_exception(_WorkerDied(str(exc)))
                self.pool._break()
                return
            if ok:
                self.pool._spoken()
                call.future.set_result(value)
            else:
                call.future.set_exception(value)

    def stop(self, timeout: float) -> None:
        try:
            self.process.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.thread.join(timeout)
        if not self.thread.is_alive():
            self.process.stdout.close()  # type: ignore[union-attr]
