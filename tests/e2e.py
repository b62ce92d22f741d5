"""Helpers for end-to-end tests: a real `moviegen run` subprocess in a real home folder."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
TERMINAL = {"done", "failed", "cancelled"}
RUNNING = {"queued", "fetch", "script", "audio", "slides", "video"}

BASE_CONFIG = """
default_persona = "narrator"

[daemon]
settle_seconds = 0.2
rescan_seconds = 0.5
retry_attempts = 2
retry_base_seconds = 0.2
retry_max_seconds = 0.5

[fetch]
allow_private = true

[script]
max_minutes = 0.4

[video]
width = 320
height = 180
fps = 30
preset = "ultrafast"

[video.transition]
type = "fade"
duration = 0.3

[[personas]]
id = "narrator"
name = "ナレーター"
engine = "{engine}"
subtitle_color = "#ffffff"

[[personas]]
id = "zundamon"
name = "ずんだもん"
engine = "{engine}"
speed = 1.1
subtitle_color = "#7cd46b"

[[personas]]
id = "metan"
name = "四国めたん"
engine = "{engine}"
speed = 0.95
subtitle_color = "#f08bb4"
"""


class DaemonProcess:
    """`python -m daemon run --home HOME` as a child, started and stopped by tests."""

    def __init__(self, home: Path, extra_config: str = "", engine: str = "openjtalk"):
        self.home = home
        self.proc: subprocess.Popen | None = None
        home.mkdir(parents=True, exist_ok=True)
        (home / "moviegen.toml").write_text(
            BASE_CONFIG.replace("{engine}", engine) + extra_config, encoding="utf-8"
        )
        self.log = home / "daemon.log"

    @property
    def db(self) -> Path:
        return self.home / "state" / "moviegen.db"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60) -> "DaemonProcess":
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEGEN_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--home", str(self.home)],
            stdout=open(self.log, "ab"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        started = self.count("SELECT count(*) FROM events WHERE kind = 'daemon.started'") if self.db.exists() else 0
        wait_for(
            lambda: self.alive() and self.db.exists()
            and self.count("SELECT count(*) FROM events WHERE kind = 'daemon.started'") > started,
            timeout,
            "the daemon to start",
            self,
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the daemon's whole process group (ffmpeg children too, as a crash would)."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError("the daemon did not stop within 15 s of SIGTERM")

    def drop(self, name: str, data: bytes | str) -> Path:
        """Put a file into the inbox the safe way: a hidden temp name, then a rename."""
        payload = data.encode("utf-8") if isinstance(data, str) else data
        inbox = self.home / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        tmp = inbox / f".{name}.part"
        tmp.write_bytes(payload)
        os.rename(tmp, inbox / name)
        return inbox / name

    def query(self, sql: str, *params: object) -> list[sqlite3.Row]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def count(self, sql: str, *params: object) -> int:
        return int(self.query(sql, *params)[0][0])

    def jobs(self) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM jobs ORDER BY created_at, job_id")

    def events(self, job_id: str) -> list[dict]:
        rows = self.query("SELECT seq, at, kind, stage, data FROM events WHERE job_id = ? ORDER BY seq", job_id)
        return [dict(row) | {"data": json.loads(row["data"] or "{}")} for row in rows]

    def wait_jobs(self, count: int, timeout: float = 240) -> list[sqlite3.Row]:
        """Wait until at least ``count`` jobs exist and all of them are terminal."""

        def ready() -> bool:
            jobs = self.jobs()
            return len(jobs) >= count and all(job["state"] in TERMINAL for job in jobs)

        wait_for(ready, timeout, f"{count} jobs to finish", self)
        return self.jobs()

    def moviegen(self, *args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEGEN_")}
        return subprocess.run(
            [sys.executable, "-m", "daemon", "--home", str(self.home), *args],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
        )

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, daemon: DaemonProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except sqlite3.OperationalError:
            pass
        if daemon is not None and daemon.proc is not None and daemon.proc.poll() is not None:
            raise AssertionError(f"the daemon exited ({daemon.proc.returncode}) waiting for {what}\n{daemon.tail()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}\n{daemon.tail() if daemon else ''}")


def ffprobe_duration(path: Path) -> tuple[float, list[str]]:
    """The container duration and the stream types of a media file."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout
    info = json.loads(out)
    return float(info["format"]["duration"]), [s["codec_type"] for s in info["streams"]]


class ArticleServer:
    """A real HTTP server on 127.0.0.1 serving fixed pages, optionally slowly."""

    def __init__(self, pages: dict[str, str], delay: float = 0.0):
        self.pages = pages
        self.delay = delay
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                body = outer.pages.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                time.sleep(outer.delay)
                data = body.encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


SHORT_MD = """# 朝のコーヒーを楽しむ

コーヒーは、淹れ方ひとつで味が大きく変わります。今日は家で手軽にできるコツを紹介します。

## 豆を選ぶ

新鮮な豆を少しずつ買うのが基本です。挽いた粉は香りが早く飛んでしまいます。

## お湯の温度

お湯は沸騰してから少し冷まし、九十度くらいで注ぎます。熱すぎると苦みが強く出ます。
"""

SHORT_HTML = """<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>夜の散歩のすすめ</title></head>
<body><article><h1>夜の散歩のすすめ</h1>
<p>一日の終わりに少し歩くと、気持ちが落ち着きます。特別な道具はいりません。静かな夜道を、自分のペースでゆっくり歩いてみましょう。</p>
<h2>歩く時間</h2>
<p>夕食のあと三十分ほどたってから、二十分くらい歩くのがちょうどよい長さです。明るい服を着ると、車からも見えやすくなります。</p>
<h2>気をつけること</h2>
<p>人通りの少ない道は避けて、街灯のある道を選びます。スマートフォンの画面ばかり見ないで、周りの景色を楽しみましょう。</p>
</article></body></html>
"""
