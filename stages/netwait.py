"""Network waits that end when they should: hang-ups on cancel or deadline, cancellable backoff.

A thread blocked in a socket read does not look at the job's cancellation token, and httpx's
timeouts are per read, so a server that trickles a byte now and then keeps the thread (and the
stage's slot) for as long as it likes. :class:`Hangup` fixes both from the outside: it learns the
sockets of an httpx client's connections through httpcore's ``trace`` request extension, and when
the token is set or a deadline passes it shuts them down (``shutdown(SHUT_RDWR)``, which wakes a
blocked ``poll``/``recv`` at once, unlike ``close``). The blocked call then raises a transport
error, which the caller turns into :class:`~stages.base.Cancelled` or its own timeout error by
asking :attr:`Hangup.reason`.

:func:`with_backoff` retries a call that raised :class:`~stages.base.TransientError`, waiting
``base * 2**n`` seconds (capped, ``Retry-After`` honoured up to the cap) on the cancel token, so a
cancel also ends the wait between attempts.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any, Callable, Iterator, TypeVar

from stages.base import Cancelled, TransientError

T = TypeVar("T")

_POLL_SECONDS = 0.05  # how often a plain threading.Event (not a CancelToken) is looked at


class Hangup:
    """Hangs up the connections of one httpx client when told to, a token is set or time is up.

    Pass :attr:`extensions` with every request of the client, so each new connection is known.
    Once hung up it stays so: a connection made afterwards is shut down as soon as it is known.
    """

    def __init__(self) -> None:
        self.reason: str | None = None  # "cancel" | "deadline" once hung up
        self._streams: list[Any] = []
        self._lock = threading.Lock()

    @property
    def extensions(self) -> dict[str, Any]:
        """The request extensions that let this object see the client's connections."""
        return {"trace": self._trace}

    @property
    def cancelled(self) -> bool:
        """True when the connections were hung up because the token was set."""
        return self.reason == "cancel"

    @property
    def expired(self) -> bool:
        """True when the connections were hung up because the deadline passed."""
        return self.reason == "deadline"

    def hang_up(self, reason: str) -> None:
        """Shut down every connection now (the first reason given is kept)."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
            streams = list(self._streams)
        for stream in streams:
            _shutdown(stream)

    @contextlib.contextmanager
    def watch(self, cancel: threading.Event | None = None, deadline: float | None = None) -> Iterator["Hangup"]:
        """Within the block, hang up when ``cancel`` is set or at ``deadline`` (``time.monotonic``).

        A :class:`~stages.base.CancelToken` calls back at once; a plain ``threading.Event`` is
        looked at every 50 ms by a helper thread.
        """
        stops: list[Callable[[], None]] = []
        if cancel is not None:
            on_set = getattr(cancel, "on_set", None)
            if on_set is not None:
                stops.append(on_set(lambda: self.hang_up("cancel")))
            else:
                stops.append(self._poll(cancel))
        if deadline is not None:
            timer = threading.Timer(max(0.0, deadline - time.monotonic()), self.hang_up, ("deadline",))
            timer.daemon = True
            timer.start()
            stops.append(timer.cancel)
        try:
            yield self
        finally:
            for stop in stops:
                stop()

    def _poll(self, cancel: threading.Event) -> Callable[[], None]:
        done = threading.Event()

        def loop() -> None:
            while not done.is_set():
                if cancel.wait(_POLL_SECONDS):
                    self.hang_up("cancel")
                    return

        threading.Thread(target=loop, name="hangup-poll", daemon=True).start()
        return done.set

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        # httpcore names the events "connection.connect_tcp.complete" and
        # "connection.start_tls.complete"; the TLS stream wraps the same socket under a new object.
        if not event.endswith((".connect_tcp.complete", ".start_tls.complete")):
            return
        stream = info.get("return_value")
        if stream is None:
            return
        with self._lock:
            self._streams = [s for s in self._streams if _socket_of(s) is not None] + [stream]
            hung_up = self.reason is not None
        if hung_up:
            _shutdown(stream)


def with_backoff(
    call: Callable[[], T],
    *,
    attempts: int,
    base_seconds: float,
    max_seconds: float,
    cancel: threading.Event | None = None,
    on_retry: Callable[[int, float, TransientError], None] | None = None,
) -> T:
    """``call()``, tried up to ``attempts`` times while it raises :class:`TransientError`.

    The n-th wait is ``base_seconds * 2**(n-1)``, or the error's ``retry_after``, capped at
    ``max_seconds``. The last error is raised again with the number of attempts in its message.

    Raises:
        Cancelled: ``cancel`` was set during a wait.
    """
    attempts = max(1, attempts)
    for attempt in range(1, attempts + 1):
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled while retrying")
        try:
            return call()
        except TransientError as exc:
            if attempt == attempts:
                if attempts == 1:
                    raise
                raise TransientError(f"{exc} (gave up after {attempts} attempts)", retry_after=exc.retry_after) from exc
            delay = exc.retry_after if exc.retry_after is not None else base_seconds * 2 ** (attempt - 1)
            delay = min(max(0.0, delay), max_seconds)
            if on_retry is not None:
                on_retry(attempt, delay, exc)
            if cancel is not None:
                if cancel.wait(delay):
                    raise Cancelled("cancelled while waiting to retry") from exc
            else:
                time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def backoff_total(attempts: int, base_seconds: float, max_seconds: float) -> float:
    """Seconds :func:`with_backoff` waits in all when every attempt fails (no Retry-After)."""
    return sum(min(base_seconds * 2 ** (n - 1), max_seconds) for n in range(1, max(1, attempts)))


def _socket_of(stream: Any) -> socket.socket | None:
    try:
        sock = stream.get_extra_info("socket")
    except Exception:
        return None
    if not isinstance(sock, socket.socket) or sock.fileno() < 0:
        return None
    return sock


def _shutdown(stream: Any) -> None:
    sock = _socket_of(stream)
    if sock is None:
        return
    try:
        # The plain socket method, also for an SSLSocket: its own shutdown() drops the SSL object
        # under the reading thread's feet; the TCP shutdown makes that read fail cleanly.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed or never connected: nothing to hang up
