"""Child processes (ffmpeg, node, espeak-ng) that die with their job.

Every child is started in its own session, so cancelling kills its whole process group
(Chromium under node included). Arguments are a list: user text never passes through a shell.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from stages.base import Cancelled, StageError


class ProcessError(StageError):
    """A child process exited non-zero; ``stderr_tail`` holds its last lines."""

    def __init__(self, message: str, returncode: int, stderr_tail: str):
        super().__init__(f"{message} (exit {returncode}): {stderr_tail[-2000:]}")
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class ProcessTimeout(StageError):
    """A child process ran past its time limit and was killed."""


def run_process(
    args: Sequence[str | os.PathLike],
    *,
    cancel: threading.Event | None = None,
    timeout: float | None = None,
    on_line: Callable[[str], None] | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin_bytes: bytes | None = None,
    what: str | None = None,
) -> str:
    """Run a child to completion, streaming stdout lines to ``on_line``; return its stderr.

    Raises:
        Cancelled: ``cancel`` was set; the process group was killed.
        ProcessTimeout: ``timeout`` seconds passed; the process group was killed.
        ProcessError: the child exited non-zero.
    """
    name = what or Path(str(args[0])).name
    proc = subprocess.Popen(
        [str(a) for a in args],
        stdin=subprocess.PIPE if stdin_bytes is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,
    )
    stderr_chunks: list[bytes] = []
    err_reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()), daemon=True)
    err_reader.start()
    if stdin_bytes is not None:
        threading.Thread(target=_feed, args=(proc, stdin_bytes), daemon=True).start()
    out_reader = threading.Thread(target=_pump, args=(proc, on_line), daemon=True)
    out_reader.start()
    deadline = time.monotonic() + timeout if timeout else None
    try:
        while proc.poll() is None:
            if cancel is not None and cancel.is_set():
                kill_group(proc)
                raise Cancelled(f"{name} was cancelled")
            if deadline is not None and time.monotonic() > deadline:
                kill_group(proc)
                raise ProcessTimeout(f"{name} ran longer than {timeout:.0f} s and was stopped")
            try:
                proc.wait(timeout=0.05)  # returns as soon as the child exits, unlike a sleep
            except subprocess.TimeoutExpired:
                pass
    except BaseException:
        kill_group(proc)
        raise
    finally:
        out_reader.join(timeout=5)
        err_reader.join(timeout=5)
        for stream in (proc.stdout, proc.stderr, proc.stdin):
            if stream is not None:
                stream.close()
    stderr = b"".join(stderr_chunks).decode("utf-8", "replace")
    if proc.returncode != 0:
        raise ProcessError(f"{name} failed", proc.returncode, stderr)
    return stderr


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group and reap the child."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _pump(proc: subprocess.Popen, on_line: Callable[[str], None] | None) -> None:
    assert proc.stdout is not None
    for raw in proc.stdout:
        if on_line is not None:
            try:
                on_line(raw.decode("utf-8", "replace").rstrip("\n"))
            except Exception:  # a bad progress line must not kill the reader
                pass


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except (BrokenPipeError, ValueError):
        pass
