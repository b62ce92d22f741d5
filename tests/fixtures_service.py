"""Small real stages and a daemon subprocess helper for the service tests.

The stages meet the stage contract and do tiny real work (parse the URL, parse YAML, write files,
run a child process). Tests steer them through files under ``<home>/gates/``:

- ``gates/hold-<stage>``: the stage waits (checking its cancel token) while the file exists;
- ``gates/fail-<stage>``: the stage raises ``InputError``;
- ``gates/child-<stage>``: the stage runs a long child process (``python -c sleep ... <job_id>``)
  through ``stages.process.run_process``, which cancellation must kill.

``<home>/fixture.json`` may set ``{"sleep": seconds}`` per stage run. Each run appends its stage
name to ``<job_dir>/runs.log``, so a test sees what really ran (not skipped).
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import yaml

from daemon.inbox import parse_urls
from stages.base import (
    InputError,
    JobContext,
    Progress,
    StageResult,
    TransientError,
    atomic_write_bytes,
    atomic_write_text,
    file_hash_or_none,
    fingerprint_of,
)
from stages.process import run_process

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM = {"fetch": None, "script": "article.out", "audio": "script.yaml", "slides": "audio.out",
            "video": "slides.out"}
OUTPUT = {"fetch": "article.out", "script": "script.yaml", "audio": "audio.out", "slides": "slides.out",
          "video": "video.mp4"}
RESOURCE = {"fetch": "network", "script": "cpu", "audio": "tts", "slides": "cpu", "video": "render"}


class FixtureStage:
    """One pipeline step that writes ``OUTPUT[name]``, steered by the gate files."""

    version = "1"

    def __init__(self, name: str):
        self.name = name
        self.resource = RESOURCE[name]

    def fingerprint(self, job: JobContext) -> str:
        upstream = UPSTREAM[self.name]
        basis = job.source if upstream is None or not (job.job_dir / upstream).exists() else job.job_dir / upstream
        if self.name == "script" and job.kind == "script":
            basis = job.source
        return fingerprint_of(self.name, self.version, file_hash_or_none(basis))

    def warm(self, settings) -> None:
        """Log the daemon's warm-up call in ``warmed.log``; the gate ``fail-warm-<name>`` makes it raise.

        The fetch stage also has the process log ``exit handlers ran`` there when it ends normally
        (not through ``os._exit``), as the TTS worker pool's shutdown needs."""
        if (settings.home / "gates" / f"fail-warm-{self.name}").exists():
            raise RuntimeError(f"fixture warm-up failure in {self.name}")
        log = settings.home / "warmed.log"
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(self.name + "\n")
        if self.name == "fetch":
            atexit.register(lambda: log.open("a", encoding="utf-8").write("exit-handlers-ran\n"))

    def run(self, job: JobContext, progress: Progress) -> StageResult:
        gates = job.settings.home / "gates"
        with open(job.job_dir / "runs.log", "a", encoding="utf-8") as fh:
            fh.write(self.name + "\n")
        progress(0, 4, f"{self.name} starting")
        while (gates / f"hold-{self.name}").exists():
            job.check_cancelled()
            time.sleep(0.05)
        if (gates / f"fail-{self.name}").exists():
            raise InputError(f"fixture failure in {self.name}")
        if (gates / f"child-{self.name}").exists():
            run_process([sys.executable, "-c", "import time, sys; time.sleep(300)", f"fixture-child-{job.job_id}"],
                        cancel=job.cancel)
        delay = _config(job).get("sleep", 0)
        if delay:
            time.sleep(delay)
        job.check_cancelled()
        body = getattr(self, f"_{self.name}")(job)
        out = atomic_write_bytes(job.job_dir / OUTPUT[self.name], body)
        outputs = [out]
        if self.name == "video":
            outputs.append(atomic_write_text(job.job_dir / "video.srt", "1\n00:00:00,000 --> 00:00:01,000\nhi\n"))
        progress(4, 4, f"{self.name} done")
        return StageResult(outputs=outputs)

    def _fetch(self, job: JobContext) -> bytes:
        text = job.source.read_text(encoding="utf-8", errors="replace")
        if job.kind != "url":
            return text.encode()
        urls = parse_urls(text)
        if not urls:
            raise InputError("the file holds no URL")
        parts = urlsplit(urls[0])
        if parts.scheme not in ("http", "https"):
            raise InputError(f"unsupported URL scheme {parts.scheme!r}: only http and https")
        try:
            with socket.create_connection((parts.hostname, parts.port or 80), timeout=2):
                pass
        except OSError as exc:
            raise TransientError(f"cannot connect to {parts.hostname}:{parts.port}: {exc}") from None
        return urls[0].encode()

    def _script(self, job: JobContext) -> bytes:
        if job.kind != "script":
            title = (job.job_dir / "article.out").read_text(encoding="utf-8").strip().splitlines()[0:1]
            return yaml.safe_dump({"title": (title or ["untitled"])[0].lstrip("# "), "sections": []},
                                  allow_unicode=True).encode()
        try:
            data = yaml.safe_load(job.source.read_text(encoding="utf-8"))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            raise InputError(f"{job.source.name} line {mark.line + 1}, column {mark.column + 1}: "
                             f"{exc.problem}") from None
        if not isinstance(data, dict) or not data.get("title"):
            raise InputError("a script needs a title")
        return yaml.safe_dump(data, allow_unicode=True).encode()

    def _audio(self, job: JobContext) -> bytes:
        return b"audio for " + job.job_id.encode()

    def _slides(self, job: JobContext) -> bytes:
        return b"slides for " + job.job_id.encode()

    def _video(self, job: JobContext) -> bytes:
        return b"not really an mp4: " + job.job_id.encode()


def service_stages() -> dict[str, FixtureStage]:
    """The stage factory the tests name in ``daemon.stage_factory``."""
    return {name: FixtureStage(name) for name in OUTPUT}


def _config(job: JobContext) -> dict:
    try:
        return json.loads((job.settings.home / "fixture.json").read_text())
    except (OSError, ValueError):
        return {}


# --- a daemon subprocess -----------------------------------------------------------------------

CONFIG = """
[daemon]
settle_seconds = {settle}
rescan_seconds = {rescan}
retry_attempts = 2
retry_base_seconds = 0.05
retry_max_seconds = 0.1
progress_interval_seconds = 0
shutdown_grace_seconds = 3
max_input_bytes = {cap}
stage_factory = "tests.fixtures_service:service_stages"
"""


class ServiceDaemon:
    """``python -m daemon run --home HOME`` as a child process, with the fixture stages."""

    def __init__(self, home: Path, *, settle: float = 0.2, cap: int = 64 * 1024, rescan: float = 0.5,
                 extra: str = "", env: dict[str, str] | None = None, config: str | None = None):
        """``config`` replaces the fixture-stage settings whole (end-to-end tests run the real stages)."""
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        (home / "gates").mkdir(exist_ok=True)
        text = config if config is not None else CONFIG.format(settle=settle, cap=cap, rescan=rescan) + extra
        (home / "moviegen.toml").write_text(text, encoding="utf-8")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MOVIEGEN_", "NOTIFY_SOCKET", "WATCHDOG_"))}
        self.env.update(env or {})
        self.proc: subprocess.Popen | None = None
        self.log = home / "daemon.log"

    @property
    def db(self) -> Path:
        return self.home / "state" / "moviegen.db"

    def start(self) -> "ServiceDaemon":
        before = self.count("daemon.started")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--home", str(self.home)],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=self.env, cwd=ROOT,
            start_new_session=True,
        )
        wait_for(lambda: self.count("daemon.started") > before, 30, "the daemon to start", self)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                raise AssertionError(f"the daemon did not stop within {timeout} s\n{self.tail()}")
        return self.proc.returncode

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "daemon", *args, "--home", str(self.home)],
                              capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=60)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        if not self.db.exists():
            return []
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    def count(self, kind: str) -> int:
        rows = self.query("SELECT count(*) FROM events WHERE kind = ?", (kind,))
        return rows[0][0] if rows else 0

    def jobs(self) -> dict[str, dict]:
        rows = self.query("SELECT job_id, state, stage, error, source FROM jobs")
        return {r[0]: {"state": r[1], "stage": r[2], "error": r[3], "source": r[4]} for r in rows}

    def job_of(self, name: str) -> str | None:
        rows = self.query("SELECT job_id FROM events WHERE kind = 'job.submitted' "
                          "AND json_extract(data, '$.name') = ?", (name,))
        return rows[0][0] if rows else None

    def state(self, job_id: str) -> str | None:
        rows = self.query("SELECT state FROM jobs WHERE job_id = ?", (job_id,))
        return rows[0][0] if rows else None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def drop(inbox: Path, name: str, data: bytes | str) -> Path:
    """Put a complete file into the inbox the safe way: hidden temp name, then rename."""
    body = data.encode() if isinstance(data, str) else data
    tmp = inbox / f".{name}.part"
    tmp.write_bytes(body)
    target = inbox / name
    os.rename(tmp, target)
    return target


def wait_for(predicate: Callable[[], object], timeout: float, what: str, daemon: ServiceDaemon | None = None):
    """Poll ``predicate`` until truthy; fail with the daemon's log tail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if daemon is not None and daemon.proc is not None and daemon.proc.poll() is not None:
            raise AssertionError(f"the daemon exited ({daemon.proc.returncode}) waiting for {what}\n{daemon.tail()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}\n{daemon.tail() if daemon else ''}")


def children_with(marker: str) -> list[int]:
    """Pids of live processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if marker in cmdline and "State:\tZ" not in status:
            found.append(int(entry.name))
    return found
