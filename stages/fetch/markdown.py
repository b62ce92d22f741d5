"""Markdown articles: markdown-it-py's token stream turned into the same blocks as a web page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import lxml.html
import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from stages.fetch.blocks import Block, blocks_text, clean_text, detect_language, html_to_blocks
from stages.script.limits import LimitExceeded, construct_yaml, default_limits

_CJK_EDGE = re.compile(r"[\u3000-\u30ff\u3400-\u9fff\uff00-\uffef]")


def parse_markdown(text: str, *, url: str | None = None, base_dir: Path | None = None, name: str | None = None) -> dict[str, Any]:
    """The article dict of a Markdown document.

    The title is the front matter's ``title``, else the first level-1 heading (which then leaves
    the blocks), else ``name``. Relative image paths are resolved against ``url``, or against
    ``base_dir`` when the file exists there.
    """
    meta, body = split_front_matter(text)
    tokens = MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(body)
    blocks = _TokenWalker(url, base_dir).walk(tokens)
    title = str(meta["title"]).strip() if meta.get("title") else None
    if title is None:
        first_h1 = next((b for b in blocks if b["type"] == "heading" and b["level"] == 1), None)
        if first_h1 is not None:
            title = first_h1["text"]
            blocks.remove(first_h1)
    published = meta.get("date") or meta.get("published")
    return {
        "url": url or (str(meta["url"]) if meta.get("url") else None),
        "title": title or name,
        "site": str(meta["site"]) if meta.get("site") else (urlsplit(url).hostname if url else None),
        "author": str(meta["author"]) if meta.get("author") else None,
        "published": str(published) if published else None,
        "language": detect_language(blocks_text(blocks) or (title or ""), meta.get("lang") or meta.get("language")),
        "blocks": blocks,
    }


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

    def __init__(self, url: str | None, base_dir: Path | None):
        self.url = url
        self.base_dir = base_dir
        self.blocks: list[Block] = []
        self.lists: list[Block] = []  # open lists, innermost last
        self.quotes: list[list[str]] = []  # open blockquotes' paragraphs
        self.rows: list[list[str]] | None = None  # the open table
        self.item_parts: list[list[str]] = []  # the open list items' paragraphs
        self.heading_level: int | None = None

    def walk(self, tokens: list[Token]) -> list[Block]:
        for token in tokens:
            handler = getattr(self, f"_{token.type}", None)
            if handler is not None:
                handler(token)
        return self.blocks

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
        elif done["items"]:
            self.blocks.append(done)

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
        elif text:
            self.blocks.append({"type": "quote", "text": text})

    def _table_open(self, token: Token) -> None:
        self.rows = []

    def _tr_open(self, token: Token) -> None:
        if self.rows is not None:
            self.rows.append([])

    def _table_close(self, token: Token) -> None:
        rows = [" | ".join(cells) for cells in self.rows or [] if any(cells)]
        self.rows = None
        if rows:
            self.blocks.append({"type": "list", "ordered": False, "items": rows})

    def _fence(self, token: Token) -> None:
        block: Block = {"type": "code", "text": token.content.rstrip("\n")}
        language = token.info.strip().split(" ")[0] if token.info.strip() else ""
        if language:
            block["language"] = language
        if block["text"].strip():
            self.blocks.append(block)

    _code_block = _fence

    def _html_block(self, token: Token) -> None:
        if not token.content.strip() or token.content.lstrip().startswith("<!--"):
            return
        fragment = lxml.html.fragment_fromstring(token.content, create_parent="div")
        for block in html_to_blocks(fragment):
            if block["type"] == "image":
                block["src"] = self._resolve(block["src"])
            self.blocks.append(block)

    def _inline(self, token: Token) -> None:
        text, images = self._render_inline(token.children or [])
        if self.heading_level is not None:
            if text:
                self.blocks.append({"type": "heading", "level": self.heading_level, "text": text})
        elif self.rows is not None:
            if self.rows:
                self.rows[-1].append(text)
        elif self.item_parts:
            self.item_parts[-1].append(text)
        elif self.quotes:
            self.quotes[-1].append(text)
        elif text:
            self.blocks.append({"type": "paragraph", "text": text})
        self.blocks.extend(images)

    def _render_inline(self, children: list[Token]) -> tuple[str, list[Block]]:
        parts: list[str] = []
        images: list[Block] = []
        for child in children:
            if child.type in ("text", "code_inline"):
                parts.append(child.content)
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
