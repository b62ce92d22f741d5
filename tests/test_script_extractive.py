"""The extractive writer and the text rules under it: golden properties, not exact text."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings as hsettings, strategies as st

from stages.base import Cancelled, InputError
from stages.script import estimate_script_seconds, generate_script, load_script
from stages.script.extractive import BULLET_CHARS, write_extractive
from stages.script.text import (
    is_katakana_reading,
    reading_for,
    split_phrases,
    split_sentences,
    to_katakana_reading,
)
from stages.settings import load_settings

DATA = Path(__file__).parent / "data"
JA = json.loads((DATA / "script_article_ja.json").read_text(encoding="utf-8"))
EN = json.loads((DATA / "script_article_en.json").read_text(encoding="utf-8"))


@pytest.fixture
def settings(tmp_path):
    return load_settings(home=tmp_path)


def body(script):
    return script.sections[1:-1]


def test_japanese_phrases_are_within_40_characters_with_katakana_readings(settings):
    """Every Japanese phrase is at most 40 characters and has a katakana reading."""
    script = write_extractive(JA, settings)
    phrases = [n for _, _, n in script.phrases()]
    assert phrases
    for narration in phrases:
        assert 0 < len(narration.text) <= 40, narration.text
        assert narration.reading and is_katakana_reading(narration.reading), narration.reading


def test_english_phrases_are_within_15_words_without_readings(settings):
    """English phrases are at most 15 words; the voice reads the text, so there is no reading."""
    script = write_extractive(EN, settings)
    for _, _, narration in script.phrases():
        assert 0 < len(narration.text.split()) <= 15, narration.text
        assert narration.reading is None
    assert script.language == "en"


def test_sections_follow_the_headings_between_opening_and_closing(settings):
    """Body sections are the article's top headings in order; the opening and closing wrap them."""
    script = write_extractive(JA, settings)
    titles = [s.title for s in script.sections]
    assert titles == ["Pythonの型ヒント入門", "はじめに", "型ヒントとは", "静的解析ツール", "まとめと今後", "まとめ"]
    assert script.sections[0].slide.layout == "title"
    assert script.sections[-1].slide.layout == "closing"
    assert "Pythonの型ヒント入門" in script.sections[0].narrations[0].text
    english = write_extractive(EN, settings)
    assert [s.title for s in body(english)] == ["Introduction", "Origins in Ethiopia", "Coffee houses", "Coffee today"]


def test_lists_are_narrated_and_code_is_not(settings):
    """List items become narration; code blocks never do."""
    script = write_extractive(JA, settings)
    spoken = "".join(n.text for _, _, n in script.phrases())
    assert "mypyは最も歴史のある型チェッカーです" in spoken
    assert "greet" not in spoken and "def " not in spoken
    english = " ".join(n.text for _, _, n in write_extractive(EN, settings).phrases())
    assert "Constantinople in 1554." in english and "brew" not in english


def test_slides_have_headings_bullets_and_the_sections_first_image(settings):
    """Each body slide has its heading, 2–5 bullets, and the first image of its section."""
    script = write_extractive(JA, settings)
    for section in body(script):
        assert section.slide.heading == section.title
        assert 2 <= len(section.slide.bullets) <= 5
        assert all(len(b) <= BULLET_CHARS for b in section.slide.bullets)
    by_title = {s.title: s for s in script.sections}
    assert by_title["型ヒントとは"].slide.image == "https://example.com/img/hints.png"
    assert by_title["型ヒントとは"].source_image_url == "https://example.com/img/hints.png"
    assert by_title["静的解析ツール"].slide.image is None
    assert "設定のコツ" in by_title["静的解析ツール"].slide.bullets  # a subheading is a bullet


def test_sentences_respect_japanese_quotes(settings):
    """A quote's inner 。 does not end the sentence; the sentence stays whole in the script."""
    script = write_extractive(JA, settings)
    texts = [n.text for _, _, n in script.phrases()]
    assert "彼は「型ヒントは未来の自分への手紙だ。」と言いました。" in texts


def test_same_input_gives_byte_identical_yaml(tmp_path, settings):
    """Two runs over the same article write the same bytes."""
    article = tmp_path / "article.json"
    article.write_text(json.dumps(JA, ensure_ascii=False), encoding="utf-8")
    first = generate_script(article, tmp_path / "a", settings).read_bytes()
    second = generate_script(article, tmp_path / "b", settings).read_bytes()
    assert first == second
    assert load_script(tmp_path / "a" / "script.yaml", settings).title == "Pythonの型ヒント入門"
    yaml.safe_load(first.decode("utf-8"))


def long_article() -> dict:
    """Eight sections of eight sentences each: far more than a minute of speech."""
    blocks = []
    for i in range(8):
        blocks.append({"type": "heading", "level": 2, "text": f"第{i + 1}章の話題"})
        sentences = "".join(f"これは第{i + 1}章の{j + 1}番目の文で、記事の内容を説明するためのそれなりに長い文章です。" for j in range(8))
        blocks.append({"type": "paragraph", "text": sentences})
    return {"url": "https://example.com/long", "title": "長い記事", "language": "ja", "blocks": blocks}


def test_max_minutes_trims_but_keeps_opening_closing_and_order(tmp_path):
    """A shorter max_minutes gives a shorter script; opening, closing and the first section stay."""
    article = long_article()
    full = write_extractive(article, load_settings(home=tmp_path, script={"max_minutes": 30}))
    short = write_extractive(article, load_settings(home=tmp_path, script={"max_minutes": 1}))
    assert estimate_script_seconds(short) < estimate_script_seconds(full)
    assert estimate_script_seconds(short) <= 60
    assert short.sections[0].slide.layout == "title" and short.sections[-1].slide.layout == "closing"
    assert body(short)[0].title == "第1章の話題"
    short_titles = [s.title for s in body(short)]
    assert short_titles == [s.title for s in body(full)][: len(short_titles)]
    for section in body(short):  # trailing sentences go first: what is left is a prefix
        full_section = next(s for s in body(full) if s.title == section.title)
        kept = [n.text for n in section.narrations]
        assert kept == [n.text for n in full_section.narrations][: len(kept)]


def test_articles_without_headings_are_grouped_into_sections(settings):
    """Paragraphs without headings are grouped under neutral labels (その1), never a sentence fragment;
    the opening and the recap name only the title, and the recap slide lists a point of every part."""
    paragraphs = [
        {"type": "paragraph", "text": f"段落{i}の最初の文です。" + "内容を説明する文がここに続きます。" * 8} for i in range(6)
    ]
    script = write_extractive({"title": "見出しのない記事", "language": "ja", "blocks": paragraphs}, settings)
    parts = body(script)
    assert len(parts) >= 2
    assert [s.title for s in parts] == [f"その{n}" for n in range(1, len(parts) + 1)]
    spoken = " ".join(n.text for s in (script.sections[0], script.sections[-1]) for n in s.narrations)
    assert "その1" not in spoken and "段落" not in spoken and "見出しのない記事" in spoken
    assert len(script.sections[-1].slide.bullets) == len(parts)


def test_dialogue_style_alternates_the_first_two_personas(tmp_path):
    """With style = dialogue, sentences alternate between the first two personas."""
    settings = load_settings(
        home=tmp_path,
        personas=[{"id": "zundamon"}, {"id": "metan"}, {"id": "tsumugi"}],
        default_persona="zundamon",
        script={"style": "dialogue"},
    )
    script = write_extractive(EN, settings)
    speakers = [n.persona_id for _, _, n in script.phrases()]
    assert set(speakers) == {"zundamon", "metan"}
    assert speakers[0] == "zundamon"
    single = write_extractive(EN, load_settings(home=tmp_path, personas=[{"id": "zundamon"}, {"id": "metan"}], default_persona="metan"))
    assert {n.persona_id for _, _, n in single.phrases()} == {"metan"}


def test_pronunciation_entries_shape_the_reading(tmp_path):
    """A pronunciation entry's reading replaces g2p's for its surface."""
    settings = load_settings(home=tmp_path, pronunciation=[{"surface": "mypy", "reading": "マイパイ"}])
    script = write_extractive(JA, settings)
    readings = [n.reading for _, _, n in script.phrases() if "mypy" in n.text]
    assert readings and all("マイパイ" in r for r in readings)


def test_an_article_with_nothing_to_say_is_an_input_error(settings):
    """Only code and images: there is nothing to narrate."""
    article = {"title": "x", "language": "en", "blocks": [{"type": "code", "text": "print(1)"}, {"type": "image", "src": "a.png"}]}
    with pytest.raises(InputError, match="no text to narrate"):
        write_extractive(article, settings)
    with pytest.raises(InputError, match="blocks"):
        write_extractive({"title": "x"}, settings)


def test_cancel_stops_between_sections(settings):
    """A set cancellation token stops the writer with Cancelled."""
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        write_extractive(JA, settings, cancel=cancel)


def test_progress_reports_every_section(settings):
    """Progress goes up to total, one call per section plus the end."""
    calls = []
    write_extractive(JA, settings, lambda c, t, m: calls.append((c, t, m)))
    assert calls[-1][0] == calls[-1][1]
    assert [c for c, _, _ in calls] == sorted(c for c, _, _ in calls)
    assert len(calls) >= 5


# --- the text rules ------------------------------------------------------------------------


def test_japanese_sentences_split_on_end_marks_outside_quotes():
    """。！？ end sentences, except inside 「」."""
    text = "彼は「本当に？それはすごい。」と言った。次の文です！最後？"
    assert split_sentences(text, "ja") == ["彼は「本当に？それはすごい。」と言った。", "次の文です！", "最後？"]
    assert split_sentences("「閉じない引用。次の文。", "ja") == ["「閉じない引用。", "次の文。"]


def test_english_sentences_keep_abbreviations_and_decimals():
    """Dr., U.S., e.g. and 2.25 do not end sentences."""
    text = "Dr. Smith of the U.S. Museum paid $2.25 for it. It was e.g. cheap. Yes!"
    assert split_sentences(text, "en") == ["Dr. Smith of the U.S. Museum paid $2.25 for it.", "It was e.g. cheap.", "Yes!"]


def test_long_japanese_sentence_splits_at_natural_breaks_never_inside_words():
    """Cuts fall after 、 or particles; ASCII words and numbers stay whole."""
    sentence = "2024年には100%のユーザーがGitHub Actionsを使ってCI/CDパイプラインを自動化しているという調査結果が発表されました！"
    phrases = split_phrases(sentence, "ja")
    assert len(phrases) == 2 and all(len(p) <= 40 for p in phrases)
    assert "".join(phrases) == sentence
    for word in ("2024", "100%", "GitHub", "Actions", "CI/CD", "パイプライン"):
        assert any(word in p for p in phrases), word
    comma = split_phrases("型ヒントとは、変数や関数の引数、戻り値に期待する型を書き添える仕組みであり、とても便利です。", "ja")
    assert all(p.endswith(("、", "。")) for p in comma[:-1]) or len(comma) == 1


def test_long_english_sentence_prefers_commas_and_conjunctions():
    """English cuts fall after commas or before conjunctions when possible."""
    sentence = ("According to legend, a goat herder named Kaldi noticed that his goats became unusually energetic "
                "after eating the red berries of a certain shrub, and he told the abbot.")
    phrases = split_phrases(sentence, "en")
    assert " ".join(phrases) == sentence
    assert all(len(p.split()) <= 15 for p in phrases)
    assert phrases[0].endswith(",") or phrases[1].split()[0] in {"that", "and", "after"}


JA_FRAGMENTS = ["今日は", "型ヒント", "について", "説明します", "、", "。", "Python", "3.11", "の", "新機能", "が",
                "とても", "便利で", "開発者", "にとって", "大切な", "ポイント", "です", "！", "「引用」", "100%", "を", "使って"]


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(JA_FRAGMENTS), min_size=1, max_size=40))
def test_japanese_phrases_keep_every_character_and_the_bound(fragments):
    """Phrases re-join to the sentence and stay within 40 characters (no word is longer)."""
    sentence = "".join(fragments)
    phrases = split_phrases(sentence, "ja")
    assert "".join(phrases) == sentence
    assert all(len(p) <= 40 for p in phrases)


@pytest.mark.parametrize("text", ["APIって何？", "2026年は100%ヤバい", "ひらがなだけ", "GitHub Actions"])
def test_readings_are_katakana(text):
    """g2p readings are reduced to katakana and pauses."""
    reading = reading_for(text)
    assert reading and is_katakana_reading(reading)


def test_to_katakana_reading_converts_hiragana_and_drops_symbols():
    """Hiragana becomes katakana; symbols the voice cannot speak go."""
    assert to_katakana_reading("こんにちは／「セカイ」!") == "コンニチハセカイ！"


def test_language_is_guessed_when_the_article_does_not_say(settings):
    """No language field: kana means Japanese, Latin letters English (readings only for ja)."""
    english = {k: v for k, v in EN.items() if k != "language"}
    assert write_extractive(english, settings).language == "en"
    japanese = {k: v for k, v in JA.items() if k != "language"}
    script = write_extractive(japanese, load_settings(home=settings.home, script={"language": "en"}))
    assert script.language == "ja" and all(n.reading for _, _, n in script.phrases())


def test_many_short_sections_give_fewer_whole_sections_not_one_liners(tmp_path):
    """With more headings than the budget allows, later sections go and kept ones stay whole."""
    blocks = []
    for i in range(20):
        blocks.append({"type": "heading", "level": 2, "text": f"話題{i + 1}"})
        blocks.append({"type": "paragraph", "text": "短い説明の文です。もう一つ説明の文があります。最後にまとめの文が来ます。"})
    article = {"title": "見出しの多い記事", "language": "ja", "blocks": blocks}
    full = write_extractive(article, load_settings(home=tmp_path, script={"max_minutes": 30}))
    short = write_extractive(article, load_settings(home=tmp_path, script={"max_minutes": 2}))
    assert 1 <= len(body(short)) < len(body(full)) == 20
    assert [s.title for s in body(short)] == [f"話題{i + 1}" for i in range(len(body(short)))]
    assert all(len(s.narrations) == len(body(full)[0].narrations) for s in body(short))
    assert estimate_script_seconds(short) <= 120
