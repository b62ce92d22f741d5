"""What a voice engine is given to say: cleaned, split into speakable pieces.

Subtitles keep the script's own text; only the spoken copy is cleaned here.
"""

from __future__ import annotations

import re
import unicodedata

# Categories a voice cannot say: emoji and pictographs (So), modifiers such as skin tones (Sk),
# controls, format characters (zero-width joiners), surrogates, private use and unassigned.
_DROPPED_CATEGORIES = frozenset({"So", "Sk", "Cc", "Cf", "Cs", "Co", "Cn"})
_VARIATION_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_SPACES = re.compile(r"\s+")

# Where a long phrase may be cut, best first: sentence ends, then clause breaks, then spaces.
_BREAKS = ("。！？!?．.\n", "、，,;；:：）)」』】", " 　")

_SMALL_KANA = set("ャュョァィゥェォヮャュョぁぃぅぇぉゃゅょゎ")


def clean_for_speech(text: str) -> str:
    """The text with emoji, pictographs and unsayable symbols removed and spaces collapsed."""
    text = unicodedata.normalize("NFC", text)
    text = _VARIATION_SELECTORS.sub("", text)
    kept = []
    for char in text:
        if char.isspace():
            kept.append(" ")
        elif unicodedata.category(char) not in _DROPPED_CATEGORIES:
            kept.append(char)
    return _SPACES.sub(" ", "".join(kept)).strip()


def is_speakable(text: str) -> bool:
    """True when the text holds at least one letter or digit (punctuation alone says nothing)."""
    return any(unicodedata.category(c)[0] in "LN" for c in text)


def split_for_speech(text: str, max_chars: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_chars``, cutting at the most natural break.

    Sentence ends are preferred to clause breaks, clause breaks to spaces; a run with no break at
    all is cut hard. Pieces that hold nothing speakable are left out.
    """
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > max_chars:
        cut = _best_cut(rest, max_chars)
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    pieces.append(rest)
    return [p for p in pieces if is_speakable(p)]


def _best_cut(text: str, max_chars: int) -> int:
    window = text[:max_chars]
    for breaks in _BREAKS:
        at = max(window.rfind(ch) for ch in breaks)
        if at >= max_chars // 3:  # a cut too near the start would leave a tiny piece
            return at + 1
    return max_chars


def to_fullwidth(text: str) -> str:
    """ASCII letters, digits and symbols as their full-width forms (how OpenJTalk's MeCab sees them)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else ("\u3000" if c == " " else c) for c in text)


def to_katakana(text: str) -> str:
    """Hiragana turned into katakana; everything else unchanged."""
    return "".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in text)


def mora_count(katakana: str) -> int:
    """The number of morae in a katakana reading (small ャュョァィゥェォ join the previous one)."""
    return sum(1 for c in katakana if c not in _SMALL_KANA and ("ァ" <= c <= "ヺ" or c == "ー"))
