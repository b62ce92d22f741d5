"""Where an article without headings changes topic: the cut points of its sections.

A TextTiling-like rule, deterministic and offline. Between every two neighbouring blocks the
vocabulary of the text just before (about half a section) is compared with the text just after
(cosine of word counts; for CJK text, character bigrams). A section is cut at the least similar
boundary once it holds at least half of ``limit`` (characters for CJK, words otherwise), and
always before it would exceed twice ``limit``. A single section is returned for short texts.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, Callable

from stages.script.text import ENGLISH_FUNCTION_WORDS, is_cjk_language

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+|\d+")
_STOP = ENGLISH_FUNCTION_WORDS | {"said", "says"}


def topic_groups(blocks: list[dict[str, Any]], text_of: Callable[[dict[str, Any]], str], language: str,
                 limit: int) -> list[list[dict[str, Any]]]:
    """The blocks cut into groups at topic shifts (rule in the module docstring)."""
    cjk = is_cjk_language(language)
    sizes = [_size(text_of(b), cjk) for b in blocks]
    bags = [_bag(text_of(b), cjk) for b in blocks]
    groups: list[list[dict[str, Any]]] = []
    start = 0
    while start < len(blocks):
        end = _cut(start, sizes, bags, limit)
        groups.append(blocks[start:end])
        start = end
    return groups


def _cut(start: int, sizes: list[int], bags: list[Counter], limit: int) -> int:
    """The end (exclusive) of the section that begins at ``start``."""
    total = 0
    candidates: list[tuple[float, int]] = []
    for i in range(start, len(sizes)):
        total += sizes[i]
        if total >= 2 * limit:
            break
        if total >= limit // 2 and sum(sizes[i + 1 :]) >= limit // 2 and sizes[i]:
            candidates.append((_similarity(bags, i + 1, limit, sizes), i + 1))
    else:
        return len(sizes)
    if not candidates:
        return max(i, start) + 1
    return min(candidates)[1]


def _similarity(bags: list[Counter], boundary: int, limit: int, sizes: list[int]) -> float:
    before, after = Counter(), Counter()
    size = 0
    for j in range(boundary - 1, -1, -1):
        before.update(bags[j])
        size += sizes[j]
        if size >= limit // 2:
            break
    size = 0
    for j in range(boundary, len(bags)):
        after.update(bags[j])
        size += sizes[j]
        if size >= limit // 2:
            break
    dot = sum(before[k] * after[k] for k in before.keys() & after.keys())
    norm = math.sqrt(sum(v * v for v in before.values())) * math.sqrt(sum(v * v for v in after.values()))
    return dot / norm if norm else 0.0


def _size(text: str, cjk: bool) -> int:
    return len(text) if cjk else len(text.split())


def _bag(text: str, cjk: bool) -> Counter:
    if cjk:
        chars = re.sub(r"[\s、。，．「」（）()・]", "", text)
        return Counter(chars[i : i + 2] for i in range(len(chars) - 1))
    return Counter(w for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOP)
