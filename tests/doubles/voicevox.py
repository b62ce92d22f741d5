"""A protocol-faithful VOICEVOX engine double: a real threaded HTTP server on 127.0.0.1.

It serves the engine's routes with their real shapes and content types (VOICEVOX ENGINE 0.24):
``GET /version``, ``GET /engine_manifest``, ``GET /speakers``, ``GET /speaker_info``,
``POST /audio_query``, ``POST /synthesis``, ``GET /user_dict``, ``POST /user_dict_word``,
``PUT``/``DELETE /user_dict_word/{uuid}``. ``/speaker_info?speaker_uuid=&resource_format=base64|url``
answers the character's ``policy`` (terms of use, Markdown), ``portrait`` and ``style_infos``
(icons, portraits, voice samples: base64, or URLs under ``/_resources/``), or 404 for an unknown
uuid.

:func:`aivisspeech_double` and :func:`nemo_double` are the same server speaking as the compatible
engines: their ``/engine_manifest`` (name, brand, port, sampling rate), their speakers (AivisSpeech's
style ids are 32-bit numbers) and, for AivisSpeech, a query with ``tempoDynamicsScale``, output at
44.1 kHz and ``pitchScale`` ignored (the engine has no pitch control). Errors come in the engine's
shapes: FastAPI validation ``{"detail": [{"type", "loc", "msg", "input"}]}``, ``{"detail": "..."}``
from its HTTPExceptions, and ``{"message": "..."}`` for an unknown style.

The audio query is built from the text (one mora per kana, a pause mora at punctuation), and the
WAV's length follows the query the way the engine computes it: pre/post silence and pauses added,
every phoneme length divided by ``speedScale``, rounded to frames of 1/93.75 s, 256 samples per
frame at 24 kHz, then converted to ``outputSamplingRate``. The sound is a tone at each mora's pitch.

Every request is recorded; the server can be stopped and started again on the same port, and
told to fail the next N calls with a status code.
"""

from __future__ import annotations

import io
import json
import math
import socket
import threading
import time
import uuid as uuidlib
import wave
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

VERSION = "0.24.1"
FRAME_RATE = 93.75  # 24000 / 256
UNKNOWN_STYLE = "指定されたスタイルが見つかりませんでした。"

DEFAULT_SPEAKERS: list[dict[str, Any]] = [
    {
        "name": "四国めたん",
        "speaker_uuid": "7ffcb7ce-00ec-4bdc-82cd-45a8889e43ff",
        "styles": [
            {"name": "ノーマル", "id": 2, "type": "talk"},
            {"name": "あまあま", "id": 0, "type": "talk"},
        ],
        "version": "0.15.1",
        "supported_features": {"permitted_synthesis_morphing": "SELF_ONLY"},
    },
    {
        "name": "ずんだもん",
        "speaker_uuid": "388f246b-8c41-4ac1-8e2d-5d79f3ff56d9",
        "styles": [
            {"name": "ノーマル", "id": 3, "type": "talk"},
            {"name": "あまあま", "id": 1, "type": "talk"},
        ],
        "version": "0.15.1",
        "supported_features": {"permitted_synthesis_morphing": "SELF_ONLY"},
    },
]

_ROWS = {  # consonant -> the katakana of its row, in vowel order a i u e o ("_" = none)
    "": "アイウエオ", "k": "カキクケコ", "g": "ガギグゲゴ", "s": "サシスセソ", "z": "ザジズゼゾ",
    "t": "タチツテト", "d": "ダヂヅデド", "n": "ナニヌネノ", "h": "ハヒフヘホ", "b": "バビブベボ",
    "p": "パピプペポ", "m": "マミムメモ", "y": "ヤ_ユ_ヨ", "r": "ラリルレロ", "w": "ワ___ヲ", "v": "___ヴ_",
}  # fmt: skip
_KANA: dict[str, tuple[str | None, str]] = {
    kana: (consonant or None, "aiueo"[i]) for consonant, row in _ROWS.items() for i, kana in enumerate(row) if kana != "_"
}
_SMALL = {"ャ": "a", "ュ": "u", "ョ": "o", "ァ": "a", "ィ": "i", "ゥ": "u", "ェ": "e", "ォ": "o"}
_PAUSES = set("、。，．,.！？!?…；;：:")


POLICIES = {
    "7ffcb7ce-00ec-4bdc-82cd-45a8889e43ff": "# 四国めたん 利用規約\n\n動画などで使うときは「VOICEVOX:四国めたん」とクレジットを記載してください。",
    "388f246b-8c41-4ac1-8e2d-5d79f3ff56d9": "# ずんだもん 利用規約\n\n動画などで使うときは「VOICEVOX:ずんだもん」とクレジットを記載してください。",
}


def engine_manifest(name: str, brand: str, port: int, rate: int, *, pitch: bool = True) -> dict[str, Any]:
    """``GET /engine_manifest`` as the API answers it (assets inlined, features as booleans)."""
    features = {
        "adjust_mora_pitch": pitch, "adjust_phoneme_length": True, "adjust_speed_scale": True,
        "adjust_pitch_scale": pitch, "adjust_intonation_scale": True, "adjust_volume_scale": True,
        "adjust_pause_length": True, "interrogative_upspeak": True, "synthesis_morphing": brand == "VOICEVOX",
        "sing": False, "manage_library": brand != "VOICEVOX", "return_resource_url": True, "apply_katakana_english": True,
    }  # fmt: skip
    return {
        "manifest_version": "0.13.1", "name": name, "brand_name": brand,
        "uuid": str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, name)), "version": VERSION,
        "url": "https://github.com/VOICEVOX/voicevox_engine", "command": "run", "port": port,
        "icon": "iVBORw0KGgo=", "default_sampling_rate": rate, "frame_rate": rate / 256,
        "terms_of_service": f"# {name} 利用規約", "update_infos": [], "dependency_licenses": [],
        "supported_vvlib_manifest_version": None, "supported_features": features,
    }  # fmt: skip


@dataclass
class Recorded:
    """One request as the double saw it."""

    method: str
    path: str
    params: dict[str, str]
    body: Any = None


@dataclass
class _Failure:
    remaining: int
    status: int
    paths: tuple[str, ...] | None


@dataclass
class VoicevoxDouble:
    """The engine double. ``start()`` picks a free port the first time and reuses it after."""

    speakers: list[dict[str, Any]] = field(default_factory=lambda: json.loads(json.dumps(DEFAULT_SPEAKERS)))
    version: str = VERSION
    synthesis_delay: float = 0.0
    requests: list[Recorded] = field(default_factory=list)
    user_dict: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_in_flight: int = 0
    port: int = 0
    manifest: dict[str, Any] | None = field(
        default_factory=lambda: engine_manifest("VOICEVOX Engine", "VOICEVOX", 50021, 24000)
    )  # None: an engine too old to have /engine_manifest (404)
    policies: dict[str, str] = field(default_factory=lambda: dict(POLICIES))
    sampling_rate: int = 24000
    ignores_pitch: bool = False
    extra_query: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failure: _Failure | None = None
        self._in_flight = 0

    # --- control -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "VoicevoxDouble":
        """Serve (again) on the same port."""
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.double = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port (connections are refused until ``start``)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.drop_connections()
            self._server = None

    def fail_next(self, count: int, status: int = 503, paths: tuple[str, ...] | None = None) -> None:
        """Answer the next ``count`` requests (to ``paths`` only, when given) with ``status``."""
        self._failure = _Failure(count, status, paths)

    def calls(self, method: str, path: str) -> list[Recorded]:
        """The recorded requests with this method and path (a prefix for ``/user_dict_word/``)."""
        return [r for r in self.requests if r.method == method and (r.path == path or r.path.startswith(path + "/"))]

    def __enter__(self) -> "VoicevoxDouble":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the engine ------------------------------------------------------------------------------

    def style_ids(self) -> set[int]:
        return {style["id"] for speaker in self.speakers for style in speaker["styles"]}

    def audio_query(self, text: str) -> dict[str, Any]:
        phrases = _accent_phrases(text)
        return {
            "accent_phrases": phrases,
            "speedScale": 1.0,
            "pitchScale": 0.0,
            "intonationScale": 1.0,
            "volumeScale": 1.0,
            "prePhonemeLength": 0.1,
            "postPhonemeLength": 0.1,
            "pauseLength": None,
            "pauseLengthScale": 1.0,
            "outputSamplingRate": self.sampling_rate,
            "outputStereo": False,
            "kana": _kana(phrases),
            **self.extra_query,
        }

    def synthesize(self, query: dict[str, Any]) -> bytes:
        phonemes = phoneme_lengths(query)
        speed = float(query["speedScale"])
        volume = float(query["volumeScale"])
        pitch_scale = 0.0 if self.ignores_pitch else float(query["pitchScale"])
        chunks = []
        phase = 0.0
        for seconds, log_f0, voiced in phonemes:
            n = round_half_even(seconds / speed * FRAME_RATE) * 256
            if voiced and log_f0 > 0:
                f0 = math.exp(log_f0 * 2**pitch_scale)
                t = np.arange(n) / 24000.0
                chunks.append(0.3 * volume * np.sin(phase + 2 * np.pi * f0 * t))
                phase += 2 * np.pi * f0 * n / 24000.0
            else:
                chunks.append(np.zeros(n))
        wave24 = np.concatenate(chunks) if chunks else np.zeros(0)
        rate = int(query["outputSamplingRate"])
        if rate != 24000:
            positions = np.arange(int(round(wave24.size * rate / 24000))) * 24000 / rate
            wave24 = np.interp(positions, np.arange(wave24.size), wave24)
        channels = 2 if query.get("outputStereo") else 1
        pcm = (np.clip(wave24, -1, 1) * 32767).astype("<i2")
        if channels == 2:
            pcm = np.repeat(pcm, 2)
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(channels)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(pcm.tobytes())
        return buffer.getvalue()


def phoneme_lengths(query: dict[str, Any]) -> list[tuple[float, float, bool]]:
    """(seconds before speed scaling, log F0, voiced) per phoneme, silences and pauses included."""
    out: list[tuple[float, float, bool]] = [(float(query["prePhonemeLength"]), 0.0, False)]
    for phrase in query["accent_phrases"]:
        for mora in phrase["moras"]:
            if mora.get("consonant") is not None:
                out.append((float(mora["consonant_length"]), 0.0, False))
            out.append((float(mora["vowel_length"]), float(mora["pitch"]), mora["vowel"] not in ("cl", "pau")))
        pause = phrase.get("pause_mora")
        if pause is not None:
            seconds = float(pause["vowel_length"])
            if query.get("pauseLength") is not None:
                seconds = float(query["pauseLength"])
            out.append((seconds * float(query.get("pauseLengthScale", 1.0)), 0.0, False))
    out.append((float(query["postPhonemeLength"]), 0.0, False))
    return out


def expected_samples(query: dict[str, Any]) -> int:
    """The number of samples the engine's WAV holds for ``query`` (at its output rate)."""
    speed = float(query["speedScale"])
    frames = sum(round_half_even(s / speed * FRAME_RATE) for s, _f0, _v in phoneme_lengths(query))
    n = frames * 256
    rate = int(query["outputSamplingRate"])
    return n if rate == 24000 else int(round(n * rate / 24000))


def round_half_even(x: float) -> int:
    """The engine rounds frame counts with numpy's round (half to even)."""
    return int(np.round(x))


# --- building a query from text --------------------------------------------------------------------


def _accent_phrases(text: str) -> list[dict[str, Any]]:
    phrases: list[dict[str, Any]] = []
    moras: list[dict[str, Any]] = []

    def close(pause: str | None) -> None:
        nonlocal moras
        if moras:
            phrases.append(
                {
                    "moras": moras,
                    "accent": 1,
                    "pause_mora": _mora(pause, None, "pau", 0.0) if pause else None,
                    "is_interrogative": pause in ("？", "?"),
                }
            )
        moras = []

    for char in text:
        kana = chr(ord(char) + 0x60) if "ぁ" <= char <= "ゖ" else char
        if char in _PAUSES:
            close(char)
        elif kana in _SMALL and moras:
            last = moras[-1]
            last["text"] += kana
            if kana in "ャュョ" and last["consonant"]:
                last["consonant"] += "y"
            last["vowel"] = _SMALL[kana]
        elif kana == "ー":  # a lengthening mark extends the previous vowel; alone it says nothing
            if moras:
                moras.append(_mora("ー", None, moras[-1]["vowel"], 5.6))
        elif kana == "ッ":
            moras.append(_mora("ッ", None, "cl", 0.0))
        elif kana == "ン":
            moras.append(_mora("ン", None, "N", 5.6))
        elif kana in _KANA:
            consonant, vowel = _KANA[kana]
            moras.append(_mora(kana, consonant, vowel, 5.7))
        elif char.isalnum():  # kanji, latin, digits: one mora each is enough for lengths
            moras.append(_mora(char, "k", "a", 5.7))
    close(None)
    return phrases


def _mora(text: str, consonant: str | None, vowel: str, pitch: float) -> dict[str, Any]:
    lengths = {"pau": 0.3, "cl": 0.06, "N": 0.07}
    return {
        "text": text,
        "consonant": consonant,
        "consonant_length": 0.06 if consonant else None,
        "vowel": vowel,
        "vowel_length": lengths.get(vowel, 0.09),
        "pitch": pitch,
    }


def _kana(phrases: list[dict[str, Any]]) -> str:
    parts = []
    for phrase in phrases:
        texts = [m["text"] for m in phrase["moras"]]
        texts.insert(phrase["accent"], "'")
        parts.append("".join(texts) + ("、" if phrase["pause_mora"] else "/"))
    return "".join(parts).rstrip("/、")


# --- HTTP ---------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    double: VoicevoxDouble

    def server_bind(self) -> None:
        self.connections: set[socket.socket] = set()
        super().server_bind()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body: no Nagle stall
        self.connections.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut kept-alive connections too: a stopped engine must not answer on them."""
        for sock in list(self.connections):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        double = self.server.double
        split = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        with double._lock:
            double.requests.append(Recorded(method, split.path, params, body))
            failure = double._failure
            if failure and failure.remaining > 0 and (failure.paths is None or split.path in failure.paths):
                failure.remaining -= 1
                self._json(failure.status, {"detail": "Service Unavailable"})
                return
        routes = {
            ("GET", "/version"): lambda: self._json(200, double.version),
            ("GET", "/speakers"): lambda: self._json(200, double.speakers),
            ("GET", "/speaker_info"): lambda: self._speaker_info(params),
            ("GET", "/engine_manifest"): lambda: (self._json(200, double.manifest) if double.manifest is not None
                                                  else self._json(404, {"detail": "Not Found"})),
            ("POST", "/audio_query"): lambda: self._audio_query(params),
            ("POST", "/synthesis"): lambda: self._synthesis(params, body, raw),
            ("GET", "/user_dict"): lambda: self._json(200, double.user_dict),
            ("POST", "/user_dict_word"): lambda: self._add_word(params),
        }
        if (method, split.path) in routes:
            routes[(method, split.path)]()
        elif split.path.startswith("/user_dict_word/") and method in ("PUT", "DELETE"):
            self._change_word(method, split.path.rsplit("/", 1)[1], params)
        elif any(path == split.path for _m, path in routes):
            self._json(405, {"detail": "Method Not Allowed"})
        else:
            self._json(404, {"detail": "Not Found"})

    # --- routes -------------------------------------------------------------------------------------

    def _speaker_info(self, params: dict[str, str]) -> None:
        errors = _require(params, ("speaker_uuid",))
        resource_format = params.get("resource_format", "base64")
        if resource_format not in ("base64", "url"):
            errors.append({"type": "literal_error", "loc": ["query", "resource_format"],
                           "msg": "Input should be 'base64' or 'url'", "input": resource_format})  # fmt: skip
        if errors:
            return self._json(422, {"detail": errors})
        double = self.server.double
        speaker = next((s for s in double.speakers if s["speaker_uuid"] == params["speaker_uuid"]), None)
        if speaker is None:
            return self._json(404, {"detail": "該当するキャラクターが見つかりません"})

        def resource(kind: str, key: object) -> str:
            if resource_format == "url":
                return f"{double.url}/_resources/{kind}-{key}"
            return "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

        self._json(200, {
            "policy": double.policies.get(speaker["speaker_uuid"], ""),
            "portrait": resource("portrait", speaker["speaker_uuid"]),
            "style_infos": [
                {"id": style["id"], "icon": resource("icon", style["id"]), "portrait": None,
                 "voice_samples": [resource("sample", f"{style['id']}-{n}") for n in range(3)]}
                for style in speaker["styles"]
            ],
        })  # fmt: skip

    def _audio_query(self, params: dict[str, str]) -> None:
        errors = _require(params, ("text", "speaker"))
        style = _int_param(params, "speaker", errors)
        if errors:
            return self._json(422, {"detail": errors})
        if style not in self.server.double.style_ids():
            return self._json(422, {"message": UNKNOWN_STYLE})
        self._json(200, self.server.double.audio_query(params["text"]))

    def _synthesis(self, params: dict[str, str], body: Any, raw: bytes) -> None:
        errors = _require(params, ("speaker",))
        style = _int_param(params, "speaker", errors)
        if not raw:
            errors.append({"type": "missing", "loc": ["body"], "msg": "Field required", "input": None})
        elif not isinstance(body, dict):
            errors.append({"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error", "input": {}})
        else:
            for key in ("accent_phrases", "speedScale", "pitchScale", "intonationScale", "volumeScale",
                        "prePhonemeLength", "postPhonemeLength", "outputSamplingRate", "outputStereo"):  # fmt: skip
                if key not in body:
                    errors.append({"type": "missing", "loc": ["body", key], "msg": "Field required", "input": body})
        if errors:
            return self._json(422, {"detail": errors})
        if style not in self.server.double.style_ids():
            return self._json(422, {"message": UNKNOWN_STYLE})
        double = self.server.double
        with double._lock:
            double._in_flight += 1
            double.max_in_flight = max(double.max_in_flight, double._in_flight)
        try:
            if double.synthesis_delay:
                time.sleep(double.synthesis_delay)
            data = double.synthesize(body)
        finally:
            with double._lock:
                double._in_flight -= 1
        self._send(200, data, "audio/wav")

    def _add_word(self, params: dict[str, str]) -> None:
        word, problem = self._word(params)
        if problem is not None:
            return self._json(422, problem)
        word_uuid = str(uuidlib.uuid4())
        with self.server.double._lock:
            self.server.double.user_dict[word_uuid] = word
        self._json(200, word_uuid)

    def _change_word(self, method: str, word_uuid: str, params: dict[str, str]) -> None:
        double = self.server.double
        if word_uuid not in double.user_dict:
            return self._json(422, {"detail": f"UUID: {word_uuid} に対応するワードが見つかりませんでした"})
        if method == "DELETE":
            with double._lock:
                del double.user_dict[word_uuid]
            return self._send(204, b"", None)
        word, problem = self._word(params)
        if problem is not None:
            return self._json(422, problem)
        with double._lock:
            double.user_dict[word_uuid] = word
        self._send(204, b"", None)

    def _word(self, params: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        errors = _require(params, ("surface", "pronunciation", "accent_type"))
        accent = _int_param(params, "accent_type", errors)
        priority = 5
        if "priority" in params:
            priority = _int_param(params, "priority", errors)
            if priority is not None and not 0 <= priority <= 10:
                errors.append({"type": "less_than_equal" if priority > 10 else "greater_than_equal",
                               "loc": ["query", "priority"], "msg": "Input should be between 0 and 10",
                               "input": params["priority"]})  # fmt: skip
        if errors:
            return {}, {"detail": errors}
        pronunciation = params["pronunciation"]
        if not pronunciation or any(not ("ァ" <= c <= "ヴ" or c == "ー") for c in pronunciation):
            return {}, {"detail": "パラメータに誤りがあります。\n発音は有効なカタカナでなくてはいけません。"}
        morae = sum(1 for c in pronunciation if c not in "ャュョァィゥェォヮ")
        if accent is None or not 0 <= accent <= morae:
            return {}, {"detail": "パラメータに誤りがあります。\n誤ったアクセント型です。"}
        surface = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in params["surface"])
        return {
            "surface": surface,
            "priority": priority,
            "context_id": 1348,
            "part_of_speech": "名詞",
            "part_of_speech_detail_1": "固有名詞",
            "part_of_speech_detail_2": "一般",
            "part_of_speech_detail_3": "*",
            "inflectional_type": "*",
            "inflectional_form": "*",
            "stem": "*",
            "yomi": pronunciation,
            "pronunciation": pronunciation,
            "accent_type": accent,
            "mora_count": morae,
            "accent_associative_rule": "*",
        }, None

    # --- responses -------------------------------------------------------------------------------------

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), "application/json")

    def _send(self, status: int, data: bytes, content_type: str | None) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)


def _require(params: dict[str, str], names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {"type": "missing", "loc": ["query", name], "msg": "Field required", "input": None}
        for name in names
        if name not in params
    ]


def _int_param(params: dict[str, str], name: str, errors: list[dict[str, Any]]) -> int | None:
    if name not in params:
        return None
    try:
        return int(params[name])
    except ValueError:
        errors.append({"type": "int_parsing", "loc": ["query", name],
                       "msg": "Input should be a valid integer, unable to parse string as an integer",
                       "input": params[name]})  # fmt: skip
        return None


def aivisspeech_double() -> VoicevoxDouble:
    """An AivisSpeech Engine double: its manifest and port, 32-bit style ids, 44.1 kHz, no pitch control."""
    speakers = [{
        "name": "まお", "speaker_uuid": "e756b8e4-b606-4e15-99b1-3f9c6a1b2317",
        "styles": [{"name": "ノーマル", "id": 888753760, "type": "talk"}, {"name": "あまあま", "id": 888753762, "type": "talk"}],
        "version": "1.0.0", "supported_features": {"permitted_synthesis_morphing": "NOTHING"},
    }]  # fmt: skip
    return VoicevoxDouble(
        speakers=speakers,
        manifest=engine_manifest("AivisSpeech Engine", "AivisSpeech", 10101, 44100, pitch=False),
        policies={"e756b8e4-b606-4e15-99b1-3f9c6a1b2317": "# まお\n\nACML 1.0: 「AivisSpeech:まお」とクレジットしてください。"},
        sampling_rate=44100,
        ignores_pitch=True,
        extra_query={"tempoDynamicsScale": 1.0},
    )


def nemo_double() -> VoicevoxDouble:
    """A VOICEVOX Nemo Engine double: its manifest and port (50121), and its own speakers."""
    speakers = [{
        "name": "女声1", "speaker_uuid": "0ebe2c7d-96f3-4f0e-a2e3-ae13fe27c403",
        "styles": [{"name": "ノーマル", "id": 10005, "type": "talk"}],
        "version": "0.1.0", "supported_features": {"permitted_synthesis_morphing": "SELF_ONLY"},
    }]  # fmt: skip
    return VoicevoxDouble(
        speakers=speakers,
        manifest=engine_manifest("VOICEVOX Nemo Engine", "VOICEVOX", 50121, 24000),
        policies={"0ebe2c7d-96f3-4f0e-a2e3-ae13fe27c403": "# VOICEVOX Nemo 利用規約\n\n「VOICEVOX Nemo」とクレジットしてください。"},
    )
