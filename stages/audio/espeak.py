"""espeak-ng for languages other than Japanese, run as its own process (it is GPL).

The text goes in on stdin (so a phrase starting with ``-`` is never read as an option) and the
WAV comes back through a temporary file: 22.05 kHz mono 16-bit, resampled by the stage.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from stages.audio.engine import Voice, semitones
from stages.audio.wav import read_wav
from stages.base import InputError, TransientError
from stages.process import ProcessError, ProcessTimeout, run_process

ESPEAK_CREDIT = "音声合成: eSpeak NG (GPL-3.0-or-later)"
_DEFAULT_WPM = 175
_DEFAULT_PITCH = 50  # espeak-ng's own default on its 0–99 scale
_PITCH_PER_SEMITONE = 4.0


class EspeakEngine:
    """espeak-ng (Debian's binary). ``speaker`` is an espeak-ng voice such as ``en`` or ``en-us``."""

    name = "espeak"
    def __init__(self, binary: str = "espeak-ng", timeout: float = 60.0, parallel: int = 1):
        self.binary = binary
        self.timeout = timeout
        self.parallel = max(1, parallel)  # each call is its own process: as many as there are cores

    def version(self) -> str:
        return _version(self._path())

    def prepare(self, voices: list[Voice], dictionary: list) -> None:
        known = known_voices(self._path())
        for voice in voices:
            if voice.speaker.lower() not in known:
                raise InputError(
                    f"espeak-ng has no voice {voice.speaker!r} (persona {voice.persona_id or '-'}); "
                    "`espeak-ng --voices` lists them"
                )

    def voice_for_language(self, language: str, default: str) -> str:
        """``language`` when espeak-ng has a voice of that name (``de``, ``en-us``), else ``default``."""
        try:
            known = known_voices(self._path())
        except InputError:
            return default
        for name in (language.lower(), language.split("-")[0].lower()):
            if name in known:
                return name
        return default

    def plan(self, texts: list[str]) -> int:
        return self.parallel if len(texts) > 1 else 1

    def synthesize(self, text: str, voice: Voice, cancel: threading.Event | None) -> tuple[np.ndarray, int]:
        pitch = int(round(min(99, max(0, _DEFAULT_PITCH + _PITCH_PER_SEMITONE * semitones(voice.pitch)))))
        wpm = int(round(min(500, max(80, _DEFAULT_WPM * voice.speed))))
        with tempfile.TemporaryDirectory(prefix="moviegen-espeak-") as tmp:
            out = Path(tmp) / "speech.wav"
            args = [self._path(), "-v", voice.speaker, "-s", str(wpm), "-p", str(pitch), "-b", "1",
                    "-w", str(out), "--stdin"]  # fmt: skip
            try:
                run_process(args, cancel=cancel, timeout=self.timeout, stdin_bytes=text.encode("utf-8"))
            except ProcessTimeout as exc:
                raise TransientError(f"espeak-ng took longer than {self.timeout:.0f} s on one phrase") from exc
            except ProcessError as exc:
                raise InputError(f"espeak-ng could not speak the phrase: {exc.stderr_tail.strip()}") from exc
            return read_wav(out)

    def credits(self, voices: list[Voice]) -> list[str]:
        return [ESPEAK_CREDIT] if voices else []

    def _path(self) -> str:
        path = shutil.which(self.binary)
        if path is None:
            raise InputError(f"{self.binary} is not installed (Debian: apt-get install espeak-ng)")
        return path


@lru_cache(maxsize=4)
def _version(path: str) -> str:
    result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    return result.stdout.strip().split("  Data at")[0] or "espeak-ng"


@lru_cache(maxsize=4)
def known_voices(path: str) -> frozenset[str]:
    """The voice (language) names espeak-ng knows, e.g. ``en``, ``en-us``, ``de``."""
    result = subprocess.run([path, "--voices"], capture_output=True, text=True, timeout=30)
    names: set[str] = set()
    for line in result.stdout.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5:
            # -v takes the language (en-gb), the voice name, the file (gmw/en) or its last part,
            # and the "other languages" a voice answers to, listed as "(en 2)".
            names.update({cols[1], cols[3], cols[4], cols[4].rsplit("/", 1)[-1]})
            names.update(re.findall(r"\((\S+) \d+\)", line))
    return frozenset(name.lower() for name in names)
