"""Katakana for the Latin-script words in Japanese text, so g2p reads them as words.

pyopenjtalk's g2p spells every Latin word letter by letter (``Docker`` becomes
ディーオーシーケーイーアール). :func:`katakanize_latin` replaces each Latin word of a Japanese
text with a katakana reading; g2p then reads the result, so the particles and kanji around a
word keep their readings and the output stays katakana (``GitHubでコードを書く`` →
``ギットハブでコードを書く`` → ギットハブデコードヲカク).

Words:
    First, entries of the curated dictionary that contain symbols (``Node.js``, ``Wi-Fi``,
    ``C++``, ``.NET``, ``UTF-8``) are replaced wherever they stand between non-alphanumerics.
    Then every remaining run of Latin letters and digits, joined by ``-``, ``.``, ``_`` or an
    apostrophe before a letter (``Python3``, ``e-mail``, ``snake_case``, ``example.com``), is one
    word. Full-width letters and digits count as ASCII ones.

A word's reading, the first source that knows it wins:
    1. the user's pronunciation dictionary (``settings.pronunciation``), applied by
       :func:`stages.script.text.reading_for` before this module runs;
    2. the curated dictionary ``data/loanwords.tsv`` (case-insensitive) for the whole word;
    3. pyopenjtalk's own lexicon, when its analysis of the text reads the whole word as a word
       (units after numbers: ``10GB`` ギガバイト, ``50Hz`` ヘルツ; ``TV`` テレビ; ``Google``): the
       word is left for g2p;
    4. otherwise the word is cut at ``-``, ``.``, ``_`` and then at camelCase and letter/digit
       boundaries (``HTTPServer`` → HTTP Server, ``macOS`` → mac OS), and each part is read by
       the dictionary, else digits are left for g2p (which reads numbers), else
    5. an acronym (one letter, or all capitals with at most 5 letters, or a word e2k's n-gram
       model judges unpronounceable) is spelled with the English letter names (エー ビー シー
       ... ダブリュー), else
    6. e2k's character-to-katakana model transliterates it (greedy decoding, deterministic;
       the full "base" model on one BLAS thread: about 10 ms a word, cached per word).
    A part after a dot reads ドット first (``example.com``), except ``js`` (``Three.js``).
    Math symbols (``=`` イコール, ``+`` プラス, ``−`` マイナス, ``×`` カケル, ``≤``, Greek letters by
    name) are read too (:func:`math_symbols`), for every text, with or without Latin words.
    What inline code names is read as a programmer says it: a slash after a lower-case word
    スラッシュ (``origin/master``, ``.git/HEAD``; ``I/O`` and ``TCP/IP`` stay silent), a dot opening a
    lower-case word ドット (``.git``), a prime after a letter or digit ダッシュ (``c1'``), a dash
    opening an option ハイフン (``-i``).
    Without the e2k package (or if its models fail to load) step 6 leaves the word as it is
    and g2p spells it, as before.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from importlib import resources

from stages.jtalk import analyse

log = logging.getLogger(__name__)

LOANWORDS_FILE = "data/loanwords.tsv"
ACRONYM_MAX_LETTERS = 5

LETTER_NAMES = {
    "a": "エー", "b": "ビー", "c": "シー", "d": "ディー", "e": "イー", "f": "エフ", "g": "ジー",
    "h": "エイチ", "i": "アイ", "j": "ジェー", "k": "ケー", "l": "エル", "m": "エム", "n": "エヌ",
    "o": "オー", "p": "ピー", "q": "キュー", "r": "アール", "s": "エス", "t": "ティー", "u": "ユー",
    "v": "ブイ", "w": "ダブリュー", "x": "エックス", "y": "ワイ", "z": "ゼット",
}

_FULL_WIDTH = str.maketrans(
    {chr(code): chr(code - 0xFEE0) for code in [*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B)]}
)
_WORD = re.compile(r"(?<![A-Za-z])[A-Za-z][A-Za-z0-9]*(?:[-._'’][A-Za-z][A-Za-z0-9]*)*")
_SEGMENT_SEPARATOR = re.compile(r"([-._])")
_CAMEL_PARTS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_KATAKANA = re.compile(r"^[\u30A1-\u30FA\u30FC]+$")
_DOTLESS_AFTER_DOT = {"js"}
_UNKNOWN_POS = {"フィラー", "記号"}

_E2K_LOCK = threading.Lock()
_UNLOADED = object()
_e2k_models: object = _UNLOADED


def katakanize_latin(text: str, known: frozenset[str] | None = None) -> str:
    """``text`` with every Latin-script word replaced by its katakana reading (see above).

    ``known``: the words pyopenjtalk reads as words (:func:`known_words`) when the caller has
    already analysed the text (or the sentence around it); else the text is analysed for them.
    """
    text = math_symbols(text.translate(_FULL_WIDTH))
    if not re.search(r"[A-Za-z]", text):
        return text
    symbols = _symbol_entries()
    if symbols is not None:
        text = symbols.sub(lambda m: loanwords()[m.group(0).lower()], text)
    if not re.search(r"[A-Za-z]", text):
        return text
    text = _code_marks(text)
    # Which words pyopenjtalk knows matters only for words the dictionary lacks: without one,
    # the text need not be analysed for it.
    if all(word.lower() in loanwords() for word in _WORD.findall(text)):
        known = frozenset()
    elif known is None:
        known = known_words(analyse(text))
    return _WORD.sub(lambda m: _replacement(m.group(0), known), text)


_CODE_MARKS = (
    (re.compile(r"(?<=[a-z0-9])/(?=[A-Za-z])"), "スラッシュ"),
    (re.compile(r"(?<![A-Za-z0-9.])\.(?=[a-z])"), "ドット"),
    (re.compile(r"(?<![A-Za-z])([A-Za-z][0-9]*|[0-9]+)['’](?![A-Za-z])"), r"\1ダッシュ"),
    (re.compile(r"(?<![A-Za-z0-9-])-{1,2}(?=[a-z])"), "ハイフン"),
)


# What inline math leaves in a line (stages.script.mathwords): symbols pyopenjtalk says nothing for
_MATH_SYMBOLS = {
    "=": "イコール", "+": "プラス", "−": "マイナス", "×": "カケル", "≤": "ショーナリイコール", "≥": "ダイナリイコール",
    "<": "ショーナリ", ">": "ダイナリ", "α": "アルファ", "β": "ベータ", "γ": "ガンマ", "δ": "デルタ", "ε": "イプシロン",
    "ζ": "ゼータ", "η": "イータ", "θ": "シータ", "λ": "ラムダ", "μ": "ミュー", "ν": "ニュー", "ξ": "クサイ", "π": "パイ",
    "ρ": "ロー", "σ": "シグマ", "τ": "タウ", "φ": "ファイ", "χ": "カイ", "ψ": "プサイ", "ω": "オメガ", "Γ": "ガンマ",
    "Δ": "デルタ", "Θ": "シータ", "Λ": "ラムダ", "Σ": "シグマ", "Φ": "ファイ", "Ψ": "プサイ", "Ω": "オメガ",
}
_MATH_SYMBOL = re.compile("|".join(map(re.escape, _MATH_SYMBOLS)))


def _code_marks(text: str) -> str:
    """The marks of paths, primes and options, and math symbols, spelled out (module docstring)."""
    for pattern, words in _CODE_MARKS:
        text = pattern.sub(words, text)
    return text


def math_symbols(text: str) -> str:
    """``text`` with the math symbols inline math leaves (=, +, −, ×, ≤, Greek letters) in katakana."""
    return _MATH_SYMBOL.sub(lambda m: _MATH_SYMBOLS[m.group(0)], text) if _MATH_SYMBOL.search(text) else text


def preload() -> bool:
    """Load e2k's models now rather than on the first unknown word (0.5-1 s); True when available."""
    return _e2k() is not None


@lru_cache(maxsize=1)
def loanwords() -> dict[str, str]:
    """The curated dictionary: lower-cased word → katakana reading."""
    table: dict[str, str] = {}
    raw = resources.files("stages.script").joinpath(LOANWORDS_FILE).read_text(encoding="utf-8")
    for line in raw.splitlines():
        if line.strip() and not line.startswith("#"):
            word, reading = line.split("\t")
            table[word.strip().lower()] = reading.strip()
    return table


@lru_cache(maxsize=8192)
def word_reading(word: str) -> str:
    """The reading of one Latin word (katakana, with any digits left for g2p).

    Without e2k, parts it would have transliterated stay in Latin letters.
    """
    known = loanwords().get(word.lower())
    if known:
        return known
    out: list[str] = []
    after_dot = False
    for segment in _SEGMENT_SEPARATOR.split(word.replace("'", "").replace("’", "")):
        if segment in "-._":
            after_dot = segment == "."
            continue
        if after_dot and segment.lower() not in _DOTLESS_AFTER_DOT:
            out.append("ドット")
        known = loanwords().get(segment.lower())
        if known:
            out.append(known)
            continue
        for part in _CAMEL_PARTS.findall(segment):
            out.append(loanwords().get(part.lower()) or (part if part.isdigit() else _part_reading(part)))
    return "".join(out)


def spell(word: str) -> str:
    """``word`` spelled with the English letter names (エー ビー シー ... ダブリュー)."""
    return "".join(LETTER_NAMES.get(ch, "") for ch in word.lower())


def _part_reading(part: str) -> str:
    """An acronym spelled, else e2k's transliteration, else the part unchanged (no e2k)."""
    if len(part) == 1 or (part.isupper() and len(part) <= ACRONYM_MAX_LETTERS):
        return spell(part)
    if _e2k() is None:
        return part
    kana = _transliterated(part.lower())
    return kana if kana is not None and _KATAKANA.match(kana) else spell(part)


@lru_cache(maxsize=8192)
def _transliterated(lower: str) -> str | None:
    """e2k's katakana for a lower-cased part, None when its n-gram model finds it unpronounceable.

    Cached per part: words share parts (``Union-Find``, ``UnionFind``, ``union``), and e2k
    decodes one at about 10 ms. Only called once e2k has loaded.
    """
    c2k, ngram, one_blas_thread = _e2k()  # type: ignore[misc]
    with _E2K_LOCK:
        if not ngram(lower):
            return None
        with one_blas_thread():
            return c2k(lower)


def _replacement(word: str, known: frozenset[str]) -> str:
    """A word's reading, or the word itself when g2p knows it and the dictionary does not."""
    if word in known and word.lower() not in loanwords():
        return word
    return word_reading(word)


def known_words(morphemes: Iterable[Mapping[str, object]]) -> frozenset[str]:
    """The Latin words that pyopenjtalk's dictionary reads as words in its analysis of a text.

    Its lexicon knows units after numbers (``10GB`` ギガバイト, ``50Hz`` ヘルツ), some names
    (``Google``, ``Xperia``) and abbreviations (``TV`` テレビ, ``Mr.``); words it does not know
    come out as fillers or single letters, spelled.
    """
    known = set()
    for morpheme in morphemes:
        surface = unicodedata.normalize("NFKC", morpheme["string"]).strip(" .")  # type: ignore[arg-type]
        if morpheme["pos"] not in _UNKNOWN_POS and _WORD.fullmatch(surface):
            known.add(surface)
    return frozenset(known)


@lru_cache(maxsize=1)
def _symbol_entries() -> re.Pattern[str] | None:
    """Dictionary entries that are not plain alphanumeric words, as one pattern (longest first)."""
    words = sorted((w for w in loanwords() if not w.isalnum()), key=lambda w: (-len(w), w))
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in words)
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE)


def _e2k() -> tuple | None:
    """e2k's C2K model, n-gram check and BLAS limiter, loaded once on first use; None when unavailable."""
    global _e2k_models
    if _e2k_models is _UNLOADED:
        with _E2K_LOCK:
            if _e2k_models is _UNLOADED:
                _e2k_models = _load_e2k()
    return _e2k_models  # type: ignore[return-value]


def _load_e2k() -> tuple | None:
    try:
        from e2k import C2K, NGram

        models = C2K(max_len=32, model="base"), NGram()
    except Exception as exc:  # ImportError, or a broken install's missing/corrupt model files
        log.warning("e2k unavailable, Latin words will be spelled letter by letter: %s", exc)
        return None
    return (*models, _one_blas_thread())


def _one_blas_thread() -> Callable[[], contextlib.AbstractContextManager]:
    """A context that runs numpy's BLAS on one thread while e2k decodes a word.

    e2k multiplies tiny matrices (768x256) one decoding step at a time; OpenBLAS hands each to
    its thread pool, and the hand-over costs more than the product: one thread is 4x faster per
    word (about 25 ms instead of 90 on two busy cores) and gives the same katakana. The limit is
    set and restored around each word (about 0.1 ms), so other stages keep their BLAS threads.
    """
    try:
        from threadpoolctl import ThreadpoolController

        controller = ThreadpoolController()
    except Exception as exc:  # no threadpoolctl, or it cannot inspect the loaded libraries
        log.warning("threadpoolctl unavailable, e2k runs with numpy's default BLAS threads: %s", exc)
        return contextlib.nullcontext
    return lambda: controller.limit(limits=1, user_api="blas")

