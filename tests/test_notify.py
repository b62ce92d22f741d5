"""sd_notify through a real AF_UNIX datagram socket, from the library and from a running daemon."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from daemon.notify import Notifier, watchdog_interval
from tests.fixtures_service import ServiceDaemon, drop, wait_for


@pytest.fixture
def listener(tmp_path: Path):
    """A bound datagram socket standing in for systemd's notify socket (a path address)."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield str(path), sock
    sock.close()


def receive_all(sock: socket.socket, until: str, timeout: float = 20) -> list[str]:
    """Datagrams received until one contains ``until``."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            continue
        if until in got[-1]:
            return got
    raise AssertionError(f"no {until!r} within {timeout} s; got {got}")


def test_send_one_datagram_to_a_path_socket(listener) -> None:
    """One call is one datagram holding every field, one per line."""
    address, sock = listener
    notifier = Notifier(address)
    assert notifier.send(READY=1, STATUS="recovered 2 jobs")
    assert sock.recv(4096).decode() == "READY=1\nSTATUS=recovered 2 jobs"


def test_abstract_namespace_address() -> None:
    """``@name`` addresses the abstract namespace (a leading NUL byte)."""
    name = f"moviegen-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        assert Notifier("@" + name).watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_newlines_in_status_cannot_inject_fields(listener) -> None:
    """A status containing a newline stays one STATUS= line."""
    address, sock = listener
    Notifier(address).status("line one\nREADY=1")
    assert sock.recv(4096).decode() == "STATUS=line one READY=1"


def test_no_socket_is_a_no_op(tmp_path: Path) -> None:
    """Without $NOTIFY_SOCKET nothing is sent; a vanished socket is not an error."""
    assert not Notifier.from_environ({}).ready()
    assert not Notifier(str(tmp_path / "missing.sock")).ready()


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    """WATCHDOG_USEC=30 s gives a ping every 15 s; another process's watchdog is ignored."""
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None


def test_daemon_speaks_the_protocol(tmp_path: Path, listener) -> None:
    """A real daemon sends READY=1 after start, STATUS= on changes, WATCHDOG=1, and STOPPING=1."""
    address, sock = listener
    daemon = ServiceDaemon(tmp_path / "home", env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"})
    daemon.start()
    try:
        got = receive_all(sock, "READY=1")
        drop(daemon.home / "inbox", "a.md", "# A\n\ntext\n")
        got += receive_all(sock, ": done")
        job_id = wait_for(lambda: daemon.job_of("a.md"), 10, "the job", daemon)
        wait_for(lambda: daemon.state(job_id) == "done", 20, "the job to finish", daemon)
    finally:
        daemon.proc.send_signal(15)
        got_stop = receive_all(sock, "STOPPING=1")
        assert daemon.proc.wait(timeout=15) == 0
    got += got_stop
    assert any(msg.startswith("READY=1") for msg in got)
    assert "WATCHDOG=1" in got
    statuses = [m for m in got if m.startswith("STATUS=")]
    assert any(job_id in s for s in statuses)
    ready_at = next(i for i, m in enumerate(got) if m.startswith("READY=1"))
    assert ready_at < got.index("WATCHDOG=1"), "the watchdog is pinged only once ready"
    assert any(m.startswith("STOPPING=1") for m in got_stop)
