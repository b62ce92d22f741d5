"""``generate_audio``: script.yaml in, ``audio/index.json`` out, clips in the shared cache.

Which engine speaks a phrase: the phrase's persona's ``engine``, else ``audio.engine``; but a
script whose language is not Japanese never goes to OpenJTalk (it can only read Japanese): those
phrases are spoken by espeak-ng, in the script's language when espeak-ng has a voice of that name,
else in ``audio.espeak_voice``. VOICEVOX personas keep VOICEVOX whatever the language.
"""

from __future__ import annotations

import math
import threading
import unicodedata
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from pydantic import ValidationError

from stages.audio.cache import ClipCache
from stages.audio.engine import Engine, Voice
from stages.audio.espeak import EspeakEngine
from stages.audio.level import level
from stages.audio.openjtalk import OpenJTalkEngine
from stages.audio.text import clean_for_speech, is_speakable, split_for_speech
from stages.audio.voicevox import VoicevoxEngine
from stages.audio.wav import encode_wav, resample, wav_duration
from stages.base import Cancelled, ConfigError, InputError, Note, Progress, atomic_write_json, fingerprint_of, no_note, no_progress
from stages.script.model import Narration, Script

if TYPE_CHECKING:
    from stages.settings import Persona, PronunciationEntry, Settings

INDEX_VERSION = 1
_PIECE_GAP_SECONDS = 0.15  # silence between the pieces of a phrase split at a natural break
_SILENT_PEAK = 1e-4


@dataclass
class _Phrase:
    phrase_id: str
    narration: Narration
    voice: Voice
    spoken: str
    key: str = ""


def generate_audio(
    script: Path,
    out_dir: Path,
    settings: "Settings",
    progress: Progress = no_progress,
    *,
    cancel: threading.Event | None = None,
    cache_dir: Path | None = None,
    note: Note | None = None,
) -> Path:
    """Speak every phrase of ``script`` and write ``out_dir/audio/index.json``.

    Clips come from the shared cache when they are there and are synthesized otherwise;
    see the module doc for which engine speaks what.

    Args:
        script: a ``script.yaml`` (the Script model).
        out_dir: the job folder; the index goes to ``out_dir/audio/index.json``.
        settings: the settings tree (``audio``, ``voicevox``, ``personas``, ``pronunciation``).
        progress: ``(done, total, message)``, one step per phrase, never going backwards.
        cancel: checked between phrases; when set, :class:`Cancelled` is raised.
        cache_dir: the shared cache; clips go under ``cache_dir/audio``. Default ``settings.cache_dir``.
        note: ``note(message, **data)`` for "phrase dropped", "clip synthesized", "audio cache".

    Returns:
        The index path.

    Raises:
        InputError: a bad script, an unknown persona or voice, a phrase too long or silent, or a
            request the engine refused.
        TransientError: the VOICEVOX engine is unreachable, timed out or failed (5xx).
        Cancelled: ``cancel`` was set.
    """
    note = note or no_note
    model = load_script(Path(script))
    language = (model.language or settings.script.language or "ja").lower()
    root = Path(cache_dir if cache_dir is not None else settings.cache_dir).absolute() / "audio"
    cache = ClipCache(root)
    engines: dict[str, Engine] = {}
    try:
        phrases, dropped = _plan(model, settings, language, engines, root, note, cancel)
        _prepare(engines, phrases, settings.pronunciation)
        for phrase in phrases:
            phrase.key = _clip_key(phrase, engines[phrase.voice.engine], settings)
        paths, synthesized = _produce(phrases, engines, cache, settings, progress, cancel, note)
        credits = _credits(engines, phrases)
        terms = _terms(engines, phrases)
    finally:
        for engine in engines.values():
            if isinstance(engine, VoicevoxEngine):
                engine.close()
    note("audio cache", synthesized=synthesized, cached=len(phrases) - synthesized)
    index = {
        "version": INDEX_VERSION,
        "sample_rate": settings.audio.sample_rate,
        "loudness_target_db": settings.audio.loudness_target_db,
        "clips": {
            p.phrase_id: {
                "path": str(paths[p.phrase_id]),
                "duration": round(wav_duration(paths[p.phrase_id]), 6),
                "speaker": p.voice.persona_id,
                "engine": p.voice.engine,
                "voice": p.voice.speaker,
                "text": p.narration.text,
                "reading": p.spoken,
            }
            for p in phrases
        },
        "dropped": dropped,
        "credits": credits,
        "terms": terms,
        "stats": {"synthesized": synthesized, "cached": len(phrases) - synthesized},
    }
    return atomic_write_json(Path(out_dir) / "audio" / "index.json", index)


def load_script(path: Path) -> Script:
    """Read and validate a script file; anything wrong is an :class:`InputError`."""
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"no script at {path}") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name} is not readable YAML: {exc}") from exc
    try:
        return Script.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{path.name} is not a valid script: {exc}") from exc


def voice_for(persona: "Persona", settings: "Settings", language: str, espeak: EspeakEngine | None = None) -> Voice:
    """The voice a persona speaks with in a script of ``language`` (see the module doc)."""
    engine = persona.engine or settings.audio.engine
    if engine == "openjtalk" and language.split("-")[0] != "ja":
        engine = "espeak"
        speaker = (espeak or EspeakEngine()).voice_for_language(language, settings.audio.espeak_voice)
    elif engine == "espeak":
        speaker = str(persona.speaker) if persona.speaker not in (None, "") else settings.audio.espeak_voice
    elif engine == "voicevox":
        raw = persona.speaker if persona.speaker is not None else settings.voicevox.speaker
        try:
            speaker = str(int(raw))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"persona {persona.id}: the VOICEVOX speaker must be a style id number, not {raw!r}: "
                              f"fix speaker of this [[personas]] entry (or voicevox.speaker) in "
                              f"{settings.config_name()}") from exc
    else:
        speaker = "mei"
    return Voice(
        engine=engine,
        speaker=speaker,
        speed=persona.speed,
        pitch=persona.pitch,
        intonation=persona.intonation,
        volume=persona.volume,
        pre_phoneme_length=persona.pre_phoneme_length,
        post_phoneme_length=persona.post_phoneme_length,
        persona_id=persona.id,
    )


# --- planning -------------------------------------------------------------------------------------


def _plan(
    model: Script, settings: "Settings", language: str, engines: dict[str, Engine], root: Path, note: Note,
    cancel: threading.Event | None = None,
) -> tuple[list[_Phrase], list[str]]:
    phrases: list[_Phrase] = []
    dropped: list[str] = []
    voices: dict[str | None, Voice] = {}
    for phrase_id, _section, narration in model.phrases():
        spoken = clean_for_speech(narration.spoken)
        reason = None
        if not narration.spoken.strip():
            reason = "empty"
        elif not is_speakable(spoken):
            reason = "nothing speakable (only emoji or symbols)"
        if reason is not None:
            dropped.append(phrase_id)
            note("phrase dropped", phrase=phrase_id, reason=reason)
            continue
        if len(spoken) > settings.audio.max_phrase_chars:
            raise InputError(
                f"phrase {phrase_id} is {len(spoken)} characters long; the limit is "
                f"{settings.audio.max_phrase_chars} (audio.max_phrase_chars): split it in the script"
            )
        if narration.persona_id not in voices:
            try:
                persona = settings.persona(narration.persona_id)
            except KeyError as exc:
                known = ", ".join(p.id for p in settings.personas)
                raise ConfigError(
                    f"phrase {phrase_id} names persona {narration.persona_id!r}, which the configuration does not "
                    f"define (its personas: {known}): add a [[personas]] entry with id = "
                    f"\"{narration.persona_id}\" to {settings.config_name()}, or use one of those ids in the script"
                ) from exc
            espeak = _engine("espeak", engines, settings, root, cancel)
            voices[narration.persona_id] = voice_for(persona, settings, language, espeak)
        voice = voices[narration.persona_id]
        _engine(voice.engine, engines, settings, root, cancel)
        phrases.append(_Phrase(phrase_id, narration, voice, spoken))
    if not phrases:
        raise InputError(f"the script has nothing to speak: every phrase ({', '.join(dropped)}) is empty or emoji")
    for name in [n for n in engines if not any(p.voice.engine == n for p in phrases)]:
        engine = engines.pop(name)
        if isinstance(engine, VoicevoxEngine):
            engine.close()
    return phrases, dropped


def _engine(name: str, engines: dict[str, Engine], settings: "Settings", root: Path,
            cancel: threading.Event | None = None) -> Any:
    if name not in engines:
        if name == "openjtalk":
            engines[name] = OpenJTalkEngine(root / "openjtalk-dict", workers=settings.audio.workers)
        elif name == "espeak":
            engines[name] = EspeakEngine(timeout=settings.audio.espeak_timeout, parallel=settings.audio.workers)
        else:
            engines[name] = VoicevoxEngine(settings.voicevox, state_dir=root, cancel=cancel)
    return engines[name]


def _prepare(engines: dict[str, Engine], phrases: list[_Phrase], dictionary: list["PronunciationEntry"]) -> None:
    for name, engine in engines.items():
        voices = sorted({p.voice for p in phrases if p.voice.engine == name}, key=lambda v: v.persona_id)
        engine.prepare(voices, dictionary)


def _clip_key(phrase: _Phrase, engine: Engine, settings: "Settings") -> str:
    audio = settings.audio
    words = _dictionary_words(phrase, settings.pronunciation) if phrase.voice.engine != "espeak" else []
    return ClipCache.key(
        engine=engine.name,
        engine_version=engine.version(),
        voice=phrase.voice.cache_fields(),
        text=phrase.spoken,
        dictionary=fingerprint_of(words) if words else None,
        rate=audio.sample_rate,
        level_db=round(audio.loudness_target_db + 20 * math.log10(phrase.voice.volume), 3),
        ceiling_db=audio.peak_ceiling_db,
        chunk=audio.max_chunk_chars,
    )


def _dictionary_words(phrase: _Phrase, dictionary: list["PronunciationEntry"]) -> list[dict[str, Any]]:
    """The dictionary entries that can change this phrase: only those whose surface occurs in it,
    so adding a word re-synthesizes only the lines that contain it."""
    spoken = unicodedata.normalize("NFKC", phrase.spoken)
    return [
        entry.model_dump(mode="json")
        for entry in dictionary
        if unicodedata.normalize("NFKC", entry.surface) in spoken
    ]


# --- synthesis ------------------------------------------------------------------------------------


def _produce(
    phrases: list[_Phrase],
    engines: dict[str, Engine],
    cache: ClipCache,
    settings: "Settings",
    progress: Progress,
    cancel: threading.Event | None,
    note: Note,
) -> tuple[dict[str, Path], int]:
    """Take clips from the cache or synthesize them; progress counts finished phrases in order."""
    total = len(phrases)
    paths: dict[str, Path] = {}
    todo: deque[_Phrase] = deque()
    for phrase in phrases:
        hit = cache.get(phrase.key)
        if hit is None:
            todo.append(phrase)
        else:
            paths[phrase.phrase_id] = hit
    # Longest first: the last phrases to finish are then short ones, so no core idles at the end
    # while one long phrase is still being spoken.
    todo = deque(sorted(todo, key=lambda p: len(p.spoken), reverse=True))
    done = len(paths)
    progress(done, total, f"{done} of {total} clips from the cache")
    synthesized = 0
    workers = max(engine.plan([p.spoken for p in todo if p.voice.engine == name]) for name, engine in engines.items())
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="audio") as pool:
        running: dict[Future[Path], _Phrase] = {}
        try:
            while todo or running:
                while todo and len(running) < workers:
                    _check(cancel)
                    phrase = todo.popleft()
                    engine = engines[phrase.voice.engine]
                    running[pool.submit(_synthesize, phrase, engine, cache, settings, cancel)] = phrase
                finished, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    phrase = running.pop(future)
                    paths[phrase.phrase_id] = future.result()
                    synthesized += 1
                    done += 1
                    note("clip synthesized", phrase=phrase.phrase_id, engine=phrase.voice.engine)
                    progress(done, total, f"clip {phrase.phrase_id} ({phrase.voice.engine})")
        except BaseException:
            todo.clear()
            for future in running:
                future.cancel()
            raise
    return paths, synthesized


def _synthesize(phrase: _Phrase, engine: Engine, cache: ClipCache, settings: "Settings", cancel) -> Path:
    """One phrase: its pieces spoken, joined, brought to the clip format and levelled, then cached."""
    _check(cancel)
    rate = settings.audio.sample_rate
    gap = np.zeros(int(rate * _PIECE_GAP_SECONDS))
    parts: list[np.ndarray] = []
    for piece in split_for_speech(phrase.spoken, settings.audio.max_chunk_chars):
        try:
            samples, src_rate = engine.synthesize(piece, phrase.voice, cancel)
        except InputError as exc:
            raise InputError(f"phrase {phrase.phrase_id}: {exc}") from exc
        if parts:
            parts.append(gap)
        parts.append(resample(samples, src_rate, rate))
    joined = np.concatenate(parts) if parts else np.zeros(0)
    if joined.size == 0 or float(np.abs(joined).max()) < _SILENT_PEAK:
        raise InputError(
            f"phrase {phrase.phrase_id}: the {engine.name} engine produced no audio for {phrase.spoken!r}; "
            "rephrase it or give it a reading"
        )
    target = settings.audio.loudness_target_db + 20 * math.log10(phrase.voice.volume)
    levelled = level(joined, rate, target, settings.audio.peak_ceiling_db)
    return cache.put(phrase.key, encode_wav(levelled, rate))


def _terms(engines: dict[str, Engine], phrases: list[_Phrase]) -> list[dict[str, Any]]:
    """The VOICEVOX-compatible voices' credits with their terms of use (``/speaker_info``'s policy)."""
    terms: list[dict[str, Any]] = []
    for name, engine in engines.items():
        if isinstance(engine, VoicevoxEngine):
            terms.extend(engine.terms(sorted({p.voice for p in phrases if p.voice.engine == name}, key=lambda v: v.speaker)))
    return terms


def _credits(engines: dict[str, Engine], phrases: list[_Phrase]) -> list[str]:
    lines: list[str] = []
    for name, engine in engines.items():
        voices = sorted({p.voice for p in phrases if p.voice.engine == name}, key=lambda v: v.persona_id)
        for line in engine.credits(voices):
            if line not in lines:
                lines.append(line)
    return lines


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("audio generation was cancelled")

