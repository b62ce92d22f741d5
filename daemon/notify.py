"""The systemd notify protocol, in-house: one datagram to ``$NOTIFY_SOCKET`` per message.

``READY=1`` once recovery has run, ``STATUS=...`` on every state change, ``WATCHDOG=1`` on half of
``$WATCHDOG_USEC``, ``STOPPING=1`` on SIGTERM. Without ``$NOTIFY_SOCKET`` (not under systemd) every
call is a no-op, so the daemon runs the same in a terminal.
"""

from __future__ import annotations

import os
import socket
from typing import Mapping


class Notifier:
    """Sends sd_notify datagrams to one socket (a path, or an abstract ``@name``)."""

    def __init__(self, address: str | None):
        self.address = _socket_address(address) if address else None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> "Notifier":
        """A notifier for the socket systemd gave us (``$NOTIFY_SOCKET``), or a no-op one."""
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines as one datagram; True when it was sent.

        Example: ``notifier.send(READY=1, STATUS="recovered 2 jobs")``. Newlines in values are
        replaced, since the protocol is one assignment per line. Errors are swallowed: a missing
        service manager must never stop the daemon.
        """
        if self.address is None or not fields:
            return False
        lines = [f"{key}={str(value).replace(chr(10), ' ')}" for key, value in fields.items()]
        payload = "\n".join(lines).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, self.address)
        except OSError:
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (with a status line if given)."""
        return self.send(READY=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        """``STATUS=text``: what ``systemctl status`` shows."""
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: keep-alive for ``WatchdogSec=``."""
        return self.send(WATCHDOG=1)

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: the daemon is shutting down."""
        return self.send(STOPPING=1, **({"STATUS": status} if status else {}))


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC``, or None when unset.

    ``$WATCHDOG_PID``, when set, must be our pid; otherwise the watchdog is meant for another
    process and we stay quiet.
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    return value / 1_000_000 / 2


def _socket_address(address: str) -> str | bytes:
    # "@name" is Linux's abstract namespace: a leading NUL byte instead of the "@".
    if address.startswith("@"):
        return b"\0" + address[1:].encode("utf-8")
    return address
