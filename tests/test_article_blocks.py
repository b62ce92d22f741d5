"""The article model: each block kind from real Markdown (Zenn style) and HTML, with its source line.

Markdown excerpts are from kaityo256's Zenn articles (github.com/kaityo256/zenn-content, commit
9bdb769, CC BY 4.0): boltzmann_machine4.md, union_find_physics.md, position_of_functions.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stages.fetch import extract
from stages.fetch.markdown import parse_markdown
from stages.settings import load_settings

ZENN = """---
title: "制限ボルツマンマシンの学習"
emoji: "🤖"
type: "tech"
topics: ["機械学習", "python"]
published: true
---

## 観測事実

そこでDaveは239日にわたって二人を観察し、[学食](https://example.com/gakushoku)の統計を取りました。

|  A  |  B  | 日数|
| ---- | ---- |---|
|  x  | x  | 35|
|  x  |  o  |56|

Daveが作ったモデルは、こんなエネルギーで表現されるモデルです。

$$
H(v_a, v_b, h_c) = -(b_a v_a+ b_b v_b)
$$

同値関係$i\\sim j$が与えられたとき、それを反映させる関数が`union`です。

```py:union.py
def union(i, j, cluster):
    cluster[j] = i
```

少し前、こんなポストをしました。

@[tweet](https://twitter.com/kaityo256/status/1729865255495581824)

@[youtube](dQw4w9WgXcQ)

https://zenn.dev/kaityo256/articles/union_find_physics

:::message
この記事は連載の4回目です。
:::

:::details 導出の詳細
- 対数尤度を微分します
:::

> [!WARNING]
> 古い情報です。

> ただの引用です。

![スピン系](spin.png "正方格子のスピン")

詳しくは文献を参照[^1]。

[^1]: R. H. Swendsen, J.-S. Wang, Phys. Rev. Lett. 58, 86 (1987).
"""


@pytest.fixture(scope="module")
def article():
    return parse_markdown(ZENN, name="zenn")


def kinds(article, kind):
    return [b for b in article["blocks"] if b["type"] == kind]


def test_front_matter_title_and_topics(article):
    """The front matter's title is the title and its topics are kept."""
    assert article["title"] == "制限ボルツマンマシンの学習"
    assert article["topics"] == ["機械学習", "python"]
    assert article["language"] == "ja"


def test_zenn_published_true_is_not_a_date(article):
    """Zenn's ``published: true`` says the article is public: no date (the title card read "True");
    a ``published_at`` or ``date`` is one."""
    assert article["published"] is None
    dated = parse_markdown(ZENN.replace("published: true", "published: true\npublished_at: 2023-04-01 09:00"))
    assert dated["published"].startswith("2023-04-01")
    assert parse_markdown(ZENN.replace("published: true", "date: 2022-12-24"))["published"] == "2022-12-24"


def test_table_keeps_header_and_cells(article):
    """A GFM table is a table block: header row and body rows, cells trimmed."""
    (table,) = kinds(article, "table")
    assert table["header"] == ["A", "B", "日数"]
    assert table["rows"] == [["x", "x", "35"], ["x", "o", "56"]]
    assert table["line"] == 13


def test_math_block_and_inline(article):
    """$$ math is a math block (TeX only); inline math stays in the sentence between $ signs."""
    (math,) = kinds(article, "math")
    assert math["text"].startswith("H(v_a, v_b, h_c)") and "$" not in math["text"]
    assert any("$i\\sim j$" in p["text"] for p in kinds(article, "paragraph"))


def test_code_language_and_file_name(article):
    """A fence's language is kept; Zenn's ``py:union.py`` gives the file name as caption."""
    (code,) = kinds(article, "code")
    assert code["language"] == "py" and code["caption"] == "union.py"
    assert code["text"].startswith("def union(i, j, cluster):")


def test_links_keep_only_their_text(article):
    """A link is its text in the paragraph; the URL is not part of the prose."""
    first = kinds(article, "paragraph")[0]["text"]
    assert "学食の統計" in first and "example.com" not in first


def test_embeds(article):
    """Zenn's @[tweet] and @[youtube] and a bare URL line are embeds, not paragraphs."""
    embeds = kinds(article, "embed")
    assert [(e["kind"], e["url"]) for e in embeds] == [
        ("tweet", "https://twitter.com/kaityo256/status/1729865255495581824"),
        ("video", "https://www.youtube.com/watch?v=dQw4w9WgXcQ"),
        ("link", "https://zenn.dev/kaityo256/articles/union_find_physics"),
    ]
    assert not any("twitter.com" in p["text"] or "@[" in p["text"] for p in kinds(article, "paragraph"))


def test_admonitions(article):
    """:::message, :::details (with its summary) and GitHub's [!WARNING] are admonitions; a plain quote stays a quote."""
    boxes = kinds(article, "admonition")
    assert [(b["kind"], b["title"], b["text"]) for b in boxes] == [
        ("message", "", "この記事は連載の4回目です。"),
        ("details", "導出の詳細", "対数尤度を微分します"),
        ("warning", "", "古い情報です。"),
    ]
    assert [q["text"] for q in kinds(article, "quote")] == ["ただの引用です。"]


def test_image_alt_and_caption(article):
    """An image keeps its alt text and its title as the caption."""
    (image,) = kinds(article, "image")
    assert image["alt"] == "スピン系" and image["caption"] == "正方格子のスピン"


def test_footnote(article):
    """A footnote is its own block; its reference mark leaves the sentence."""
    (note,) = kinds(article, "footnote")
    assert note["label"] == "1" and note["text"].startswith("R. H. Swendsen")
    assert any(p["text"] == "詳しくは文献を参照。" for p in kinds(article, "paragraph"))


def test_every_block_has_its_source_line(article):
    """Every block carries the 1-based line it starts on, counted in the file with its front matter."""
    lines = [b["line"] for b in article["blocks"]]
    assert all(isinstance(n, int) for n in lines) and lines == sorted(lines)
    assert kinds(article, "heading")[0]["line"] == 9


HTML = """<html lang="en"><head><title>Tables and code - Example Blog</title></head><body><article>
<h1>Tables and code</h1>
<p>Rust and Python exchange integers through PyO3, and the mapping between their types is fixed by the
library. This paragraph is long enough for the extractor to keep the article body as it is.</p>
<table><caption>Integer types</caption>
<thead><tr><th>Rust</th><th>Python</th></tr></thead>
<tbody><tr><td>u32, u64, usize</td><td>PyLong</td></tr><tr><td>f64</td><td>float</td></tr></tbody></table>
<p>The conversion is written with one call, which the next listing shows in full for the reader.</p>
<pre><code class="language-rust">let n: u64 = obj.extract()?;</code></pre>
<p>That is all there is to it, and the rest of the article explains the errors that may come back.</p>
<ul><li>overflow is an error</li><li>None is an error</li></ul>
</article></body></html>"""


def test_html_keeps_tables_code_and_lists(tmp_path):
    """An HTML page's table is a table (header from <th>), its code keeps the language, its list stays a list."""
    page = tmp_path / "page.html"
    page.write_text(HTML, encoding="utf-8")
    article = extract(page, load_settings(home=tmp_path))
    types = [b["type"] for b in article["blocks"]]
    assert "table" in types and "code" in types and "list" in types
    table = next(b for b in article["blocks"] if b["type"] == "table")
    assert table["header"] == ["Rust", "Python"]
    assert ["u32, u64, usize", "PyLong"] in table["rows"]
    code = next(b for b in article["blocks"] if b["type"] == "code")
    assert code["language"] == "rust" and "obj.extract()" in code["text"]


def test_html_fragment_tables_and_embeds():
    """Readability's HTML (and HTML inside Markdown): data tables, tweets and video iframes become blocks."""
    from stages.fetch.markdown import parse_markdown as md

    text = (
        '<table><tr><th>Key</th><th>Value</th></tr><tr><td>a</td><td>1</td></tr></table>\n\n'
        '<blockquote class="twitter-tweet"><p>Hello world</p>&mdash; someone '
        '<a href="https://twitter.com/someone/status/123">May 1</a></blockquote>\n\n'
        '<iframe src="https://www.youtube.com/embed/xyz"></iframe>\n'
    )
    blocks = md(text)["blocks"]
    assert blocks[0]["type"] == "table" and blocks[0]["header"] == ["Key", "Value"] and blocks[0]["rows"] == [["a", "1"]]
    assert blocks[1] == {"type": "embed", "kind": "tweet", "url": "https://twitter.com/someone/status/123",
                         "text": "Hello world", "line": 3}
    assert blocks[2]["type"] == "embed" and blocks[2]["kind"] == "video"


def test_extract_json_shows_the_model(tmp_path):
    """``moviegen extract --format json`` prints the typed blocks."""
    source = tmp_path / "a.md"
    source.write_text(ZENN, encoding="utf-8")
    out = subprocess.run([str(Path(sys.executable).parent / "moviegen"), "extract", str(source), "--format", "json"],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent, timeout=120)
    data = json.loads(out.stdout)
    assert {"table", "math", "code", "embed", "admonition", "footnote"} <= {b["type"] for b in data["blocks"]}


@pytest.mark.parametrize(
    "title, site, url, expected",
    [
        ("Apple ships X - 9to5Mac", "9to5Mac", None, "Apple ships X"),
        ("Bike & Style book review | MoreBikes", None, "https://www.morebikes.co.uk/news/x", "Bike & Style book review"),
        ("Best tech gadgets of 2019 | ZDNet", None, "https://www.zdnet.com/article/x/", "Best tech gadgets of 2019"),
        ("Rust: a primer - Blog", "Blog", None, "Rust: a primer"),
        ("ZDNet", "ZDNet", None, "ZDNet"),
        ("Storm - closes - schools", "Other", None, "Storm - closes - schools"),
        ("LinkNaija | Nigeria's news: Actress Is Stunning", "LinkNaija | Nigeria's news", None, "Actress Is Stunning"),
    ],
)
def test_title_loses_the_site_suffix(title, site, url, expected):
    """The site's name (from metadata, else the host) is cut off the title's ends, never from its middle."""
    from stages.fetch.extractor import strip_site

    assert strip_site(title, site, url) == expected


@pytest.mark.parametrize(
    "author, expected",
    [
        ("Detroit News wire services Published", None),
        ("By Staff", None),
        ("Jane Doe", "Jane Doe"),
        ("Jane Doe; John Roe", "Jane Doe; John Roe"),
        ("山田太郎", "山田太郎"),
        ("posted 2019-05-01", None),
    ],
)
def test_author_only_when_it_reads_as_a_name(author, expected):
    """A scraped byline with its surroundings is no author."""
    from stages.fetch.extractor import person_or_none

    assert person_or_none(author) == expected


def test_html_page_title_and_author_from_a_real_layout(tmp_path):
    """A page whose <title> carries the site name and whose byline is not a name gets neither."""
    page = tmp_path / "news.html"
    page.write_text(
        '<html><head><title>Schools close ahead of the storm - Example News</title>'
        '<meta property="og:site_name" content="Example News">'
        '<meta name="author" content="Example News wire services Published"></head><body><article>'
        "<p>" + "Hours before the storm, officials closed the schools across the county on Friday. " * 5 + "</p>"
        "</article></body></html>",
        encoding="utf-8",
    )
    article = extract(page, load_settings(home=tmp_path))
    assert article["title"] == "Schools close ahead of the storm"
    assert article["author"] is None
