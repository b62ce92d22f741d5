"""Line breaking for slides and subtitles: at phrase boundaries (文節), with kinsoku rules.

Japanese text breaks only between phrases (文節) as BudouX finds them (the model browsers use; it
ships inside the ``budoux`` package): 「ベランダの/プランターで/育てると、」, never 「プラン/ター」 or
「葉が黄/色く」, and so never before a particle or an auxiliary. On top of that, a line never starts
with a closing bracket, a full stop/comma, a prolonged sound mark or a small kana, and never ends
with an opening bracket (JIS X 4051, the common "kinsoku shori" subset). Latin words (any run of
non-space, non-CJK characters, with their punctuation) break at spaces only. A phrase or word wider
than the whole line is, only then, split by characters (still obeying kinsoku).

The width of a candidate line always comes from the caller's ``measure`` (e.g. Pillow's
``ImageFont.getlength``), so kerning and proportional glyphs are counted as drawn.
"""

from __future__ import annotations

import threading
import unicodedata
from collections import deque
from functools import lru_cache
from typing import Callable

FORBIDDEN_START: str = (
    "。、，．・：；？！゛゜ヽヾゝゞ々ー〜～」』）］｝〕〉》】〙〗’”"
    "ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ"
    "‐゠–…‥"
    ",.)]}!?:;%"
)
"""Characters that must not begin a line."""

FORBIDDEN_END: str = "「『（［｛〔〈《【〘〖‘“([{"
"""Characters that must not end a line."""

Measure = Callable[[str], float]


def wrap(text: str, max_width: float, measure: Measure) -> list[str]:
    """Break ``text`` into lines no wider than ``max_width`` (as measured), following kinsoku.

    Newlines in ``text`` are hard breaks. Spaces at the start or end of a line are dropped.
    A unit (see :func:`tokens`) wider than a whole line is split by characters as a last resort,
    still keeping forbidden characters off the start of a piece where possible.

    Args:
        text: the text to wrap.
        max_width: the widest a line may be, in the units of ``measure``.
        measure: the drawn width of a string.

    Returns:
        The lines, without trailing spaces. An empty text gives ``[]``.
    """
    lines: list[str] = []
    for paragraph in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if paragraph.strip():
            lines.extend(_wrap_paragraph(paragraph, max_width, measure))
    return lines


def wrap_balanced(text: str, max_width: float, measure: Measure) -> list[str]:
    """Like :func:`wrap`, but a paragraph that takes two lines is broken where they come out most even.

    Greedy filling leaves orphans such as a last line of one kana ("…避けましょ" / "う"). For a
    two-line paragraph the break is instead the kinsoku-legal one (between :func:`tokens`) that
    makes the longer line shortest, i.e. the legal break nearest the middle; both lines still fit
    ``max_width``. Paragraphs of one line or of three and more lines are wrapped as by :func:`wrap`.
    """
    lines: list[str] = []
    for paragraph in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not paragraph.strip():
            continue
        wrapped = _wrap_paragraph(paragraph, max_width, measure)
        if len(wrapped) == 2:
            wrapped = _balanced_pair(paragraph, max_width, measure) or wrapped
        lines.extend(wrapped)
    return lines


WIDOW_CHARS: int = 3
"""A paragraph's last line shorter than this many characters (spaces not counted) is a widow."""


def widow_free_break(text: str, max_width: float, next_width: float, measure: Measure,
                     min_chars: int = WIDOW_CHARS) -> tuple[str, str] | None:
    """Where to end the first line of ``text`` so that the line after it, the last, is no widow.

    For a caller that fills lines one at a time (each line may have its own width): when greedy
    filling would leave the rest of ``text`` as one last line of fewer than ``min_chars``
    characters (「…葉が黄色くなっている苗」/「は」), the first line ends at the latest kinsoku-legal
    break (between :func:`tokens`) after which the rest has at least ``min_chars`` characters and
    fits ``next_width``, while the first line keeps at least ``min_chars`` characters and fits
    ``max_width``.

    Returns:
        ``(first_line, rest)`` with the rest's leading spaces dropped, or None when greedy filling
        leaves no widow (the text fits one line, or the rest needs more than one more line) or
        when no such break exists (then greedy filling stands).
    """
    text = text.strip()
    units = tokens(text)
    greedy = 0
    for i in range(1, len(units) + 1):
        if measure("".join(units[:i]).rstrip()) <= max_width:
            greedy = i
        else:
            break
    rest = "".join(units[greedy:]).strip()
    if greedy == 0 or not rest or _chars(rest) >= min_chars or measure(rest) > next_width:
        return None
    for i in range(greedy - 1, 0, -1):
        first, rest = "".join(units[:i]).rstrip(), "".join(units[i:]).strip()
        if not first or not rest or _chars(first) < min_chars:
            break
        if measure(rest) > next_width:
            break  # moving more only makes the rest wider
        if _chars(rest) >= min_chars and measure(first) <= max_width:
            return first, rest
    return None


def _chars(text: str) -> int:
    return sum(1 for ch in text if not ch.isspace())


def _balanced_pair(paragraph: str, max_width: float, measure: Measure) -> list[str] | None:
    units = tokens(paragraph)
    best: tuple[tuple[float, float], list[str]] | None = None
    for i in range(1, len(units)):
        first, second = "".join(units[:i]).strip(), "".join(units[i:]).strip()
        if not first or not second:
            continue
        w1, w2 = measure(first), measure(second)
        if max(w1, w2) > max_width:
            continue
        key = (max(w1, w2), -w1)  # the longer line as short as possible; on a tie, the longer line first
        if best is None or key < best[0]:
            best = (key, [first, second])
    return best[1] if best else None


def tokens(text: str) -> list[str]:
    """Split ``text`` into the units a line may not break inside.

    A Japanese phrase (文節, see :func:`phrases`) is one unit, and so is a Latin word with its
    punctuation (a phrase never splits a Latin word or a number, and a space always separates);
    each run of spaces is one unit. A forbidden-start character is glued to the unit before it,
    and a forbidden-end character to the unit after it, so breaking only between units obeys
    kinsoku. Cached: typesetters ask for the same text many times while they search for a size,
    and for the rest of a paragraph after each line: a suffix of a recent text that starts at one
    of its unit boundaries gets that text's units (analysed in their full context, no new analysis).
    """
    with _recent_lock:
        for whole, units in reversed(_recent):
            cut = len(whole) - len(text)
            if cut > 0 and whole.endswith(text):
                offset = 0
                for i, unit in enumerate(units):
                    if offset == cut:
                        return list(units[i:])
                    if offset > cut:
                        break
                    offset += len(unit)
    units = _phrase_tokens(text)
    with _recent_lock:
        _recent.append((text, units))
    return list(units)


_recent: "deque[tuple[str, tuple[str, ...]]]" = deque(maxlen=32)
_recent_lock = threading.Lock()


def kinsoku_units(text: str) -> list[str]:
    """The finest units kinsoku allows: each CJK character, each Latin word, each run of spaces,
    with forbidden-start and forbidden-end characters glued on as in :func:`tokens`.

    Used only to split a phrase that is wider than a whole line (the last resort).
    """
    return _glue(_raw_units(text))


def phrases(text: str) -> list[str]:
    """BudouX's phrases (文節) of ``text``; they join back to ``text`` exactly."""
    if not text:
        return []
    chunks = _parser().parse(text)
    return chunks if "".join(chunks) == text else [text]


@lru_cache(maxsize=16384)
def _phrase_tokens(text: str) -> tuple[str, ...]:
    starts: set[int] = set()
    offset = 0
    for chunk in phrases(text):
        starts.add(offset)
        offset += len(chunk)
    words = _word_starts(text)
    if words is not None:
        # BudouX guesses from characters; the dictionary knows the words: a phrase boundary inside
        # a word (「環境依/存」, 「アス/タリスク」) or before a particle or auxiliary is no boundary
        starts &= words
    else:
        starts -= _inside_function_phrases(text)
    return tuple(_glue(_merge_units(text, starts)))


@lru_cache(maxsize=4096)
def word_units(text: str, *, any_word: bool = False) -> tuple[str, ...]:
    """``text`` cut at every word a line may start with (finer than :func:`tokens`): the places
    to split a phrase wider than a line before falling back to characters. ``any_word`` cuts
    before every word, dependent ones too (「楽しんで/ください」): the step before characters.
    Without a Japanese analysis (no kana or kanji, or it cannot be aligned) these are
    :func:`kinsoku_units`."""
    analysis = _analysis(text)
    if analysis is None:
        return tuple(kinsoku_units(text))
    words = {start for start, _ in analysis} if any_word else _word_starts(text)
    return tuple(_glue(_merge_units(text, set(words or ()))))


def _merge_units(text: str, starts: set[int]) -> list[str]:
    """The raw units of ``text`` joined except at ``starts``, at spaces and after them."""
    merged: list[str] = []
    offset = 0
    for unit in _raw_units(text):
        # a Latin word is one raw unit, so a boundary inside it (BudouX splits 「202/4年」) is ignored
        if not merged or offset in starts or unit.isspace():
            merged.append(unit)
        elif merged[-1].isspace():
            if len(merged) > 1 and is_cjk(unit[0]) and not is_cjk(merged[-2][-1]):
                # 「b という」: a particle after a Latin word and a space cannot start a line either
                space = merged.pop()
                merged[-1] += space + unit
            else:
                merged.append(unit)
        else:
            merged[-1] += unit
        offset += len(unit)
    return merged


FUNCTION_PHRASES: tuple[str, ...] = (
    "について", "によって", "により", "による", "にわたって", "にわたり", "にわたる", "にとって", "として",
    "という", "といった", "といって", "に対して", "に対する", "に関して", "に関する", "において", "における",
    "をもって", "ありがとうござい", "かもしれ", "なければ", "にたいして", "にたいする", "に対し", "に関し",
    "に沿って", "によれば", "にもかかわらず", "をめぐって",
)
"""Compound particles and set phrases (連語) a line never breaks inside, though the dictionary
splits them into words that could each start a line (「に/ついて」, 「と/いう」)."""


def _dependent(morpheme: dict) -> bool:
    """A word that leans on the one before it, so it never starts a line: a particle, an
    auxiliary, a suffix, a dependent verb or adjective (「なって/いる」), the nominal 「の」."""
    pos, group = morpheme.get("pos", ""), morpheme.get("pos_group1", "")
    if pos in ("助詞", "助動詞") or group == "接尾":
        return True
    if group == "非自立" and (pos in ("動詞", "形容詞") or morpheme.get("string") in ("の", "ん")):
        return True
    return False


def _has_japanese(text: str) -> bool:
    return any("\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" for c in text)


@lru_cache(maxsize=16384)
def _word_starts(text: str) -> frozenset[int] | None:
    """Offsets in ``text`` where a word that may start a line begins, from pyopenjtalk's
    morphological analysis (the dictionary the voice uses); None without Japanese in ``text`` or
    when the analysis cannot be aligned with it (then BudouX's phrases stand alone)."""
    analysis = _analysis(text)
    if analysis is None:
        return None
    starts = {start for start, dependent in analysis if not dependent}
    return frozenset(starts - _inside_function_phrases(text))


@lru_cache(maxsize=16384)
def _analysis(text: str) -> tuple[tuple[int, bool], ...] | None:
    """Each word of ``text`` as ``(offset, dependent)`` (see :func:`_dependent`), or None."""
    if not _has_japanese(text):
        return None
    from stages.jtalk import pyopenjtalk
    from stages.script.text import _align  # maps normalised morphemes (numerals, full-width) back

    try:
        morphemes = pyopenjtalk().run_frontend(text)
    except Exception:  # noqa: BLE001 - an analysis failure only loses the refinement
        return None
    spans = _align(text, [m["string"] for m in morphemes])
    if spans is None:
        return None
    return tuple((start, _dependent(morphemes[k])) for start, _, k in spans)


def _inside_function_phrases(text: str) -> set[int]:
    """Offsets strictly inside an occurrence of one of :data:`FUNCTION_PHRASES`."""
    inside: set[int] = set()
    for phrase in FUNCTION_PHRASES:
        at = text.find(phrase)
        while at >= 0:
            inside.update(range(at + 1, at + len(phrase)))
            at = text.find(phrase, at + 1)
    return inside


_parser_lock = threading.Lock()
_parser_instance = None


def _parser():
    """The Japanese BudouX parser, loaded once (its model is a JSON file inside the package)."""
    global _parser_instance
    with _parser_lock:
        if _parser_instance is None:
            import budoux

            _parser_instance = budoux.load_default_japanese_parser()
        return _parser_instance


def _glue(units: list[str]) -> list[str]:
    merged: list[str] = []
    carry = ""
    for unit in units:
        if not carry and merged and unit[0] in FORBIDDEN_START:
            if not merged[-1].isspace():
                merged[-1] += unit
                continue
            if len(merged) > 1:  # 「基礎 ～微分編～」: across a space too, ～ never starts a line
                space = merged.pop()
                merged[-1] += space + unit
                continue
        if carry and unit.isspace():
            carry += unit  # 「 X: an opening bracket stays with what follows even across a space
            continue
        unit = carry + unit
        carry = ""
        if unit[-1] in FORBIDDEN_END:
            carry = unit
        else:
            merged.append(unit)
    if carry:
        merged.append(carry)
    return merged


def is_cjk(char: str) -> bool:
    """True for wide/full-width characters (kana, kanji, full-width punctuation) and half-width kana."""
    return unicodedata.east_asian_width(char) in ("W", "F", "H")


# --- internals -----------------------------------------------------------------------------------


def _raw_units(text: str) -> list[str]:
    units: list[str] = []
    word = ""
    for char in text:
        if char.isspace():
            if word:
                units.append(word)
                word = ""
            if units and units[-1].isspace():
                units[-1] += char
            else:
                units.append(char)
        elif is_cjk(char):
            if word:
                units.append(word)
                word = ""
            units.append(char)
        else:
            word += char
    if word:
        units.append(word)
    return units


def _wrap_paragraph(paragraph: str, max_width: float, measure: Measure) -> list[str]:
    lines: list[str] = []
    line = ""
    for unit in tokens(paragraph):
        if unit.isspace():
            if line:
                line += unit
            continue
        candidate = line + unit
        if measure(candidate.rstrip()) <= max_width:
            line = candidate
            continue
        if measure(unit) > max_width:
            # wider than any line, so it is split anyway: its first piece fills this line
            pieces = split_oversized(unit, max_width, measure, line)
            lines.extend(p for p in pieces[:-1] if p)
            line = pieces[-1]
            continue
        if line.strip():
            lines.append(line.rstrip())
        line = unit
    if line.strip():
        lines.append(line.rstrip())
    return lines


def split_oversized(unit: str, max_width: float, measure: Measure, prefix: str = "") -> list[str]:
    """Split one unit wider than a line: at its words (:func:`word_units`); a word still wider
    than a line before any word, dependent ones too; and what is still wider by characters (the
    last resort).

    The first piece continues ``prefix`` (the line so far). Kinsoku still binds the characters
    (a small kana stays with the one before it), so a piece may exceed the width only when the
    line cannot even hold such a cluster; callers shrink the type.
    """
    clusters: list[str] = []
    pieces_of_words = []
    for word in word_units(unit):
        if measure(word.strip()) <= max_width:
            pieces_of_words.append(word)
        else:
            pieces_of_words.extend(word_units(word, any_word=True))
    for word in pieces_of_words:
        if measure(word.strip()) <= max_width:
            clusters.append(word)
            continue
        for char in word:
            if clusters and clusters[-1].strip() and (char in FORBIDDEN_START or clusters[-1].rstrip()[-1] in FORBIDDEN_END):
                clusters[-1] += char
            else:
                clusters.append(char)
    pieces: list[str] = []
    piece = prefix
    for cluster in clusters:
        if piece.strip() and measure((piece + cluster).rstrip()) > max_width:
            pieces.append(piece.rstrip())
            piece = ""
        if piece or not cluster.isspace():
            piece += cluster
    pieces.append(piece)
    return pieces
