"""A protocol-faithful double of an OpenAI-compatible image API, on a real HTTP server on 127.0.0.1.

It answers the two forms the slides stage speaks, with the response shapes the real services send:

* ``POST /v1/chat/completions`` (OpenRouter, ``modalities: ["image", "text"]``): the picture is a
  data URL in ``choices[0].message.images[0].image_url.url``;
* ``POST /v1/images/generations`` (OpenAI): the picture is ``data[0].b64_json``.

Errors use the real bodies: OpenRouter's ``{"error": {"code": 429, "message": ..., "metadata": ...}}``
and OpenAI's ``{"error": {"message", "type", "param", "code"}}``. Switches (set them between
requests): ``fail_times`` + ``fail_status`` (+ ``retry_after``) fail the first N requests;
``scenario`` is ``ok``, ``no_image`` (a text-only answer), ``bad_base64``, ``not_an_image``, or
``url_only`` (images form returns a link instead of b64). ``api_key`` is checked when set.
Every request is kept in ``requests`` as ``(path, headers, json_body)``.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image, ImageDraw


def sample_png(width: int = 1024, height: int = 576) -> bytes:
    """A small picture like a generated slide: a gradient with a few shapes."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse([width * 0.1, height * 0.2, width * 0.4, height * 0.8], fill=(230, 120, 40))
    draw.rectangle([width * 0.55, height * 0.3, width * 0.9, height * 0.7], fill=(40, 160, 220))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


class ImageApiDouble:
    """Start with ``with ImageApiDouble() as api:``; point ``slides.image_api.base_url`` at ``api.base_url``."""

    def __init__(self, api_key: str | None = "sk-test-secret-key", model: str = "google/gemini-2.5-flash-image-preview"):
        self.api_key = api_key
        self.model = model
        self.scenario = "ok"
        self.fail_times = 0
        self.fail_status = 429
        self.retry_after: str | None = "0"
        self.image = sample_png()
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "ImageApiDouble":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- request handling -------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = None
                with double._lock:
                    double.requests.append((self.path, dict(self.headers), body))
                    fail = double.fail_times > 0
                    if fail:
                        double.fail_times -= 1
                status, payload, headers = double._answer(self.path, self.headers, body, fail)
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _answer(self, path: str, headers: Any, body: Any, fail: bool) -> tuple[int, Any, dict[str, str]]:
        chat = path == "/v1/chat/completions"
        if path not in ("/v1/chat/completions", "/v1/images/generations"):
            return 404, {"error": {"message": f"Not found: {path}", "code": 404}}, {}
        if self.api_key is not None and headers.get("Authorization") != f"Bearer {self.api_key}":
            if chat:
                return 401, {"error": {"message": "No auth credentials found", "code": 401}}, {}
            return 401, {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                   "param": None, "code": "invalid_api_key"}}, {}
        if not isinstance(body, dict) or not body.get("model"):
            return 400, {"error": {"message": "Invalid request: model is required", "code": 400}}, {}
        if fail:
            return self._failure(chat)
        if chat:
            if body.get("modalities") != ["image", "text"] or not body.get("messages"):
                return 400, {"error": {"message": "modalities must include image", "code": 400}}, {}
            return 200, self._chat_answer(body), {}
        if not body.get("prompt"):
            return 400, {"error": {"message": "'prompt' is a required property", "type": "invalid_request_error",
                                   "param": "prompt", "code": None}}, {}
        return 200, self._images_answer(), {}

    def _failure(self, chat: bool) -> tuple[int, Any, dict[str, str]]:
        status = self.fail_status
        headers = {"Retry-After": self.retry_after} if status == 429 and self.retry_after is not None else {}
        if chat:
            message = "Rate limit exceeded: free-models-per-min." if status == 429 else "Internal Server Error"
            payload = {"error": {"code": status, "message": message,
                                 "metadata": {"headers": {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0"}}}}
        else:
            message = "Rate limit reached for images per minute." if status == 429 else "The server had an error."
            payload = {"error": {"message": message, "type": "requests" if status == 429 else "server_error",
                                 "param": None, "code": "rate_limit_exceeded" if status == 429 else None}}
        return status, payload, headers

    def _encoded(self) -> str:
        if self.scenario == "bad_base64":
            return "this is not base64!!"
        if self.scenario == "not_an_image":
            return base64.b64encode(b"<html><body>not an image</body></html>").decode("ascii")
        return base64.b64encode(self.image).decode("ascii")

    def _chat_answer(self, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "Here is your slide.", "refusal": None,
                                   "reasoning": None}
        if self.scenario != "no_image":
            message["images"] = [{"type": "image_url", "index": 0,
                                  "image_url": {"url": "data:image/png;base64," + self._encoded()}}]
        else:
            message["content"] = "I can't draw that, but here is a description."
        return {
            "id": "gen-1700000000-abcdefghijklmnop",
            "provider": "Google",
            "model": body["model"],
            "object": "chat.completion",
            "created": int(time.time()),
            "choices": [{"logprobs": None, "finish_reason": "stop", "native_finish_reason": "STOP", "index": 0,
                         "message": message}],
            "usage": {"prompt_tokens": 42, "completion_tokens": 1290, "total_tokens": 1332},
        }

    def _images_answer(self) -> dict[str, Any]:
        item: dict[str, Any] = {"revised_prompt": None}
        if self.scenario == "url_only":
            item["url"] = "https://example.invalid/image.png"
        else:
            item["b64_json"] = self._encoded()
        return {"created": int(time.time()), "data": [item],
                "usage": {"total_tokens": 100, "input_tokens": 50, "output_tokens": 50}}
