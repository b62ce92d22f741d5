"""The fetch stage on local inputs: saved HTML pages, Markdown files, .url files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stages.base import InputError, JobContext
from stages.fetch import FetchStage, article_text, extract, fetch_article, read_url_file
from stages.fetch.blocks import detect_language
from stages.fetch.encoding import decode_html
from stages.settings import load_settings

LOCAL = Path(__file__).parent / "data" / "fetch_local"
PAGE_URL = "https://example.com/blog/2024/local-page.html"


@pytest.fixture
def settings(tmp_path):
    return load_settings(home=tmp_path)


def _types(article: dict) -> list[str]:
    return [b["type"] for b in article["blocks"]]


def test_local_html_yields_ordered_blocks(settings):
    """A saved page gives headings, paragraphs, lists, code, quote and images in document order."""
    article = extract(LOCAL / "article.html", settings, url=PAGE_URL)
    assert article["title"] == "Local Page"
    assert article["author"] == "Jane Writer"
    assert article["published"] is None  # the page states no date
    assert article["language"] == "en"
    assert _types(article) == [
        "paragraph", "image", "heading", "paragraph", "list", "list", "code", "quote", "heading", "image", "paragraph",
    ]
    blocks = article["blocks"]
    assert blocks[2] == {"type": "heading", "level": 2, "text": "Details"}
    assert blocks[4] == {"type": "list", "ordered": False, "items": ["First point of the list", "Second point of the list"]}
    assert blocks[5]["ordered"] is True
    assert blocks[6] == {"type": "code", "text": "make setup\nmake demo", "language": "bash"}
    assert blocks[7]["text"].startswith("Quoted words")


def test_image_filter_keeps_only_article_images(settings):
    """Logos, avatars, gravatars, spacers, 1x1 data URIs, tracking pixels, icons and sidebar images go."""
    article = extract(LOCAL / "article.html", settings, url=PAGE_URL)
    images = [b for b in article["blocks"] if b["type"] == "image"]
    assert images == [
        {"type": "image", "src": "https://example.com/blog/2024/images/chart.png", "alt": "A chart of growth", "caption": "Growth over ten years"},
        {"type": "image", "src": "https://example.com/blog/photos/lake.jpg", "alt": "A lake at dawn", "caption": ""},
    ]
    assert "Growth over ten years" not in article_text(article)  # the caption is not body text
    assert "Buy our stuff" not in article_text(article)


def test_base_href_resolves_images(settings, tmp_path):
    """<base href> wins over the page URL for relative image links."""
    html = (LOCAL / "article.html").read_text().replace("<head>", '<head><base href="https://cdn.example.net/assets/">')
    (tmp_path / "page.html").write_text(html)
    article = extract(tmp_path / "page.html", settings, url=PAGE_URL)
    assert [b["src"] for b in article["blocks"] if b["type"] == "image"][0] == "https://cdn.example.net/assets/images/chart.png"


def test_local_html_without_url_finds_images_beside_it(settings, tmp_path):
    """A saved page's relative images resolve to files next to it when they exist."""
    shutil.copy(LOCAL / "article.html", tmp_path / "article.html")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "chart.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    article = extract(tmp_path / "article.html", settings)
    srcs = [b["src"] for b in article["blocks"] if b["type"] == "image"]
    assert srcs == [str((tmp_path / "images" / "chart.png").resolve()), "../photos/lake.jpg"]
    assert article["url"] is None


def test_markdown_is_parsed_into_blocks(settings):
    """Markdown goes through markdown-it tokens: front-matter title, headings, nested lists, code (inline code keeps its backquotes), quote, image, table."""
    article = extract(LOCAL / "article.md", settings)
    assert article["title"] == "Markdown から動画へ"
    assert article["author"] == "Test Author"
    assert article["published"] == "2024-05-01"
    assert article["language"] == "ja"
    blocks = [{k: v for k, v in b.items() if k != "line"} for b in article["blocks"]]
    assert blocks[0] == {"type": "heading", "level": 1, "text": "This H1 is not the title"}
    # A soft line break between Japanese characters joins without a space.
    assert blocks[1]["text"].startswith("moviegen は記事を解説動画に変えます。")
    assert blocks[3] == {
        "type": "list",
        "ordered": True,
        "items": ["Install the package", "Run `moviegen doctor`", "check the fonts", "Drop a file in the inbox"],
    }
    assert {"type": "code", "text": 'print("hello")', "language": "python"} in blocks
    assert {"type": "quote", "text": "A quote over two lines."} in blocks
    assert {"type": "image", "src": "images/diagram.png", "alt": "A diagram", "caption": "The pipeline"} in blocks
    assert {"type": "table", "header": ["stage", "output"], "rows": [["fetch", "article.json"]], "caption": ""} in blocks
    assert blocks[-2:] == [{"type": "heading", "level": 3, "text": "Done"}, {"type": "paragraph", "text": "That is all."}]


def test_markdown_title_falls_back_to_first_h1(settings):
    """Without front matter the first H1 is the title and leaves the blocks; images resolve against --url."""
    article = extract(LOCAL / "plain.md", settings, url="https://example.org/post/")
    assert article["title"] == "Plain Title"
    assert article["language"] == "en"
    assert article["blocks"][0] == {"type": "paragraph", "text": "Intro paragraph with an image inline.", "line": 3}
    assert article["blocks"][1]["src"] == "https://example.org/photo.jpg"
    assert all(b.get("text") != "Plain Title" for b in article["blocks"])


def test_markdown_code_is_not_mistaken_for_headings(settings, tmp_path):
    """A '# comment' inside a fenced block stays code: the parser, not a regex, decides."""
    (tmp_path / "c.md").write_text("# Real\n\n```sh\n# not a heading\nls\n```\n\nAfter.\n")
    article = extract(tmp_path / "c.md", settings)
    assert article["title"] == "Real"
    assert article["blocks"] == [
        {"type": "code", "text": "# not a heading\nls", "language": "sh", "line": 3},
        {"type": "paragraph", "text": "After.", "line": 8},
    ]


def test_stage_runs_an_article_job(settings, tmp_path):
    """FetchStage.run on an article job writes article.json from source.md without the network."""
    job_dir = tmp_path / "jobs" / "j2"
    job_dir.mkdir(parents=True)
    shutil.copy(LOCAL / "article.md", job_dir / "source.md")
    job = JobContext(job_id="j2", job_dir=job_dir, settings=settings, cache_dir=tmp_path / "cache", source=job_dir / "source.md", kind="article")
    result = FetchStage().run(job, lambda c, t, m: None)
    assert result.outputs == [job_dir / "article.json"]
    assert json.loads((job_dir / "article.json").read_text(encoding="utf-8"))["title"] == "Markdown から動画へ"
    assert FetchStage().fingerprint(job) == FetchStage().fingerprint(job)


def test_empty_article_is_an_input_error(settings, tmp_path):
    """A page with no text fails with an explanation and writes nothing."""
    (tmp_path / "empty.html").write_text("<html><body><nav>menu</nav></body></html>")
    with pytest.raises(InputError, match="no article text"):
        fetch_article(tmp_path / "empty.html", tmp_path / "out", settings)
    assert not (tmp_path / "out" / "article.json").exists()


def test_unknown_file_type_is_an_input_error(settings, tmp_path):
    """Only .html, .md and .url/.txt are articles."""
    (tmp_path / "a.pdf").write_bytes(b"%PDF")
    with pytest.raises(InputError, match=r"\.html or \.md"):
        extract(tmp_path / "a.pdf", settings)


@pytest.mark.parametrize(
    "text,url",
    [
        ("https://example.com/a\n", "https://example.com/a"),
        ("  http://example.com/b?x=1  \r\n", "http://example.com/b?x=1"),
        ("[InternetShortcut]\r\nURL=https://example.com/c\r\nIconIndex=0\r\n", "https://example.com/c"),
        ("\ufeff# saved for later\n\nhttps://example.com/d\n", "https://example.com/d"),
    ],
)
def test_read_url_file_finds_the_url(text, url):
    """A bare URL line or the Windows InternetShortcut form."""
    assert read_url_file(text) == url


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "no URL"),
        ("just some words\nand more\n", "no URL"),
        ("ftp://example.com/file.txt\n", "ftp"),
        ("[InternetShortcut]\nURL=file:///C:/x.html\n", "file"),
    ],
)
def test_read_url_file_refuses(text, message):
    """Empty files, files without a URL and non-http schemes are input errors."""
    with pytest.raises(InputError, match=message):
        read_url_file(text)


@pytest.mark.parametrize(
    "text,declared,language",
    [
        ("これは日本語の文章です。", None, "ja"),
        ("漢字だけ", "ja", "ja"),
        ("这是一个中文句子，没有假名。", None, "zh"),
        ("한국어 문장입니다", None, "ko"),
        ("An English sentence.", None, "en"),
        ("Une phrase en français.", "fr-FR", "fr"),
        ("An English page with a wrong lang attribute.", "ja", "en"),
    ],
)
def test_language_detection(text, declared, language):
    """Scripts decide CJK languages; the declared lang is trusted for the rest."""
    assert detect_language(text, declared) == language


def test_decode_prefers_bom_then_header_then_meta():
    """A byte-order mark beats the header, the header beats the meta tag."""
    text = "<html><head><meta charset='euc-jp'></head><body>日本</body></html>"
    assert decode_html(text.encode("utf-8"), "utf-8") == (text, "utf-8")
    assert decode_html(text.encode("euc_jp"))[0] == text
    assert decode_html(b"\xef\xbb\xbf" + text.encode("utf-8"), "shift_jis")[0] == text


def test_published_date_only_when_the_page_states_one(settings, tmp_path):
    """A stated publication date is kept (as YYYY-MM-DD); none stated gives null, never a guess."""
    body = "<article><h1>Dated</h1><p>" + "A paragraph of the dated article with enough words. " * 5 + "</p></article>"
    (tmp_path / "dated.html").write_text(
        '<html><head><meta property="article:published_time" content="2024-03-01T10:00:00+09:00">'
        f"<title>Dated</title></head><body>{body}</body></html>"
    )
    (tmp_path / "undated.html").write_text(f"<html><head><title>Dated</title></head><body>{body}</body></html>")
    assert extract(tmp_path / "dated.html", settings)["published"] == "2024-03-01"
    assert extract(tmp_path / "undated.html", settings, url="https://example.com/posts/dated")["published"] is None


def test_short_japanese_post_keeps_its_structure(settings, tmp_path):
    """MIN_EXTRACTED_SIZE is lowered: a short post keeps its headings and list instead of a flat text."""
    body = (
        "<article><h1>短い投稿</h1><h2>はじめに</h2><p>今日は新しい機能を試しました。とても便利です。</p>"
        "<h2>手順</h2><ul><li>設定を開く</li><li>保存する</li></ul><h2>まとめ</h2><p>また書きます。以上です。</p></article>"
    )
    (tmp_path / "short.html").write_text(f'<html lang="ja"><head><title>短い投稿</title></head><body>{body}</body></html>')
    article = extract(tmp_path / "short.html", settings)
    assert [b["text"] for b in article["blocks"] if b["type"] == "heading"] == ["はじめに", "手順", "まとめ"]
    assert {"type": "list", "ordered": False, "items": ["設定を開く", "保存する"]} in article["blocks"]
    assert article["language"] == "ja"


def test_image_with_descriptive_alt_is_kept(settings, tmp_path):
    """Junk words in a long alt text describe the picture; they do not make it a logo."""
    page = (
        "<html><body><article><h1>Logos</h1><p>" + "Brand design history in a few words. " * 6 + "</p>"
        '<img src="/a/history.jpg" alt="The evolution of the company logo from 1990 to today" width="800" height="400">'
        '<img src="/a/brand-logo.png" alt="logo" width="120" height="60"><p>' + "More about the design. " * 5 + "</p>"
        "</article></body></html>"
    )
    (tmp_path / "logos.html").write_text(page)
    article = extract(tmp_path / "logos.html", settings, url="https://example.com/x")
    assert [b["src"] for b in article["blocks"] if b["type"] == "image"] == ["https://example.com/a/history.jpg"]


def test_file_url_source_is_a_local_file(settings, tmp_path):
    """extract() takes file:// URLs for local pages; a .url file pointing at file:// is refused."""
    assert extract((LOCAL / "plain.md").resolve().as_uri(), settings)["title"] == "Plain Title"
    (tmp_path / "local.url").write_text(f"{(LOCAL / 'article.html').resolve().as_uri()}\n")
    with pytest.raises(InputError, match="only http"):
        extract(tmp_path / "local.url", settings)
