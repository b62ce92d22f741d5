"""The article's blocks: the shapes in ``article.json``, and what every extractor shares.

A block is one of::

    {"type": "heading", "level": 1-6, "text": str}
    {"type": "paragraph", "text": str}
    {"type": "list", "ordered": bool, "items": [str, ...]}
    {"type": "code", "text": str, "language": str}          # language only when known
    {"type": "quote", "text": str}
    {"type": "image", "src": str, "alt": str, "caption": str}
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import lxml.html

Block = dict[str, Any]

_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_CONTAINERS = frozenset(
    "div section article main body header footer aside span font center form details summary td th tr tbody table".split()
)
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")


def clean_text(text: str) -> str:
    """Collapse runs of spaces, keep line breaks (trimmed), drop empty lines."""
    text = unicodedata.normalize("NFC", text.replace("\u00a0", " ").replace("\u200b", ""))
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def blocks_text(blocks: list[Block]) -> str:
    """The plain text of blocks: one paragraph per block, list items one per line; images skipped."""
    parts: list[str] = []
    for block in blocks:
        kind = block["type"]
        if kind == "list":
            parts.append("\n".join(block["items"]))
        elif kind != "image" and block.get("text"):
            parts.append(block["text"])
    return "\n\n".join(parts)


def detect_language(text: str, declared: str | None = None) -> str:
    """A language code from the text's scripts, refined by the page's declared language.

    Kana mean Japanese; Hangul means Korean; Han characters without kana mean Chinese (or Japanese
    when the page says so). For Latin and other scripts the declared ``lang`` is trusted, else "en".
    """
    declared_primary = (declared or "").split("-")[0].split("_")[0].lower() or None
    sample = text[:20000]
    letters = sum(1 for c in sample if c.isalpha())
    if letters == 0:
        return declared_primary or "und"
    kana = len(_KANA.findall(sample))
    han = len(_HAN.findall(sample))
    hangul = len(_HANGUL.findall(sample))
    if kana / letters > 0.05:
        return "ja"
    if hangul / letters > 0.3:
        return "ko"
    if han / letters > 0.3:
        return "ja" if declared_primary == "ja" else "zh"
    if declared_primary and declared_primary not in ("ja", "zh", "ko"):
        return declared_primary
    return "en"


def finish_article(article: dict[str, Any]) -> dict[str, Any]:
    """Tidy the blocks: drop a leading heading that repeats the title, caption echoes, repeats."""
    blocks: list[Block] = []
    title = _key(article.get("title") or "")
    for block in article["blocks"]:
        first_text = not any(b["type"] != "image" for b in blocks)
        if first_text and block["type"] == "heading" and title and _key(block["text"]) and _key(block["text"]) in title:
            # The page's own heading, without the "Site | " decoration <title> often carries.
            article["title"] = block["text"]
            continue
        if blocks and block == blocks[-1]:
            continue
        if (
            block["type"] == "paragraph"
            and blocks
            and blocks[-1]["type"] == "image"
            and _key(block["text"]) in (_key(blocks[-1].get("caption", "")), _key(blocks[-1].get("alt", "")))
        ):
            continue
        blocks.append(block)
    article["blocks"] = blocks
    return article


def html_to_blocks(root: lxml.html.HtmlElement) -> list[Block]:
    """Blocks from an HTML fragment (readability's output), in document order."""
    blocks: list[Block] = []
    pending: list[str] = []

    def flush() -> None:
        text = clean_text(" ".join(pending))
        pending.clear()
        if text:
            blocks.append({"type": "paragraph", "text": text})

    def walk(el: lxml.html.HtmlElement) -> None:
        if el.text:
            pending.append(el.text)
        for child in el:
            if not isinstance(child.tag, str):
                if child.tail:
                    pending.append(child.tail)
                continue
            tag = child.tag.lower()
            if tag in _HEADINGS:
                flush()
                if text := clean_text(child.text_content()):
                    blocks.append({"type": "heading", "level": _HEADINGS[tag], "text": text})
            elif tag in ("ul", "ol"):
                flush()
                items = [clean_text(li.text_content()) for li in child.iter("li")]
                if items := [i for i in items if i]:
                    blocks.append({"type": "list", "ordered": tag == "ol", "items": items})
            elif tag == "pre":
                flush()
                if child.text_content().strip():
                    blocks.append({"type": "code", "text": child.text_content().strip("\n")})
            elif tag == "blockquote":
                flush()
                if text := clean_text(child.text_content()):
                    blocks.append({"type": "quote", "text": text})
            elif tag == "img":
                flush()
                if child.get("src"):
                    blocks.append({"type": "image", "src": child.get("src"), "alt": child.get("alt") or "", "caption": ""})
            elif tag == "br":
                pending.append("\n")
            elif tag in ("p", "figure") or tag in _CONTAINERS:
                if tag in ("p", "figure", "div", "section", "article", "table", "tr"):
                    flush()
                walk(child)
                if tag in ("p", "figure", "div", "section", "article", "table", "tr"):
                    flush()
            elif tag in ("script", "style", "noscript", "figcaption"):
                pass
            else:
                walk(child)
            if child.tail:
                pending.append(child.tail)

    walk(root)
    flush()
    return blocks


def _key(text: str) -> str:
    return re.sub(r"\W+", "", text).lower()
