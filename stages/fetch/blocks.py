"""The article's blocks: the shapes in ``article.json``, and what every extractor shares.

A block is one of::

    {"type": "heading", "level": 1-6, "text": str}
    {"type": "paragraph", "text": str}       # links as their text; inline code as `code`, math as $TeX$
    {"type": "list", "ordered": bool, "items": [str, ...]}
    {"type": "code", "text": str, "language": str, "caption": str}   # language, caption when known
    {"type": "table", "header": [str], "rows": [[str, ...]], "caption": str}
    {"type": "quote", "text": str}
    {"type": "admonition", "kind": str, "title": str, "text": str}
        # Zenn :::message (kind "message" or "alert"), :::details (kind "details", title = its
        # summary), GitHub > [!NOTE] (kind "note", "tip", "important", "warning", "caution")
    {"type": "math", "text": str}             # display math, TeX without the $$
    {"type": "image", "src": str, "alt": str, "caption": str}
    {"type": "embed", "kind": "tweet" | "video" | "link", "url": str, "text": str}
    {"type": "footnote", "label": str, "text": str}

Every block may carry ``line``: the 1-based line of the source where it starts (Markdown always;
HTML when the parser that produced it knows it). Consumers must ignore block types they do not
know, so new kinds can be added.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import lxml.html

Block = dict[str, Any]

_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_CONTAINERS = frozenset(
    "div section article main body header footer aside span font center form details summary td th tr tbody thead".split()
)
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_CODE_CLASS = re.compile(r"(?:^|\s)(?:language|lang|highlight|brush:?)[-_:]?\s*([A-Za-z0-9+#_-]+)")
ADMONITION_KINDS = frozenset("note tip important warning caution message alert details info".split())
"""Admonition kinds: GitHub's five alerts, Zenn's message/alert/details, and a generic info."""
_VIDEO_HOSTS = ("youtube.com", "youtu.be", "vimeo.com", "nicovideo.jp", "nico.ms")
_TWEET_HOSTS = ("twitter.com", "x.com")


def embed_of(url: str, kind: str | None = None, text: str = "") -> Block:
    """An embed block for ``url``: a tweet, a video or (anything else) a link card.

    ``kind`` is the author's word when there is one (Zenn's ``@[youtube](id)``); a bare YouTube id
    becomes its watch URL.
    """
    kind = (kind or "").lower()
    if kind == "youtube" and "://" not in url:
        url = f"https://www.youtube.com/watch?v={url}"
    host = (re.match(r"^[a-z]+://([^/:?#]+)", url, re.IGNORECASE) or [None, ""])[1].lower()
    if kind == "tweet" or any(host == h or host.endswith("." + h) for h in _TWEET_HOSTS):
        kind = "tweet"
    elif kind in ("youtube", "video") or any(host == h or host.endswith("." + h) for h in _VIDEO_HOSTS):
        kind = "video"
    else:
        kind = "link"
    return {"type": "embed", "kind": kind, "url": url, "text": clean_text(text)}


def clean_text(text: str) -> str:
    """Collapse runs of spaces, keep line breaks (trimmed), drop empty lines."""
    text = unicodedata.normalize("NFC", text.replace("\u00a0", " ").replace("\u200b", ""))
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def blocks_text(blocks: list[Block]) -> str:
    """The plain text of blocks: one paragraph per block, list items and table rows one per line.

    Images and embeds are skipped (their words are not the article's text).
    """
    parts: list[str] = []
    for block in blocks:
        kind = block["type"]
        if kind == "list":
            parts.append("\n".join(block["items"]))
        elif kind == "table":
            rows = [block.get("header") or [], *(block.get("rows") or [])]
            parts.append("\n".join(" | ".join(row) for row in rows if row))
        elif kind not in ("image", "embed") and block.get("text"):
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


# A page's furniture under a heading of its own: the comment box, "Tell us what you think", a
# bare "More:" over related links. Such a heading goes; at the end, with little under it, its
# section goes too (the "comments" placeholder left of a comment widget is no article text).
_FURNITURE_HEADING = re.compile(
    r"^(?:\d+\s+)?(?:comments?|leave a (?:comment|reply)|tell us what you think\W*|related(?: posts| articles| stories)?"
    r"|more|read more|you may also like|share this(?: article| post)?|tags|コメント|関連記事|この記事をシェア)\W*$",
    re.IGNORECASE,
)
FURNITURE_TAIL_CHARS = 300
# A WordPress shortcode the theme failed to expand: [button link="…" type="big"], [/button]
_SHORTCODE = re.compile(r"\[/?[a-z_]+(?:\s+[a-z_]+\s*=\s*[\"”“'][^\]]*)?\]\s*")
_TAGS_LINE = re.compile(r"^tags\s*[:\n]", re.IGNORECASE)


def finish_article(article: dict[str, Any]) -> dict[str, Any]:
    """Tidy the blocks: drop a leading heading that repeats the title, caption echoes, repeats,
    and the page's furniture (headings such as "Comments", a "Tags" line, unexpanded shortcodes)."""
    article["blocks"] = _without_furniture(article["blocks"])
    blocks: list[Block] = []
    title = _key(article.get("title") or "")
    for block in article["blocks"]:
        first_text = not any(b["type"] != "image" for b in blocks)
        if first_text and block["type"] == "heading" and title and _key(block["text"]) and _key(block["text"]) in title:
            # The page's own heading, without the "Site | " decoration <title> often carries.
            article["title"] = block["text"]
            continue
        if blocks and _same(block, blocks[-1]):
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


def _without_furniture(blocks: list[Block]) -> list[Block]:
    out: list[Block] = []
    for block in blocks:
        if block["type"] == "paragraph" and isinstance(block.get("text"), str):
            if _TAGS_LINE.match(block["text"]):
                continue
            text = _SHORTCODE.sub("", block["text"]).strip() if "[" in block["text"] else block["text"]
            if not text:
                continue
            block = {**block, "text": text}
        out.append(block)
    while True:  # a furniture section at the end, with little under it
        last = next((i for i in range(len(out) - 1, -1, -1) if out[i]["type"] == "heading"), None)
        if last is None or not _FURNITURE_HEADING.match(out[last]["text"]):
            break
        if len(blocks_text(out[last + 1:])) > FURNITURE_TAIL_CHARS:
            break
        del out[last:]
    return [b for b in out if not (b["type"] == "heading" and _FURNITURE_HEADING.match(b["text"]))]


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
            start = len(blocks)
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
                    code: Block = {"type": "code", "text": child.text_content().strip("\n")}
                    if language := _code_language(child):
                        code["language"] = language
                    blocks.append(code)
            elif tag == "table" and _is_layout_table(child):
                flush()
                walk(child)
                flush()
            elif tag == "table":
                flush()
                if (table := table_of(child)) is not None:
                    blocks.append(table)
            elif tag == "blockquote" and "twitter-tweet" in (child.get("class") or ""):
                flush()
                links = [a.get("href") for a in child.iter("a") if "/status/" in (a.get("href") or "")]
                text = clean_text(" ".join(p.text_content() for p in child.iter("p")))
                blocks.append(embed_of(links[-1] if links else "", "tweet", text))
            elif tag == "iframe" and (src := child.get("src") or ""):
                flush()
                blocks.append(embed_of(src))
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
                if tag in ("p", "figure", "div", "section", "article"):
                    flush()
                walk(child)
                if tag in ("p", "figure", "div", "section", "article"):
                    flush()
            elif tag in ("script", "style", "noscript", "figcaption"):
                pass
            else:
                walk(child)
            for block in blocks[start:]:
                if child.sourceline and "line" not in block:
                    block["line"] = child.sourceline
            if child.tail:
                pending.append(child.tail)

    walk(root)
    flush()
    return blocks


def _same(a: Block, b: Block) -> bool:
    """Equal blocks apart from where they stand in the source."""
    return {k: v for k, v in a.items() if k != "line"} == {k: v for k, v in b.items() if k != "line"}


def table_of(table: lxml.html.HtmlElement) -> Block | None:
    """A table block from an HTML ``<table>``: the ``<th>`` row (or ``<thead>``) is the header."""
    rows: list[list[str]] = []
    header: list[str] = []
    for tr in table.iter("tr"):
        cells = [c for c in tr if isinstance(c.tag, str) and c.tag.lower() in ("td", "th")]
        texts = [clean_text(c.text_content()) for c in cells]
        if not any(texts):
            continue
        in_head = any(a.tag == "thead" for a in tr.iterancestors())
        if not header and not rows and (in_head or all(c.tag.lower() == "th" for c in cells)):
            header = texts
        else:
            rows.append(texts)
    if not rows and not header:
        return None
    caption = table.find("caption")
    return {"type": "table", "header": header, "rows": rows,
            "caption": clean_text(caption.text_content()) if caption is not None else ""}


def _is_layout_table(table: lxml.html.HtmlElement) -> bool:
    """A table that lays out a page (nested tables, long prose cells) rather than holding data."""
    if table.find(".//table") is not None:
        return True
    return any(len(cell.text_content()) > 300 for cell in table.iter("td", "th"))


def _code_language(pre: lxml.html.HtmlElement) -> str:
    classes = " ".join(filter(None, [pre.get("class")] + [c.get("class") for c in pre.iter("code")]))
    match = _CODE_CLASS.search(classes)
    return match.group(1).lower() if match else ""


def _key(text: str) -> str:
    return re.sub(r"\W+", "", text).lower()
