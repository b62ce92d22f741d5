"""Hostile web servers on 127.0.0.1 for the bounded-wait tests: they trickle or stall, never finish.

:class:`TrickleServer` is a raw-socket HTTP/1.1 server: for every request it sends a ``200`` with
a large ``Content-Length`` (or none: a body that ends at the close) and then one byte every
``interval`` seconds, or nothing at all (``interval=None``: headers never come). It notices when
the client hangs up (its FIN or RST), so a test can check that a cancelled or timed-out client
really closed the connection rather than leaving a thread blocked on it.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass


@dataclass
class Connection:
    """One accepted connection: how many body bytes went out, and whether the client hung up."""

    number: int
    sent: int = 0
    hung_up: bool = False


class TrickleServer:
    """A server that never finishes an answer; use as a context manager."""

    def __init__(self, interval: float | None = 0.5, length: int | None = 1_000_000, give_up: float = 600.0):
        """
        Args:
            interval: seconds between body bytes; None sends no answer at all.
            length: the Content-Length announced; None announces none (the body ends at the close).
            give_up: the server's own bound on one connection, so a broken test ends anyway.
        """
        self.interval = interval
        self.length = length
        self.give_up = give_up
        self.connections: list[Connection] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def url(self, path: str = "/page") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> "TrickleServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def hung_up(self) -> int:
        """How many connections the client has closed."""
        with self._lock:
            return sum(1 for c in self.connections if c.hung_up)

    def accepted(self) -> int:
        with self._lock:
            return len(self.connections)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                record = Connection(number=len(self.connections) + 1)
                self.connections.append(record)
            threading.Thread(target=self._serve, args=(conn, record), daemon=True).start()

    def _serve(self, conn: socket.socket, record: Connection) -> None:
        end = time.monotonic() + self.give_up
        with conn:
            request = b""
            while b"\r\n\r\n" not in request and time.monotonic() < end and not self._stop.is_set():
                if not self._readable(conn, 0.05):
                    continue
                data = conn.recv(65536)
                if not data:
                    self._mark(record)
                    return
                request += data
            if self.interval is not None:
                head = "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                head += f"Content-Length: {self.length}\r\n" if self.length is not None else "Connection: close\r\n"
                try:
                    conn.sendall((head + "\r\n").encode() + b"<html><body><p>")
                except OSError:
                    self._mark(record)
                    return
            next_byte = time.monotonic()
            while time.monotonic() < end and not self._stop.is_set():
                if self._readable(conn, 0.05):
                    try:
                        gone = conn.recv(1) == b""
                    except OSError:
                        gone = True
                    if gone:
                        self._mark(record)
                        return
                if self.interval is not None and time.monotonic() >= next_byte:
                    try:
                        conn.sendall(b"x")
                    except OSError:
                        self._mark(record)
                        return
                    record.sent += 1
                    next_byte += self.interval

    @staticmethod
    def _readable(conn: socket.socket, timeout: float) -> bool:
        try:
            readable, _, _ = select.select([conn], [], [], timeout)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _mark(self, record: Connection) -> None:
        with self._lock:
            record.hung_up = True


def wait_until(predicate, timeout: float, what: str) -> None:
    """Poll ``predicate`` every 20 ms; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def live_stages() -> dict:
    """The stage factory of the live-daemon tests: the real fetch and script stages (their network
    waits are what is tested), the small fixture stages for audio, slides and video."""
    from stages.fetch import FetchStage
    from stages.script import ScriptStage
    from tests.fixtures_service import FixtureStage

    return {"fetch": FetchStage(), "script": ScriptStage(),
            **{name: FixtureStage(name) for name in ("audio", "slides", "video")}}
