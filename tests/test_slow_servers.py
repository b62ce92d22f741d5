"""Every network wait is bounded and cancellable, in a live daemon against real slow sockets.

The daemon runs as a child process (tests/fixtures_service.py) with the real fetch and script
stages (tests/fixtures_slow.py:live_stages); the servers on 127.0.0.1 trickle one byte at a time
or never answer, and tell when the daemon hangs up. Loopback is private, so each daemon here opts
in with ``fetch.allow_private``. Nothing asserts wall-clock figures: the tests assert outcomes,
the order of events, and that every connection was closed by the daemon.
"""

from __future__ import annotations

import json
import threading
from contextlib import ExitStack
from pathlib import Path

import pytest

from stages.base import Cancelled, CancelToken
from stages.settings import load_settings
from tests.doubles.llm import ChatDouble, stall
from tests.doubles.voicevox import VoicevoxDouble
from tests.fixtures_service import CONFIG, ServiceDaemon, drop, wait_for
from tests.fixtures_slow import TrickleServer, wait_until

ONE_LINE_SCRIPT = "title: 一行\nsections:\n  - title: はじめに\n    narrations: [\"こんにちは。\"]\n"
FIXTURE_FACTORY = "tests.fixtures_service:service_stages"
LIVE_FACTORY = "tests.fixtures_slow:live_stages"


@pytest.fixture
def daemons():
    started: list[ServiceDaemon] = []
    yield started
    for daemon in started:
        if daemon.alive():
            daemon.kill9()


def live_daemon(home: Path, daemon: str = "", fetch: str = "", more: str = "") -> ServiceDaemon:
    """A daemon with the live stages; ``daemon``/``fetch`` are extra lines for those sections."""
    config = CONFIG.format(settle=0.2, cap=64 * 1024, rescan=0.5).replace(FIXTURE_FACTORY, LIVE_FACTORY)
    assert LIVE_FACTORY in config
    config += daemon + "\n[fetch]\nallow_private = true\nconnect_timeout = 5\n" + fetch + "\n" + more
    return ServiceDaemon(home, config=config)


def failed_error(daemon: ServiceDaemon, job_id: str) -> str:
    rows = daemon.query("SELECT json_extract(data, '$.error') FROM events WHERE job_id = ? AND kind = 'job.failed'",
                        (job_id,))
    return rows[0][0] if rows else ""


def terminal_seq(daemon: ServiceDaemon, job_id: str) -> tuple[int, str] | None:
    rows = daemon.query("SELECT seq, kind FROM events WHERE job_id = ? AND kind IN "
                        "('job.finished', 'job.failed', 'job.cancelled') ORDER BY seq LIMIT 1", (job_id,))
    return (rows[0][0], rows[0][1]) if rows else None


def test_ten_trickling_servers_do_not_hold_up_a_valid_job(tmp_path: Path, daemons) -> None:
    """Ten URLs that trickle a byte every 0.2 s, and a one-line script dropped after them: the
    script is delivered while slow jobs are still pending; every slow job that ended before it
    failed on fetch.total_timeout; in the end all ten fail on fetch.total_timeout (not the 120 s
    stage timeout), every connection was closed by the daemon, and the daemon is still up."""
    # Ten jobs of two 4 s attempts through four network slots: the slow jobs pend for 20 s or more.
    # The default two job slots: a fetch holds only a network slot, so none is taken by them.
    daemon = live_daemon(tmp_path / "home", fetch="read_timeout = 30\ntotal_timeout = 4\n")
    daemons.append(daemon)
    daemon.start()
    with ExitStack() as stack:
        servers = [stack.enter_context(TrickleServer(interval=0.2)) for _ in range(10)]
        for i, server in enumerate(servers):
            drop(daemon.home / "inbox", f"slow-{i}.url", server.url() + "\n")
        wait_for(lambda: all(daemon.job_of(f"slow-{i}.url") for i in range(10)), 60, "the slow jobs", daemon)
        drop(daemon.home / "inbox", "valid.yaml", ONE_LINE_SCRIPT)
        wait_for(lambda: daemon.job_of("valid.yaml") and daemon.state(daemon.job_of("valid.yaml")) == "done", 120,
                 "the valid script to be delivered", daemon)
        slow_ids = [daemon.job_of(f"slow-{i}.url") for i in range(10)]
        delivered_at = terminal_seq(daemon, daemon.job_of("valid.yaml"))[0]
        ended_before = [terminal_seq(daemon, job) for job in slow_ids]
        ended_before = [end for end in ended_before if end is not None and end[0] < delivered_at]
        assert len(ended_before) < 10, "the valid job waited for every slow one"
        assert all(kind == "job.failed" for _, kind in ended_before)

        wait_for(lambda: all(daemon.state(job) == "failed" for job in slow_ids), 180, "the slow jobs to fail", daemon)
        for job in slow_ids:
            assert "fetch.total_timeout" in failed_error(daemon, job), failed_error(daemon, job)
        wait_until(lambda: all(s.hung_up() == s.accepted() >= 1 for s in servers), 30, "every connection closed")
    assert list((daemon.home / "outbox").glob("*.mp4"))
    assert daemon.alive()
    assert daemon.stop() == 0


def test_stage_timeouts_free_their_threads(tmp_path: Path, daemons) -> None:
    """With the default two job slots, ten servers that outlast the fetch stage timeout each fail
    by that timeout, one after another: the timed-out stages leave no blocked thread behind (the
    issue's daemon wedged after eight), so the valid script dropped last is delivered too."""
    stage_timeouts = '[daemon.stage_timeout_seconds]\nfetch = 1.5\nscript = 600\naudio = 600\nslides = 600\nvideo = 600\n'
    daemon = live_daemon(tmp_path / "home", fetch="read_timeout = 600\ntotal_timeout = 600\n", more=stage_timeouts)
    daemons.append(daemon)
    daemon.start()
    with ExitStack() as stack:
        servers = [stack.enter_context(TrickleServer(interval=0.2)) for _ in range(10)]
        for i, server in enumerate(servers):
            drop(daemon.home / "inbox", f"slow-{i}.url", server.url() + "\n")
        wait_for(lambda: all(daemon.job_of(f"slow-{i}.url") for i in range(10)), 60, "the slow jobs", daemon)
        drop(daemon.home / "inbox", "valid.yaml", ONE_LINE_SCRIPT)
        wait_for(lambda: daemon.job_of("valid.yaml") and daemon.state(daemon.job_of("valid.yaml")) == "done", 240,
                 "the valid script to be delivered", daemon)
        slow_ids = [daemon.job_of(f"slow-{i}.url") for i in range(10)]
        wait_for(lambda: all(daemon.state(job) == "failed" for job in slow_ids), 60, "the slow jobs to fail", daemon)
        for job in slow_ids:
            assert "timed out" in failed_error(daemon, job), failed_error(daemon, job)
        wait_until(lambda: all(s.hung_up() == s.accepted() == 1 for s in servers), 30, "every connection closed")
    assert daemon.alive()
    assert daemon.stop() == 0


def test_cancel_during_fetch_through_the_cli(tmp_path: Path, daemons) -> None:
    """`moviegen cancel` while fetch is blocked on a trickling server: the job ends cancelled in
    fetch (not failed), the connection is closed, and the next job runs."""
    daemon = live_daemon(tmp_path / "home", daemon="max_jobs = 1\n", fetch="read_timeout = 600\ntotal_timeout = 600\n")
    daemons.append(daemon)
    daemon.start()
    with TrickleServer(interval=0.2) as slow:
        drop(daemon.home / "inbox", "slow.url", slow.url() + "\n")
        wait_until(lambda: slow.accepted() == 1 and slow.connections[0].sent > 0, 60, "the fetch to be reading")
        job = daemon.job_of("slow.url")
        assert daemon.cli("cancel", job).returncode == 0
        wait_for(lambda: daemon.state(job) == "cancelled", 60, "the cancel", daemon)
        wait_until(lambda: slow.hung_up() == 1, 30, "the connection to be closed")
    assert terminal_seq(daemon, job)[1] == "job.cancelled"
    assert daemon.query("SELECT stage FROM events WHERE job_id = ? AND kind = 'job.cancelled'", (job,)) == [("fetch",)]
    drop(daemon.home / "inbox", "valid.yaml", ONE_LINE_SCRIPT)
    wait_for(lambda: daemon.job_of("valid.yaml") and daemon.state(daemon.job_of("valid.yaml")) == "done", 120,
             "the next job (the only job slot is free)", daemon)
    assert daemon.stop() == 0


def test_cancel_during_an_llm_request_through_the_cli(tmp_path: Path, daemons) -> None:
    """`moviegen cancel` while the script stage waits for a model that never answers: the job ends
    cancelled in script, and the request's connection is closed."""
    with ChatDouble() as llm:
        llm.queue(stall())
        daemon = live_daemon(tmp_path / "home", more=(
            f'[script]\nwriter = "llm"\n[llm]\nbase_url = "{llm.base_url}"\nmodel = "m"\ntimeout = 600\n'))
        daemons.append(daemon)
        daemon.start()
        drop(daemon.home / "inbox", "article.md", "# 記事\n\n" + "本文の段落です。" * 20 + "\n")
        wait_until(lambda: llm.requests, 120, "the LLM request")
        job = daemon.job_of("article.md")
        assert daemon.cli("cancel", job).returncode == 0
        wait_for(lambda: daemon.state(job) == "cancelled", 60, "the cancel", daemon)
        wait_until(lambda: llm.hung_up == 1, 30, "the connection to be closed")
        assert daemon.query("SELECT stage FROM events WHERE job_id = ? AND kind = 'job.cancelled'", (job,)) == [("script",)]
        assert len(llm.requests) == 1
        assert daemon.stop() == 0


# --- in-process: image API and VOICEVOX ---------------------------------------------------------


def test_cancel_hangs_up_an_image_api_request(tmp_path: Path) -> None:
    """A cancel while the image API never answers ends generate_image with Cancelled (its timeout
    is far away) and closes the connection."""
    from stages.slides.image_api import generate_image

    cancel = CancelToken()
    outcome: list[BaseException] = []
    with TrickleServer(interval=None) as silent:
        api = load_settings(home=tmp_path, slides={"backend": "image-api", "image_api": {
            "base_url": f"http://127.0.0.1:{silent.port}/v1", "model": "m", "api_key": "k", "timeout": 600}}
        ).slides.image_api

        def ask() -> None:
            try:
                generate_image("a slide", api, cancel=cancel)
            except BaseException as exc:  # noqa: BLE001 (inspected below)
                outcome.append(exc)

        worker = threading.Thread(target=ask)
        worker.start()
        wait_until(lambda: silent.accepted() == 1, 30, "the request")
        cancel.set()
        worker.join(60)
        assert not worker.is_alive()
        wait_until(lambda: silent.hung_up() == 1, 30, "the connection to be closed")
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled), outcome


def test_voicevox_restart_is_outlasted_by_the_backoff(tmp_path: Path) -> None:
    """The engine is down when synthesis starts and comes back a little later: the backoff
    (voicevox.attempts, here scaled down) waits it out and the clip is made, with no error."""
    from stages.audio import generate_audio

    with VoicevoxDouble() as engine:
        settings = load_settings(home=tmp_path / "home", audio={"engine": "voicevox"}, voicevox={
            "url": engine.url, "timeout": 5, "attempts": 8, "retry_base_seconds": 0.05, "retry_max_seconds": 0.4})
        engine.stop()
        script = tmp_path / "s.yaml"
        script.write_text(ONE_LINE_SCRIPT, encoding="utf-8")
        restart = threading.Timer(0.5, engine.start)
        restart.start()
        try:
            index = json.loads(generate_audio(script, tmp_path / "out", settings).read_text("utf-8"))
        finally:
            restart.join()
    assert index["stats"]["synthesized"] == 1


def test_cancel_hangs_up_a_voicevox_synthesis(tmp_path: Path) -> None:
    """A cancel while the engine takes its time over a synthesis (far longer than the test may
    run) ends generate_audio with Cancelled: the request in flight is hung up."""
    from stages.audio import generate_audio

    cancel = CancelToken()
    outcome: list[BaseException] = []
    with VoicevoxDouble(synthesis_delay=600) as engine:
        settings = load_settings(home=tmp_path / "home", audio={"engine": "voicevox"},
                                 voicevox={"url": engine.url, "timeout": 600})
        script = tmp_path / "s.yaml"
        script.write_text(ONE_LINE_SCRIPT, encoding="utf-8")

        def speak() -> None:
            try:
                generate_audio(script, tmp_path / "out", settings, cancel=cancel)
            except BaseException as exc:  # noqa: BLE001 (inspected below)
                outcome.append(exc)

        worker = threading.Thread(target=speak)
        worker.start()
        wait_until(lambda: engine.calls("POST", "/synthesis"), 60, "the synthesis request")
        cancel.set()
        worker.join(60)
        assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled), outcome


def test_cancel_ends_the_wait_for_an_engine_that_is_down(tmp_path: Path) -> None:
    """The engine hangs up on every request (as one does while it restarts) and the backoff would
    wait five minutes before the next try: a cancel during that wait ends generate_audio with
    Cancelled (here, in the engine's preparation)."""
    import socket

    from stages.audio import generate_audio

    listener = socket.create_server(("127.0.0.1", 0))
    refused: list[int] = []

    def hang_up_on_everyone() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()
            refused.append(1)

    threading.Thread(target=hang_up_on_everyone, daemon=True).start()
    cancel = CancelToken()
    outcome: list[BaseException] = []
    settings = load_settings(home=tmp_path / "home", audio={"engine": "voicevox"}, voicevox={
        "url": f"http://127.0.0.1:{listener.getsockname()[1]}", "timeout": 5, "attempts": 6,
        "retry_base_seconds": 300, "retry_max_seconds": 300})
    script = tmp_path / "s.yaml"
    script.write_text(ONE_LINE_SCRIPT, encoding="utf-8")

    def speak() -> None:
        try:
            generate_audio(script, tmp_path / "out", settings, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 (inspected below)
            outcome.append(exc)

    worker = threading.Thread(target=speak)
    worker.start()
    try:
        wait_until(lambda: refused, 60, "the first try")
        cancel.set()
        worker.join(60)
        assert not worker.is_alive()
    finally:
        listener.close()
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled), outcome
    assert len(refused) == 1


# --- the pieces: the token's callbacks and the backoff's waits ---------------------------------


def test_cancel_token_calls_back_once_and_forgets_unregistered_callbacks() -> None:
    """A callback runs once when the token is set (at once if it already was); an unregistered
    one never runs."""
    token = CancelToken()
    calls: list[str] = []
    token.on_set(lambda: calls.append("a"))
    forget = token.on_set(lambda: calls.append("b"))
    forget()
    token.set()
    token.set()
    token.on_set(lambda: calls.append("late"))
    assert calls == ["a", "late"]
    assert token.is_set()


def test_backoff_doubles_honours_retry_after_and_caps_it() -> None:
    """Waits double from the base up to the cap; a server's Retry-After replaces the doubling but
    is capped too; a success ends the tries."""
    from stages.base import TransientError
    from stages.netwait import with_backoff

    errors = [TransientError("503"), TransientError("503"), TransientError("429", retry_after=999),
              TransientError("429", retry_after=0.001), TransientError("503")]
    waits: list[float] = []

    def call() -> str:
        if errors:
            raise errors.pop(0)
        return "ok"

    result = with_backoff(call, attempts=6, base_seconds=0.001, max_seconds=0.004,
                          on_retry=lambda attempt, delay, exc: waits.append(delay))
    assert result == "ok"
    assert waits == [0.001, 0.002, 0.004, 0.001, 0.004]
