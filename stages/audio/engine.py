"""The one interface every voice engine offers, and the voice a persona resolves to."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from stages.settings import PronunciationEntry


@dataclass(frozen=True)
class Voice:
    """A persona's voice as one engine will use it.

    ``speaker`` is engine-specific: a VOICEVOX style id, an espeak-ng voice name, ``mei`` for
    OpenJTalk. ``pitch`` is in VOICEVOX pitchScale units (see :func:`semitones`).
    """

    engine: str
    speaker: str
    speed: float = 1.0
    pitch: float = 0.0
    intonation: float = 1.0
    volume: float = 1.0
    pre_phoneme_length: float = 0.1
    post_phoneme_length: float = 0.1
    persona_id: str = ""

    def cache_fields(self) -> dict[str, object]:
        """What of the voice changes the sound (``persona_id`` and ``volume`` do not: volume is
        applied by levelling, which the cache key covers separately)."""
        return {
            "engine": self.engine,
            "speaker": self.speaker,
            "speed": self.speed,
            "pitch": self.pitch,
            "intonation": self.intonation,
            "pre": self.pre_phoneme_length,
            "post": self.post_phoneme_length,
        }


def semitones(pitch: float) -> float:
    """VOICEVOX pitchScale units as semitones.

    VOICEVOX multiplies each mora's log-F0 (about 5.8 for a typical voice) by ``2**pitchScale``,
    so +0.05 raises the voice by about 3.5 semitones; 69 semitones per unit is that slope.
    """
    return pitch * 69.0


class Engine(Protocol):
    """A voice engine: prepared once per run, then asked for one piece of speech at a time."""

    name: str

    def version(self) -> str:
        """The engine's version (part of every clip's cache key)."""
        ...

    def prepare(self, voices: list[Voice], dictionary: list["PronunciationEntry"]) -> None:
        """Check the voices exist and apply the pronunciation dictionary; raise InputError if not."""
        ...

    def synthesize(self, text: str, voice: Voice, cancel: threading.Event | None) -> tuple[np.ndarray, int]:
        """Float samples in about [-1, 1] and their rate, for ``text`` spoken by ``voice``."""
        ...

    def credits(self, voices: list[Voice]) -> list[str]:
        """Attribution lines the voices used require (for the index and the video's sidecar)."""
        ...

    def plan(self, texts: list[str]) -> int:
        """Get ready to speak ``texts`` (the phrases not in the cache); returns how many
        :meth:`synthesize` calls may run at once."""
        ...
