"""The LLM writer: any OpenAI-compatible ``POST {base_url}/chat/completions`` writes the script.

Request:
    ``response_format`` is a strict ``json_schema`` generated from :class:`LLMScript`; when the
    server rejects it with a 400, the same request is sent once more with ``json_object`` (the
    prompt spells out the shape anyway). ``provider: {require_parameters: true}`` is sent to
    OpenRouter (``llm.require_parameters``; by default only when the base URL is openrouter.ai)
    so it routes only to providers that honour the schema.

Article budget (``llm.max_input_tokens``):
    Tokens are estimated by :func:`stages.script.text.estimate_tokens` (one per CJK character,
    one per four other characters). The instructions are counted first, then room is reserved
    for every heading of the article, so the model always sees its outline. The other blocks go
    in, in order, while they fit in what is left; after the first one that does not, only the
    headings follow. Each run of dropped blocks is marked ``[…]``. Images are listed separately
    (at most :data:`MAX_IMAGES`).

Reply:
    Code fences and text around the JSON object are stripped; the object is validated as a
    :class:`Script` (persona ids must be configured ones; a ``source_image_url`` that is not one
    of the article's images is dropped). An invalid reply is retried once with the errors
    appended to the conversation. ``finish_reason: length`` is an :class:`InputError` naming
    ``llm.max_output_tokens``; a refusal (``message.refusal``, ``finish_reason:
    content_filter``, or an apology with no JSON) is an :class:`InputError`. 429, 5xx, timeouts
    and connection errors are tried again up to ``llm.attempts`` times, waiting
    ``llm.retry_base_seconds`` and doubling up to ``llm.retry_max_seconds`` (the server's
    ``Retry-After`` honoured), then are a :class:`TransientError`. A cancel hangs up a request in
    flight at once. OpenAI
    (``{"error": {"message", "type", "code"}}``) and vLLM (``{"object": "error", "message",
    "type", "code"}``) error bodies are turned into the message.

Readings:
    Japanese phrases without a reading get pyopenjtalk's; a reading that is not katakana is run
    through g2p. The API key (``llm.api_key`` or the variable named by ``llm.api_key_env``) is
    sent only in the ``Authorization`` header and is masked in every message built from a reply.
"""

from __future__ import annotations

import email.utils
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from stages.base import Cancelled, ConfigError, InputError, Note, Progress, TransientError, no_note, no_progress
from stages.netwait import Hangup, with_backoff
from stages.script import prompts
from stages.script.model import Script
from stages.script.text import article_language, estimate_tokens, is_japanese, normalise_reading, reading_for
from stages.script.visuals import speakable, visual_of

if TYPE_CHECKING:
    from stages.settings import LLMSettings, Persona, Settings

MAX_IMAGES = 20
_REFUSAL = re.compile(
    r"(i'?m sorry|i am sorry|i can(?:no|')t|i won'?t|unable to (?:help|comply|assist)|as an ai|"
    r"申し訳|お手伝いできません|できかねます|お答えできません)",
    re.IGNORECASE,
)


# --- the schema the model fills -----------------------------------------------------------------


class LLMNarration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    reading: str | None
    persona_id: str | None
    show: str | None  # the label ("V2") of the article's code, table or formula this line puts on screen


class LLMSlide(BaseModel):
    model_config = ConfigDict(extra="forbid")
    heading: str
    bullets: list[str]


class LLMSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    narrations: list[LLMNarration]
    slide: LLMSlide
    source_image_url: str | None


class LLMScript(BaseModel):
    """What the model is asked for: a subset of :class:`Script`, every field required."""

    model_config = ConfigDict(extra="forbid")
    title: str
    description: str
    sections: list[LLMSection]


def strict_schema(persona_ids: list[str] | None = None) -> dict[str, Any]:
    """The JSON schema of :class:`LLMScript` in OpenAI's strict form.

    Every object lists all its properties as required and forbids others; defaults are removed.
    With ``persona_ids``, ``persona_id`` must be one of them.
    """
    schema = LLMScript.model_json_schema()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("default", None)
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    schema.pop("description", None)
    if persona_ids:
        schema["$defs"]["LLMNarration"]["properties"]["persona_id"] = {
            "title": "Persona Id",
            "type": "string",
            "enum": list(persona_ids),
        }
    return schema


# --- the writer ---------------------------------------------------------------------------------


def write_with_llm(
    article: dict[str, Any],
    settings: "Settings",
    progress: Progress = no_progress,
    *,
    cancel: threading.Event | None = None,
    note: Note = no_note,
) -> Script:
    """Write a script with the configured chat API (rules in the module docstring).

    Raises:
        InputError: a refusal, a cut-off reply, a reply still invalid after one retry, or a
            request the server rejects (bad model, bad key).
        TransientError: 429, 5xx, timeouts and connection errors, after ``llm.attempts`` tries.
        Cancelled: ``cancel`` was set (a request in flight is hung up).
    """
    language = article_language(article, settings.script.language)
    japanese = is_japanese(language)
    dialogue = settings.script.style == "dialogue" and len(settings.personas) >= 2
    personas = _personas(settings, dialogue)
    images = _images(article)
    steps = 4
    progress(0, steps, "preparing the prompt")
    visuals = visual_blocks(article)
    body, dropped = truncate_article(article, _article_budget(settings, japanese, personas, dialogue))
    if dropped:
        note("article truncated to fit llm.max_input_tokens", dropped_blocks=dropped, budget=settings.llm.max_input_tokens)
    user = "\n\n".join([
        prompts.instructions(japanese, personas, dialogue, settings.script.max_minutes),
        prompts.article_message(japanese, _title(article), str(article.get("url") or ""), body, _image_listing(images)),
    ])
    messages = [{"role": "system", "content": prompts.system_prompt(japanese)}, {"role": "user", "content": user}]
    client = ChatClient(settings.llm, cancel=cancel)
    schema = strict_schema([p.id for p in personas] if dialogue else None)

    script: Script | None = None
    errors = ""
    for attempt in (1, 2):
        _check(cancel)
        progress(attempt, steps, "asking the model" if attempt == 1 else "asking the model again (invalid reply)")
        reply = client.complete(messages, schema)
        script, errors = _validate_reply(reply.content, settings, images, personas, language, visuals)
        if script is not None:
            break
        messages = messages + [
            {"role": "assistant", "content": reply.content},
            {"role": "user", "content": prompts.retry_message(japanese, errors)},
        ]
    if script is None:
        raise InputError(f"the model's reply was not a valid script, even after a retry:\n{client.redact(errors)}")
    _check(cancel)
    progress(3, steps, "filling readings")
    if japanese:
        script = _with_readings(script, settings, cancel)
    progress(steps, steps, f"{len(script.sections)} sections written")
    return script


def truncate_article(article: dict[str, Any], budget_tokens: int) -> tuple[str, int]:
    """The article as plain text within ``budget_tokens`` and how many blocks were dropped.

    Room for every heading is reserved first; other blocks then go in, in order, while they fit
    in what is left, and after the first one that does not, only headings follow.
    """
    labels = {id(block): label for label, block in visual_blocks(article).items()}
    rendered = [
        (block.get("type") == "heading", text)
        for block in article.get("blocks") or []
        if isinstance(block, dict) and (text := _render_block(block, labels.get(id(block))))
    ]
    costs = [estimate_tokens(text) + 1 for _, text in rendered]
    reserved = sum(cost for (is_heading, _), cost in zip(rendered, costs) if is_heading)
    lines: list[str] = []
    used = 0
    dropped = 0
    overflowing = False
    for (is_heading, text), cost in zip(rendered, costs):
        if is_heading:
            reserved -= cost
            fits = used + cost <= budget_tokens
        else:
            fits = not overflowing and used + cost + reserved <= budget_tokens
        if fits:
            lines.append(text)
            used += cost
            continue
        overflowing = True
        dropped += 1
        if not lines or lines[-1] != "[…]":
            lines.append("[…]")
    return "\n\n".join(lines), dropped


# --- the HTTP client ----------------------------------------------------------------------------


@dataclass
class ChatReply:
    content: str
    finish_reason: str | None


class ChatClient:
    """One OpenAI-compatible chat-completions endpoint; knows the key but never shows it.

    ``cancel`` (the job's token) hangs up a request in flight and ends the waits between retries.
    """

    def __init__(self, llm: "LLMSettings", cancel: threading.Event | None = None):
        self._llm = llm
        self._cancel = cancel
        self._url = llm.base_url.rstrip("/") + "/chat/completions"
        self._key = _api_key(llm)
        self._json_schema_supported = True

    def __repr__(self) -> str:
        return f"ChatClient(url={self._url!r}, model={self._llm.model!r})"

    def redact(self, text: str) -> str:
        """``text`` with the API key masked."""
        return text.replace(self._key, "***") if self._key else text

    def complete(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> ChatReply:
        """One completion, tried again with backoff on transient failures (``llm.attempts``).

        Falls back to ``json_object`` once if ``json_schema`` gets a 400.
        """
        llm = self._llm
        return with_backoff(lambda: self._complete_once(messages, schema), attempts=llm.attempts,
                            base_seconds=llm.retry_base_seconds, max_seconds=llm.retry_max_seconds,
                            cancel=self._cancel)

    def _complete_once(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> ChatReply:
        if self._json_schema_supported:
            fmt = {"type": "json_schema", "json_schema": {"name": "script", "strict": True, "schema": schema}}
            response = self._post(self._body(messages, fmt))
            if response.status_code == 400:
                self._json_schema_supported = False
            else:
                return self._reply(response)
        return self._reply(self._post(self._body(messages, {"type": "json_object"})))

    def _body(self, messages: list[dict[str, str]], response_format: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._llm.model,
            "messages": messages,
            "temperature": self._llm.temperature,
            "max_tokens": self._llm.max_output_tokens,
            "response_format": response_format,
        }
        require = self._llm.require_parameters
        if require is None:
            require = (urlsplit(self._llm.base_url).hostname or "").endswith("openrouter.ai")
        if require:
            body["provider"] = {"require_parameters": True}
        return body

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        headers = {"Content-Type": "application/json", "X-Title": "moviegen"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        hangup = Hangup()
        try:
            with hangup.watch(self._cancel), httpx.Client(timeout=self._llm.timeout, follow_redirects=False) as http:
                response = http.post(self._url, json=body, headers=headers, extensions=hangup.extensions)
        except httpx.HTTPError as exc:
            if hangup.cancelled:
                raise Cancelled("script writing was cancelled during the LLM request") from None
            if isinstance(exc, httpx.TimeoutException):
                raise TransientError(f"the LLM API at {self._url} timed out after {self._llm.timeout:g}s") from None
            raise TransientError(f"the LLM API at {self._url} is unreachable: {type(exc).__name__}") from None
        if hangup.cancelled:  # a reply cut short by the hang-up is not to be trusted
            raise Cancelled("script writing was cancelled during the LLM request")
        return response

    def _reply(self, response: httpx.Response) -> ChatReply:
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientError(
                f"the LLM API answered {status}: {self._error_text(response)}",
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        if status in (401, 403):
            raise ConfigError(f"the LLM API refused the credentials ({status}): {self._error_text(response)}; check llm.api_key or llm.api_key_env")
        if status >= 400:
            raise InputError(f"the LLM API rejected the request ({status}): {self._error_text(response)}; check llm.model and llm.base_url")
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise TransientError(f"the LLM API sent a {status} reply that is not a chat completion") from None
        finish = choice.get("finish_reason")
        refusal = message.get("refusal")
        content = message.get("content") or ""
        if refusal:
            raise InputError(f"the model refused to write the script: {self.redact(str(refusal))}")
        if finish == "content_filter":
            raise InputError("the model's reply was blocked by its content filter (finish_reason=content_filter)")
        if finish == "length":
            raise InputError(
                f"the model's reply was cut off at llm.max_output_tokens={self._llm.max_output_tokens} "
                "(finish_reason=length); raise it, or lower script.max_minutes"
            )
        if not isinstance(content, str):
            content = json.dumps(content)
        if "{" not in content and _REFUSAL.search(content):
            raise InputError(f"the model refused to write the script: {self.redact(content.strip()[:300])}")
        return ChatReply(content=content, finish_reason=finish)

    def _error_text(self, response: httpx.Response) -> str:
        try:
            data = response.json()
        except ValueError:
            return self.redact(response.text.strip()[:300] or response.reason_phrase)
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):  # OpenAI, OpenRouter
            parts = error
        elif isinstance(data, dict) and data.get("object") == "error":  # vLLM
            parts = data
        elif isinstance(error, str):
            parts = {"message": error}
        else:
            return self.redact(json.dumps(data, ensure_ascii=False)[:300])
        text = str(parts.get("message") or "no message")
        extras = [f"{k}={parts[k]}" for k in ("type", "code") if parts.get(k) not in (None, "")]
        return self.redact(text + (f" ({', '.join(extras)})" if extras else ""))


# --- replies ------------------------------------------------------------------------------------


def extract_json(content: str) -> Any:
    """The JSON object in a reply: code fences and surrounding prose are stripped.

    Raises:
        ValueError: no JSON object could be read.
    """
    text = content.strip()
    fenced = re.search(r"```(?:json|JSON)?\s*\n?(.*?)```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1).strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("the reply holds no JSON object")
    try:
        return json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise ValueError(f"the reply is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None


def visual_blocks(article: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The article's code blocks, tables and display formulas by the label the model sees (``V1``…)."""
    blocks = [b for b in article.get("blocks") or [] if isinstance(b, dict) and b.get("type") in ("code", "table", "math")]
    return {f"V{n}": block for n, block in enumerate(blocks, 1)}


def _validate_reply(
    content: str, settings: "Settings", images: list[dict[str, Any]], personas: "list[Persona]", language: str,
    visuals: dict[str, dict[str, Any]] | None = None,
) -> tuple[Script | None, str]:
    try:
        data = extract_json(content)
    except ValueError as exc:
        return None, str(exc)
    if not isinstance(data, dict):
        return None, "the reply must be a JSON object with title, description and sections"
    data.setdefault("language", language)
    known_images = {img["src"] for img in images}
    default = personas[0].id
    for section in data.get("sections") or []:
        if isinstance(section, dict):
            if section.get("source_image_url") not in known_images:
                section.pop("source_image_url", None)
            for narration in section.get("narrations") or []:
                if isinstance(narration, dict) and not narration.get("persona_id"):
                    narration["persona_id"] = default
            _section_visuals(section, visuals or {}, is_japanese(language))
    try:
        script = Script.model_validate(data)
    except ValidationError as exc:
        return None, "\n".join(
            f"- {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
        )
    known = {p.id for p in settings.personas}
    unknown = sorted({n.persona_id for _, _, n in script.phrases() if n.persona_id not in known})
    if unknown:
        return None, f"- unknown persona_id {', '.join(unknown)}; use only {', '.join(sorted(known))}"
    if images:
        script = _with_slide_images(script)
    return script, ""


def _section_visuals(section: dict[str, Any], visuals: dict[str, dict[str, Any]], japanese: bool) -> None:
    """Turn the model's ``show`` labels into the section's visuals, and keep only speakable lines.

    A line whose text holds a URL, markup or code loses them (:func:`stages.script.visuals.speakable`;
    its reading is then made again); a line left with nothing to say is dropped, unless it is the
    section's last.
    """
    shown: list[str] = []
    kept = []
    narrations = [n for n in section.get("narrations") or [] if isinstance(n, dict)]
    for narration in narrations:
        label = narration.pop("show", None)
        text = narration.get("text")
        if isinstance(text, str):
            spoken = speakable(text, japanese)
            if spoken != " ".join(text.split()):
                narration["reading"] = None
            if not spoken:
                continue
            narration["text"] = spoken
        if isinstance(label, str) and label in visuals and visual_of(visuals[label]) is not None:
            if label not in shown:
                shown.append(label)
            narration["show"] = shown.index(label)
        kept.append(narration)
    if kept or not narrations:
        section["narrations"] = kept + [n for n in section.get("narrations") or [] if not isinstance(n, dict)]
    if shown:
        section["visuals"] = [visual_of(visuals[label]).model_dump(exclude_none=True) for label in shown]


def _with_slide_images(script: Script) -> Script:
    sections = []
    for section in script.sections:
        if section.source_image_url and section.slide is not None and section.slide.image is None:
            slide = section.slide.model_copy(update={"image": section.source_image_url})
            section = section.model_copy(update={"slide": slide})
        sections.append(section)
    return script.model_copy(update={"sections": sections})


def _with_readings(script: Script, settings: "Settings", cancel: threading.Event | None) -> Script:
    pronunciation = [(e.surface, e.reading) for e in settings.pronunciation]
    sections = []
    for section in script.sections:
        _check(cancel)
        narrations = []
        for narration in section.narrations:
            if narration.reading:
                reading = normalise_reading(narration.reading, pronunciation)
            else:
                reading = reading_for(narration.text, pronunciation)
            narrations.append(narration.model_copy(update={"reading": reading or None}))
        sections.append(section.model_copy(update={"narrations": narrations}))
    return script.model_copy(update={"sections": sections})


# --- small pieces -------------------------------------------------------------------------------


def _api_key(llm: "LLMSettings") -> str | None:
    """The key; ``llm.api_key_env`` was already resolved into ``api_key`` by the settings."""
    if llm.api_key is not None and llm.api_key.get_secret_value():
        return llm.api_key.get_secret_value()
    return None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _personas(settings: "Settings", dialogue: bool) -> "list[Persona]":
    default = settings.persona(None)
    if not dialogue:
        return [default]
    return [default] + [p for p in settings.personas if p.id != default.id]


def _article_budget(settings: "Settings", japanese: bool, personas: "list[Persona]", dialogue: bool) -> int:
    overhead = estimate_tokens(prompts.system_prompt(japanese)) + estimate_tokens(
        prompts.instructions(japanese, personas, dialogue, settings.script.max_minutes)
    )
    return max(0, settings.llm.max_input_tokens - overhead - 200)


def _render_block(block: dict[str, Any], label: str | None = None) -> str:
    kind = block.get("type")
    mark = f"[{label}]\n" if label else ""
    if kind == "heading":
        level = int(block.get("level") or 2)
        return "#" * max(1, min(level, 6)) + " " + _clean(block.get("text"))
    if kind == "paragraph":
        return _clean(block.get("text"))
    if kind == "quote":
        return "> " + _clean(block.get("text"))
    if kind == "list":
        items = [i for i in block.get("items") or [] if isinstance(i, str)]
        return "\n".join(f"{n + 1}. {_clean(i)}" if block.get("ordered") else f"- {_clean(i)}" for n, i in enumerate(items))
    if kind == "admonition":
        return "> " + _clean(block.get("text")) if _clean(block.get("text")) else ""
    if kind == "code":
        text = str(block.get("text") or "").strip("\n")
        return f"{mark}```{_clean(block.get('language'))}\n{text}\n```" if text else ""
    if kind == "math":
        text = str(block.get("text") or "").strip()
        return f"{mark}$$\n{text}\n$$" if text else ""
    if kind == "table":
        rows = [block.get("header") or [], *(block.get("rows") or [])]
        lines = ["| " + " | ".join(_clean(c) for c in row) + " |" for row in rows if row]
        if block.get("header") and lines:
            lines.insert(1, "|" + "---|" * len(block["header"]))
        return mark + "\n".join(lines) if lines else ""
    return ""


def _images(article: dict[str, Any]) -> list[dict[str, Any]]:
    images = []
    for block in article.get("blocks") or []:
        if isinstance(block, dict) and block.get("type") == "image" and isinstance(block.get("src"), str):
            images.append(block)
    return images[:MAX_IMAGES]


def _image_listing(images: list[dict[str, Any]]) -> str:
    lines = []
    for img in images:
        details = "; ".join(f"{k}: {_clean(img.get(k))}" for k in ("alt", "caption") if _clean(img.get(k)))
        lines.append(f"- {img['src']}" + (f" ({details})" if details else ""))
    return "\n".join(lines)


def _title(article: dict[str, Any]) -> str:
    return _clean(article.get("title")) or "-"


def _clean(value: object) -> str:
    return " ".join(str(value).split()) if isinstance(value, str) else ""


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("script writing was cancelled")
