"""OpenJTalk through pyopenjtalk-plus: offline Japanese with the bundled HTS voice "Mei".

The wheel carries its dictionary and voice, so nothing is downloaded. The pronunciation
dictionary becomes a MeCab user dictionary built once per dictionary content into the cache,
loaded into an OpenJTalk instance of our own (the module-global one is left alone, so other
users of pyopenjtalk in the process, such as the script stage's reading helper, are unaffected).

The HTS engine speaks one phrase at a time per process. With ``audio.workers`` above 1 and enough
phrases to make up for starting them, phrases go to a pool of worker processes
(:mod:`stages.audio.jtalk_pool`), which load the same user dictionary and make the same samples.
A daemon starts that pool when it starts (:func:`warm_up`), so its first job does not wait for it.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stages.audio.engine import Voice, semitones
from stages.audio.jtalk_pool import JTalkPool, shared_pool, warm_pool
from stages.audio.text import mora_count, to_fullwidth, to_katakana
from stages.base import InputError, atomic_write_text
from stages.jtalk import pyopenjtalk as _pyopenjtalk

if TYPE_CHECKING:
    from stages.settings import PronunciationEntry, Settings

MEI_CREDIT = '音声: HTS Voice "Mei" (MMDAgent) CC BY 3.0 — Nagoya Institute of Technology'

# Starting the workers takes 0.4-0.8 s of both cores (this process speaks meanwhile); below this
# much uncached text (about 15 s of speech, 1.5 s of synthesis alone) a cold pool would not pay
# for itself. A pool already running is used from two phrases on.
COLD_POOL_MIN_CHARS = 120

_LOCK = threading.Lock()  # one synthesis at a time: the HTS engine inside is shared
_JTALKS: dict[str, object] = {}  # user dictionary path -> its OpenJTalk instance, per process


class OpenJTalkEngine:
    """Japanese speech from pyopenjtalk-plus (48 kHz). ``speaker`` is always ``mei``."""

    name = "openjtalk"

    def __init__(self, dict_dir: Path, workers: int = 1):
        self.dict_dir = Path(dict_dir)
        self.workers = max(1, workers)
        self.parallel = 1
        self._dictionary: list["PronunciationEntry"] = []
        self._userdic: str | None = None
        self._userdic_lock = threading.Lock()
        self._pool: JTalkPool | None = None

    def version(self) -> str:
        return f"pyopenjtalk-plus {_pyopenjtalk().version.__version__}; mei_normal"

    def prepare(self, voices: list[Voice], dictionary: list["PronunciationEntry"]) -> None:
        # Built on the first synthesis: a fully cached run never pays for loading MeCab.
        self._dictionary = list(dictionary)
        self._userdic = None

    def plan(self, texts: list[str]) -> int:
        """Speak ``texts`` (the uncached ones) in this process or in the worker pool; returns how
        many :meth:`synthesize` calls may run at once."""
        self._pool = None
        if self.workers > 1 and len(texts) > 1:
            if warm_pool(self.workers) or sum(len(t) for t in texts) >= COLD_POOL_MIN_CHARS:
                self._pool = shared_pool(self.workers)
        self.parallel = self.workers if self._pool is not None else 1
        # Two callers per worker: while one levels and writes the clip its worker just spoke (in
        # this process), the other's phrase is already queued, so no worker waits for the next.
        return 2 * self.parallel if self._pool is not None else 1

    def synthesize(self, text: str, voice: Voice, cancel: threading.Event | None) -> tuple[np.ndarray, int]:
        userdic = self._user_dictionary()
        half_tone = semitones(voice.pitch)
        pool = self._pool
        if pool is None:
            samples, rate = speak(text, voice.speed, half_tone, userdic)
        elif not pool.ready and _LOCK.acquire(blocking=False):
            try:  # the workers are still starting: this process speaks meanwhile
                samples, rate = _speak_locked(text, voice.speed, half_tone, userdic)
            finally:
                _LOCK.release()
        else:
            samples, rate = pool.speak(text, voice.speed, half_tone, userdic, cancel)
        # The HTS output is on the int16 scale and its peaks can pass it; levelling rescales.
        return np.asarray(samples, dtype=np.float64) / 32768.0, int(rate)

    def credits(self, voices: list[Voice]) -> list[str]:
        return [MEI_CREDIT] if voices else []

    def _user_dictionary(self) -> str | None:
        with self._userdic_lock:
            if self._userdic is None and self._dictionary:
                self._userdic = str(build_user_dictionary(self.dict_dir, self._dictionary))
            return self._userdic


def warm_up(settings: "Settings", timeout: float = 60.0) -> bool:
    """Start the shared worker pool now if a job would use it (see the module doc) and wait until
    its workers have loaded (about 0.7 s of CPU each); True if it was started.

    Only when ``audio.workers`` is above 1 and some persona speaks with OpenJTalk (the default
    engine or its own) in the default language, Japanese. A job that comes meanwhile uses the
    workers as soon as they are ready.

    Raises:
        TransientError: a worker died while loading (the job will start fresh ones).
    """
    workers = settings.audio.workers
    japanese = (settings.script.language or "ja").lower().split("-")[0] == "ja"
    engines = {p.engine or settings.audio.engine for p in settings.personas} or {settings.audio.engine}
    if workers < 2 or not japanese or "openjtalk" not in engines:
        return False
    shared_pool(workers).warm_up(timeout)
    return True


def speak(text: str, speed: float, half_tone: float, userdic: str | None) -> tuple[np.ndarray, int]:
    """``pyopenjtalk.tts`` with the user dictionary at ``userdic`` (a built ``.dic``), if any.

    This is what the worker processes run too, so pool and in-process clips are the same bytes.
    """
    with _LOCK:
        return _speak_locked(text, speed, half_tone, userdic)


def _speak_locked(text: str, speed: float, half_tone: float, userdic: str | None) -> tuple[np.ndarray, int]:
    pyopenjtalk = _pyopenjtalk()
    jtalk = None
    if userdic is not None:
        jtalk = _JTALKS.get(userdic)
        if jtalk is None:
            if len(_JTALKS) >= 4:  # a long-lived daemon whose dictionary keeps changing
                _JTALKS.pop(next(iter(_JTALKS)))
            jtalk = _JTALKS[userdic] = pyopenjtalk.openjtalk.OpenJTalk(
                dn_mecab=pyopenjtalk.OPEN_JTALK_DICT_DIR,
                userdic=userdic.encode("utf-8"),
                userdic_reading_protection=[True],
            )
    return pyopenjtalk.tts(text, speed=speed, half_tone=half_tone, jtalk=jtalk)


def build_user_dictionary(dict_dir: Path, dictionary: list["PronunciationEntry"]) -> Path:
    """The MeCab user dictionary (``.dic``) for ``dictionary``, built into ``dict_dir`` once per content."""
    pyopenjtalk = _pyopenjtalk()
    csv = "".join(_csv_row(entry) for entry in dictionary)
    digest = hashlib.sha256(csv.encode("utf-8")).hexdigest()[:24]
    dic = dict_dir / f"{digest}.dic"
    if not dic.is_file():
        dict_dir.mkdir(parents=True, exist_ok=True)
        source = atomic_write_text(dict_dir / f"{digest}.csv", csv)
        partial = dict_dir / f".{digest}.{threading.get_ident()}.dic"
        try:
            pyopenjtalk.mecab_dict_index(str(source), str(partial))
        except (RuntimeError, FileNotFoundError) as exc:
            raise InputError(f"the pronunciation dictionary could not be built for OpenJTalk: {exc}") from exc
        partial.replace(dic)
    return dic


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
