"""Whether a daemon runs on a home: ``state/daemon.lock``, held with flock while it runs.

The daemon takes the lock exclusively for its whole life and writes its pid into the file. The
lock dies with the process (even on SIGKILL), so it is the one honest answer to "is the daemon
running?": a pid file alone can outlive its process. CLI commands ask :func:`daemon_pid`, which
never creates the file or the folders.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from typing import IO

LOCK_FILE = "daemon.lock"
# A CLI probe holds a shared lock for microseconds; a starting daemon waits this long for it.
_TAKE_TIMEOUT_SECONDS = 1.0


class AlreadyRunning(RuntimeError):
    """Another daemon holds the home's lock."""

    def __init__(self, home: Path, pid: int | None):
        self.home = home
        self.pid = pid
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"a moviegen daemon is already running on {home} ({who}); stop it first "
            f"(kill {pid or '<pid>'}, or systemctl stop moviegen) or choose another --home"
        )


def lock_path(state: Path) -> Path:
    """The lock file of a home's ``state/`` folder."""
    return Path(state) / LOCK_FILE


def hold_home_lock(state: Path, home: Path | None = None) -> IO[str]:
    """Take the lock for this process and write its pid; keep the returned file open.

    Raises:
        AlreadyRunning: another daemon holds it (its pid in the exception).
    """
    state = Path(state)
    state.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path(state), "a+")
    deadline = time.monotonic() + _TAKE_TIMEOUT_SECONDS
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            # Held: by a daemon, or for a moment by a CLI probe (the pid in the file may then be a
            # stale one), so try again briefly before believing it.
            if time.monotonic() >= deadline:
                holder = _read_pid(handle)
                handle.close()
                raise AlreadyRunning(home or state.parent, holder) from None
            time.sleep(0.05)
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def daemon_pid(state: Path) -> int | None:
    """The pid of the daemon running on this home, or None when none holds the lock.

    Read-only: a missing lock file means no daemon, and nothing is created. A daemon whose pid is
    not written yet counts as running (pid 0).
    """
    try:
        handle = open(lock_path(state), "r")
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(handle) or 0
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return None


def _read_pid(handle: IO[str]) -> int | None:
    try:
        handle.seek(0)
        text = handle.read().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
