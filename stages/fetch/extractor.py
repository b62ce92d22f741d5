"""From HTML text to the article dict: trafilatura first, readability-lxml when it finds too little.

The page is parsed once and cleaned before either extractor sees it: ruby readings (``<rt>``,
``<rp>``) are removed so furigana never leaks into the text, junk images (tiny, spacers, tracking
pixels, avatars, logos, icons) are dropped, and the remaining image URLs are made absolute.
Extractors only keep images inside the article body, so sidebar and header images go with them.
"""

from __future__ import annotations

import base64
import re
import struct
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import lxml.etree
import lxml.html
import trafilatura
from trafilatura.settings import use_config

from stages.fetch.blocks import Block, blocks_text, clean_text, detect_language, finish_article, html_to_blocks

if TYPE_CHECKING:
    from stages.settings import FetchSettings

MIN_IMAGE_SIDE = 48
_LAZY_SRC_ATTRS = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-url", "data-srcset", "srcset")
_JUNK_TOKENS = frozenset(
    "spacer blank pixel pixels tracking tracker beacon avatar avatars gravatar logo logos icon icons favicon "
    "badge badges emoji emojis sprite sprites 1x1 transparent".split()
)
_JUNK_SUBSTRINGS = ("gravatar", "avatar", "logo", "spacer", "doubleclick", "google-analytics", "/pixel", "facebook.com/tr")
_JUNK_ANCESTOR_TOKENS = frozenset("avatar author-avatar gravatar logo share sharing social sns byline".split())
_CODE_LANGUAGE = re.compile(r"(?:^|\s)(?:language|lang|highlight|brush:?)[-_:]?\s*([A-Za-z0-9+#_-]+)")


def extract_html(html: str, settings: "FetchSettings", *, url: str | None = None) -> dict[str, Any]:
    """The article dict of an HTML page (already decoded to text)."""
    tree = parse_html(html)
    base_url = _base_url(tree, url)
    declared_language = (tree.get("lang") or tree.get("xml:lang") or "").strip() or None
    captions, code_languages = clean_tree(tree, base_url)
    cleaned = lxml.html.tostring(tree, encoding="unicode")

    blocks, meta = _trafilatura_blocks(cleaned, url, settings)
    if _text_size(blocks) < settings.min_text_chars:
        fallback = _readability_blocks(cleaned, base_url)
        if _text_size(fallback) > _text_size(blocks):
            blocks = fallback
    elif _text_size(blocks) < 0.5 * _paragraph_text_size(tree):
        # Trafilatura sometimes stops at an ad or a widget in the middle of a long article. When
        # readability finds a clearly longer text that contains nearly all of trafilatura's, use it.
        fallback = _readability_blocks(cleaned, base_url)
        if _text_size(fallback) > 1.5 * _text_size(blocks) and _coverage(blocks, fallback) >= 0.95:
            blocks = fallback
    _attach_details(blocks, captions, code_languages)

    site = meta.get("sitename") or _og_site(tree) or (urlsplit(url).hostname if url else None)
    title = strip_site(meta.get("title") or _tree_title(tree), site, url)
    article = {
        "url": url,
        "title": title,
        "site": site,
        "author": person_or_none(meta.get("author")),
        "published": meta.get("date"),
        "language": None,
        "blocks": blocks,
    }
    article = finish_article(article)
    article["language"] = detect_language(blocks_text(article["blocks"]) or (title or ""), declared_language)
    return article


def parse_html(html: str) -> lxml.html.HtmlElement:
    """Parse a page; lxml refuses str input that still carries an XML encoding declaration."""
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", html, count=1)
    if not text.strip():
        text = "<html><body></body></html>"
    try:
        return lxml.html.document_fromstring(text)
    except (lxml.etree.ParserError, ValueError):
        return lxml.html.document_fromstring("<html><body></body></html>")


def clean_tree(tree: lxml.html.HtmlElement, base_url: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """Remove ruby readings and junk images, absolutize image URLs.

    Returns ``(captions, code_languages)``: figure captions by image URL, and code languages by the
    code's text, which the extractors do not keep.
    """
    for el in list(tree.iter("rt", "rp")):
        el.drop_tree()  # keeps the tail: the base text after a reading stays
    for el in list(tree.iter("ruby", "rb")):
        el.drop_tag()
    captions: dict[str, str] = {}
    for img in list(tree.iter("img")):
        src = _image_source(img)
        if src is None or is_junk_image(img, src):
            img.drop_tree()
            continue
        src = urljoin(base_url, src) if base_url else src
        img.set("src", src)
        for attr in _LAZY_SRC_ATTRS:
            img.attrib.pop(attr, None)
        caption = _caption_of(img)
        if caption is not None:
            # The caption travels with its image block, not as a paragraph of the body.
            captions[src] = clean_text(caption.text_content())
            caption.drop_tree()
    code_languages: dict[str, str] = {}
    for code in tree.iter("pre", "code"):
        classes = " ".join(filter(None, [code.get("class"), code.getparent().get("class") if code.getparent() is not None else None]))
        match = _CODE_LANGUAGE.search(classes) or (re.search(r"([A-Za-z0-9+#]+)", code.get("data-lang", "")))
        if match:
            code_languages[_code_key(code.text_content())] = match.group(1).lower()
    return captions, code_languages


def is_junk_image(img: lxml.html.HtmlElement, src: str) -> bool:
    """True for images that are not content: tiny, spacers, tracking pixels, avatars, logos, icons."""
    for attr in ("width", "height"):
        size = _pixels(img.get(attr))
        if size is not None and size < MIN_IMAGE_SIDE:
            return True
    if src.startswith("data:"):
        size = _data_uri_size(src)
        return size is None or min(size) < MIN_IMAGE_SIDE
    path = urlsplit(src).path.lower() if "//" in src else src.lower()
    alt = img.get("alt", "")
    short_alt = alt if len(alt.split()) <= 3 else ""  # "Site logo" is a label; a sentence is a description
    words = " ".join([path.rsplit("/", 1)[-1], img.get("class", ""), img.get("id", ""), short_alt]).lower()
    if _JUNK_TOKENS.intersection(re.split(r"[^a-z0-9]+", words)):
        return True
    if any(s in src.lower() for s in _JUNK_SUBSTRINGS):
        return True
    for depth, ancestor in enumerate(img.iterancestors()):
        if depth >= 3:
            break
        names = f"{ancestor.get('class', '')} {ancestor.get('id', '')}".lower()
        if _JUNK_ANCESTOR_TOKENS.intersection(re.split(r"[^a-z0-9-]+", names)):
            return True
    return False


_TITLE_SEPARATORS = re.compile(r"\s+[-|–—:·•»]\s+|\s*[|｜]\s*")
_NOT_NAME_WORDS = frozenset(
    "published updated posted by staff news wire services service reporter reporters editor editors editorial "
    "team desk contributor contributors press associated admin administrator newsroom agency media online "
    "correspondent the of com www http https".split()
)


def strip_site(title: str | None, site: str | None, url: str | None = None) -> str | None:
    """The title without the site's name around it ("Apple ships X - 9to5Mac" -> "Apple ships X").

    A segment split off by `` - ``, `` | ``, `` — ``, `` : ``… is dropped when it is the site's name
    (from the page's metadata, else the host name: ``9to5mac.com`` matches "9to5Mac"). The longest
    remaining part is kept whole; a title that is only the site's name is left as it is.
    """
    if not title:
        return title
    if site and len(title) > len(site) + 3:  # a site name that holds separators itself
        if title.casefold().startswith(site.casefold()) and (rest := re.sub(r"^[\s\-|–—:·•»]+", "", title[len(site):])):
            if rest != title[len(site):]:
                return rest
        if title.casefold().endswith(site.casefold()) and (rest := re.sub(r"[\s\-|–—:·•»]+$", "", title[: -len(site)])):
            if rest != title[: -len(site)]:
                return rest
    names = {_squash(n) for n in (site, *_host_names(url)) if n}
    names.discard("")
    if not names:
        return title
    parts = _TITLE_SEPARATORS.split(title)
    if len(parts) < 2:
        return title
    kept = [p for p in parts if _squash(p) not in names and not any(_squash(p) == n + "com" for n in names)]
    if not kept or len(kept) == len(parts):
        return title
    # Separators inside the title itself ("Rust: a primer") stay: only the ends are trimmed.
    start = next(i for i, p in enumerate(parts) if p in kept)
    end = max(i for i, p in enumerate(parts) if p in kept)
    if any(parts[i] not in kept for i in range(start, end + 1)):
        return title
    match_spans = [m.span() for m in _TITLE_SEPARATORS.finditer(title)]
    begin = match_spans[start - 1][1] if start > 0 else 0
    finish = match_spans[end][0] if end < len(match_spans) else len(title)
    return title[begin:finish].strip() or title


def person_or_none(author: str | None) -> str | None:
    """``author`` when it reads as people's names ("Jane Doe; John Roe"), else None.

    Bylines scraped with their surroundings ("Detroit News wire services Published") are not names.
    """
    if not author:
        return None
    people = [p.strip() for p in re.split(r"\s*(?:;|,|\band\b|&)\s*", author) if p.strip()]
    if not people or len(author) > 120:
        return None
    for person in people:
        words = person.split()
        if not 1 <= len(words) <= 4 or re.search(r"[\d@/:]", person):
            return None
        if any(w.lower().strip(".") in _NOT_NAME_WORDS for w in words):
            return None
        if not re.search(r"[\u3040-\u30ff\u3400-\u9fff]", person) and not all(w[:1].isupper() for w in words):
            return None
    return author.strip()


def _squash(text: str) -> str:
    return re.sub(r"[\W_]+", "", text).casefold()


def _host_names(url: str | None) -> list[str]:
    host = (urlsplit(url).hostname or "") if url else ""
    labels = [label for label in host.split(".") if label not in ("www", "m", "amp")]
    if len(labels) >= 3 and labels[-2] in ("co", "com", "ac", "or", "ne", "go", "org", "net", "gov"):
        return [labels[-3]]  # example.co.uk, example.co.jp
    return [labels[-2]] if len(labels) >= 2 else []


def _og_site(tree: lxml.html.HtmlElement) -> str | None:
    for meta in tree.iter("meta"):
        if (meta.get("property") or meta.get("name") or "").lower() in ("og:site_name", "application-name"):
            if content := clean_text(meta.get("content") or ""):
                return content
    return None


# --- extractors -------------------------------------------------------------------------------

_CONFIGS: dict[int, Any] = {}


def _trafilatura_config(min_size: int) -> Any:
    """A private trafilatura config with our MIN_EXTRACTED_SIZE (never the module-wide default)."""
    config = _CONFIGS.get(min_size)
    if config is None:
        config = use_config()
        config.set("DEFAULT", "MIN_EXTRACTED_SIZE", str(min_size))
        config.set("DEFAULT", "EXTENSIVE_DATE_SEARCH", "off")
        config.set("DEFAULT", "EXTRACTION_TIMEOUT", "0")
        _CONFIGS[min_size] = config
    return config


def _trafilatura_blocks(html: str, url: str | None, settings: "FetchSettings") -> tuple[list[Block], dict[str, str]]:
    result = trafilatura.extract(
        html,
        url=url,
        output_format="xml",
        include_images=True,
        include_formatting=True,
        include_tables=True,
        include_comments=False,
        favor_precision=True,
        with_metadata=True,
        date_extraction_params={"extensive_search": False, "original_date": True},
        config=_trafilatura_config(settings.min_text_chars),
    )
    if not result:
        return [], {}
    doc = lxml.etree.fromstring(result.encode("utf-8"))
    meta = {k: v for k, v in doc.attrib.items() if v}
    main = doc.find("main")
    return (_xml_blocks(main) if main is not None else []), meta


def _readability_blocks(html: str, base_url: str | None) -> list[Block]:
    from readability import Document

    try:
        summary = Document(html, url=base_url).summary(html_partial=True)
    except Exception:  # readability raises bare Exceptions on pages it cannot score
        return []
    return html_to_blocks(lxml.html.fragment_fromstring(summary, create_parent="div"))


def _xml_blocks(parent: lxml.etree._Element) -> list[Block]:
    """Blocks from trafilatura's XML (head, p, list, quote, code, graphic, table), in order."""
    blocks: list[Block] = []
    for el in parent:
        tag = el.tag
        if tag == "head":
            level = int(m.group(1)) if (m := re.search(r"(\d)", el.get("rend", ""))) else 2
            _add(blocks, {"type": "heading", "level": min(max(level, 1), 6), "text": _xml_text(el)})
        elif tag == "p":
            _add(blocks, {"type": "paragraph", "text": _xml_text(el)})
            blocks.extend(_graphics(el))
        elif tag == "list":
            items = _list_items(el)
            if items:
                blocks.append({"type": "list", "ordered": el.get("rend", "") == "ol", "items": items})
            blocks.extend(_graphics(el))
        elif tag == "quote":
            _add(blocks, {"type": "quote", "text": "\n".join(filter(None, (_xml_text(p) for p in el))) or _xml_text(el)})
        elif tag == "code":
            text = "".join(el.itertext()).strip("\n")
            if text.strip():
                blocks.append({"type": "code", "text": text})
        elif tag == "graphic":
            blocks.extend(_graphics(el))
        elif tag == "table":
            if (table := _xml_table(el)) is not None:
                blocks.append(table)
        else:
            blocks.extend(_xml_blocks(el))
    return blocks


def _xml_table(el: lxml.etree._Element) -> Block | None:
    """A table block from trafilatura's ``<table><row><cell role="head">``: head cells make the header."""
    header: list[str] = []
    rows: list[list[str]] = []
    caption = ""
    for row in el.iter("row"):
        cells = list(row.iter("cell"))
        texts = [_xml_text(c) for c in cells]
        filled = [t for t, c in zip(texts, cells) if t]
        if not filled:
            continue
        is_head = all(c.get("role") == "head" for t, c in zip(texts, cells) if t)
        if not header and not rows and is_head and len(filled) == 1 and len(cells) > 1 and not caption:
            caption = filled[0]  # a <caption> comes out as a head row with one filled cell
        elif not header and not rows and is_head:
            header = texts
        else:
            rows.append(texts)
    if not header and not rows:
        return None
    return {"type": "table", "header": header, "rows": rows, "caption": caption}


def _xml_text(el: lxml.etree._Element) -> str:
    parts: list[str] = []

    def walk(node: lxml.etree._Element) -> None:
        if node.tag == "lb":
            parts.append("\n")
        elif node.tag in ("graphic", "list"):
            pass
        elif node.text:
            parts.append(node.text)
        if node.tag not in ("graphic", "list"):
            for child in node:
                walk(child)
        if node is not el and node.tail:
            parts.append(node.tail)

    walk(el)
    return clean_text("".join(parts))


def _list_items(el: lxml.etree._Element) -> list[str]:
    items: list[str] = []
    for item in el.findall("item"):
        text = _xml_text(item)
        if text:
            items.append(text)
        for nested in item.findall("list"):
            items.extend(_list_items(nested))
    return items


def _graphics(el: lxml.etree._Element) -> list[Block]:
    nodes = [el] if el.tag == "graphic" else list(el.iter("graphic"))
    return [
        {"type": "image", "src": g.get("src"), "alt": g.get("alt") or "", "caption": g.get("title") or ""}
        for g in nodes
        if g.get("src")
    ]


def _add(blocks: list[Block], block: Block) -> None:
    if block.get("text"):
        blocks.append(block)


def _attach_details(blocks: list[Block], captions: dict[str, str], code_languages: dict[str, str]) -> None:
    """Put back what the extractors drop: figure captions and code languages."""
    for block in blocks:
        if block["type"] == "image" and captions.get(block["src"]):
            block["caption"] = captions[block["src"]]
        elif block["type"] == "code" and (lang := code_languages.get(_code_key(block["text"]))):
            block["language"] = lang


# --- small helpers ----------------------------------------------------------------------------


def _image_source(img: lxml.html.HtmlElement) -> str | None:
    src = (img.get("src") or "").strip()
    if not src or (src.startswith("data:") and len(src) < 1024):
        for attr in _LAZY_SRC_ATTRS:
            candidate = (img.get(attr) or "").strip().split(",")[0].strip().split(" ")[0]
            if candidate and not candidate.startswith("data:"):
                return candidate
    return src or None


def _caption_of(img: lxml.html.HtmlElement) -> lxml.html.HtmlElement | None:
    """The caption element of an image's figure (``<figcaption>``, WordPress ``wp-caption-text``)."""
    for depth, ancestor in enumerate(img.iterancestors()):
        if depth >= 3:
            return None
        classes = ancestor.get("class", "")
        if ancestor.tag == "figure" or "wp-caption" in classes or re.search(r"\b(figure|image-caption)\b", classes):
            for el in ancestor.iterdescendants("figcaption", "p", "div", "span"):
                names = el.get("class", "")
                if el.tag == "figcaption" or "caption" in names:
                    return el if el.text_content().strip() and el.find(".//img") is None else None
            return None
    return None


def _pixels(value: str | None) -> int | None:
    match = re.match(r"\s*(\d+)\s*(px)?\s*$", value or "")
    return int(match.group(1)) if match else None


def _data_uri_size(uri: str) -> tuple[int, int] | None:
    """Width and height of a base64 PNG or GIF data URI, read from its header."""
    header, _, payload = uri.partition(",")
    if ";base64" not in header:
        return None
    try:
        data = base64.b64decode(payload[:64] + "=" * (-len(payload[:64]) % 4))
    except ValueError:
        return None
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    return None


def _base_url(tree: lxml.html.HtmlElement, url: str | None) -> str | None:
    base = tree.find(".//base[@href]")
    if base is not None:
        return urljoin(url or "", base.get("href").strip()) or url
    return url


def _tree_title(tree: lxml.html.HtmlElement) -> str | None:
    title = tree.find(".//title")
    return clean_text(title.text_content()) if title is not None and title.text_content().strip() else None


def _code_key(text: str) -> str:
    return re.sub(r"\s+", "", text)[:200]


def _paragraph_text_size(tree: lxml.html.HtmlElement) -> int:
    return sum(len(p.text_content().strip()) for p in tree.iter("p"))


def _coverage(blocks: list[Block], other: list[Block]) -> float:
    """The share of ``blocks``' words that ``other`` also has (bags of words)."""
    mine, theirs = _bag(blocks_text(blocks)), _bag(blocks_text(other))
    total = sum(mine.values())
    return sum((mine & theirs).values()) / total if total else 1.0


def _bag(text: str) -> Counter[str]:
    return Counter(re.findall(r"[\u3040-\u30ff\u3400-\u9fff]|[^\W\u3040-\u30ff\u3400-\u9fff]+", text.lower()))


def _text_size(blocks: list[Block]) -> int:
    return len(blocks_text(blocks))
