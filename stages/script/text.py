"""Sentences, phrases, readings and spoken-length estimates for narration text.

Sentences:
    Japanese (and Chinese) text is split after 。！？ (and ! ?), never inside 「」『』（） quotes; a
    newline also ends a sentence. Other languages use pysbd, which knows abbreviations ("Dr.",
    "e.g.") and decimals ("3.50"); two of its sentences are joined again when the first leaves a
    parenthesis open, when the second starts with a dash, a closing parenthesis, punctuation or a
    lower-case letter, or when the first ends on an abbreviation (US states, months, "Inc.") and is
    a dateline of at most three words ("DEKALB, Ill.") or ends on a title ("Dr.").

Phrases (one subtitle and one audio clip each):
    Japanese: a sentence of at most :data:`JA_PHRASE_CHARS` (40) characters is one phrase. A
    longer one is cut into ``ceil(len / 40)`` pieces of about equal length; each cut is made at
    the best natural break no further than 40 characters from the piece's start, ranked:
    after 、，；： (4) > after a conjunctive or binding particle (ので, て, は, も...) at an accent
    phrase boundary (3) > after any other particle at an accent phrase boundary (2) > any other
    accent phrase boundary (1) > any other morpheme boundary (0). Morphemes and accent phrases
    come from pyopenjtalk's front end, so a cut never falls inside a word; a cut never leaves
    closing punctuation (」、。) at the start of a phrase. Among breaks, a higher rank wins unless
    it makes the piece much shorter than the ideal length (score = 10 x rank - 20 x relative
    distance from the ideal). So every phrase is at most 40 characters, except a single word
    longer than that, which stays whole.
    Other languages: the same rule over words, with at most :data:`WORD_PHRASE_WORDS` (15) words;
    breaks rank after , ; : (3) > before a conjunction or relative word (2) > before a
    preposition (1) > between any two words (0).

Readings:
    :func:`reading_for` is pyopenjtalk's ``g2p(text, kana=True)`` after the pronunciation
    dictionary's surfaces are replaced by their readings and then every other Latin-script word
    by a katakana reading (:mod:`stages.script.readings`: curated loanwords, spelled acronyms,
    e2k's transliteration), reduced to katakana, the long-vowel mark and the pauses 、。！？
    (hiragana is converted; symbols the voice cannot speak are dropped). Only Japanese text gets
    a reading; the subtitle text never changes.

Spoken length:
    Japanese: 7.5 morae per second plus 0.3 s per pause mark; other languages: 150 words per
    minute. Used only to keep a script within ``script.max_minutes``.
"""

from __future__ import annotations

import math
import re
import unicodedata
from functools import lru_cache
from typing import Iterable, Sequence

from stages.jtalk import analyse, kana, kana_of
from stages.script.readings import katakanize_latin, known_words

JA_PHRASE_CHARS = 40
WORD_PHRASE_WORDS = 15
JA_MORAE_PER_SECOND = 7.5
WORDS_PER_MINUTE = 150.0
PAUSE_SECONDS = 0.3

_CJK_LANGUAGES = {"ja", "zh"}
_SENTENCE_END = set("。！？!?")
_OPEN_QUOTES = {"「": "」", "『": "』", "（": "）", "(": ")", "【": "】"}
_CLOSE_QUOTES = set(_OPEN_QUOTES.values())
_TRAILING = set("」』）)】、。，．！？!?,.…ー〜：；:;・")
_BREAK_PUNCT = set("、，,；;：:")
_KANJI_NUMERALS = set("〇零一二三四五六七八九十百千万億兆．点")
_SMALL_KANA = set("ァィゥェォャュョヮ")
_PAUSES = "、。！？"
_LATIN = re.compile(r"[A-Za-z\uff21-\uff3a\uff41-\uff5a]")  # what katakanize_latin rewrites
_KATAKANA_READING = re.compile(r"^[\u30A1-\u30FA\u30FC\u30FB、。！？]+$")

_EN_CONJUNCTIONS = {
    "and", "but", "or", "so", "because", "which", "that", "while", "when", "where", "although",
    "though", "whereas", "if", "unless", "since", "until", "who", "whose", "yet", "then",
}
_EN_PREPOSITIONS = {
    "of", "in", "on", "for", "with", "to", "from", "by", "at", "into", "about", "over", "under",
    "after", "before", "between", "through", "during", "without", "within", "across", "against",
}


def is_cjk_language(language: str | None) -> bool:
    """True for languages written without spaces between words (ja, zh)."""
    return (language or "").split("-")[0].lower() in _CJK_LANGUAGES


def is_japanese(language: str | None) -> bool:
    """True when ``language`` is Japanese (``ja``, ``ja-JP``)."""
    return (language or "").split("-")[0].lower() == "ja"


def guess_language(text: str, default: str = "en") -> str:
    """A language for text that does not say: ``ja`` with kana, else by the script of its letters.

    Mostly Latin letters: ``default`` when that is a Latin-script language, else ``en``. Han
    without kana: ``default`` when that is ja or zh, else ``zh``.
    """
    if re.search(r"[\u3040-\u30ff]", text):
        return "ja"
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return default
    if sum(ch.isascii() for ch in letters) / len(letters) > 0.5:
        return "en" if is_cjk_language(default) else default
    if re.search(r"[\u4e00-\u9fff]", text):
        return default if is_cjk_language(default) else "zh"
    return default


def article_language(article: dict, default: str) -> str:
    """The article's stated ``language``, else a guess from its title and first blocks."""
    stated = article.get("language")
    if isinstance(stated, str) and stated.strip():
        return stated.strip()
    sample = [str(article.get("title") or "")]
    for block in (article.get("blocks") or [])[:20]:
        if isinstance(block, dict):
            sample.append(str(block.get("text") or " ".join(map(str, block.get("items") or []))))
    return guess_language(" ".join(sample), default)


# --- sentences --------------------------------------------------------------------------------


def split_sentences(text: str, language: str | None) -> list[str]:
    """Split a paragraph into sentences (see the module docstring for the rule)."""
    text = text.strip()
    if not text:
        return []
    if is_cjk_language(language):
        return _split_cjk_sentences(text)
    return _split_word_sentences(text, language or "en")


def _split_cjk_sentences(text: str, respect_quotes: bool = True) -> list[str]:
    sentences: list[str] = []
    start = 0
    stack: list[str] = []
    opened_at = -1
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\n" and not stack:
            _append_sentence(sentences, text[start:i])
            start = i + 1
        elif respect_quotes and ch in _OPEN_QUOTES:
            if not stack:
                opened_at = i
            stack.append(_OPEN_QUOTES[ch])
        elif respect_quotes and stack and ch == stack[-1]:
            stack.pop()
        elif ch in _SENTENCE_END and not stack:
            end = i + 1
            while end < len(text) and (text[end] in _SENTENCE_END or text[end] in _CLOSE_QUOTES):
                end += 1
            _append_sentence(sentences, text[start:end])
            start = i = end
            continue
        i += 1
    if stack and respect_quotes:
        # An unbalanced quote would swallow the rest: split the tail as if there were no quotes.
        _append_sentence(sentences, text[start:opened_at])
        sentences.extend(_split_cjk_sentences(text[opened_at:], respect_quotes=False))
    else:
        _append_sentence(sentences, text[start:])
    return sentences


def _append_sentence(sentences: list[str], piece: str) -> None:
    piece = " ".join(piece.split())
    if piece:
        sentences.append(piece)


@lru_cache(maxsize=32)
def _segmenter(language: str):
    import pysbd
    from pysbd.languages import LANGUAGE_CODES

    code = language.split("-")[0].lower()
    return pysbd.Segmenter(language=code if code in LANGUAGE_CODES else "en", clean=False)


def _split_word_sentences(text: str, language: str) -> list[str]:
    sentences: list[str] = []
    for line in text.splitlines():
        if line.strip():
            pieces: list[str] = []
            for piece in _segmenter(language).segment(line):
                _append_sentence(pieces, piece)
            sentences.extend(_rejoin(pieces))
    return sentences


def _rejoin(pieces: list[str]) -> list[str]:
    """pysbd's sentences, with its wrong cuts undone (rule in the module docstring)."""
    out: list[str] = []
    for piece in pieces:
        if out and ((_open_parentheses(out[-1]) > 0 and len(out[-1]) < 600) or _continues(out[-1], piece)):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def _open_parentheses(text: str) -> int:
    return text.count("(") - text.count(")") + text.count("（") - text.count("）")


def _continues(before: str, after: str) -> bool:
    """True when ``after`` cannot start a sentence after ``before`` (an abbreviation, a dateline)."""
    last = before.rsplit(" ", 1)[-1]
    if after[:1] in "—–-)）,;:" or (after[:1].islower() and not after[1:2].isupper()):  # not "iPhone"
        return True
    if last.rstrip(".") + "." in _ABBREVIATIONS and last.endswith("."):
        # "Dekalb, Ill. Police said" is two sentences only when the first is more than a dateline.
        return len(before.split()) <= 3 or last in _TITLES
    return False


_TITLES = frozenset("Mr. Mrs. Ms. Dr. Prof. Sen. Rep. Gov. Lt. Gen. Col. Sgt. Capt. Cmdr. Adm. Gen. St. Rev. Hon. Pres. Supt. Det. Insp. No. Nos. Fig. Vol. vs. v.".split())
_ABBREVIATIONS = _TITLES | frozenset(
    "Ala. Ariz. Ark. Calif. Colo. Conn. Del. Fla. Ga. Ill. Ind. Kan. Kans. Ky. La. Md. Mass. Mich. Minn. Miss. "
    "Mo. Mont. Neb. Nev. N.H. N.J. N.M. N.Y. N.C. N.D. Okla. Ore. Pa. R.I. S.C. S.D. Tenn. Tex. Vt. Va. Wash. "
    "W.Va. Wis. Wyo. D.C. U.S. U.K. Jan. Feb. Mar. Apr. Jun. Jul. Aug. Sep. Sept. Oct. Nov. Dec. Inc. Corp. "
    "Co. Ltd. Jr. Sr. Bros. Ave. Blvd. Rd. Mt. Ft.".split()
)


# --- phrases ----------------------------------------------------------------------------------


def split_phrases(sentence: str, language: str | None) -> list[str]:
    """Split one sentence into phrases at natural breaks (see the module docstring)."""
    sentence = " ".join(sentence.split())
    if not sentence:
        return []
    if is_cjk_language(language):
        if len(sentence) <= JA_PHRASE_CHARS:
            return [sentence]
        breaks = _japanese_breaks(sentence) if is_japanese(language) else None
        if breaks is None:
            breaks = _character_breaks(sentence)
        return _cut(sentence, breaks, JA_PHRASE_CHARS, lambda a, b: sentence[a:b].strip())
    words = sentence.split(" ")
    if len(words) <= WORD_PHRASE_WORDS:
        return [sentence]
    return _cut(words, _word_breaks(words), WORD_PHRASE_WORDS, lambda a, b: " ".join(words[a:b]))


def spoken_phrases(sentence: str, language: str | None,
                   pronunciation: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str | None]]:
    """:func:`split_phrases` with each phrase's reading (:func:`reading_for`; None unless Japanese).

    A Japanese sentence longer than one phrase is analysed for its breaks anyway: each phrase's
    reading comes from the morphemes of that one analysis (read in the whole sentence's context)
    instead of analysing every phrase again, which was most of the script stage's time. A phrase
    with Latin letters or a pronunciation entry is read on its own by :func:`reading_for`, since
    both rewrite the text before it is analysed.
    """
    if not is_japanese(language):
        return [(phrase, None) for phrase in split_phrases(sentence, language)]
    pronunciation = list(pronunciation)
    sentence = " ".join(sentence.split())
    morphemes = analyse(sentence) if len(sentence) > JA_PHRASE_CHARS else ()
    spans = _align(sentence, [m["string"] for m in morphemes]) if morphemes else None
    if spans is None:
        return [(phrase, reading_for(phrase, pronunciation)) for phrase in split_phrases(sentence, language)]
    cuts: list[tuple[int, int]] = []

    def piece(a: int, b: int) -> str:
        text = sentence[a:b].strip()
        if text:
            cuts.append((a, b))
        return text

    phrases = _cut(sentence, _japanese_breaks(sentence) or {}, JA_PHRASE_CHARS, piece)
    ends = [k for _a, _b, k in spans[1:]] + [len(morphemes)]
    out: list[tuple[str, str | None]] = []
    for phrase, (a, b) in zip(phrases, cuts):
        inside = [m for (start, _end, k), end in zip(spans, ends) if a <= start < b for m in morphemes[k:end]]
        if any(surface and surface in phrase for surface, _r in pronunciation):
            out.append((phrase, reading_for(phrase, pronunciation)))
        elif _LATIN.search(phrase):  # the words pyopenjtalk knows, from the sentence's analysis
            out.append((phrase, reading_for(phrase, known=known_words(inside))))
        else:
            out.append((phrase, to_katakana_reading(kana_of(inside))))
    return out


def phrases_of(text: str, language: str | None) -> list[str]:
    """All phrases of a paragraph: its sentences, each split into phrases."""
    return [p for s in split_sentences(text, language) for p in split_phrases(s, language)]


def phrase_length(phrase: str, language: str | None) -> int:
    """The measure the phrase bound applies to: characters (ja, zh) or words."""
    return len(phrase) if is_cjk_language(language) else len(phrase.split())


def phrase_limit(language: str | None) -> int:
    """The phrase bound: :data:`JA_PHRASE_CHARS` characters or :data:`WORD_PHRASE_WORDS` words."""
    return JA_PHRASE_CHARS if is_cjk_language(language) else WORD_PHRASE_WORDS


def shorten(text: str, language: str | None, limit: int) -> str:
    """The start of ``text`` up to its best natural break within ``limit`` chars (CJK) or words.

    The text is kept whole when it fits; otherwise the cut is the highest-ranked break in the
    second half of the limit (the latest one among equals). Trailing 、。,. are dropped; used for
    slide bullets and titles.
    """
    text = " ".join(text.split())
    cjk = is_cjk_language(language)
    units: Sequence = text if cjk else text.split(" ")
    if len(units) > limit:
        if cjk:
            breaks = (_japanese_breaks(text) if is_japanese(language) else None) or _character_breaks(text)
        else:
            breaks = _word_breaks(list(units))
        window = [p for p in breaks if limit // 2 <= p <= limit] or [p for p in breaks if p <= limit] or [limit]
        cut = max(window, key=lambda p: (breaks.get(p, 0), p))
        text = text[:cut] if cjk else " ".join(units[:cut])
    return text.strip().rstrip("、。，．,.;；:：")


def _cut(units: Sequence, breaks: dict[int, int], limit: int, join) -> list[str]:
    """Cut ``units`` (characters or words) into pieces of at most ``limit`` at ranked breaks.

    ``breaks`` maps a position (cut before ``units[pos]``) to its rank.
    """
    pieces: list[str] = []
    start = 0
    total = len(units)
    while total - start > limit:
        remaining = total - start
        ideal = remaining / math.ceil(remaining / limit)
        lowest = start + max(1, int(ideal * 0.4))
        window = [p for p in breaks if lowest <= p <= start + limit and total - p >= 2]
        if not window:
            window = [p for p in breaks if start < p <= start + limit]
        if not window:
            later = [p for p in breaks if p > start]
            if not later:
                break
            window = [min(later)]
        cut = max(window, key=lambda p: (breaks[p] * 10 - 20 * abs((p - start) - ideal) / ideal, -p))
        piece = join(start, cut)
        if piece:
            pieces.append(piece)
        start = cut
    piece = join(start, total)
    if piece:
        pieces.append(piece)
    return pieces


def _word_breaks(words: list[str]) -> dict[int, int]:
    breaks: dict[int, int] = {}
    for i in range(1, len(words)):
        before = words[i - 1]
        after = words[i].lower().strip("\"'“‘(")
        if before and before[-1] in ",;:—–":
            rank = 3
        elif after in _EN_CONJUNCTIONS:
            rank = 2
        elif after in _EN_PREPOSITIONS:
            rank = 1
        else:
            rank = 0
        breaks[i] = rank
    return breaks


def _character_breaks(text: str) -> dict[int, int]:
    """Breaks for CJK text without a morphological analysis: punctuation and script changes."""
    breaks: dict[int, int] = {}
    for i in range(1, len(text)):
        before, after = text[i - 1], text[i]
        if after in _TRAILING or before in _OPEN_QUOTES:
            continue
        if before.isascii() and after.isascii() and before.isalnum() and after.isalnum():
            continue
        if before in _BREAK_PUNCT:
            breaks[i] = 4
        elif _is_hiragana(before) and not _is_hiragana(after):
            breaks[i] = 1
        elif before == " " or after == " ":
            breaks[i] = 1
        else:
            breaks[i] = 0
    return breaks


def _is_hiragana(ch: str) -> bool:
    return "\u3040" <= ch <= "\u309f"


def _japanese_breaks(text: str) -> dict[int, int] | None:
    """Breaks at morpheme boundaries ranked by pyopenjtalk's analysis; None if it can't align."""
    morphemes = analyse(text)
    spans = _align(text, [m["string"] for m in morphemes])
    if spans is None:
        return None
    breaks: dict[int, int] = {}
    for k in range(1, len(spans)):
        pos = spans[k][0]
        if pos in breaks or pos <= 0 or pos >= len(text):
            continue
        if text[pos] in _TRAILING or text[pos - 1] in _OPEN_QUOTES:
            continue
        prev, cur = morphemes[spans[k - 1][2]], morphemes[spans[k][2]]
        accent_start = cur.get("chain_flag", 0) != 1
        if text[pos - 1] in _BREAK_PUNCT:
            rank = 4
        elif prev["pos"] == "助詞" and prev["pos_group1"] in ("接続助詞", "係助詞") and accent_start:
            rank = 3
        elif prev["pos"] == "助詞" and accent_start:
            rank = 2
        elif accent_start:
            rank = 1
        else:
            rank = 0
        if text[pos - 1].isascii() and text[pos].isascii() and text[pos - 1].isalnum() and text[pos].isalnum():
            continue
        breaks[pos] = rank
    return breaks


_ALIGN_FOLD = str.maketrans({"\u2212": "-", "\u301c": "~", "\uff5e": "~"})  # pyopenjtalk writes - as − (U+2212)


def _align(text: str, strings: list[str]) -> list[tuple[int, int, int]] | None:
    """Map morpheme strings back onto ``text``: ``(start, end, morpheme_index)`` per span.

    pyopenjtalk normalises its input (full-width letters, digits read as kanji numerals), so
    characters are compared after NFKC and a run of digits absorbs the numeral morphemes.
    """
    spans: list[tuple[int, int, int]] = []
    i = 0
    k = 0
    while k < len(strings):
        target = unicodedata.normalize("NFKC", strings[k]).strip().translate(_ALIGN_FOLD)
        while i < len(text) and text[i].isspace():
            i += 1
        if not target:
            k += 1
            continue
        if i < len(text) and text[i].isdigit() and all(c in _KANJI_NUMERALS for c in target):
            j = i
            while j < len(text) and (text[j].isdigit() or (text[j] in ".," and j + 1 < len(text) and text[j + 1].isdigit())):
                j += 1
            spans.append((i, j, k))
            k += 1
            decimal = "." in text[i:j] or "," in text[i:j]  # "3.5" is read 三 ． 五: absorb the point too
            while k < len(strings) and all(c in _KANJI_NUMERALS or (decimal and c in ".,")
                                           for c in unicodedata.normalize("NFKC", strings[k])):
                k += 1
            i = j
            continue
        acc = ""
        j = i
        while j < len(text) and len(acc) < len(target):
            acc += unicodedata.normalize("NFKC", text[j]).translate(_ALIGN_FOLD)
            j += 1
        if acc != target:
            return None
        spans.append((i, j, k))
        i = j
        k += 1
    return spans


# --- readings ---------------------------------------------------------------------------------


def reading_for(text: str, pronunciation: Iterable[tuple[str, str]] = (), known: frozenset[str] | None = None) -> str:
    """The katakana reading of Japanese ``text`` (see the module docstring).

    Args:
        text: what the subtitles show.
        pronunciation: ``(surface, reading)`` pairs, applied longest surface first.
        known: the Latin words pyopenjtalk knows in the text's context, when already analysed
            (:func:`stages.script.readings.katakanize_latin`).
    """
    for surface, reading in sorted(pronunciation, key=lambda pair: -len(pair[0])):
        if surface:
            text = text.replace(surface, reading)
    return to_katakana_reading(kana(katakanize_latin(text, known)))


def to_katakana_reading(kana: str) -> str:
    """Reduce a reading to katakana, ー, ・ and the pauses 、。！？ (hiragana converted)."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFKC", kana):
        if "\u3041" <= ch <= "\u3096":
            ch = chr(ord(ch) + 0x60)
        ch = {"!": "！", "?": "？", ",": "、", "，": "、", "．": "。"}.get(ch, ch)
        if ("\u30a1" <= ch <= "\u30fa") or ch in "ー・" or ch in _PAUSES:
            if ch in _PAUSES and (not out or out[-1] in _PAUSES):
                continue
            out.append(ch)
    return "".join(out)


def is_katakana_reading(reading: str) -> bool:
    """True when ``reading`` holds only katakana, ー, ・ and the pauses 、。！？."""
    return bool(_KATAKANA_READING.match(reading))


def normalise_reading(reading: str, pronunciation: Iterable[tuple[str, str]] = ()) -> str:
    """A given reading made speakable: kept when already katakana, else run through g2p."""
    if is_katakana_reading(reading):
        return reading
    return reading_for(reading, pronunciation)




# --- lengths ----------------------------------------------------------------------------------


def estimate_seconds(text: str, reading: str | None, language: str | None) -> float:
    """About how long the voice takes to say a phrase (see the module docstring)."""
    if is_cjk_language(language):
        spoken = reading or text
        morae = sum(1 for ch in spoken if ch not in _SMALL_KANA and ch not in _PAUSES and not ch.isspace())
        pauses = sum(1 for ch in spoken if ch in _PAUSES)
        return morae / JA_MORAE_PER_SECOND + pauses * PAUSE_SECONDS
    return len(text.split()) * 60.0 / WORDS_PER_MINUTE


def estimate_tokens(text: str) -> int:
    """A rough token count for LLM budgets: one per CJK character, one per 4 other characters."""
    cjk = sum(1 for ch in text if ord(ch) >= 0x2E80)
    return cjk + math.ceil((len(text) - cjk) / 4)


# --- slide bullets ----------------------------------------------------------------------------

JA_CONJUNCTIVE_ENDINGS = ("ので", "から", "が", "けど", "けれど", "けれども", "し")
"""Conjunctive particles dropped after a terminal form: 「小さくなるので」 -> 「小さくなる」 ends a bullet
cleanly. Not the conditional と: 「中学に入ると」 -> 「中学に入る」 is the condition without its point."""

BULLET_FORBIDDEN_JA = ("て", "で", "と", "が", "ば", "は", "を", "に", "へ", "や", "ており", "ので", "けど",
                       "から", "たら", "なら", "、", "，", "「", "（")
"""Endings no Japanese bullet may have: a conjunctive, case or binding particle, or a comma."""

BULLET_FORBIDDEN_EN = {
    "and", "but", "or", "nor", "so", "because", "which", "that", "while", "when", "where", "although",
    "though", "whereas", "if", "unless", "since", "until", "who", "whose", "whom", "yet", "than", "as",
    "the", "a", "an", "its", "their", "his", "her", "our", "your", "my", "this", "these", "those",
    "is", "are", "was", "were", "be", "been", "being", "has", "have", "had", "will", "would", "can",
    "could", "should", "may", "might", "must", "do", "does", "did", "not", "to", "very", "more", "most",
    "e.g", "i.e", "cf", "viz", "vs",
    *_EN_PREPOSITIONS,
}
"""Words no English bullet may end on (function words that leave a thought hanging)."""

_ALLOWED_JA = ("こと", "ひと", "あと", "もと", "ごと")  # nouns that merely look like a particle ending
_BULLET_SCORE_START = 8  # a bullet that keeps the sentence's start (or its topic) says whose point it is
_BULLET_SCORE_END = 6  # a bullet that keeps the sentence's own ending keeps its main predicate
_NOUN_EXCLUDED = {"非自立", "副詞可能", "代名詞", "接続詞的", "数"}
_NOUN_ENDING_PARTICLES = {"は", "が", "も"}  # a noun phrase that is the subject or topic
_OPEN_BRACKETS = "「『（(【［"
_CLOSE_BRACKETS = "」』）)】］"


def bullet_of(sentence: str, language: str | None, limit: int) -> str:
    """A slide bullet made from one sentence: a complete, short point of at most ``limit`` units.

    ``limit`` counts characters (ja, zh) or words. First a list number (「11) 」) and asides in
    parentheses are dropped (unless nothing else is left). Then, in order:

    1. The whole sentence, its trailing 。/. dropped, when it fits.
    2. Otherwise the best *span* of the sentence that ends cleanly. A span starts at the
       sentence's start or after a clause break (、, or in other languages , ; : or a conjunction)
       or (Japanese) after the sentence's first topic (「原因は」); a Japanese span that starts
       later may keep the sentence's leading topic (「良い苗は、」). It
       ends at the sentence's end, or (Japanese) on a terminal form whose conjunctive particle is
       dropped (「小さくなるので」 -> 「小さくなる」, not the conditional と), on the predicate noun
       before the sentence's copula (「…書いていることなのだ」 -> 「…書いていること」), or on a
       noun before が/は/も (「…の流れが」 -> 「…の流れ」);
       (other languages) before a comma or a conjunction on a word not in
       :data:`BULLET_FORBIDDEN_EN`. Spans ending on a terminal form or the sentence's end beat
       those ending on a noun; among them the score is the length plus 8 when the span keeps the
       sentence's start or topic, plus 6 when it keeps the sentence's end (ties: earliest, then
       longest). Brackets must balance.
    3. The longest noun phrase of the sentence of two words or more (Japanese), else (other
       languages) the longest start that ends right before a preposition, a conjunction or a
       relative word (a phrase boundary; English, or Portuguese, Spanish, Italian and French
       words), of three words or more; outside those languages, at any word.

    Every candidate must be a key phrase (:func:`is_key_phrase`): two words or more, brackets
    balanced, no dangling start or end. A span ending on a noun must be a noun phrase: nothing
    after its last predicate but nouns joined by の (「上下左右に粒子」, the noun's verb cut away, is
    not one). When no candidate is one, the result is "" (no bullet from this sentence) rather
    than a fragment cut mid-phrase: callers skip it. English spans also fit
    :data:`WORD_BULLET_CHARS` characters (one line at 1080p).

    So a bullet never ends on a conjunctive or case particle, a comma or a dangling function word,
    and is never a lone word (「master」, "However"). The result is deterministic: it depends only on
    the sentence, the language and ``limit``.
    """
    sentence = _ENUMERATOR.sub("", " ".join(sentence.split()))  # 「11) zerbino…」: the item, not its number
    # an aside in parentheses is no part of the point: 「Gitのrebaseは、(特に…人にとって)理解が難しい」
    plain = " ".join(_ASIDE.sub("" if is_cjk_language(language) else " ", sentence).split())
    if plain != sentence and len(plain.rstrip("。．.!?！？")) >= 2:
        sentence = plain
    if not sentence:
        return ""
    if is_japanese(language):
        bullet = _clean_japanese_ends(_japanese_bullet(sentence, limit))
    elif is_cjk_language(language):
        whole = sentence.rstrip("。．.")
        bullet = whole if len(whole) <= limit else shorten(sentence, language, limit)
    else:
        bullet = _word_bullet(sentence, limit, english=(language or "en").split("-")[0].lower() == "en")
    return bullet if is_key_phrase(bullet, language) else ""


_ASIDE = re.compile(r"\s*[（(][^（）()]*[）)]")
_ENUMERATOR = re.compile(r"^[（(]?\d{1,3}[)）.]\s+")

WORD_BULLET_CHARS = 60
"""At most this many characters in a bullet of a language with spaces: one line of the bullet
column at 1080p (Noto Sans at the bullet size holds about 65 average Latin characters)."""

_PARTICLE_KANA = ("と", "が", "を", "に", "で", "は", "も", "や", "へ", "の")
_JA_NOUN_PHRASE_PARTICLES = {"連体化", "並立助詞"}  # の, と/や between nouns: still one noun phrase


def is_key_phrase(bullet: str, language: str | None) -> bool:
    """True when ``bullet`` can stand alone on a slide: at least two words (a lone 「master」,
    「実際」 or "However" says nothing; in Japanese two besides particles and adnominals, so not
    「この式」, and a noun that names something, so not 「見てみましょう」), brackets balanced, no ellipsis, and it neither starts nor
    ends dangling. Japanese is judged on pyopenjtalk's analysis: no particle, auxiliary or
    conjunction first; last, no particle but a sentence-final one, no verb, adjective or auxiliary
    in a continuative, irrealis, conditional or attributive form (「…とし」, 「…な」), no prefix,
    adnominal or conjunction. Other languages: :func:`bullet_ends_cleanly`."""
    bullet = bullet.strip()
    if not bullet or bullet.endswith(("…", "...")) or not _balanced(bullet) or bullet.count("“") != bullet.count("”"):
        return False
    if re.fullmatch(r"[\w.+#/'’-]+", bullet) and bullet.isascii():
        return False  # one Latin word or number: 「master」, 「2.25.1」
    if is_japanese(language) or (is_cjk_language(language) and re.search(r"[\u3040-\u30ff]", bullet)):
        words = [m for m in analyse(bullet) if m["pos"] != "記号"]
        if len(words) < 2 or words[0]["pos"] in ("助詞", "助動詞", "接続詞") or words[0]["string"] in _PARTICLE_KANA:
            return False  # (alone, a leading 「と」 reads as a filler or a conjunction)
        if sum(1 for m in words if m["pos"] not in ("助詞", "連体詞")) < 2:
            return False  # 「この式」, 「次の表」: a pointer, not a point
        if not any(_content_noun(m) for m in words):
            return False  # 「見てみましょう」, 「それを見ていきましょう」: says what to do, not about what
        return not _dangling_morpheme(words[-1]) and bullet_ends_cleanly(bullet, "ja")
    if is_cjk_language(language):
        return len(bullet) >= 2 and bullet_ends_cleanly(bullet, language)
    if (language or "en").lower().startswith("en") and all(
            w.strip(".,;:!?'’\"“”()").lower() in _ENGLISH_FUNCTION_WORDS for w in bullet.split()):
        return False  # "This is it", "So it was": only function words, no point
    return len(bullet.split()) >= 2 and bullet_ends_cleanly(bullet, language)


# English words that name nothing on their own: topic detection leaves them out of its word counts
# (with "said"/"says", which it also skips), and a bullet of these alone says nothing
ENGLISH_FUNCTION_WORDS = frozenset(
    "the a an and or but of to in on for with at by from as is are was were be been it its this that these those "
    "he she they we you i his her their our your not no so if then than there here has have had do does did will "
    "would can could".split()
)
_ENGLISH_FUNCTION_WORDS = ENGLISH_FUNCTION_WORDS | frozenset(
    "am being me my him us them whom whose what which who how why when where done up out about all just very may "
    "might must should one ones some any also too again now well oh yes".split()
)


def _copula(m) -> bool:
    """A morpheme of a sentence-final copula: だ, です, である, なのだ, でしょう, か, ね, 。."""
    return (m["pos"] in ("助動詞", "記号") or (m["pos"] == "助詞" and "終助詞" in str(m["pos_group1"]))
            or (m["pos"] == "名詞" and m["string"] in ("の", "ん")) or (m["pos"] == "動詞" and m["string"] == "ある"))


def _content_noun(m) -> bool:
    """A noun that names something (not こと, それ or a number alone), or a Latin word."""
    if m["pos"] == "フィラー" or re.search(r"[A-Za-zＡ-Ｚａ-ｚ]", str(m["string"])):
        return True
    return m["pos"] == "名詞" and m["pos_group1"] not in ("非自立", "代名詞", "数", "接尾")


def _word_char(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _dangling_morpheme(m) -> bool:
    """A last morpheme that waits for more (:func:`is_key_phrase`)."""
    pos, group, form = m["pos"], str(m["pos_group1"]), str(m.get("cform") or "")
    if pos == "助詞":
        return "終助詞" not in group
    if pos in ("接頭詞", "連体詞", "接続詞"):
        return True
    if pos in ("動詞", "形容詞", "助動詞"):
        return form.startswith(("連用", "未然", "仮定", "連体")) and not form.startswith("連用タ")
    return False


def bullet_ends_cleanly(bullet: str, language: str | None) -> bool:
    """True when ``bullet`` does not end on a forbidden ending (:data:`BULLET_FORBIDDEN_JA`/``_EN``)."""
    bullet = bullet.strip()
    if not bullet:
        return False
    if is_cjk_language(language):
        return not bullet.endswith(BULLET_FORBIDDEN_JA) or bullet.endswith(_ALLOWED_JA)
    if bullet[-1] in ",;:—–":
        return False
    last = bullet.split(" ")[-1].lower().strip("\"“”()").rstrip(".")
    if re.search(r"['’]s?$", last):  # a possessive ("Minnesota’s") waits for its noun
        return False
    return last.strip("'‘’") not in BULLET_FORBIDDEN_EN


_JA_DANGLING = re.compile(r"(?:ており|ので|けど|から|たら|なら|[てでとがばはをにへやな、，「（])$")
_JA_OPENERS = re.compile(r"^(?:さて|まず|また|では|なお|ところで|つまり|ちなみに|そこで|一方|しかし|ただし)、")


def _clean_japanese_ends(bullet: str) -> str:
    """The last guard of a Japanese bullet: no leading discourse marker (「さて、」), no dangling end.

    The clause analysis can fail on mixed text (its words do not align with the sentence); what
    it then returns may end on a particle (「Union-Findアルゴリズムは」) or a prenominal 「な」.
    Such endings are dropped while what remains is long enough to say something.
    """
    bullet = _JA_OPENERS.sub("", bullet.strip())
    while bullet and not bullet.endswith(_ALLOWED_JA) and (match := _JA_DANGLING.search(bullet)):
        if match.start() < 2:
            return ""
        bullet = bullet[: match.start()].rstrip("、， ")
    return bullet


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        if ch in _OPEN_BRACKETS:
            depth += 1
        elif ch in _CLOSE_BRACKETS:
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _japanese_bullet(sentence: str, limit: int) -> str:
    body = sentence.rstrip("。．.")
    complete = body != sentence or body[-1:] in ("！", "？", "!", "?")
    if not body:
        return ""
    morphemes = analyse(body)
    spans = _align(body, [m["string"] for m in morphemes])
    if spans is None:  # no clause analysis: the whole sentence or nothing, never a cut mid-word
        return body if len(body) <= limit and is_key_phrase(body, "ja") else ""
    units = [(start, end, morphemes[k]) for start, end, k in spans]

    def content(i: int) -> dict:
        """The morpheme that decides how span i ends (a closing bracket defers to the one before)."""
        while i > 0 and units[i][2]["string"] in _CLOSE_BRACKETS:
            i -= 1
        return units[i][2]

    def terminal(m: dict) -> bool:
        return m["pos"] in ("動詞", "形容詞", "助動詞") and str(m.get("cform", "")).startswith("基本形")

    def noun(m: dict) -> bool:
        if m["pos"] != "名詞":
            return False
        return m["pos_group1"] not in _NOUN_EXCLUDED or m["string"] in ("こと", "もの")

    last = len(units) - 1
    body_clean = complete or terminal(content(last)) or noun(content(last)) or (
        units[last][2]["pos"] == "助詞" and units[last][2]["pos_group1"] == "終助詞")
    if len(body) <= limit and body_clean:
        return body

    starts = [0]
    dropped_topic = False
    ends: dict[int, int] = {}  # end position -> kind (2: sentence end or terminal form, 1: noun)
    if body_clean:
        ends[len(body)] = 2
    for i, (start, end, m) in enumerate(units):
        nxt = units[i + 1][2] if i < last else None
        if m["string"] in ("、", "，", ","):
            # a comma after a noun lists nouns (「引数、戻り値」): no clause starts there
            if i < last and i > 0 and not (noun(content(i - 1)) and units[i - 1][2]["pos"] == "名詞"):
                starts.append(units[i + 1][0])
            if i > 0 and units[i - 1][2]["string"] == "こと":
                ends[start] = 2  # 「…を選ぶこと、」: a nominalised clause is a whole point
            continue
        if nxt is None:
            continue
        if (m["string"] == "は" and m["pos"] == "助詞" and i > 0 and noun(content(i - 1))
                and nxt["string"] not in ("、", "，", ",") and not dropped_topic):
            starts.append(units[i + 1][0])  # 「原因は…」: the point without its topic (the first one)
            dropped_topic = True
        cm = content(i)
        if (terminal(cm) and nxt["pos"] == "助詞" and nxt["pos_group1"] == "接続助詞"
                and nxt["string"] in JA_CONJUNCTIVE_ENDINGS):
            ends[end] = 2
        elif noun(cm) and nxt["pos"] == "助詞" and nxt["string"] in _NOUN_ENDING_PARTICLES:
            ends.setdefault(end, 1)
        elif noun(cm) and all(_copula(u[2]) for u in units[i + 1:]):
            ends[end] = 2  # the sentence's predicate noun before its copula: 「…を書いていること」(なのだ)
    topic_end = 0
    first_comma = next((i for i, u in enumerate(units) if u[2]["string"] in ("、", "，", ",")), None)
    if len(starts) > 1 and first_comma is not None:
        before = units[first_comma - 2][2] if first_comma > 1 else None
        if (first_comma > 1 and units[first_comma - 1][2]["string"] == "は"
                and before["pos"] in ("名詞", "助詞") and before["pos_group1"] != "接続助詞"):
            topic_end = units[first_comma][1]  # 「良い苗は、」「この記事では、」: the sentence's topic
    topic = body[:topic_end]

    def noun_phrase(a: int, e: int) -> bool:
        """Whether body[a:e] (ending on a noun) is a noun phrase: after its last predicate, outside
        brackets, only nouns joined by の (「上下左右に粒子」 is a clause cut before its verb)."""
        depth, tail_ok = 0, True
        for start, end, m in units:
            if start < a or end > e:
                continue
            if m["string"] in _OPEN_BRACKETS:
                depth += 1
            elif m["string"] in _CLOSE_BRACKETS:
                depth -= 1
            elif depth == 0:
                if m["pos"] in ("動詞", "形容詞", "助動詞"):
                    tail_ok = True
                elif (m["pos"] == "助詞" and m["pos_group1"] not in _JA_NOUN_PHRASE_PARTICLES) or m["string"] in "、，,":
                    tail_ok = False
        return tail_ok

    def opens_cleanly(a: int) -> bool:
        first = next((m for start, _end, m in units if start >= a and m["pos"] != "記号"), None)
        return first is not None and first["pos"] not in ("助詞", "助動詞", "接続詞")

    candidates: list[tuple[tuple, str]] = []
    for a in starts:
        if not opens_cleanly(a):
            continue
        for e, kind in sorted(ends.items()):
            if e <= a or (kind == 1 and not noun_phrase(a, e)):
                continue
            piece = body[a:e].strip(" 、，,")
            variants = [(piece, a == 0)]
            if topic_end and a >= topic_end and kind == 2:
                variants.append((topic + piece, True))
            for text, keeps_start in variants:
                if not text or len(text) > limit or not _balanced(text) or not bullet_ends_cleanly(text, "ja"):
                    continue
                score = len(text) + _BULLET_SCORE_START * keeps_start + _BULLET_SCORE_END * (e == len(body))
                candidates.append(((kind, score, -a, e), text))
    for _key, text in sorted(candidates, reverse=True):
        if is_key_phrase(text, "ja"):
            return text
    return _longest_noun_phrase(body, units, limit)


def _longest_noun_phrase(body: str, units: list[tuple[int, int, dict]], limit: int) -> str:
    """The longest run of nouns, prefixes, adnominals and の that ends on a noun, fits ``limit`` and
    is a key phrase (two words or more), else "". The run is a whole phrase: no noun before it, and
    after it a particle, punctuation or the end (not 「動作確認」 of 「動作確認した」, nor
    「直接コミット」 of 「直接コミットハッシュ」)."""
    best = ""
    for i in range(len(units)):
        if i > 0 and units[i - 1][2]["pos"] in ("名詞", "接頭詞") and units[i - 1][2]["pos_group1"] != "非自立":
            continue  # (「上の数字」 of 「一つ上の数字」)
        if units[i][2]["pos_group1"] == "副詞可能":
            continue  # 「直接」 in 「直接コミットを指している」 modifies the verb, not the noun
        if units[i][2]["pos"] == "名詞" and units[i][2]["pos_group1"] == "非自立":
            continue  # 「ところ場数」 of 「結局のところ場数を踏む」: a dependent noun leans on what precedes it
        for j in range(i, len(units)):
            m = units[j][2]
            joins = m["pos"] in ("名詞", "接頭詞", "連体詞") or (m["pos"] == "助詞" and m["pos_group1"] == "連体化")
            if not joins or units[j][1] - units[i][0] > limit:
                break
            first = units[i][2]
            after = units[j + 1][2] if j + 1 < len(units) else None
            a, e = units[i][0], units[j][1]
            inside_word = (a > 0 and _word_char(body[a - 1]) and _word_char(body[a])) or (
                e < len(body) and _word_char(body[e - 1]) and _word_char(body[e]))  # 「SL2」 of 「WSL2」
            if (m["pos"] == "名詞" and first["pos"] != "助詞" and not inside_word
                    and (after is None or after["pos"] in ("助詞", "記号"))):
                text = body[units[i][0]:units[j][1]]
                if len(text) > len(best) and j > i and _balanced(text) and is_key_phrase(text, "ja"):
                    best = text
    return best


_ROMANCE_OPENERS = {
    "de", "da", "do", "das", "dos", "del", "della", "dei", "di", "du", "des", "em", "en", "in", "no", "na", "nos",
    "nas", "nel", "nella", "dans", "para", "per", "pour", "por", "pela", "pelo", "par", "com", "con", "avec", "sem",
    "sin", "sans", "su", "sur", "sobre", "entre", "tra", "fra", "que", "qui", "che", "e", "y", "et", "ou", "o", "ma",
    "mas", "pero", "mais", "como", "come", "comme", "quando", "cuando", "quand", "porque", "perché", "parce",
}
"""Words that open a phrase in Portuguese, Spanish, Italian and French (prepositions, conjunctions,
relatives): a bullet of those languages is cut before one, like an English one before "of"."""


def _word_bullet(sentence: str, limit: int, english: bool = True) -> str:
    words = sentence.split(" ")
    whole = sentence.rstrip(".;:,")
    if len(words) <= limit and len(whole) <= WORD_BULLET_CHARS and bullet_ends_cleanly(whole, "en"):
        return whole
    last_word = words[-1].rstrip(".!?\"'”’)")
    complete = sentence[-1] in ".!?\"'”’)" and last_word.lower() not in BULLET_FORBIDDEN_EN
    starts = [0]
    ends: dict[int, int] = {len(words): 2} if complete else {}
    for i in range(1, len(words)):
        before, after = words[i - 1], words[i].lower().strip("\"'“‘(")
        if before[-1] in ",;:—–":
            starts.append(i + 1 if after in _EN_CONJUNCTIONS else i)
            ends[i] = 2
        elif after in _EN_CONJUNCTIONS:
            starts.append(i + 1)
            if after != "that":  # "estimates that ...": the verb before a complement clause hangs
                ends[i] = 2
    best: tuple[tuple, str] | None = None
    for a in sorted(set(starts)):
        for e, kind in sorted(ends.items()):
            if e <= a or e - a > limit:
                continue
            text = " ".join(words[a:e]).rstrip(".;:,—–")
            if (not text or e - a < 3 or len(text) > WORD_BULLET_CHARS or not _balanced(text)
                    or not bullet_ends_cleanly(text, "en")):
                continue
            if a > 0:
                text = text[0].upper() + text[1:]
            score = (e - a) + _BULLET_SCORE_START * (a == 0) + _BULLET_SCORE_END * (e == len(words))
            key = (kind, score, -a, e)
            if best is None or key > best[0]:
                best = (key, text)
    if best is not None:
        return best[1]
    # no clean clause fits: (English) the longest start that ends at a phrase boundary (before a
    # preposition, a conjunction or a relative word), never mid-phrase ("…public fissure between
    # Swift"); other languages, whose function words these lists do not know, the longest start
    # that ends cleanly (in Korean a word carries its particles, so a word boundary is a phrase's)
    openers = _EN_PREPOSITIONS | _EN_CONJUNCTIONS | {"to"} if english else _ROMANCE_OPENERS
    for any_word in ((False,) if english else (False, True)):
        for e in range(min(limit, len(words) - 1), 2, -1):
            text = " ".join(words[:e]).rstrip(".;:,—–")
            boundary = any_word or words[e].lower().strip("\"“‘(") in openers
            if boundary and len(text) <= WORD_BULLET_CHARS and _balanced(text) and bullet_ends_cleanly(text, "en"):
                return text
    return ""
