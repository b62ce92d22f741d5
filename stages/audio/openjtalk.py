"""OpenJTalk through pyopenjtalk-plus: offline Japanese with the bundled HTS voice "Mei".

The wheel carries its dictionary and voice, so nothing is downloaded. The pronunciation
dictionary becomes a MeCab user dictionary built once per dictionary content into the cache,
loaded into an OpenJTalk instance of our own (the module-global one is left alone, so other
users of pyopenjtalk in the process, such as the script stage's reading helper, are unaffected).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stages.audio.engine import Voice, semitones
from stages.audio.text import mora_count, to_fullwidth, to_katakana
from stages.base import InputError, atomic_write_text
from stages.jtalk import pyopenjtalk as _pyopenjtalk

if TYPE_CHECKING:
    from stages.settings import PronunciationEntry

MEI_CREDIT = '音声: HTS Voice "Mei" (MMDAgent) CC BY 3.0 — Nagoya Institute of Technology'

_LOCK = threading.Lock()  # one synthesis at a time: the HTS engine inside is shared


class OpenJTalkEngine:
    """Japanese speech from pyopenjtalk-plus (48 kHz). ``speaker`` is always ``mei``."""

    name = "openjtalk"
    parallel = 1

    def __init__(self, dict_dir: Path):
        self.dict_dir = Path(dict_dir)
        self._dictionary: list["PronunciationEntry"] = []
        self._jtalk = None

    def version(self) -> str:
        return f"pyopenjtalk-plus {_pyopenjtalk().version.__version__}; mei_normal"

    def prepare(self, voices: list[Voice], dictionary: list["PronunciationEntry"]) -> None:
        # Built on the first synthesis: a fully cached run never pays for loading MeCab.
        self._dictionary = list(dictionary)
        self._jtalk = None

    def synthesize(self, text: str, voice: Voice, cancel: threading.Event | None) -> tuple[np.ndarray, int]:
        pyopenjtalk = _pyopenjtalk()
        with _LOCK:
            if self._jtalk is None and self._dictionary:
                self._jtalk = self._user_dict_jtalk(self._dictionary)
            samples, rate = pyopenjtalk.tts(
                text, speed=voice.speed, half_tone=semitones(voice.pitch), jtalk=self._jtalk
            )
        # The HTS output is on the int16 scale and its peaks can pass it; levelling rescales.
        return np.asarray(samples, dtype=np.float64) / 32768.0, int(rate)

    def credits(self, voices: list[Voice]) -> list[str]:
        return [MEI_CREDIT] if voices else []

    def _user_dict_jtalk(self, dictionary: list["PronunciationEntry"]):
        pyopenjtalk = _pyopenjtalk()
        csv = "".join(_csv_row(entry) for entry in dictionary)
        digest = hashlib.sha256(csv.encode("utf-8")).hexdigest()[:24]
        dic = self.dict_dir / f"{digest}.dic"
        if not dic.is_file():
            self.dict_dir.mkdir(parents=True, exist_ok=True)
            source = atomic_write_text(self.dict_dir / f"{digest}.csv", csv)
            partial = self.dict_dir / f".{digest}.{threading.get_ident()}.dic"
            try:
                pyopenjtalk.mecab_dict_index(str(source), str(partial))
            except (RuntimeError, FileNotFoundError) as exc:
                raise InputError(f"the pronunciation dictionary could not be built for OpenJTalk: {exc}") from exc
            partial.replace(dic)
        return pyopenjtalk.openjtalk.OpenJTalk(
            dn_mecab=pyopenjtalk.OPEN_JTALK_DICT_DIR,
            userdic=str(dic).encode("utf-8"),
            userdic_reading_protection=[True],
        )


def _csv_row(entry: "PronunciationEntry") -> str:
    """One naist-jdic user dictionary line: a proper noun read as ``entry.reading``.

    Higher priority means lower cost, so the entry wins over the system dictionary's words.
    """
    surface = to_fullwidth(entry.surface)
    reading = to_katakana(entry.reading)
    morae = max(1, mora_count(reading))
    accent = min(entry.accent if entry.accent is not None else 0, morae)
    cost = 6000 - 700 * entry.priority
    fields = [surface, "", "", str(cost), "名詞", "固有名詞", "一般", "*", "*", "*", surface, reading, reading,
              f"{accent}/{morae}", "*"]  # fmt: skip
    return ",".join(_csv_field(f) for f in fields) + "\n"


def _csv_field(value: str) -> str:
    if "," in value or '"' in value:
        return '"' + value.replace('"', '""') + '"'
    return value
