"""The fetch stage over real HTTP: a threaded http.server on 127.0.0.1 serves every case."""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import pytest

from stages.base import Cancelled, InputError, JobContext, TransientError
from stages.fetch import FetchStage, article_text, extract, fetch_article
from stages.fetch.http import get_bytes, is_public_address, parse_retry_after
from stages.settings import load_settings

EVAL = Path(__file__).parent / "data" / "eval"
MB = 1024 * 1024

Route = Callable[[BaseHTTPRequestHandler], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        server: LocalServer = self.server.owner  # type: ignore[attr-defined]
        server.requests.append((self.path, dict(self.headers)))
        route = server.routes.get(self.path.split("?")[0])
        if route is None:
            send(self, 404, b"<html><body>not found</body></html>")
            return
        try:
            route(self)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up (the size-cap test does on purpose) are not errors here."""


class LocalServer:
    """A real HTTP server on 127.0.0.1 with a route table; it records every request it gets."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", content_type: str = "text/html; charset=utf-8", **headers: str) -> None:
    handler.send_response(status)
    if content_type:
        handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    handler.wfile.write(body)


def page(title: str, body: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head>{head}<title>{title}</title></head><body><article>{body}</article></body></html>"


@pytest.fixture
def server():
    srv = LocalServer()
    yield srv
    srv.close()


@pytest.fixture
def settings(tmp_path):
    """Loopback is private: tests must opt in to reach their own server."""
    return load_settings(home=tmp_path, fetch={"allow_private": True, "connect_timeout": 2, "read_timeout": 2, "total_timeout": 20})


def redirect(target: str, status: int = 302) -> Route:
    return lambda h: send(h, status, b"", Location=target)


# --- addresses ---------------------------------------------------------------------------------


def test_loopback_is_refused_by_default(server, tmp_path):
    """Without fetch.allow_private the client refuses 127.0.0.1 before sending anything."""
    server.routes["/a"] = lambda h: send(h, 200, page("t", "<p>hello</p>").encode())
    with pytest.raises(InputError, match="refusing"):
        get_bytes(server.url("/a"), load_settings(home=tmp_path), max_bytes=MB)
    assert server.requests == []


@pytest.mark.parametrize("target", ["127.0.0.1", "169.254.169.254", "10.0.0.1", "[::1]", "100.64.1.1"])
def test_redirect_hop_to_private_address_is_refused_before_connecting(server, tmp_path, target):
    """Every hop is vetted: an allowed host redirecting to a private address is refused, with no traffic."""
    other = LocalServer()
    try:
        other.routes["/meta"] = lambda h: send(h, 200, b"secret")
        port = other.port if target == "127.0.0.1" else 80
        server.routes["/hop"] = redirect(f"http://{target}:{port}/meta")
        settings = load_settings(home=tmp_path, fetch={"allow_hosts": ["localhost"], "connect_timeout": 2, "read_timeout": 2})
        with pytest.raises(InputError, match="refusing"):
            get_bytes(server.url("/hop", host="localhost"), settings, max_bytes=MB)
        assert [p for p, _ in server.requests] == ["/hop"]
        assert other.requests == []
    finally:
        other.close()


def test_allowed_redirect_to_loopback_is_followed(server, settings):
    """With allow_private the same redirect is followed: the refusal above is about the address."""
    server.routes["/hop"] = redirect(server.url("/meta"))
    server.routes["/meta"] = lambda h: send(h, 200, b"ok", content_type="text/plain")
    body = get_bytes(server.url("/hop", host="localhost"), settings, max_bytes=MB)
    assert body.content == b"ok" and body.final_url == server.url("/meta")


@pytest.mark.parametrize(
    "address,public",
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::a00:1", False),
        ("2002:a00:1::", False),
    ],
)
def test_public_address_classification(address, public):
    """Private, loopback, link-local, CGNAT, ULA, multicast, mapped and embedded v4 are non-public."""
    import ipaddress

    assert is_public_address(ipaddress.ip_address(address)) is public


def test_non_http_schemes_are_refused(settings):
    """Only http and https can be fetched."""
    for url in ("ftp://example.com/a", "file:///etc/passwd", "gopher://x/"):
        with pytest.raises(InputError, match="only http"):
            get_bytes(url, settings, max_bytes=MB)


# --- redirects ---------------------------------------------------------------------------------


def test_five_redirects_are_followed_and_six_are_not(server, settings):
    """At most five redirects, each hop followed by hand."""
    for i in range(6):
        server.routes[f"/r{i}"] = redirect(f"/r{i + 1}", status=301 if i % 2 else 307)
    server.routes["/r6"] = lambda h: send(h, 200, page("end", "<p>end</p>").encode())
    assert get_bytes(server.url("/r1"), settings, max_bytes=MB).final_url == server.url("/r6")
    with pytest.raises(InputError, match="too many redirects"):
        get_bytes(server.url("/r0"), settings, max_bytes=MB)


def test_redirect_loop_is_an_input_error(server, settings):
    """A loop is detected instead of bouncing until the limit."""
    server.routes["/a"] = redirect("/b")
    server.routes["/b"] = redirect("/a")
    with pytest.raises(InputError, match="loop"):
        get_bytes(server.url("/a"), settings, max_bytes=MB)
    assert [p for p, _ in server.requests] == ["/a", "/b"]


# --- sizes, types, statuses --------------------------------------------------------------------


def _stream_30mb(counter: dict[str, int]) -> Route:
    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Connection", "close")
        h.end_headers()
        chunk = b"<p>" + b"x" * (64 * 1024 - 7) + b"</p>\n"
        try:
            while counter["sent"] < 30 * MB:
                h.wfile.write(chunk)
                counter["sent"] += len(chunk)
        except OSError:
            counter["aborted"] = 1

    return route


def test_30mb_body_stops_at_the_cap(server, settings):
    """A body without Content-Length is streamed and abandoned past fetch.max_bytes (10 MB)."""
    counter = {"sent": 0, "aborted": 0}
    server.routes["/big"] = _stream_30mb(counter)
    with pytest.raises(InputError, match="larger than the limit"):
        get_bytes(server.url("/big"), settings, max_bytes=settings.fetch.max_bytes)
    for _ in range(100):  # the server notices the closed socket on its next writes
        if counter["aborted"]:
            break
        time.sleep(0.05)
    assert counter["aborted"] == 1
    assert counter["sent"] < 25 * MB


def test_declared_oversize_body_is_refused_before_reading(server, settings):
    """A Content-Length over the cap is refused from the headers alone."""

    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Content-Length", str(30 * MB))
        h.end_headers()
        h.wfile.write(b"<p>only a little</p>")

    server.routes["/big"] = route
    with pytest.raises(InputError, match=str(30 * MB)):
        get_bytes(server.url("/big"), settings, max_bytes=10 * MB)


def test_pdf_is_refused_naming_its_type(server, settings, tmp_path):
    """Only HTML/XHTML becomes an article; the error names the type."""
    server.routes["/doc.pdf"] = lambda h: send(h, 200, b"%PDF-1.4\n%...", content_type="application/pdf")
    with pytest.raises(InputError, match="application/pdf"):
        fetch_article(server.url("/doc.pdf"), tmp_path, settings)
    assert not (tmp_path / "article.json").exists()


def test_xhtml_is_accepted(server, settings):
    """application/xhtml+xml counts as HTML."""
    body = '<?xml version="1.0" encoding="utf-8"?>' + page("X", "<h2>Part</h2><p>" + "Some XHTML text here. " * 10 + "</p>")
    server.routes["/x"] = lambda h: send(h, 200, body.encode(), content_type="application/xhtml+xml")
    article = extract(server.url("/x"), settings)
    assert "Some XHTML text here." in article_text(article)


def test_slow_server_is_a_transient_read_timeout(server, tmp_path):
    """A server that stalls longer than fetch.read_timeout gives a TransientError."""
    release = threading.Event()

    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Content-Length", "100")
        h.end_headers()
        h.wfile.write(b"<p>")
        h.wfile.flush()
        release.wait(5)

    server.routes["/slow"] = route
    settings = load_settings(home=tmp_path, fetch={"allow_private": True, "read_timeout": 0.3, "connect_timeout": 1})
    try:
        with pytest.raises(TransientError, match="timed out"):
            get_bytes(server.url("/slow"), settings, max_bytes=MB)
    finally:
        release.set()


@pytest.mark.parametrize("status", [404, 410, 403, 400])
def test_client_errors_are_input_errors(server, settings, status):
    """4xx (other than 429) is the user's problem: a wrong address."""
    server.routes["/gone"] = lambda h: send(h, status, b"<p>no</p>")
    with pytest.raises(InputError, match=str(status)):
        get_bytes(server.url("/gone"), settings, max_bytes=MB)


def test_429_honours_retry_after_seconds(server, settings):
    """429 is transient and carries the server's Retry-After."""
    server.routes["/busy"] = lambda h: send(h, 429, b"slow down", Retry_After="7")
    with pytest.raises(TransientError) as info:
        get_bytes(server.url("/busy"), settings, max_bytes=MB)
    assert info.value.retry_after == 7


def test_429_honours_retry_after_http_date(server, settings):
    """Retry-After may be an HTTP date; it becomes seconds from now."""
    import email.utils

    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    server.routes["/busy"] = lambda h: send(h, 429, b"slow down", Retry_After=when)
    with pytest.raises(TransientError) as info:
        get_bytes(server.url("/busy"), settings, max_bytes=MB)
    assert 60 < info.value.retry_after <= 121


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(server, settings, status):
    """5xx means try again later."""
    server.routes["/down"] = lambda h: send(h, status, b"down")
    with pytest.raises(TransientError, match=str(status)):
        get_bytes(server.url("/down"), settings, max_bytes=MB)


def test_connection_refused_is_transient(settings):
    """Nothing listening is a connection error, worth a retry."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransientError):
        get_bytes(f"http://127.0.0.1:{port}/", settings, max_bytes=MB)


def test_parse_retry_after():
    """Delta-seconds, HTTP dates in the past (0) and garbage (None)."""
    assert parse_retry_after("12") == 12
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_user_agent_and_cancel(server, settings):
    """A real User-Agent is sent; a set cancel token stops the fetch."""
    server.routes["/a"] = lambda h: send(h, 200, b"<p>x</p>")
    get_bytes(server.url("/a"), settings, max_bytes=MB)
    assert server.requests[0][1]["User-Agent"].startswith("Mozilla/5.0 (compatible; moviegen")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        get_bytes(server.url("/a"), settings, max_bytes=MB, cancel=cancel)


# --- encodings ---------------------------------------------------------------------------------

JA_TITLE = "文字コードの試験"
JA_TEXT = "日本語の文章です。漢字、ひらがな、カタカナ（全角）と記号①～③を含みます。" * 4


def _ja_page(meta: str = "") -> str:
    return page(JA_TITLE, f"<h1>{JA_TITLE}</h1><h2>第一節</h2><p>{JA_TEXT}</p><p>{JA_TEXT}</p>", head=meta)


@pytest.mark.parametrize(
    "codec,content_type,meta",
    [
        ("cp932", "text/html; charset=Shift_JIS", ""),
        ("cp932", "text/html", '<meta charset="shift_jis">'),
        ("cp932", "text/html", '<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">'),
        ("cp932", "text/html", ""),
        ("euc_jp", "text/html; charset=EUC-JP", ""),
        ("euc_jp", "text/html", '<meta charset="euc-jp">'),
        ("euc_jp", "text/html", ""),
        ("cp932", "text/html; charset=utf-8", ""),  # a wrong header: the bytes are not UTF-8
    ],
)
def test_japanese_encodings_come_out_right(server, settings, codec, content_type, meta):
    """Shift_JIS and EUC-JP pages decode from the header, the meta tag, or by detection."""
    text = _ja_page(meta)
    if codec == "euc_jp":
        text = text.replace("①～③", "")  # not in EUC-JP
    server.routes["/ja"] = lambda h: send(h, 200, text.encode(codec), content_type=content_type)
    article = extract(server.url("/ja"), settings)
    body = article_text(article)
    assert article["title"] == JA_TITLE
    assert "日本語の文章です。漢字、ひらがな、カタカナ（全角）と記号" in body
    assert article["language"] == "ja"
    assert "\ufffd" not in body


def test_ruby_readings_do_not_leak(server, settings):
    """<rt>/<rp> furigana is dropped; the base text stays in place."""
    ruby = "<ruby>漢字<rp>(</rp><rt>かんじ</rt><rp>)</rp></ruby>と<ruby><rb>振</rb><rt>ふ</rt><rb>仮名</rb><rt>がな</rt></ruby>"
    body = page("ルビ", f"<h1>ルビ</h1><p>この{ruby}の例文です。" + "本文を続けます。" * 20 + "</p>")
    server.routes["/ruby"] = lambda h: send(h, 200, body.encode("utf-8"))
    text = article_text(extract(server.url("/ruby"), settings))
    assert "この漢字と振仮名の例文です。" in text
    for reading in ("かんじ", "ふ", "がな", "("):
        assert reading not in text


# --- real pages --------------------------------------------------------------------------------


def _bag(text: str) -> Counter[str]:
    cjk = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    return Counter(re.findall(rf"[{cjk}]|[^\W{cjk}]+", text.lower()))


@pytest.mark.parametrize("key", sorted(p.name.split(".")[0] for p in (EVAL / "html").glob("*.html.gz")))
def test_eval_pages_over_http_match_ground_truth(server, settings, tmp_path, key):
    """Real pages served over HTTP: article.json's text recalls at least 90 % of the ground truth."""
    truth = json.loads((EVAL / "ground-truth.json").read_text(encoding="utf-8"))[key]
    html = gzip.decompress((EVAL / "html" / f"{key}.html.gz").read_bytes())
    server.routes["/article"] = lambda h: send(h, 200, html, content_type="text/html")
    path = fetch_article(server.url("/article"), tmp_path, settings)
    article = json.loads(path.read_text(encoding="utf-8"))
    gold, got = _bag(truth["articleBody"]), _bag(article_text(article))
    recall = sum((gold & got).values()) / sum(gold.values())
    precision = sum((gold & got).values()) / sum(got.values())
    assert recall > 0.9 and precision > 0.8
    assert article["title"] and article["url"] == server.url("/article")
    assert set(article) == {"url", "title", "site", "author", "published", "language", "blocks"}
    if key.startswith("85439e"):
        assert article["language"] == "ja"
    else:
        assert article["language"] == "en"


def test_stage_runs_an_internet_shortcut_job(server, tmp_path):
    """FetchStage.run reads a Windows .url file, fetches it and writes article.json with progress."""
    server.routes["/post"] = lambda h: send(
        h, 200, page("Post", "<h1>Post</h1><h2>One</h2><p>" + "First part of the post. " * 10 + "</p>").encode()
    )
    settings = load_settings(home=tmp_path, fetch={"allow_private": True})
    job_dir = tmp_path / "jobs" / "j1"
    job_dir.mkdir(parents=True)
    source = job_dir / "source.url"
    source.write_text(f"[InternetShortcut]\r\nURL={server.url('/post')}\r\n")
    job = JobContext(job_id="j1", job_dir=job_dir, settings=settings, cache_dir=tmp_path / "cache", source=source, kind="url")
    stage = FetchStage()
    seen: list[tuple[int, int, str]] = []
    result = stage.run(job, lambda c, t, m: seen.append((c, t, m)))
    assert result.outputs == [job_dir / "article.json"]
    article = json.loads((job_dir / "article.json").read_text(encoding="utf-8"))
    assert article["title"] == "Post"
    assert article["blocks"][0] == {"type": "heading", "level": 2, "text": "One"}
    assert seen[0][0] == 0 and seen[-1][0] == seen[-1][1]
    assert [c for c, _, _ in seen] == sorted(c for c, _, _ in seen)
    before = stage.fingerprint(job)
    source.write_text(f"{server.url('/other')}\n")
    assert stage.fingerprint(job) != before


# --- bounded and cancellable waits (real sockets) ----------------------------------------------


def _trickle_settings(tmp_path, total: float = 1.5, read: float = 5):
    # read_timeout well above the 0.2 s between bytes: only the total deadline can stop the trickle.
    return load_settings(home=tmp_path, fetch={"allow_private": True, "connect_timeout": 2, "read_timeout": read,
                                               "total_timeout": total})


@pytest.mark.parametrize("length", [1_000_000, None], ids=["content-length", "until-close"])
def test_trickle_is_cut_at_the_total_deadline(tmp_path, length):
    """A server sending one byte at a time never trips the read timeout; fetch.total_timeout still
    ends the download with a TransientError naming it, and the connection is closed (the server
    sees the hang-up). A body that would end at the close is not taken as complete."""
    from tests.fixtures_slow import TrickleServer

    with TrickleServer(interval=0.2, length=length) as slow:
        with pytest.raises(TransientError, match="fetch.total_timeout"):
            get_bytes(slow.url(), _trickle_settings(tmp_path), max_bytes=MB)
        wait_for_hangup(slow)
        assert 0 < slow.connections[0].sent < 1000


@pytest.mark.parametrize("token", ["CancelToken", "Event"])
@pytest.mark.parametrize("interval", [0.2, None], ids=["trickling", "no-headers"])
def test_cancel_hangs_up_a_blocked_download(tmp_path, token, interval):
    """Setting the cancel token while the thread is blocked in a read (between trickled bytes, or
    waiting for headers that never come) ends get_bytes with Cancelled long before any timeout,
    and closes the connection. A plain threading.Event works too. The timeouts are set far beyond
    the join below, so only the hang-up can have ended the wait."""
    from stages.base import CancelToken
    from tests.fixtures_slow import TrickleServer

    cancel = CancelToken() if token == "CancelToken" else threading.Event()
    outcome: list[BaseException] = []

    def fetch() -> None:
        try:
            get_bytes(slow.url(), _trickle_settings(tmp_path, total=600, read=600), max_bytes=MB, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 (the test inspects it)
            outcome.append(exc)

    with TrickleServer(interval=interval) as slow:
        worker = threading.Thread(target=fetch)
        worker.start()
        wait_until_true(lambda: slow.accepted() == 1 and (interval is None or slow.connections[0].sent > 2))
        assert worker.is_alive()
        cancel.set()
        worker.join(30)
        assert not worker.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], Cancelled), outcome
        wait_for_hangup(slow)


def wait_until_true(predicate) -> None:
    from tests.fixtures_slow import wait_until

    wait_until(predicate, 30, "the slow server's state")


def wait_for_hangup(slow) -> None:
    wait_until_true(lambda: slow.hung_up() == slow.accepted() >= 1)
