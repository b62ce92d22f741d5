"""The extractive writer on structured articles: prose spoken, code/tables/math shown, recap complete.

The Markdown excerpts are from kaityo256's Zenn articles (github.com/kaityo256/zenn-content, commit
9bdb769, CC BY 4.0): boltzmann_machine4.md and union_find_physics.md.
"""

from __future__ import annotations

import re

import pytest

from stages.fetch.markdown import parse_markdown
from stages.script.extractive import write_extractive
from stages.settings import load_settings

ARTICLE = """---
title: "Union-Findと制限ボルツマンマシン"
topics: ["python"]
---

## 観測事実

そこでDaveは239日にわたって二人を観察し、[学食](https://example.com/gakushoku)に来た日の統計を取りました。

|  A  |  B  | 日数|
| ---- | ---- |---|
|  x  | x  | 35|
|  o  |  o  |35|

Daveが作ったモデルは、こんなエネルギーで表現されるモデルです。

$$
H(v_a, v_b, h_c) = -(b_a v_a+ b_b v_b)
$$

これがモデルのエネルギーです。詳しくは https://example.com/rbm を参照してください。

## Union-Find

同値関係$i\\sim j$が与えられたとき、それを反映させる関数が`union`です。こんな感じに実装できます。

```py
def union(i, j, cluster):
    cluster[j] = i
```

要するに、若い方の番号を親にする、という意味です。

:::message
この記事は連載の4回目です。
:::

次の段落では親をたどります。findは代表を返します。

## まとめ

Union-Findは単純ですが強力です。

## 参考文献

- R. H. Swendsen, J.-S. Wang, Phys. Rev. Lett. 58, 86 (1987).
"""


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    settings = load_settings(home=tmp_path_factory.mktemp("home"))
    return write_extractive(parse_markdown(ARTICLE, name="a"), settings)


def spoken(script) -> str:
    return "".join(n.text + (n.reading or "") for _s, _i, n in script.phrases())


def test_no_url_markup_code_table_cell_or_math_is_spoken(script):
    """Links speak their text; URLs, markup, code, table cells and TeX never reach a narration."""
    text = spoken(script)
    assert "学食に来た日" in text
    assert not re.search(r"https?|example|[*`#|$\\]|:::|cluster\[|v_a|\| 35", text), text
    assert "この記事は連載の4回目です" in text  # a :::message is prose


def test_tables_code_and_math_are_carried_and_shown(script):
    """Every table, code block and display math of the article is a visual some line shows."""
    visuals = [(s.title, v.kind) for s in script.sections for v in s.visuals]
    assert sorted(k for _t, k in visuals) == ["code", "math", "table"]
    for section in script.sections:
        shown = {n.show for n in section.narrations if n.show is not None}
        assert shown == set(range(len(section.visuals))), section.title
    table = next(v for s in script.sections for v in s.visuals if v.kind == "table")
    assert table.header == ["A", "B", "日数"] and table.rows[0] == ["x", "x", "35"]


def test_a_table_is_introduced_in_words(script, tmp_path):
    """A table is shown with the sentence before it; without one it is introduced from its header row."""
    section = next(s for s in script.sections if s.title == "観測事実")
    line = next(n for n in section.narrations if n.show == 0)
    assert "統計を取りました" in line.text
    bare = parse_markdown("# 型の対応\n\n## 整数\n\n| Rust | Python |\n|---|---|\n| u64 | int |\n\n"
                          "どちらも符号なしの整数を表します。\n", name="t")
    written = write_extractive(bare, load_settings(home=tmp_path))
    part = next(s for s in written.sections if s.title == "整数")
    assert part.narrations[0].show == 0 and part.narrations[0].text == "Rust、Pythonの表を見てみましょう。"
    assert "u64" not in "".join(n.text for n in part.narrations)


def test_the_articles_lead_in_shows_code(script):
    """「こんな感じに実装できます。」 before a code block is the line that shows it; the bullets come back later."""
    section = next(s for s in script.sections if s.title == "Union-Find")
    code = section.visuals.index(next(v for v in section.visuals if v.kind == "code"))
    line = next(n for n in section.narrations if n.show == code)
    assert "こんな感じに実装できます" in line.text
    after = section.narrations[section.narrations.index(line) + 1 :]
    assert any(n.bullet is not None for n in after)


def test_the_articles_own_summary_is_the_closing(script):
    """The article's まとめ and the recap are one closing section (its references left out); the title card
    is its own section first."""
    titles = [s.title for s in script.sections]
    assert titles.count("まとめ") == 1 and titles[-1] == "まとめ"
    closing = script.sections[-1]
    assert "Union-Findは単純ですが強力です" in "".join(n.text for n in closing.narrations)
    assert closing.narrations[-1].text == "ご視聴ありがとうございました。"
    assert closing.slide.layout == "closing" and closing.slide.bullets == ["観測事実", "Union-Find"]
    assert script.sections[0].slide.layout == "title" and titles[1] == "観測事実"
    assert script.sections[1].slide.layout == "bullets" and script.sections[1].slide.bullets


def test_english_headingless_news_gets_parts_not_fragments(tmp_path):
    """A news page without headings gets "Part N" sections; the intro never lists sentence fragments."""
    paragraphs = [
        "DEKALB, Ill. (AP) — Hours before the storm, officials closed the schools in the city.",
        "The schools will stay closed until the roads are clear, the district said on Friday.",
        "Parents were told by text message, and buses will not run on Monday or Tuesday.",
        "Farmers in the county expect the corn harvest to be late this year after the rain.",
        "Corn prices rose on the news, and traders said the harvest would be smaller.",
        "The harvest usually ends in October, but fields are still wet in many places.",
    ] * 3
    article = {"title": "Storm closes schools", "language": "en",
               "blocks": [{"type": "paragraph", "text": p} for p in paragraphs]}
    script = write_extractive(article, load_settings(home=tmp_path))
    titles = [s.title for s in script.sections[1:-1]]
    assert titles and all(re.fullmatch(r"Part \d+", t) for t in titles)
    opening = " ".join(n.text for n in script.sections[0].narrations)
    assert "Hours before" not in opening and "Part" not in opening
    assert any(n.text.startswith("DEKALB, Ill. (AP)") for n in script.sections[1].narrations)


def test_generated_scripts_have_unique_section_titles(tmp_path):
    """Two parts with the same heading become distinct chapters."""
    import json

    from stages.script import generate_script, load_script

    article = parse_markdown("# 記事\n\n## 例\n\n最初の例です。\n\n## 例\n\n二つ目の例です。\n", name="t")
    (tmp_path / "article.json").write_text(json.dumps(article), encoding="utf-8")
    settings = load_settings(home=tmp_path)
    script = load_script(generate_script(tmp_path / "article.json", tmp_path, settings), settings)
    titles = [s.title for s in script.sections]
    assert "例" in titles and "例 (2)" in titles and len(set(titles)) == len(titles)


@pytest.mark.parametrize(
    "text, sentences",
    [
        ("DEKALB, Ill. — A student was shot Friday. Police said so.",
         ["DEKALB, Ill. — A student was shot Friday.", "Police said so."]),
        ("DEKALB, Ill. (AP) — A student (who was not named. He was 20.) was shot. Next.",
         ["DEKALB, Ill. (AP) — A student (who was not named. He was 20.) was shot.", "Next."]),
        ("He moved to Springfield, Ill. Then he left.", ["He moved to Springfield, Ill.", "Then he left."]),
        ("Sales fell. iPhone sales rose.", ["Sales fell.", "iPhone sales rose."]),
    ],
)
def test_english_sentences_survive_abbreviations_and_parentheses(text, sentences):
    """A dateline's state abbreviation and a parenthesis do not end a sentence; real ends still do."""
    from stages.script.text import split_sentences

    assert split_sentences(text, "en") == sentences


def test_image_backend_gets_prompts_for_sections_without_pictures(tmp_path):
    """With slides.backend = image-api, body sections without an article image carry a slide_prompt."""
    import json

    from stages.script import generate_script, load_script

    article = parse_markdown("# 記事\n\n## 苗の選び方\n\n良い苗は葉の色が濃いです。\n\n## 写真\n\n"
                             "![苗](https://example.com/a.png)\n\n写真の苗です。\n", name="t")
    (tmp_path / "article.json").write_text(json.dumps(article), encoding="utf-8")
    settings = load_settings(home=tmp_path, slides={"backend": "image-api"})
    script = load_script(generate_script(tmp_path / "article.json", tmp_path, settings), settings)
    prompts = {s.title: s.slide_prompt for s in script.sections}
    assert prompts["苗の選び方"].startswith("記事: 苗の選び方")
    assert prompts["写真"] is None and prompts["記事"] is None and prompts["まとめ"] is None
    plain = load_script(generate_script(tmp_path / "article.json", tmp_path, load_settings(home=tmp_path)), settings)
    assert all(s.slide_prompt is None for s in plain.sections)


@pytest.mark.parametrize(
    "sentence, language, limit, bullet",
    [
        ("Union-Findアルゴリズムは、グラフ系でよく使われるアルゴリズムですが、物性物理においても重要な役割を果たします。",
         "ja", 30, "物性物理においても重要な役割を果たします"),
        ("さて、Union-Findアルゴリズムは単純なわりに強力なアルゴリズムなのですが、その実装は現代の計算機と相性がよくありません。",
         "ja", 30, "その実装は現代の計算機と相性がよくありません"),
        ("Union-Findアルゴリズムは広く使われています。", "ja", 30, "Union-Findアルゴリズムは広く使われています"),
    ],
)
def test_bullets_never_dangle_even_where_the_clause_analysis_fails(sentence, language, limit, bullet):
    """Mixed Latin/Japanese text (pyopenjtalk writes Union-Find's hyphen as −, which the alignment
    folds back) gives a whole clause as its bullet: no particle end, no leading 「さて、」, not the
    bare topic 「Union-Findアルゴリズム」 nor 「Union-Findアルゴリズムは広く」."""
    from stages.script.text import bullet_of

    assert bullet_of(sentence, language, limit) == bullet


def test_english_bullets_never_end_on_a_possessive():
    """"…for Minnesota’s" waits for its noun: it is no clean end."""
    from stages.script.text import bullet_ends_cleanly

    assert not bullet_ends_cleanly("Schools closed for Minnesota’s", "en")
    assert not bullet_ends_cleanly("Schools closed for Minnesota's", "en")
    assert bullet_ends_cleanly("Schools closed for Minnesota's students", "en")


def test_code_before_the_first_heading_is_still_shown(tmp_path):
    """A listing that opens the article (before any heading) gets an introduction section that shows it."""
    article = parse_markdown("# 使い方\n\n```sh\npip install moviegen\n```\n\n## 起動\n\nデーモンを起動します。\n", name="t")
    script = write_extractive(article, load_settings(home=tmp_path))
    shown = [(s.title, v.kind) for s in script.sections for v in s.visuals]
    assert shown == [("はじめに", "code")]
    intro = script.sections[1]
    assert intro.narrations[0].show == 0 and "pip" not in intro.narrations[0].text


def test_a_dialogue_never_says_a_parts_label(tmp_path):
    """In a conversation about an article without headings, the host asks without naming 「その1」."""
    settings = load_settings(home=tmp_path, personas=[{"id": "a", "name": "A"}, {"id": "b", "name": "B"}],
                             default_persona="a", script={"style": "dialogue"})
    paragraphs = [{"type": "paragraph", "text": f"段落{i}の最初の文です。" + "内容を説明する文がここに続きます。" * 8}
                  for i in range(6)]
    script = write_extractive({"title": "見出しのない記事", "language": "ja", "blocks": paragraphs}, settings)
    assert [s.title for s in script.sections[1:-1]][:2] == ["その1", "その2"]
    said = "".join(n.text for _s, _i, n in script.phrases())
    assert "その1" not in said and "その2" not in said
