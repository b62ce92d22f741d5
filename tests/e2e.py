"""Helpers for end-to-end tests: a real `moviegen run` subprocess in a real home folder."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.fixtures_service import ROOT, ServiceDaemon, drop, wait_for  # noqa: F401 (re-exported)
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

[[personas]]
id = "mint"
name = "ミント"
engine = "{engine}"
speed = 1.1
subtitle_color = "#7cd46b"

[[personas]]
id = "kohaku"
name = "コハク"
engine = "{engine}"
speed = 0.95
subtitle_color = "#c9a7ff"
"""


class DaemonProcess(ServiceDaemon):
    """`python -m daemon run --home HOME` with the real stages and the settings above.

    Process handling (start, stop, kill9, cli, tail) is :class:`ServiceDaemon`'s; this adds the
    end-to-end views of the log: rows as :class:`sqlite3.Row`, jobs in order, decoded events.
    """

    def __init__(self, home: Path, extra_config: str = "", engine: str = "openjtalk"):
        super().__init__(home, config=BASE_CONFIG.replace("{engine}", engine) + extra_config)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def drop(self, name: str, data: bytes | str) -> Path:
        """Put a file into the inbox the safe way: a hidden temp name, then a rename."""
        inbox = self.home / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        return drop(inbox, name, data)

    def rows(self, sql: str, *params: object) -> list[sqlite3.Row]:
        """Query the log read-only; [] while it does not exist yet or is busy."""
        if not self.db.exists():
            return []
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    def scalar(self, sql: str, *params: object) -> int:
        found = self.rows(sql, *params)
        return int(found[0][0] or 0) if found else 0

    def job_rows(self) -> list[sqlite3.Row]:
        return self.rows("SELECT * FROM jobs ORDER BY created_at, job_id")

    def events(self, job_id: str) -> list[dict]:
        rows = self.rows("SELECT seq, at, kind, stage, data FROM events WHERE job_id = ? ORDER BY seq", job_id)
        return [dict(row) | {"data": json.loads(row["data"] or "{}")} for row in rows]

    def wait_jobs(self, count: int, timeout: float = 240) -> list[sqlite3.Row]:
        """Wait until at least ``count`` jobs exist and all of them are terminal."""

        def ready() -> bool:
            jobs = self.job_rows()
            return len(jobs) >= count and all(job["state"] in TERMINAL for job in jobs)

        wait_for(ready, timeout, f"{count} jobs to finish", self)
        return self.job_rows()

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))


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
