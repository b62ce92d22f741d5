"""Markdown articles: markdown-it-py's token stream turned into the same blocks as a web page.

Besides CommonMark, the parser knows what tech blogs use (mdit-py-plugins): GFM tables, ``$…$``
and ``$$…$$`` math, footnotes, Zenn's ``:::message`` / ``:::details`` containers and ``@[tweet](…)``
embeds, GitHub's ``> [!NOTE]`` alerts, and a bare URL on a line of its own (a link card). Every
block carries ``line``, its 1-based line in the file (front matter included).
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import lxml.html
import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.container import container_plugin
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.footnote import footnote_plugin

from stages.fetch.blocks import ADMONITION_KINDS, Block, blocks_text, clean_text, detect_language, embed_of, html_to_blocks
from stages.script.limits import LimitExceeded, construct_yaml, default_limits

_CJK_EDGE = re.compile(r"[\u3000-\u30ff\u3400-\u9fff\uff00-\uffef]")
_ZENN_EMBED = re.compile(r"^@\[(\w+)\]\((\S+?)\)$")
_BARE_URL = re.compile(r"^https?://\S+$")
_GITHUB_ALERT = re.compile(r"^\[!(\w+)\]\s*", re.IGNORECASE)
_CONTAINERS = ("message", "details")


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    md.use(dollarmath_plugin, allow_space=True, double_inline=False)
    md.use(footnote_plugin)
    for name in _CONTAINERS:
        md.use(container_plugin, name)
    return md


def parse_markdown(text: str, *, url: str | None = None, base_dir: Path | None = None, name: str | None = None) -> dict[str, Any]:
    """The article dict of a Markdown document.

    The title is the front matter's ``title``, else the first level-1 heading (which then leaves
    the blocks), else ``name``. Relative image paths are resolved against ``url``, or against
    ``base_dir`` when the file exists there.
    """
    meta, body = split_front_matter(text)
    offset = text.lstrip("\ufeff").count("\n") - body.count("\n")  # the front matter's lines
    tokens = _parser().parse(body)
    blocks = _TokenWalker(url, base_dir, offset).walk(tokens)
    title = str(meta["title"]).strip() if meta.get("title") else None
    if title is None:
        first_h1 = next((b for b in blocks if b["type"] == "heading" and b["level"] == 1), None)
        if first_h1 is not None:
            title = first_h1["text"]
            blocks.remove(first_h1)
    published = _published(meta)
    return {
        "url": url or (str(meta["url"]) if meta.get("url") else None),
        "title": title or name,
        "site": str(meta["site"]) if meta.get("site") else (urlsplit(url).hostname if url else None),
        "author": str(meta["author"]) if meta.get("author") else None,
        "published": str(published) if published else None,
        "language": detect_language(blocks_text(blocks) or (title or ""), meta.get("lang") or meta.get("language")),
        "topics": _topics(meta),
        "blocks": blocks,
    }


def _published(meta: dict[str, Any]) -> str | None:
    """The front matter's publication date (``date``, Zenn's ``published_at``, ``published``).

    Only a value that is a date: Zenn's ``published: true`` says the article is public, not when
    (a title card once read "True").
    """
    for key in ("date", "published_at", "published"):
        value = meta.get(key)
        if isinstance(value, (datetime.date, datetime.datetime)):
            return str(value)
        if isinstance(value, str) and re.match(r"\s*\d{4}[-/.年]\d{1,2}", value):
            return value.strip()
    return None


def _topics(meta: dict[str, Any]) -> list[str]:
    """The front matter's ``topics`` (Zenn) or ``tags``, as a list of strings."""
    raw = meta.get("topics") or meta.get("tags") or []
    if isinstance(raw, str):
        raw = re.split(r"[,\s]+", raw)
    return [str(t).strip() for t in raw if str(t).strip()] if isinstance(raw, list) else []


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """``(front_matter, body)``: a leading ``---`` YAML block, when there is a valid one."""
    text = text.lstrip("\ufeff")
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, text
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            try:  # budgeted like a script: aliases in front matter must not expand without bound
                meta, _ = construct_yaml("\n".join(lines[1:index]), default_limits())
            except (yaml.YAMLError, LimitExceeded):
                return {}, text
            if isinstance(meta, dict):
                return meta, "\n".join(lines[index + 1 :])
            return {}, text
    return {}, text


class _TokenWalker:
    """Folds the flat token stream (``*_open`` / ``*_close`` pairs) into blocks."""

    def __init__(self, url: str | None, base_dir: Path | None, offset: int = 0):
        self.url = url
        self.base_dir = base_dir
        self.offset = offset
        self.line = 1 + offset
        self.blocks: list[Block] = []
        self.lists: list[Block] = []  # open lists, innermost last
        self.quotes: list[list[str]] = []  # open blockquotes' paragraphs
        self.boxes: list[Block] = []  # open admonitions (:::message, :::details)
        self.table: Block | None = None  # the open table
        self.in_head = False
        self.item_parts: list[list[str]] = []  # the open list items' paragraphs
        self.footnote: Block | None = None
        self.heading_level: int | None = None

    def walk(self, tokens: list[Token]) -> list[Block]:
        for token in tokens:
            if token.map and not (self.lists or self.quotes or self.table or self.boxes or self.footnote):
                self.line = token.map[0] + 1 + self.offset
            handler = getattr(self, f"_{token.type}", None)
            if handler is not None:
                handler(token)
            elif token.type.startswith("container_"):
                self._container(token)
        return self.blocks

    def _add(self, block: Block) -> None:
        block.setdefault("line", self.line)
        self.blocks.append(block)

    def _heading_open(self, token: Token) -> None:
        self.heading_level = int(token.tag[1])

    def _heading_close(self, token: Token) -> None:
        self.heading_level = None

    def _bullet_list_open(self, token: Token) -> None:
        self.lists.append({"type": "list", "ordered": False, "items": []})

    def _ordered_list_open(self, token: Token) -> None:
        self.lists.append({"type": "list", "ordered": True, "items": []})

    def _bullet_list_close(self, token: Token) -> None:
        done = self.lists.pop()
        if self.lists:  # a nested list: its items follow their parent item
            self.lists[-1]["items"].extend(done["items"])
        elif self.boxes:
            self.boxes[-1]["parts"].extend(done["items"])
        elif done["items"]:
            self._add(done)

    _ordered_list_close = _bullet_list_close

    def _list_item_open(self, token: Token) -> None:
        self.item_parts.append([])
        self.lists[-1]["items"].append("")

    def _list_item_close(self, token: Token) -> None:
        parts = self.item_parts.pop()
        items = self.lists[-1]["items"]
        text = clean_text(" ".join(parts))
        # The item's slot was reserved when it opened, before any nested items were appended.
        slot = next(i for i in range(len(items) - 1, -1, -1) if items[i] == "")
        if text:
            items[slot] = text
        else:
            del items[slot]

    def _blockquote_open(self, token: Token) -> None:
        self.quotes.append([])

    def _blockquote_close(self, token: Token) -> None:
        parts = self.quotes.pop()
        text = "\n".join(p for p in parts if p)
        if self.quotes:
            self.quotes[-1].append(text)
            return
        alert = _GITHUB_ALERT.match(text)
        if alert and alert.group(1).lower() in ADMONITION_KINDS:
            body = text[alert.end():].strip()
            if body:
                self._add({"type": "admonition", "kind": alert.group(1).lower(), "title": "", "text": body})
        elif text:
            self._add({"type": "quote", "text": text})

    def _container(self, token: Token) -> None:
        if token.nesting == 1:
            name, _, rest = token.info.strip().partition(" ")
            kind = name if name == "details" else (rest.strip().split(" ")[0] or "message")
            self.boxes.append({"type": "admonition", "kind": kind, "title": rest.strip() if name == "details" else "",
                               "parts": []})
        elif token.nesting == -1 and self.boxes:
            box = self.boxes.pop()
            text = "\n".join(p for p in box.pop("parts") if p)
            if text or box["title"]:
                box["text"] = text
                if self.boxes:
                    self.boxes[-1]["parts"].append(text)
                else:
                    self._add(box)

    def _table_open(self, token: Token) -> None:
        self.table = {"type": "table", "header": [], "rows": [], "caption": ""}

    def _thead_open(self, token: Token) -> None:
        self.in_head = True

    def _thead_close(self, token: Token) -> None:
        self.in_head = False

    def _tr_open(self, token: Token) -> None:
        if self.table is not None and not self.in_head:
            self.table["rows"].append([])

    def _table_close(self, token: Token) -> None:
        table, self.table = self.table, None
        if table is None:
            return
        table["rows"] = [row for row in table["rows"] if any(row)]
        if table["rows"] or any(table["header"]):
            self._add(table)

    def _math_block(self, token: Token) -> None:
        if token.content.strip():
            self._add({"type": "math", "text": token.content.strip()})

    _math_block_label = _math_block

    def _footnote_open(self, token: Token) -> None:
        self.footnote = {"type": "footnote", "label": str(token.meta.get("label", token.meta.get("id", ""))), "text": ""}

    def _footnote_close(self, token: Token) -> None:
        note, self.footnote = self.footnote, None
        if note is not None and note["text"]:
            self._add(note)

    def _fence(self, token: Token) -> None:
        block: Block = {"type": "code", "text": token.content.rstrip("\n")}
        info = token.info.strip()
        language = info.split(" ")[0].split(":")[0] if info else ""  # Zenn: ```python:main.py
        if language:
            block["language"] = language
        if ":" in (info.split(" ")[0] if info else ""):
            block["caption"] = info.split(" ")[0].split(":", 1)[1]
        if block["text"].strip():
            self._add(block)

    _code_block = _fence

    def _html_block(self, token: Token) -> None:
        if not token.content.strip() or token.content.lstrip().startswith("<!--"):
            return
        fragment = lxml.html.fragment_fromstring(token.content, create_parent="div")
        for block in html_to_blocks(fragment):
            if block["type"] == "image":
                block["src"] = self._resolve(block["src"])
            block["line"] = self.line  # the fragment's own line numbers start at its first line
            self._add(block)

    def _inline(self, token: Token) -> None:
        text, images = self._render_inline(token.children or [])
        if self.heading_level is not None:
            if text:
                self._add({"type": "heading", "level": self.heading_level, "text": text})
        elif self.table is not None:
            if self.in_head:
                self.table["header"].append(text)
            elif self.table["rows"]:
                self.table["rows"][-1].append(text)
        elif self.footnote is not None:
            self.footnote["text"] = clean_text(f"{self.footnote['text']} {text}")
        elif self.item_parts:
            self.item_parts[-1].append(text)
        elif self.quotes:
            self.quotes[-1].append(text)
        elif self.boxes:
            self.boxes[-1]["parts"].append(text)
        elif embed := self._embed(token.content.strip()):
            self._add(embed)
            return
        elif text:
            self._add({"type": "paragraph", "text": text})
        for image in images:
            self._add(image)

    def _embed(self, source: str) -> Block | None:
        """A Zenn ``@[tweet](url)`` line or a bare URL alone in its paragraph."""
        if match := _ZENN_EMBED.match(source):
            return embed_of(match.group(2), match.group(1))
        if _BARE_URL.match(source):
            return embed_of(source)
        return None

    def _render_inline(self, children: list[Token]) -> tuple[str, list[Block]]:
        parts: list[str] = []
        images: list[Block] = []
        for child in children:
            if child.type == "text":
                parts.append(child.content)
            elif child.type == "code_inline":
                parts.append(f"`{child.content}`")  # the writer decides how (and whether) to say it
            elif child.type == "math_inline":
                parts.append(f"${child.content.strip()}$")  # the writer decides how (and whether) to say it
            elif child.type == "softbreak":
                parts.append("\x00")  # decided below: nothing between CJK characters, else a space
            elif child.type == "hardbreak":
                parts.append("\n")
            elif child.type == "image":
                images.append(
                    {
                        "type": "image",
                        "src": self._resolve(str(child.attrs.get("src", ""))),
                        "alt": child.content or "",
                        "caption": str(child.attrs.get("title") or ""),
                    }
                )
        text = "".join(parts)
        text = re.sub(
            r"(.)?\x00(.)?",
            lambda m: (m.group(1) or "")
            + ("" if m.group(1) and m.group(2) and _CJK_EDGE.match(m.group(1)) and _CJK_EDGE.match(m.group(2)) else " ")
            + (m.group(2) or ""),
            text,
        )
        return clean_text(text), images

    def _resolve(self, src: str) -> str:
        if not src or re.match(r"^[a-z][a-z0-9+.-]*:", src, re.IGNORECASE):
            return src
        if self.url:
            return urljoin(self.url, src)
        if self.base_dir is not None and (self.base_dir / src).is_file():
            return str((self.base_dir / src).resolve())
        return src
