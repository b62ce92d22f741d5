"""Slide bullets: complete, short points from the section's own text (golden properties and the sample)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from stages.fetch.markdown import parse_markdown
from stages.script.extractive import BULLET_CHARS, BULLET_WORDS, write_extractive
from stages.script.text import BULLET_FORBIDDEN_JA, bullet_ends_cleanly, bullet_of, split_sentences
from stages.settings import load_settings

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
SAMPLE = parse_markdown((ROOT / "samples" / "ja-article.md").read_text("utf-8"), name="ja-article.md")
JA = json.loads((DATA / "script_article_ja.json").read_text(encoding="utf-8"))
EN = json.loads((DATA / "script_article_en.json").read_text(encoding="utf-8"))

# the endings the issue names: a bullet ending on one of these is a dangling clause
FORBIDDEN_JA = ("て", "で", "と", "が", "ば", "は", "を", "に", "ており", "ので", "けど", "、")
FORBIDDEN_EN = ("and", "but", "or", "the", "a", "of", "to", "that", "which", "because")


@pytest.fixture
def settings(tmp_path):
    return load_settings(home=tmp_path)


def _is_subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(ch in it for ch in short)


def _section_texts(article: dict, title: str) -> str:
    """All the text under the heading ``title`` (to the next heading of the same level)."""
    out, inside, level = [], False, None
    for block in article["blocks"]:
        if block.get("type") == "heading":
            if block.get("text") == title:
                inside, level = True, block.get("level")
                continue
            if inside and block.get("level", 2) <= (level or 2):
                break
        if inside:
            out.append(block.get("text") or " ".join(block.get("items") or []))
    return " ".join(out)


@pytest.mark.parametrize("article", [SAMPLE, JA], ids=["sample", "fixture"])
def test_japanese_bullets_are_complete_short_points_from_their_section(article, settings):
    """Every body bullet fits the bound, ends on no forbidden ending, and is taken from its own section."""
    script = write_extractive(article, settings)
    assert set(FORBIDDEN_JA) <= set(BULLET_FORBIDDEN_JA)
    for section in script.sections[1:-1]:
        bullets = section.slide.bullets
        assert 2 <= len(bullets) <= 5, (section.title, bullets)
        assert len(set(bullets)) == len(bullets) and section.title not in bullets
        source = _section_texts(article, section.title) or " ".join(
            b.get("text") or "" for b in article["blocks"] if b.get("type") == "paragraph")
        for bullet in bullets:
            assert len(bullet) <= BULLET_CHARS, bullet
            assert not bullet.endswith(FORBIDDEN_JA) or bullet.endswith("こと"), bullet
            assert not bullet.endswith("。"), bullet
            sentences = split_sentences(source, "ja") + [source]
            assert any(_is_subsequence(bullet, s) for s in sentences), (bullet, section.title)


def test_english_bullets_end_cleanly(settings):
    """English bullets are at most the word bound and never end on a conjunction, article or comma."""
    script = write_extractive(EN, settings)
    for section in script.sections[1:-1]:
        for bullet in section.slide.bullets:
            words = bullet.split()
            assert len(words) <= BULLET_WORDS, bullet
            assert words[-1].lower().strip(".,") not in FORBIDDEN_EN, bullet
            assert not bullet.endswith((",", ";", ":")), bullet


SAMPLE_CASES = {
    # the fragments the issue shows, and what a complete point looks like
    "良い苗は、茎が太くて節と節の間が詰まっており、葉の色が濃い緑色をしています。": "良い苗は、葉の色が濃い緑色をしています",
    "一番下の花房に、つぼみが付いているものを選ぶと、その後の生育が安定します。": "つぼみが付いているものを選ぶと、その後の生育が安定します",
    "ひょろりと背の高い苗や、葉が黄色くなっている苗は避けましょう。": "ひょろりと背の高い苗や、葉が黄色くなっている苗は避けましょう",
    "日当たりのよいベランダがあれば、プランターひとつで夏の間ずっと収穫を楽しめます。": "プランターひとつで夏の間ずっと収穫を楽しめます",
    "この記事では、苗の選び方から収穫までの流れを、初めての人にもわかるように順番に説明します。":
        "この記事では、初めての人にもわかるように順番に説明します",
    "ミニトマトは、家庭菜園のなかでも特に育てやすい野菜です。": "ミニトマトは、家庭菜園のなかでも特に育てやすい野菜です",
    # a terminal form before a conjunctive particle ends the bullet (the particle is dropped)
    "わき芽をそのままにすると、栄養が分散して実が小さくなるので、小さいうちに手で摘み取りましょう。":
        "わき芽をそのままにすると、栄養が分散して実が小さくなる",
}


@pytest.mark.parametrize("sentence", list(SAMPLE_CASES))
def test_the_sample_articles_sentences_become_complete_bullets(sentence):
    """The sample's clause fragments are replaced by whole short sentences or clauses ending cleanly."""
    assert bullet_of(sentence, "ja", BULLET_CHARS) == SAMPLE_CASES[sentence]


def test_a_comma_between_nouns_is_not_a_clause_break():
    """「引数、戻り値」 lists nouns: the bullet does not start in the middle of the list."""
    bullet = bullet_of("型ヒントとは、変数や関数の引数、戻り値に期待する型を書き添える仕組みです。", "ja", BULLET_CHARS)
    assert not bullet.startswith("戻り値") and bullet_ends_cleanly(bullet, "ja") and len(bullet) <= BULLET_CHARS


def test_the_sample_slides_show_no_fragment_of_the_issue(settings):
    """None of the dangling bullets the issue lists appears on the sample's slides any more.

    (The title and closing slides list the section headings, which are the author's own words.)
    """
    script = write_extractive(SAMPLE, settings)
    bullets = [b for s in script.sections[1:-1] for b in s.slide.bullets]
    for fragment in ("良い苗は、茎が太くて節と節の間が詰まっており", "一番下の花房に、つぼみが付いているものを選ぶと",
                     "ひょろりと背の高い苗や、葉が黄色くなっている苗は", "日当たりのよいベランダがあれば",
                     "この記事では、苗の選び方から収穫までの流れを"):
        assert fragment not in bullets
    assert all(bullet_ends_cleanly(b, "ja") for b in bullets), bullets


@pytest.mark.parametrize("sentence, limit", [
    ("Coffee houses soon spread to Persia, Egypt, Syria and Turkey, where people gathered to talk.", 10),
    ("According to legend, a goat herder named Kaldi noticed that his goats became energetic, and he told the abbot.", 10),
    ("Prices rose by 3.5 percent last year, e.g. because of drought.", 10),
    ("Dr. Smith, a historian at the U.S. National Museum, estimates that about 2.25 billion cups are drunk.", 10),
])
def test_english_bullets_are_whole_or_cut_at_a_clean_clause(sentence, limit):
    """Long English sentences are cut at a clause break, never after and/but/that/e.g. or a comma."""
    bullet = bullet_of(sentence, "en", limit)
    assert len(bullet.split()) <= limit and bullet_ends_cleanly(bullet, "en"), bullet
    assert bullet.lower().replace(",", "") in sentence.lower().replace(",", "") or _is_subsequence(bullet.lower(), sentence.lower())
    assert bullet_of("The story is probably not true, but it is charming.", "en", limit) == \
        "The story is probably not true, but it is charming"


def test_bullets_are_deterministic(settings, tmp_path):
    """The same article gives a byte-identical script twice."""
    first = yaml.safe_dump(write_extractive(SAMPLE, settings).model_dump(mode="json"), allow_unicode=True)
    second = yaml.safe_dump(write_extractive(SAMPLE, settings).model_dump(mode="json"), allow_unicode=True)
    assert first == second


def test_nothing_fits_gives_a_noun_phrase_not_a_dangling_clause():
    """A long sentence without a clean clause that fits falls back to a noun phrase."""
    sentence = "大規模な組織で長年にわたって運用されてきた古いデータベース管理システムの移行計画を慎重に検討しています。"
    bullet = bullet_of(sentence, "ja", 20)
    assert len(bullet) <= 20 and bullet_ends_cleanly(bullet, "ja") and bullet in sentence, bullet
    assert not re.search(r"[をにがはでと]$", bullet)
