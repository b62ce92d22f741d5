"""The fetch stage: a URL, an HTML page or a Markdown file in, ``article.json`` out.

``article.json`` holds ``url, title, site, author, published, language, topics, blocks`` (see
:mod:`stages.fetch.blocks` for the block shapes). Web pages are fetched with the careful client in
:mod:`stages.fetch.http`, decoded by :mod:`stages.fetch.encoding` and extracted by
:mod:`stages.fetch.extractor`; Markdown goes through :mod:`stages.fetch.markdown`.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from stages.base import (
    Cancelled,
    InputError,
    JobContext,
    Progress,
    StageResult,
    atomic_write_json,
    file_sha256,
    fingerprint_of,
    no_progress,
)
from stages.fetch.blocks import blocks_text
from stages.fetch.encoding import decode_html
from stages.fetch.extractor import extract_html
from stages.fetch.http import FetchedBody, get_bytes
from stages.fetch.markdown import parse_markdown

if TYPE_CHECKING:
    from stages.settings import FetchSettings, Settings

__all__ = ["FetchStage", "FetchedBody", "article_text", "extract", "fetch_article", "get_bytes", "read_url_file"]

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
URL_SUFFIXES = frozenset({".url", ".txt"})
_STEPS = 4  # connect, download, extract, write
MIN_ARTICLE_CHARS = 20


class FetchStage:
    """The pipeline's first stage: writes ``job_dir/article.json``."""

    name = "fetch"
    version = "4"  # 2: typed blocks (table, math, admonition, embed, footnote) with source lines;
    # 3: a front matter's published: true is no date; 4: a page's furniture (Comments, shortcodes) dropped
    resource = "network"

    def fingerprint(self, job: JobContext) -> str:
        """The stage version, the source's bytes and the settings that change the article."""
        fetch = job.settings.fetch
        return fingerprint_of(
            self.version,
            file_sha256(job.source),
            {"max_bytes": fetch.max_bytes, "min_text_chars": fetch.min_text_chars},
        )

    def run(self, job: JobContext, progress: Progress) -> StageResult:
        """Fetch or parse the job's source and write ``article.json`` atomically."""
        if job.kind not in ("url", "article"):
            raise InputError(f"the fetch stage takes URLs and articles, not a {job.kind!r} input")
        path, article = _write_article(job.source, job.job_dir, job.settings, progress, job.cancel)
        return StageResult(
            outputs=[path],
            data={"title": article.get("title"), "language": article.get("language"), "blocks": len(article["blocks"])},
        )


def fetch_article(
    source: str | Path,
    out_dir: Path,
    settings: "Settings | FetchSettings",
    progress: Progress = no_progress,
    *,
    cancel: threading.Event | None = None,
) -> Path:
    """Fetch or parse ``source`` (a URL, or a ``.url``/``.txt``/``.html``/``.md`` file) into ``out_dir/article.json``.

    Raises:
        InputError: the source cannot become an article (bad URL, 4xx, not HTML, no text...).
        TransientError: a network failure worth retrying.
        Cancelled: ``cancel`` was set.
    """
    return _write_article(source, out_dir, settings, progress, cancel)[0]


def extract(source: str | Path, settings: "Settings | FetchSettings", *, url: str | None = None) -> dict[str, Any]:
    """The article dict of ``source``: an http(s) or file:// URL, or a path to an ``.html``, ``.md`` or ``.url`` file.

    ``url`` is the page's address for a local HTML or Markdown file (for relative image links).
    """
    return _extract(source, settings, url=url, progress=no_progress, cancel=None)


def article_text(article: dict[str, Any]) -> str:
    """The plain text of an article's blocks (headings, paragraphs, list items, code, quotes)."""
    return blocks_text(article["blocks"])


def read_url_file(text: str) -> str:
    """The URL in a ``.url`` / ``.txt`` file: a bare URL line, or Windows ``[InternetShortcut]`` ``URL=``.

    Raises:
        InputError: the file holds no URL, or its URL is not http(s).
    """
    for raw in text.replace("\r", "\n").split("\n"):
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith(("#", "[", ";")):
            continue
        if line.lower().startswith("url="):
            candidate = line[4:].strip()
        else:
            match = re.search(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", line)
            if not match:
                continue
            candidate = match.group(0)
        scheme = candidate.split(":", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise InputError(f"only http and https URLs can be fetched, not {scheme}: {candidate}")
        return candidate
    raise InputError("the file holds no URL: put one http(s) address on a line of its own")


# --- the work ---------------------------------------------------------------------------------


def _write_article(
    source: str | Path,
    out_dir: Path,
    settings: "Settings | FetchSettings",
    progress: Progress,
    cancel: threading.Event | None,
) -> tuple[Path, dict[str, Any]]:
    article = _extract(source, settings, url=None, progress=progress, cancel=cancel)
    progress(3, _STEPS, "writing article.json")
    path = atomic_write_json(Path(out_dir) / "article.json", article)
    progress(_STEPS, _STEPS, f"{len(article['blocks'])} blocks: {article.get('title') or 'untitled'}")
    return path, article


def _extract(
    source: str | Path,
    settings: "Settings | FetchSettings",
    *,
    url: str | None,
    progress: Progress,
    cancel: threading.Event | None,
) -> dict[str, Any]:
    fetch = getattr(settings, "fetch", settings)
    if isinstance(source, str) and source.strip().lower().startswith("file://"):
        # A file:// source from the caller (CLI, Python) is a local file. URLs read from inbox
        # .url files never get here: read_url_file only accepts http(s).
        source = Path(url2pathname(urlsplit(source.strip()).path))
    if isinstance(source, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", source.strip()):
        article = _from_url(read_url_file(source), fetch, progress, cancel)
    else:
        path = Path(source)
        suffix = path.suffix.lower()
        if not path.is_file():
            raise InputError(f"no such file: {path}")
        size = path.stat().st_size
        if size > fetch.max_bytes:  # a local file gets the cap a download has
            raise InputError(
                f"{path.name} is {size:,} bytes, over the limit of {fetch.max_bytes:,} for an article "
                "(fetch.max_bytes; raise it under [fetch] in moviegen.toml, or with MOVIEGEN_FETCH__MAX_BYTES)"
            )
        progress(0, _STEPS, f"reading {path.name}")
        if suffix in URL_SUFFIXES:
            text = path.read_bytes().decode("utf-8-sig", errors="replace")
            article = _from_url(read_url_file(text), fetch, progress, cancel)
        elif suffix in MARKDOWN_SUFFIXES:
            progress(2, _STEPS, "parsing Markdown")
            text = path.read_bytes().decode("utf-8-sig", errors="replace")
            article = parse_markdown(text, url=url, base_dir=path.parent, name=path.stem)
        elif suffix in HTML_SUFFIXES:
            progress(2, _STEPS, "extracting the article")
            html, _ = decode_html(path.read_bytes())
            article = extract_html(html, fetch, url=url)
            if url is None:
                _resolve_local_images(article, path.parent)
        else:
            raise InputError(f"{path.name}: an article must be .html or .md, or a .url/.txt file with a URL")
    if len(blocks_text(article["blocks"])) < MIN_ARTICLE_CHARS:
        raise InputError(f"no article text found in {url or source} (a menu or a few words are not an article)")
    return article


def _from_url(url: str, fetch: "FetchSettings", progress: Progress, cancel: threading.Event | None) -> dict[str, Any]:
    progress(0, _STEPS, f"connecting to {url}")

    def on_bytes(done: int, total: int, message: str) -> None:
        progress(1, _STEPS, f"downloaded {done // 1024} KiB" + (f" of {total // 1024} KiB" if total else ""))

    body = get_bytes(url, fetch, max_bytes=fetch.max_bytes, accept=_is_html_type, cancel=cancel, progress=on_bytes)
    if cancel is not None and cancel.is_set():
        raise Cancelled("fetch cancelled")
    progress(2, _STEPS, "extracting the article")
    html, _ = decode_html(body.content, body.charset)
    if not body.content_type and not re.search(r"<(html|body|p|div|article)\b", html[:65536], re.IGNORECASE):
        raise InputError(f"{url} sent no content type and does not look like HTML")
    return extract_html(html, fetch, url=body.final_url)


def _resolve_local_images(article: dict[str, Any], base_dir: Path) -> None:
    """Relative image paths of a saved page become absolute when the file is there."""
    for block in article["blocks"]:
        src = block.get("src") or ""
        if block["type"] == "image" and src and "://" not in src and not src.startswith(("data:", "/")):
            candidate = base_dir / src
            if candidate.is_file():
                block["src"] = str(candidate.resolve())


def _is_html_type(media_type: str) -> bool:
    return media_type in HTML_TYPES or media_type == ""
