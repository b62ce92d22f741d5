"""The image-generation backend: an OpenAI-compatible API draws the slide from ``slide_prompt``.

Two request forms are spoken:

* ``chat``: OpenRouter's ``POST {base_url}/chat/completions`` with ``modalities: ["image", "text"]``;
  the picture comes back as a data URL in ``choices[0].message.images[0].image_url.url``.
* ``images``: ``POST {base_url}/images/generations``; the picture is ``data[0].b64_json``.

429 and 5xx are retried (``Retry-After`` honoured, else a short doubling backoff); anything else,
or running out of attempts, raises :class:`ImageApiError` and the slide is typeset instead.
A cancel hangs up a request in flight at once (:class:`stages.netwait.Hangup`) and ends the wait.
The API key goes only into the Authorization header: never into messages or logs.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from typing import TYPE_CHECKING, Any

from stages.base import Cancelled
from stages.netwait import Hangup

if TYPE_CHECKING:
    import httpx
    from stages.settings import ImageApiSettings

LANGUAGE_NAMES = {"ja": "Japanese", "en": "English", "zh": "Chinese", "ko": "Korean", "fr": "French",
                  "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese"}


class ImageApiError(Exception):
    """Image generation failed for good; the message is safe to record (no key)."""


def prompt_for(slide_prompt: str, language: str, width: int, height: int) -> str:
    """The prompt sent to the API: the section's prompt plus the frame and the on-slide language."""
    name = LANGUAGE_NAMES.get(language.split("-")[0], language)
    return (
        f"{slide_prompt.strip()}\n\n"
        f"Draw one presentation slide, landscape {width}x{height} ({_ratio(width, height)}). "
        f"Any text on the slide must be written in {name} (language code {language}); keep text short and legible."
    )


def generate_image(prompt: str, api: "ImageApiSettings", *, cancel: threading.Event | None = None,
                   sleep=time.sleep) -> bytes:
    """Ask the API for one image; return its encoded bytes (PNG, JPEG or WebP as sent).

    Raises:
        ImageApiError: no key/model, a refused request, a malformed answer, or retries used up.
        Cancelled: ``cancel`` was set (a request in flight is hung up).
    """
    key = _api_key(api)
    if not api.model:
        raise ImageApiError("slides.image_api.model is not set")
    if api.form == "chat":
        path, body = "/chat/completions", {
            "model": api.model,
            "messages": [{"role": "user", "content": prompt}],
            "modalities": ["image", "text"],
        }
    else:
        path, body = "/images/generations", {"model": api.model, "prompt": prompt, "n": 1}
        if api.size:
            body["size"] = api.size
        if not api.model.startswith("gpt-image"):
            body["response_format"] = "b64_json"
    url = api.base_url.rstrip("/") + path
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    payload = _post_with_retries(url, body, headers, api, cancel, sleep)
    return _image_bytes(payload, api.form)


# --- internals -----------------------------------------------------------------------------------


def _post_with_retries(url: str, body: dict[str, Any], headers: dict[str, str], api: "ImageApiSettings",
                       cancel: threading.Event | None, sleep) -> dict[str, Any]:
    attempts = max(1, api.attempts)
    last = ""
    hangup = Hangup()
    import httpx  # here, not at the top: the render process imports this module and never makes a request

    from stages.fetch.http import parse_retry_after  # the fetch package loads trafilatura (~1 s)

    with hangup.watch(cancel), httpx.Client(timeout=api.timeout, trust_env=False) as client:
        for attempt in range(1, attempts + 1):
            if cancel is not None and cancel.is_set():
                raise Cancelled("image generation cancelled")
            wait: float | None = None
            try:
                response = client.post(url, json=body, headers=headers, extensions=hangup.extensions)
            except httpx.TransportError as exc:
                if hangup.cancelled:
                    raise Cancelled("image generation cancelled during the request") from None
                last = f"network error: {type(exc).__name__}"
            else:
                if hangup.cancelled:
                    raise Cancelled("image generation cancelled during the request")
                if response.status_code == 200:
                    try:
                        return response.json()
                    except ValueError:
                        raise ImageApiError("the image API answered 200 with a body that is not JSON") from None
                last = f"HTTP {response.status_code}: {_error_message(response)}"
                if response.status_code != 429 and response.status_code < 500:
                    raise ImageApiError(f"the image API refused the request ({last})")
                wait = parse_retry_after(response.headers.get("retry-after"))
            if attempt == attempts:
                break
            delay = wait if wait is not None else api.retry_base_seconds * 2 ** (attempt - 1)
            delay = min(delay, api.retry_max_seconds)
            if cancel is not None:
                if cancel.wait(delay):
                    raise Cancelled("image generation cancelled")
            else:
                sleep(delay)
    raise ImageApiError(f"the image API failed after {attempts} attempts ({last})")


def _image_bytes(payload: dict[str, Any], form: str) -> bytes:
    try:
        if form == "chat":
            message = payload["choices"][0]["message"]
            images = message.get("images") or []
            if not images:
                content = str(message.get("content") or "")[:200]
                raise ImageApiError(f"the answer holds no image (model said: {content!r})")
            url = images[0]["image_url"]["url"]
            if not url.startswith("data:"):
                raise ImageApiError("the image came as a link, not a data URL")
            _, _, encoded = url.partition(",")
        else:
            item = payload["data"][0]
            encoded = item.get("b64_json") or ""
            if not encoded:
                raise ImageApiError("the answer holds no b64_json image")
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ImageApiError(f"unexpected answer shape from the image API ({type(exc).__name__}: {exc})") from None
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ImageApiError("the image is not valid base64") from None


def _error_message(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or error)[:300]
    if isinstance(error, str):
        return error[:300]
    return str(payload)[:300]


def _api_key(api: "ImageApiSettings") -> str | None:
    """The key; ``api_key_env`` was already resolved into ``api_key`` by the settings."""
    if api.api_key is not None:
        return api.api_key.get_secret_value() or None
    return None


def _ratio(width: int, height: int) -> str:
    from math import gcd

    g = gcd(width, height) or 1
    return f"{width // g}:{height // g}"
