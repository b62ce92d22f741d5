"""The VOICEVOX engine's HTTP API (default ``http://127.0.0.1:50021``) over httpx.

Synthesis is two calls: ``POST /audio_query?text=&speaker=`` gives a query, which gets the
persona's scales and silences and goes back as the body of ``POST /synthesis?speaker=``; the
answer is 24 kHz 16-bit WAV. Errors: the engine unreachable or timing out, 429 and 5xx are
:class:`TransientError` naming the URL; 422 and other 4xx are :class:`InputError` carrying the
engine's own message (``{"detail": [...]}``, ``{"detail": "..."}`` or ``{"message": "..."}``).
Transient failures are tried again in place, ``voicevox.attempts`` times with a doubling wait
(``voicevox.retry_base_seconds`` up to ``voicevox.retry_max_seconds``; the defaults wait about a
minute, longer than an engine takes to restart). A cancel hangs up the engine's connections, so a
synthesis in flight ends at once.

Compatible engines share this client through a capability profile (``voicevox.profile``; ``auto``
asks ``GET /engine_manifest``, whose ``name`` is "VOICEVOX Engine", "AivisSpeech Engine" or
"VOICEVOX Nemo Engine"; an engine without that route is VOICEVOX). AivisSpeech (port 10101) has no
pitch control, so ``pitchScale`` is sent as its neutral 0 whatever the persona says, and its style
ids are 32-bit numbers (888753760); NEMO (port 50121) behaves like VOICEVOX. The manifest's
``brand_name`` prefixes the credits ("VOICEVOX:ずんだもん", "AivisSpeech:まお").

Credits and terms: for every speaker used, ``GET /speaker_info?speaker_uuid=`` gives the
character's ``policy`` (its terms of use, Markdown); :meth:`VoicevoxEngine.terms` returns them with
the credit line, for the audio index and the video's sidecar.

The pronunciation dictionary is kept in step with the engine's user dictionary. Words this
program added are remembered in a small state file (uuid -> what we sent), so words a person
added by hand are never touched, and ours are updated or removed when the settings change.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from stages.audio.engine import Voice
from stages.audio.text import to_fullwidth, to_katakana
from stages.audio.wav import decode_wav
from stages.base import Cancelled, ConfigError, InputError, TransientError, atomic_write_json, fingerprint_of
from stages.netwait import Hangup, with_backoff

if TYPE_CHECKING:
    from stages.settings import PronunciationEntry, VoicevoxSettings


@dataclass(frozen=True)
class Profile:
    """What a VOICEVOX-compatible engine can do, as far as this client cares."""

    name: str
    brand: str  # the credit prefix, unless the engine's manifest names its brand
    adjusts_pitch: bool


PROFILES = {
    "voicevox": Profile("voicevox", "VOICEVOX", adjusts_pitch=True),
    "aivisspeech": Profile("aivisspeech", "AivisSpeech", adjusts_pitch=False),
    "nemo": Profile("nemo", "VOICEVOX", adjusts_pitch=True),
}
_MANIFEST_NAMES = {"VOICEVOX Engine": "voicevox", "AivisSpeech Engine": "aivisspeech", "VOICEVOX Nemo Engine": "nemo"}


class VoicevoxEngine:
    """A client of one VOICEVOX-compatible engine. ``speaker`` is a style id (as a string)."""

    name = "voicevox"

    def __init__(self, settings: "VoicevoxSettings", state_dir: Path, cancel: threading.Event | None = None):
        """``cancel`` (the job's token) hangs up calls in flight and ends the waits between tries."""
        self.url = settings.url.rstrip("/")
        self.parallel = settings.concurrency
        self.state_dir = Path(state_dir)
        self._client = httpx.Client(base_url=self.url, timeout=settings.timeout)
        self._retry = settings
        self._hangup = Hangup()  # sees every connection of the client; an engine serves one job
        self._cancel = cancel
        self._version: str | None = None
        self._names: dict[int, str] = {}
        self._uuids: dict[int, str] = {}
        self._policies: dict[str, str | None] = {}
        self._wanted_profile = settings.profile
        self.profile: Profile = PROFILES["voicevox" if settings.profile == "auto" else settings.profile]
        self._brand = self.profile.brand

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def version(self) -> str:
        if self._version is None:
            self._version = str(self._call("GET", "/version", what="the version request").json())
        return self._version

    def plan(self, texts: list[str]) -> int:
        return self.parallel

    def prepare(self, voices: list[Voice], dictionary: list["PronunciationEntry"]) -> None:
        with self._hangup.watch(self._cancel):
            self._prepare(voices, dictionary)

    def _prepare(self, voices: list[Voice], dictionary: list["PronunciationEntry"]) -> None:
        self.version()
        styles = self._styles()
        missing = sorted({v for v in voices if int(v.speaker) not in styles}, key=lambda v: v.speaker)
        if missing:
            named = ", ".join(f"{v.speaker} (persona {v.persona_id or '-'})" for v in missing)
            offered = ", ".join(f"{sid} {name}" for sid, name in sorted(styles.items())[:40])
            raise ConfigError(f"VOICEVOX engine at {self.url} has no style id {named}: set speaker in [[personas]] "
                              f"(or voicevox.speaker) to one it offers: {offered}")
        self._names = styles
        self._detect_profile()
        for uuid in sorted({self._uuids[int(v.speaker)] for v in voices if int(v.speaker) in self._uuids}):
            if uuid not in self._policies:
                self._policies[uuid] = self._policy(uuid)
        self.sync_dictionary(dictionary)

    def synthesize(self, text: str, voice: Voice, cancel: threading.Event | None) -> tuple[np.ndarray, int]:
        cancel = cancel or self._cancel
        with self._hangup.watch(cancel):
            return self._synthesize(text, voice, cancel)

    def _synthesize(self, text: str, voice: Voice, cancel: threading.Event | None) -> tuple[np.ndarray, int]:
        speaker = {"speaker": voice.speaker}
        query = self._call("POST", "/audio_query", params={"text": text, **speaker}, what="the audio query",
                           cancel=cancel).json()
        query.update(
            speedScale=voice.speed,
            pitchScale=voice.pitch if self.profile.adjusts_pitch else 0.0,
            intonationScale=voice.intonation,
            volumeScale=voice.volume,
            prePhonemeLength=voice.pre_phoneme_length,
            postPhonemeLength=voice.post_phoneme_length,
        )
        response = self._call("POST", "/synthesis", params=speaker, json=query, what="the synthesis request",
                              cancel=cancel)
        try:
            return decode_wav(response.content)
        except ValueError as exc:
            raise TransientError(f"VOICEVOX engine at {self.url} sent a broken WAV: {exc}") from exc

    def credits(self, voices: list[Voice]) -> list[str]:
        names = sorted({self._names.get(int(v.speaker), f"style {v.speaker}") for v in voices})
        return [f"{self._brand}:{name}" for name in names]

    def terms(self, voices: list[Voice]) -> list[dict[str, Any]]:
        """Per speaker used: the credit line and the terms (``policy``) its ``/speaker_info`` states.

        ``policy`` is None when the engine has no terms for it (a 4xx from ``/speaker_info``).
        """
        out: dict[str, dict[str, Any]] = {}
        for voice in voices:
            style = int(voice.speaker)
            name = self._names.get(style, f"style {voice.speaker}")
            uuid = self._uuids.get(style)
            entry = out.setdefault(uuid or name, {
                "engine": self._brand, "speaker": name, "speaker_uuid": uuid, "credit": f"{self._brand}:{name}",
                "policy": self._policies.get(uuid) if uuid else None, "styles": [],
            })  # fmt: skip
            if style not in entry["styles"]:
                entry["styles"].append(style)
        return sorted(out.values(), key=lambda e: e["credit"])

    # --- the user dictionary ------------------------------------------------------------------

    def sync_dictionary(self, dictionary: list["PronunciationEntry"]) -> dict[str, int]:
        """Make the engine's words match ``dictionary``: add missing, update changed, remove ours
        that are gone. Returns counts by action."""
        ours = self._load_ours()
        if not dictionary and not ours:
            return {"added": 0, "updated": 0, "removed": 0}  # nothing to do: leave the engine alone
        engine_words: dict[str, Any] = self._call("GET", "/user_dict", what="the user dictionary request").json()
        ours = {uuid: sent for uuid, sent in ours.items() if uuid in engine_words}
        wanted = {entry.surface: _word_params(entry) for entry in dictionary}
        counts = {"added": 0, "updated": 0, "removed": 0}
        by_surface = {sent["surface"]: uuid for uuid, sent in ours.items()}
        try:
            for uuid, sent in list(ours.items()):
                if sent["surface"] not in wanted:
                    self._call("DELETE", f"/user_dict_word/{uuid}", what="the removal of a dictionary word")
                    del ours[uuid]
                    counts["removed"] += 1
            for surface, params in wanted.items():
                uuid = by_surface.get(surface) or _adoptable(engine_words, surface, set(ours))
                if uuid is not None and uuid not in ours:
                    ours[uuid] = {}  # ours again: a lost state file must not mean duplicate words
                if uuid is None:
                    created = self._call("POST", "/user_dict_word", params=params, what=f"the addition of {surface!r}")
                    ours[_uuid_of(created)] = params
                    counts["added"] += 1
                elif params != ours[uuid] or _drifted(engine_words[uuid], params):
                    self._call("PUT", f"/user_dict_word/{uuid}", params=params, what=f"the update of {surface!r}")
                    ours[uuid] = params
                    counts["updated"] += 1
        finally:
            self._save_ours(ours)
        return counts

    def _state_path(self) -> Path:
        return self.state_dir / f"voicevox-user-dict-{fingerprint_of(self.url)[:16]}.json"

    def _load_ours(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self._state_path().read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return data.get("words", {}) if isinstance(data, dict) else {}

    def _save_ours(self, ours: dict[str, dict[str, Any]]) -> None:
        atomic_write_json(self._state_path(), {"url": self.url, "words": ours})

    # --- HTTP -----------------------------------------------------------------------------------

    def _detect_profile(self) -> None:
        """Pick the profile (``voicevox.profile``, or the engine's manifest) and the credit brand."""
        try:
            manifest = self._call("GET", "/engine_manifest", what="the engine manifest request").json()
        except InputError:  # an engine without /engine_manifest (404) is a plain VOICEVOX engine
            return
        if not isinstance(manifest, dict):
            return
        if self._wanted_profile == "auto":
            self.profile = PROFILES[_MANIFEST_NAMES.get(str(manifest.get("name")), "voicevox")]
        self._brand = str(manifest.get("brand_name") or self.profile.brand)

    def _styles(self) -> dict[int, str]:
        speakers = self._call("GET", "/speakers", what="the speaker list request").json()
        styles: dict[int, str] = {}
        for speaker in speakers:
            for style in speaker.get("styles", []):
                if style.get("type", "talk") == "talk":
                    styles[int(style["id"])] = speaker.get("name", "")
                    if speaker.get("speaker_uuid"):
                        self._uuids[int(style["id"])] = str(speaker["speaker_uuid"])
        return styles

    def _policy(self, uuid: str) -> str | None:
        """The speaker's terms of use from ``/speaker_info`` (images as URLs, not inline base64)."""
        try:
            info = self._call("GET", "/speaker_info", params={"speaker_uuid": uuid, "resource_format": "url"},
                              what="the speaker info request").json()
        except InputError:
            return None
        policy = info.get("policy") if isinstance(info, dict) else None
        return str(policy) if policy else None

    def _call(self, method: str, path: str, *, what: str, cancel: threading.Event | None = None,
              **kwargs: Any) -> httpx.Response:
        """One API call, tried again with backoff while it fails transiently (``voicevox.attempts``)."""
        retry = self._retry
        return with_backoff(lambda: self._call_once(method, path, what=what, **kwargs), attempts=retry.attempts,
                            base_seconds=retry.retry_base_seconds, max_seconds=retry.retry_max_seconds,
                            cancel=cancel or self._cancel)

    def _call_once(self, method: str, path: str, *, what: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, extensions=self._hangup.extensions, **kwargs)
        except httpx.TransportError as exc:
            if self._hangup.cancelled:
                raise Cancelled(f"cancelled while waiting for the VOICEVOX engine ({what})") from exc
            raise _unreachable(self.url, what, exc) from exc
        if self._hangup.cancelled:  # an answer cut short by the hang-up is not to be trusted
            raise Cancelled(f"cancelled while waiting for the VOICEVOX engine ({what})")
        if response.status_code < 400:
            return response
        message = _error_message(response)
        status = response.status_code
        if status == 429 or status >= 500:
            retry_after = _retry_after(response)
            raise TransientError(
                f"VOICEVOX engine at {self.url} answered {status} to {what}: {message}", retry_after=retry_after
            )
        raise InputError(f"VOICEVOX engine at {self.url} refused {what} ({status}): {message}")


def _unreachable(url: str, what: str, exc: httpx.TransportError) -> TransientError:
    """The error for a call that got no answer: timed out, or the engine could not be reached."""
    if isinstance(exc, httpx.TimeoutException):
        return TransientError(f"VOICEVOX engine at {url} timed out on {what}")
    return TransientError(f"VOICEVOX engine at {url} could not be reached for {what}: {exc}")


def _word_params(entry: "PronunciationEntry") -> dict[str, Any]:
    return {
        "surface": entry.surface,
        "pronunciation": to_katakana(entry.reading),
        "accent_type": entry.accent if entry.accent is not None else 0,
        "priority": entry.priority,
    }


def _adoptable(engine_words: dict[str, Any], surface: str, taken: set[str]) -> str | None:
    """An engine word with our surface (as given, or as the engine normalises it) not yet ours."""
    forms = {surface, to_fullwidth(surface)}
    for uuid, word in engine_words.items():
        if uuid not in taken and word.get("surface") in forms:
            return uuid
    return None


def _drifted(engine_word: dict[str, Any], params: dict[str, Any]) -> bool:
    """True when someone changed our word in the engine (the surface is normalised there)."""
    return any(
        key in engine_word and engine_word[key] != params[key] for key in ("pronunciation", "accent_type", "priority")
    )


def _uuid_of(response: httpx.Response) -> str:
    """The new word's UUID: a JSON string, or bare text from engines that send it raw."""
    try:
        value = response.json()
    except ValueError:
        value = response.text
    return str(value).strip().strip('"')


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        if "message" in body:
            return str(body["message"])
        detail = body.get("detail")
        if isinstance(detail, list):
            return "; ".join(_detail_item(item) for item in detail)
        if detail is not None:
            return str(detail)
    return json.dumps(body, ensure_ascii=False)[:500]


def _detail_item(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get("loc", []))
    return f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", item))


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None
