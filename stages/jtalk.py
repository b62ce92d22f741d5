"""pyopenjtalk, loaded once for every stage that needs it (script readings, audio synthesis).

Stages run in worker threads. A plain ``if "pyopenjtalk" not in sys.modules: import`` lets a
second thread see the half-initialised module while the first is still importing it; the lock
makes the first import finish before anyone uses the module. The import prints an ONNX notice
with ``print`` (that the optional ONNX runtime is missing; nothing we use needs it): it is dropped,
so stdout stays clean for JSON logs and ``name=value`` output and users see no false alarm.

:func:`analyse` and :func:`kana` are the text analysis the script stage asks for, cached per text:
the writers analyse a sentence for its phrase breaks, each phrase for its reading and the Latin
words it knows, and a bullet again, and the same text comes up more than once (a one-phrase
sentence, the intro and the closing). One analysis takes 3-15 ms, most of it pyopenjtalk-plus's
Python post-processing.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from types import MappingProxyType, ModuleType

_LOCK = threading.Lock()
# The morpheme fields the script stage reads; the rest (accent, mora, reading) would only hold memory.
_FIELDS = ("string", "pos", "pos_group1", "cform", "chain_flag", "pron")
ANALYSIS_CACHE = 2048  # texts; a few KB each
_MODULE: ModuleType | None = None


def pyopenjtalk() -> ModuleType:
    """The pyopenjtalk module, fully imported (with ``openjtalk`` and ``version``)."""
    global _MODULE
    if _MODULE is not None:
        return _MODULE
    with _LOCK:
        if _MODULE is None:
            with contextlib.redirect_stdout(io.StringIO()):
                import pyopenjtalk as module
                import pyopenjtalk.openjtalk  # noqa: F401
                import pyopenjtalk.version  # noqa: F401
            _MODULE = module
    return _MODULE


@lru_cache(maxsize=ANALYSIS_CACHE)
def analyse(text: str) -> tuple[Mapping[str, object], ...]:
    """``pyopenjtalk.run_frontend(text)``'s morphemes, read-only, with the fields in ``_FIELDS``.

    Cached per text: the analysis depends on the text alone (the dictionary is fixed at import).
    """
    return tuple(MappingProxyType({key: m[key] for key in _FIELDS if key in m}) for m in pyopenjtalk().run_frontend(text))


def kana(text: str) -> str:
    """``pyopenjtalk.g2p(text, kana=True)``, from the cached :func:`analyse`.

    The same rule as g2p's: a symbol (記号) keeps its surface, other morphemes give their
    pronunciation without the accent mark ``’``.
    """
    return kana_of(analyse(text))


def kana_of(morphemes: "Iterable[Mapping[str, object]]") -> str:
    """The kana of some of :func:`analyse`'s morphemes, by :func:`kana`'s rule."""
    return "".join((m["string"] if m["pos"] == "記号" else m["pron"]).replace("’", "")  # type: ignore[union-attr]
                   for m in morphemes)


def release_dictionaries() -> None:
    """Let go of pyopenjtalk-plus's Sudachi dictionary (about 80 MB mapped) between stages.

    pyopenjtalk-plus keeps it in a module global once a reading fix-up has needed it, so a daemon
    that ran one job would keep it for ever; the next analysis maps it again in about 0.1 s.
    Threads still holding a tokenizer keep their own reference, so this is safe at any time.
    """
    if _MODULE is None:
        return
    utils = getattr(_MODULE, "utils", None)
    if utils is not None and getattr(utils, "_SUDACHI_DICTIONARY", None) is not None:
        utils._SUDACHI_DICTIONARY = None
