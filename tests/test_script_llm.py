"""The LLM writer against a real HTTP double of the chat-completions API."""

from __future__ import annotations

import copy
import json
import logging
import socket
import time
from pathlib import Path

import pytest

from stages.base import ConfigError, InputError, TransientError
from stages.script import generate_script, load_script
from stages.script.llm import ChatClient, extract_json, strict_schema, truncate_article, write_with_llm
from stages.script.text import is_katakana_reading
from stages.settings import load_settings
from tests.doubles.llm import (
    ChatDouble,
    completion,
    json_schema_unsupported,
    openai_error,
    rate_limited,
    refusal,
    reply_fenced,
    reply_json,
    server_error,
    truncated,
    vllm_error,
)

DATA = Path(__file__).parent / "data"
ARTICLE = json.loads((DATA / "script_article_ja.json").read_text(encoding="utf-8"))
KEY = "sk-test-SECRET-0123456789abcdef"

REPLY = {
    "title": "型ヒント入門",
    "description": "Pythonの型ヒントを短く紹介します。",
    "sections": [
        {
            "title": "つかみ",
            "narrations": [
                {"text": "型ヒント、使っていますか？", "reading": "カタヒント、ツカッテイマスカ？", "persona_id": "narrator"},
                {"text": "2024年には約70%の人が使っています。", "reading": None, "persona_id": "narrator"},
            ],
            "slide": {"heading": "型ヒント", "bullets": ["意図が伝わる", "誤りが見つかる"]},
            "source_image_url": "https://example.com/img/hints.png",
        },
        {
            "title": "まとめ",
            "narrations": [{"text": "まずは1つの関数から。", "reading": "マズワ1ツノカンスーカラ。", "persona_id": None}],
            "slide": {"heading": "まとめ", "bullets": ["小さく始める", "ツールを使う"]},
            "source_image_url": "https://tracker.example.net/not-in-the-article.png",
        },
    ],
}


@pytest.fixture
def double():
    with ChatDouble(api_key=KEY) as server:
        yield server


def llm_settings(tmp_path, double, **overrides):
    llm = {"base_url": double.base_url, "model": "test/model", "api_key": KEY, "require_parameters": True, "timeout": 10,
           "retry_base_seconds": 0.01, "retry_max_seconds": 0.02}
    llm.update(overrides.pop("llm", {}))
    script = {"writer": "llm", **overrides.pop("script", {})}
    return load_settings(home=tmp_path, script=script, llm=llm, **overrides)


def test_valid_structured_reply_becomes_a_script(tmp_path, double):
    """A structured reply is validated, readings are filled as katakana, images are checked."""
    double.queue(reply_json(REPLY))
    script = write_with_llm(ARTICLE, llm_settings(tmp_path, double))
    assert script.title == "型ヒント入門" and script.language == "ja"
    for _, _, narration in script.phrases():
        assert narration.reading and is_katakana_reading(narration.reading), narration.reading
        assert narration.persona_id == "narrator"
    first, last = script.sections
    assert first.narrations[0].reading == "カタヒント、ツカッテイマスカ？"  # a good reading is kept
    assert first.source_image_url == first.slide.image == "https://example.com/img/hints.png"
    assert last.source_image_url is None  # not one of the article's images


def test_request_carries_strict_schema_provider_and_key_only_in_the_header(tmp_path, double):
    """The request is OpenAI-shaped: strict json_schema, provider.require_parameters, Bearer key."""
    double.queue(reply_json(REPLY))
    write_with_llm(ARTICLE, llm_settings(tmp_path, double))
    [request] = double.requests
    assert request.path == "/v1/chat/completions"
    body = request.body
    assert body["model"] == "test/model" and body["max_tokens"] > 0
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False and set(schema["required"]) == {"title", "description", "sections"}
    assert body["provider"] == {"require_parameters": True}
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert KEY.encode() not in request.raw
    assert [name for name, value in request.headers.items() if KEY in value] == ["Authorization"]


def test_provider_is_only_sent_to_openrouter_by_default(tmp_path, double):
    """Without an explicit switch, a non-OpenRouter server gets no provider field."""
    double.queue(reply_json(REPLY))
    write_with_llm(ARTICLE, llm_settings(tmp_path, double, llm={"require_parameters": None}))
    assert "provider" not in double.requests[0].body


def test_fenced_json_is_accepted(tmp_path, double):
    """A reply wrapped in prose and a ```json fence is read."""
    double.queue(reply_fenced(REPLY))
    assert write_with_llm(ARTICLE, llm_settings(tmp_path, double)).title == "型ヒント入門"


def test_invalid_json_is_retried_once_with_the_error(tmp_path, double):
    """Invalid JSON first, valid on the retry: the retry carries the error message."""
    double.queue(completion('{"title": "x", "sections": [ }'), reply_json(REPLY))
    script = write_with_llm(ARTICLE, llm_settings(tmp_path, double))
    assert script.title == "型ヒント入門"
    assert len(double.requests) == 2
    retry = double.requests[1].body["messages"]
    assert retry[-2]["role"] == "assistant" and retry[-1]["role"] == "user"
    assert "not valid JSON" in retry[-1]["content"]


def test_schema_invalid_reply_is_retried_then_fails_clearly(tmp_path, double):
    """A reply that fails validation twice is an InputError naming the problem."""
    bad = copy.deepcopy(REPLY)
    bad["sections"][0]["narrations"] = []
    double.queue(reply_json(bad))
    with pytest.raises(InputError, match="even after a retry") as caught:
        write_with_llm(ARTICLE, llm_settings(tmp_path, double))
    assert "narrations" in str(caught.value)
    assert len(double.requests) == 2


def test_unknown_persona_from_the_model_is_sent_back(tmp_path, double):
    """A persona id that is not configured fails validation and is named in the retry."""
    bad = copy.deepcopy(REPLY)
    bad["sections"][0]["narrations"][0]["persona_id"] = "stranger"
    double.queue(reply_json(bad), reply_json(REPLY))
    write_with_llm(ARTICLE, llm_settings(tmp_path, double))
    assert "stranger" in double.requests[1].body["messages"][-1]["content"]


def test_finish_reason_length_is_a_clear_error(tmp_path, double):
    """A reply cut off by the token limit names llm.max_output_tokens."""
    double.queue(truncated(REPLY))
    with pytest.raises(InputError, match=r"cut off at llm\.max_output_tokens=8192 \(finish_reason=length\)"):
        write_with_llm(ARTICLE, llm_settings(tmp_path, double))


def test_structured_refusal_is_an_input_error(tmp_path, double):
    """message.refusal set → InputError with the model's words."""
    double.queue(refusal("I can't help with that."))
    with pytest.raises(InputError, match="refused.*I can't help with that"):
        write_with_llm(ARTICLE, llm_settings(tmp_path, double))
    assert len(double.requests) == 1


def test_plain_text_refusal_is_an_input_error(tmp_path, double):
    """An apology with no JSON in it is a refusal, not a retryable format slip."""
    double.queue(completion("申し訳ありませんが、このリクエストにはお応えできません。"))
    with pytest.raises(InputError, match="refused"):
        write_with_llm(ARTICLE, llm_settings(tmp_path, double))


def test_rate_limit_is_transient_with_retry_after(tmp_path, double):
    """429 → TransientError carrying Retry-After and the OpenAI error message."""
    double.queue(rate_limited("7"))
    with pytest.raises(TransientError) as caught:
        write_with_llm(ARTICLE, llm_settings(tmp_path, double))
    assert caught.value.retry_after == 7
    assert "429" in str(caught.value) and "Rate limit reached" in str(caught.value)
    assert "rate_limit_exceeded" in str(caught.value)


def test_server_error_is_transient(tmp_path, double):
    """500 → TransientError with the server's message."""
    double.queue(server_error())
    with pytest.raises(TransientError, match="500: The server had an error"):
        write_with_llm(ARTICLE, llm_settings(tmp_path, double))


def test_vllm_error_body_is_parsed(tmp_path, double):
    """vLLM's flat error body gives the message; 503 from vLLM is transient."""
    double.queue(vllm_error(503, "The model is still loading", "ServiceUnavailableError"))
    with pytest.raises(TransientError, match="503: The model is still loading \\(type=ServiceUnavailableError, code=503\\)"):
        write_with_llm(ARTICLE, llm_settings(tmp_path, double))


def test_bad_request_falls_back_to_json_object_then_fails_with_the_message(tmp_path, double):
    """A 400 on json_schema retries with json_object; a second 400 is an InputError with vLLM's text."""
    double.queue(vllm_error(400, "The model `test/model` does not exist."))
    with pytest.raises(InputError, match="400.*does not exist"):
        write_with_llm(ARTICLE, llm_settings(tmp_path, double))
    assert [r.body["response_format"]["type"] for r in double.requests] == ["json_schema", "json_object"]


def test_json_schema_unsupported_falls_back_to_json_object(tmp_path, double):
    """A server that rejects json_schema with a 400 gets json_object, and the script still comes."""
    double.queue(json_schema_unsupported(then=reply_json(REPLY)))
    script = write_with_llm(ARTICLE, llm_settings(tmp_path, double))
    assert script.title == "型ヒント入門"
    assert [r.body["response_format"]["type"] for r in double.requests] == ["json_schema", "json_object"]


def test_wrong_key_is_an_input_error_that_never_shows_the_key(tmp_path, double, monkeypatch, caplog):
    """A 401 that echoes the key is reported with the key masked; logs never hold it."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("MY_LLM_KEY", "sk-wrong-key-987654321")
    settings = llm_settings(tmp_path, double, llm={"api_key": None, "api_key_env": "MY_LLM_KEY"})
    with pytest.raises(InputError) as caught:
        write_with_llm(ARTICLE, settings)
    message = str(caught.value)
    assert isinstance(caught.value, ConfigError)  # the note says to fix the settings, not the input
    assert "401" in message and "***" in message and "sk-wrong-key-987654321" not in message
    assert double.requests[0].headers["Authorization"] == "Bearer sk-wrong-key-987654321"
    assert "sk-wrong-key-987654321" not in caplog.text
    assert "sk-wrong-key-987654321" not in "".join(double.log)


def test_key_never_appears_in_notes_progress_logs_or_reprs(tmp_path, double, caplog):
    """Everything the writer reports is free of the API key."""
    caplog.set_level(logging.DEBUG)
    double.queue(reply_json(REPLY))
    seen: list[str] = []
    settings = llm_settings(tmp_path, double, llm={"max_input_tokens": 1500})
    write_with_llm(
        ARTICLE, settings,
        lambda c, t, m: seen.append(m),
        note=lambda message, **data: seen.append(message + json.dumps(data)),
    )
    seen += [repr(settings), repr(settings.llm), repr(ChatClient(settings.llm)), json.dumps(settings.public_dict(), default=str), caplog.text]
    assert not [text for text in seen if KEY in text]


def test_unreachable_server_is_transient(tmp_path):
    """A closed port is a TransientError, not a crash."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = load_settings(home=tmp_path, script={"writer": "llm"}, llm={"base_url": f"http://127.0.0.1:{port}/v1", "model": "m",
                                                                           "retry_base_seconds": 0.01, "retry_max_seconds": 0.02})
    with pytest.raises(TransientError, match="unreachable"):
        write_with_llm(ARTICLE, settings)


def test_dialogue_prompt_names_personas_and_constrains_ids(tmp_path, double):
    """Dialogue style lists the personas and restricts persona_id to them in the schema."""
    reply = copy.deepcopy(REPLY)
    for section in reply["sections"]:
        for n, narration in enumerate(section["narrations"]):
            narration["persona_id"] = ["zundamon", "metan"][n % 2]
    double.queue(reply_json(reply))
    settings = llm_settings(
        tmp_path, double,
        personas=[{"id": "zundamon", "name": "ずんだもん"}, {"id": "metan", "name": "四国めたん"}],
        default_persona="zundamon",
        script={"style": "dialogue"},
    )
    script = write_with_llm(ARTICLE, settings)
    assert {n.persona_id for _, _, n in script.phrases()} == {"zundamon", "metan"}
    body = double.requests[0].body
    prompt = body["messages"][1]["content"]
    assert "zundamon（ずんだもん）" in prompt and "metan（四国めたん）" in prompt
    assert "「は」は「ワ」" in prompt  # the Japanese reading rules
    narration = body["response_format"]["json_schema"]["schema"]["$defs"]["LLMNarration"]
    assert narration["properties"]["persona_id"]["enum"] == ["zundamon", "metan"]


def test_english_prompt_is_english_and_single_narrator(tmp_path, double):
    """An English article gets the English single-narrator prompt and no reading rules."""
    english = json.loads((DATA / "script_article_en.json").read_text(encoding="utf-8"))
    reply = {"title": "Coffee", "description": "d", "sections": [{"title": "Hook", "narrations": [{"text": "Coffee!", "reading": None, "persona_id": "narrator"}], "slide": {"heading": "h", "bullets": ["a", "b"]}, "source_image_url": None}]}
    double.queue(reply_json(reply))
    script = write_with_llm(english, llm_settings(tmp_path, double))
    assert script.language == "en" and script.sections[0].narrations[0].reading is None
    prompt = double.requests[0].body["messages"][1]["content"]
    assert "Hook" in prompt and "3 to 5 main points" in prompt and 'persona_id "narrator"' in prompt
    assert "カタカナ" not in prompt


def test_article_is_truncated_at_block_boundaries_keeping_headings(tmp_path, double):
    """A tight token budget drops paragraphs but keeps the outline, and says so in a note."""
    blocks = []
    for i in range(30):
        blocks.append({"type": "heading", "level": 2, "text": f"Heading number {i}"})
        blocks.append({"type": "paragraph", "text": f"Paragraph {i} " + "word " * 200})
    article = {"title": "Long", "language": "en", "blocks": blocks}
    text, dropped = truncate_article(article, 1000)
    assert dropped == 27 and "[…]" in text
    assert all(f"## Heading number {i}\n" in text + "\n" for i in range(30))
    assert "Paragraph 2 " in text and "Paragraph 3 " not in text
    notes = []
    double.queue(reply_json({**REPLY, "sections": REPLY["sections"][:1]}))
    write_with_llm(article, llm_settings(tmp_path, double, llm={"max_input_tokens": 3000}), note=lambda m, **d: notes.append((m, d)))
    prompt = double.requests[0].body["messages"][1]["content"]
    assert "Heading number 29" in prompt and "Paragraph 29" not in prompt
    assert notes and notes[0][1]["dropped_blocks"] > 0


def test_generate_script_with_llm_writes_a_valid_file(tmp_path, double):
    """The direct API with writer = llm writes a script.yaml that validates."""
    double.queue(reply_json(REPLY))
    article = tmp_path / "article.json"
    article.write_text(json.dumps(ARTICLE, ensure_ascii=False), encoding="utf-8")
    settings = llm_settings(tmp_path, double)
    path = generate_script(article, tmp_path / "job", settings)
    assert load_script(path, settings).sections[0].title == "つかみ"


def test_extract_json_and_strict_schema():
    """Fences and prose are stripped; the strict schema forbids extra keys everywhere."""
    assert extract_json('Sure!\n```json\n{"a": 1}\n```') == {"a": 1}
    assert extract_json('{"a": {"b": 2}} trailing words') == {"a": {"b": 2}}
    with pytest.raises(ValueError):
        extract_json("no json here")
    schema = strict_schema()
    for definition in schema["$defs"].values():
        assert definition["additionalProperties"] is False
        assert set(definition["required"]) == set(definition["properties"])
    assert "default" not in json.dumps(schema)


def test_unknown_model_is_an_input_error_with_openai_details(tmp_path, double):
    """A 404 with OpenAI's error body names the message, type and code; it is not retried."""
    double.queue(openai_error(404, "The model `test/model` does not exist or you do not have access to it.", "invalid_request_error", "model_not_found"))
    with pytest.raises(InputError, match=r"404.*does not exist.*type=invalid_request_error, code=model_not_found"):
        write_with_llm(ARTICLE, llm_settings(tmp_path, double))
    assert len(double.requests) == 1


# --- backoff and cancellation (real sockets) -----------------------------------------------------


def test_transient_failures_are_tried_again_with_backoff(tmp_path, double):
    """Two 503s then a reply: the writer waits and asks again (llm.attempts), and the script comes."""
    double.queue(server_error(), server_error(), reply_json(REPLY))
    script = write_with_llm(ARTICLE, llm_settings(tmp_path, double, llm={"attempts": 3}))
    assert script.title == "型ヒント入門"
    assert len(double.requests) == 3


def test_backoff_gives_up_after_llm_attempts(tmp_path, double):
    """A server that keeps failing gets exactly llm.attempts requests; the error says so."""
    double.queue(server_error())
    with pytest.raises(TransientError, match="gave up after 4 attempts"):
        write_with_llm(ARTICLE, llm_settings(tmp_path, double, llm={"attempts": 4}))
    assert len(double.requests) == 4


def test_default_backoff_outlasts_an_engine_restart(tmp_path):
    """The default waits add up to about a minute, longer than a model server takes to restart."""
    from stages.netwait import backoff_total

    llm = load_settings(home=tmp_path).llm
    assert backoff_total(llm.attempts, llm.retry_base_seconds, llm.retry_max_seconds) >= 55


def test_cancel_hangs_up_a_request_in_flight(tmp_path, double):
    """A cancel while the model 'thinks' ends write_with_llm with Cancelled at once (the read and
    total timeouts are far away), and the server sees the connection closed."""
    import threading

    from stages.base import Cancelled, CancelToken
    from tests.doubles.llm import stall

    double.queue(stall())
    cancel = CancelToken()
    outcome: list[BaseException] = []

    def write() -> None:
        try:
            write_with_llm(ARTICLE, llm_settings(tmp_path, double, llm={"timeout": 600}), cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 (inspected below)
            outcome.append(exc)

    worker = threading.Thread(target=write)
    worker.start()
    deadline = time.monotonic() + 30
    while not double.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert double.requests and worker.is_alive()
    cancel.set()
    worker.join(60)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled), outcome
    deadline = time.monotonic() + 30
    while double.hung_up < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert double.hung_up == 1 and len(double.requests) == 1


def test_model_shows_code_and_tables_by_their_marks_and_never_speaks_urls(tmp_path, double):
    """The article's code and table reach the model marked [V1], [V2]; a line's show puts one on screen;
    URLs and markup in the model's lines are not spoken."""
    article = {
        "title": "型の対応", "language": "ja",
        "blocks": [
            {"type": "heading", "level": 2, "text": "整数"},
            {"type": "paragraph", "text": "Rust と Python の整数は次のように対応します。"},
            {"type": "table", "header": ["Rust", "Python"], "rows": [["u64", "int"]], "caption": ""},
            {"type": "code", "language": "rust", "text": "let n: u64 = obj.extract()?;"},
        ],
    }
    reply = copy.deepcopy(REPLY)
    reply["sections"][0]["narrations"] = [
        {"text": "対応は次の表のとおりです。", "reading": None, "persona_id": "narrator", "show": "V1"},
        {"text": "詳しくは https://pyo3.rs を見てください。", "reading": "ショーサイワ", "persona_id": "narrator", "show": None},
        {"text": "`u64` は **int** になります。", "reading": None, "persona_id": "narrator", "show": "V9"},
        {"text": "変換のコードです。", "reading": None, "persona_id": "narrator", "show": "V2"},
    ]
    double.queue(reply_json(reply))
    script = write_with_llm(article, llm_settings(tmp_path, double))
    prompt = json.dumps(double.requests[-1].body["messages"], ensure_ascii=False)
    assert "[V1]" in prompt and "[V2]" in prompt and "| Rust | Python |" in prompt
    section = script.sections[0]
    assert [v.kind for v in section.visuals] == ["table", "code"]
    assert [n.show for n in section.narrations] == [0, None, None, 1]
    texts = [n.text for n in section.narrations]
    assert texts[1] == "詳しくはを見てください。" and texts[2] == "u64 は int になります。"
    assert all("http" not in t and "*" not in t and "`" not in t for t in texts)
