"""A protocol-faithful double of the OpenAI chat-completions API, on 127.0.0.1.

A real HTTP server (``http.server`` in a thread) serving ``POST /v1/chat/completions`` with the
response shape of the OpenAI API (``id``, ``object: "chat.completion"``, ``created``, ``model``,
``choices[{index, message{role, content, refusal}, logprobs, finish_reason}]``, ``usage``) and its
error shapes. Tests queue the replies they want with :meth:`ChatDouble.queue`; each request
takes the next one (the last one repeats). Every request is recorded (path, headers, JSON body)
and the server's own log lines are kept in :attr:`ChatDouble.log` so a test can check that a
key never reaches them.

Example::

    with ChatDouble() as llm:
        llm.queue(reply_json({"title": "t", ...}))
        settings = load_settings(llm={"base_url": llm.base_url, "model": "m"})
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Recorded:
    """One request the double received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes


@dataclass
class Reply:
    """What the server answers: a status, headers and a JSON (or raw) body."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Step = Callable[[dict[str, Any]], Reply]
"""A queued behaviour: gets the request body, returns the reply."""


def completion(content: str | None, *, finish_reason: str = "stop", refusal: str | None = None, model: str = "double-model") -> Step:
    """A 200 chat completion with this content (the request's model is echoed back)."""

    def step(request: dict[str, Any]) -> Reply:
        prompt_tokens = sum(len(str(m.get("content", ""))) // 4 for m in request.get("messages", []))
        completion_tokens = len(content or refusal or "") // 4
        return Reply(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model") or model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "logprobs": None,
                "finish_reason": finish_reason,
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "system_fingerprint": "fp_double",
        })

    return step


def reply_json(obj: Any) -> Step:
    """A completion whose content is ``obj`` as JSON (a structured reply)."""
    return completion(json.dumps(obj, ensure_ascii=False))


def reply_fenced(obj: Any) -> Step:
    """A completion with the JSON inside a Markdown code fence and a line of prose."""
    return completion("Here is the script:\n```json\n" + json.dumps(obj, ensure_ascii=False, indent=2) + "\n```\n")


def truncated(obj: Any) -> Step:
    """A completion cut off by the token limit: half the JSON, ``finish_reason: length``."""
    text = json.dumps(obj, ensure_ascii=False)
    return completion(text[: len(text) // 2], finish_reason="length")


def refusal(message: str = "I'm sorry, but I can't help with that request.") -> Step:
    """A structured-output refusal: ``content`` null and ``message.refusal`` set."""
    return completion(None, refusal=message)


def openai_error(status: int, message: str, type_: str, code: str | None = None, headers: dict[str, str] | None = None) -> Step:
    """An OpenAI-style error: ``{"error": {"message", "type", "param", "code"}}``."""
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return lambda request: Reply(status, body, dict(headers or {}))


def vllm_error(status: int, message: str, type_: str = "BadRequestError") -> Step:
    """A vLLM-style error: ``{"object": "error", "message", "type", "param", "code"}``."""
    body = {"object": "error", "message": message, "type": type_, "param": None, "code": status}
    return lambda request: Reply(status, body)


def rate_limited(retry_after: str = "7") -> Step:
    """A 429 with ``Retry-After`` and OpenAI's rate-limit body."""
    return openai_error(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded", {"Retry-After": retry_after})


def server_error() -> Step:
    """A 500 with OpenAI's server-error body."""
    return openai_error(500, "The server had an error while processing your request.", "server_error")


def json_schema_unsupported(then: Step) -> Step:
    """Reject ``response_format: json_schema`` with a 400 (as older servers do); else ``then``."""

    def step(request: dict[str, Any]) -> Reply:
        if (request.get("response_format") or {}).get("type") == "json_schema":
            return Reply(400, {"error": {
                "message": "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
                "type": "invalid_request_error", "param": "response_format", "code": None,
            }})
        return then(request)

    return step


class Stall:
    """Hold the request without answering (a model that thinks for ever) until the client hangs
    up or ``seconds`` pass; then answer 503. :attr:`ChatDouble.hung_up` counts the hang-ups."""

    def __init__(self, seconds: float = 600.0):
        self.seconds = seconds

    def __call__(self, request: dict[str, Any]) -> Reply:
        return Reply(503, {"error": {"message": "stalled", "type": "server_error", "param": None, "code": None}})


def stall(seconds: float = 600.0) -> Step:
    """A request that gets no answer for ``seconds`` (or until the client hangs up)."""
    return Stall(seconds)


class ChatDouble:
    """The server. Use as a context manager; :attr:`base_url` ends in ``/v1``."""

    def __init__(self, api_key: str | None = None):
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.log: list[str] = []
        self.hung_up = 0  # stalled requests whose client closed the connection
        self._steps: list[Step] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def queue(self, *steps: Step) -> "ChatDouble":
        """Serve these replies to the next requests, in order; the last one repeats."""
        with self._lock:
            self._steps.extend(steps)
        return self

    def __enter__(self) -> "ChatDouble":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self) -> Step:
        with self._lock:
            if not self._steps:
                return completion("{}")
            return self._steps.pop(0) if len(self._steps) > 1 else self._steps[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = None
                with double._lock:
                    double.requests.append(Recorded("POST", self.path, dict(self.headers.items()), body, raw))
                if self.path != "/v1/chat/completions":
                    return self._send(Reply(404, {"error": {"message": f"Unknown request URL: POST {self.path}.", "type": "invalid_request_error", "param": None, "code": "unknown_url"}}))
                if double.api_key is not None and self.headers.get("Authorization") != f"Bearer {double.api_key}":
                    # Like OpenAI, echo (part of) the key that was sent: clients must not repeat it.
                    sent = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                    return self._send(Reply(401, {"error": {"message": f"Incorrect API key provided: {sent}.", "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}))
                if not isinstance(body, dict) or not body.get("model") or not isinstance(body.get("messages"), list):
                    return self._send(Reply(400, {"error": {"message": "'model' and 'messages' are required.", "type": "invalid_request_error", "param": None, "code": None}}))
                step = double._next()
                if isinstance(step, Stall) and self._stalled(step.seconds):
                    return
                self._send(step(body))

            def _stalled(self, seconds: float) -> bool:
                """Wait for the client to hang up (True) or for ``seconds`` to pass (False)."""
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    readable, _, _ = select.select([self.connection], [], [], 0.05)
                    if readable and not self._peek():
                        with double._lock:
                            double.hung_up += 1
                        self.close_connection = True
                        return True
                return False

            def _peek(self) -> bytes:
                try:
                    return self.connection.recv(1, socket.MSG_PEEK)  # b"": the client's FIN
                except OSError:
                    return b""

            def do_GET(self) -> None:  # noqa: N802
                self._send(Reply(404, {"error": {"message": f"Unknown request URL: GET {self.path}.", "type": "invalid_request_error", "param": None, "code": "unknown_url"}}))

            def _send(self, reply: Reply) -> None:
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body, ensure_ascii=False).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                double.log.append(format % args)

        return Handler
