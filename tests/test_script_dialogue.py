"""The offline dialogue style: the extractive writer turns a real article into a two-persona conversation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stages.fetch import fetch_article
from stages.script.extractive import write_extractive
from stages.script.text import is_katakana_reading
from stages.settings import load_settings

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "ja-article.md"
HEADINGS = ["苗を選ぶ", "プランターと土の準備", "植え付けと支柱立て", "わき芽かきと追肥", "収穫のコツ", "まとめ"]


def dialogue_settings(tmp_path: Path):
    return load_settings(
        home=tmp_path / "home",
        personas=[{"id": "mint"}, {"id": "kohaku"}],
        default_persona="mint",
        script={"style": "dialogue"},
    )


def article_of(source: Path, tmp_path: Path, settings) -> dict:
    out = tmp_path / f"fetch-{source.stem}"
    out.mkdir(parents=True)
    return json.loads(Path(fetch_article(str(source), out, settings)).read_text("utf-8"))


def turns(section) -> list[tuple[str, str, str]]:
    """(persona, text, reading) per turn: consecutive phrases of one persona joined."""
    out: list[tuple[str, str, str]] = []
    for n in section.narrations:
        if out and out[-1][0] == n.persona_id:
            out[-1] = (n.persona_id, out[-1][1] + n.text, out[-1][2] + (n.reading or ""))
        else:
            out.append((n.persona_id, n.text, n.reading or ""))
    return out


@pytest.fixture
def sample(tmp_path):
    settings = dialogue_settings(tmp_path)
    return settings, write_extractive(article_of(SAMPLE, tmp_path, settings), settings)


def test_the_sample_article_becomes_a_conversation(sample):
    """The host opens and asks about every part by its heading; the guest answers from the article."""
    _settings, script = sample
    assert [s.title for s in script.sections[1:2]] == ["はじめに"]  # the text before the first heading
    body = script.sections[2:]  # the article's own まとめ is the closing section (no second まとめ)
    assert [s.title for s in body] == HEADINGS
    for section in body:
        said = turns(section)
        assert said[0][0] == "mint", f"{section.title}: the host does not open the part"
        question = said[0][1]
        if section.title == "まとめ":
            assert question.endswith("？")
        else:
            assert f"「{section.title}」" in question, f"the question {question!r} does not come from the heading"
        assert said[1][0] == "kohaku"
        guest = "".join(text for who, text, _ in said if who == "kohaku")
        host = "".join(text for who, text, _ in said if who == "mint")
        assert len(guest) > 2 * len(host)  # the guest explains, the host asks and nods
    first = turns(script.sections[0])
    assert first[0][0] == "mint" and "ベランダで始めるミニトマト栽培" in first[0][1]
    closing = turns(script.sections[-1])
    assert closing[-1][1] == "ご視聴ありがとうございました。"


def test_turns_alternate_and_stay_short(sample):
    """Speakers alternate turn by turn, both speak in every section, and no turn runs past three
    sentences (a list is read whole: its items count as one)."""
    _settings, script = sample
    for section in script.sections:
        said = turns(section)
        assert {who for who, _, _ in said} == {"mint", "kohaku"}, section.title
        assert all(a[0] != b[0] for a, b in zip(said, said[1:]))
        for who, text, _ in said:
            listed = sum(text.count(item) for item in MATERIALS)
            assert len(re.findall(r"[。！？]", text)) - max(0, listed - 1) <= 3, f"{who} talks too long: {text}"


HOST_LINES = ("「", "？", "とてもよくわかりました！")  # questions and thanks; anything else the host says is a filler
MATERIALS = ["深さ三十センチ以上のプランター。", "野菜用の培養土。", "長さ一・五メートルほどの支柱。", "麻ひもなどの誘引用のひも。"]


def fillers(script) -> list[tuple[int, int, str]]:
    """(section, narration index, text) of the host's short answers between the guest's lines."""
    out = []
    for k, section in enumerate(script.sections):
        for i, n in enumerate(section.narrations):
            if n.persona_id == "mint" and 0 < i < len(section.narrations) - 1 \
                    and section.narrations[i - 1].persona_id == section.narrations[i + 1].persona_id == "kohaku":
                out.append((k, i, n.text))
    return out


def test_a_list_is_read_without_a_filler_inside(sample):
    """The materials list of 「プランターと土の準備」 is said item after item by the guest alone."""
    _settings, script = sample
    section = next(s for s in script.sections if s.title == "プランターと土の準備")
    texts = [n.text for n in section.narrations]
    where = [texts.index(item) for item in MATERIALS]
    assert where == list(range(where[0], where[0] + len(MATERIALS))), texts
    assert all(section.narrations[i].persona_id == "kohaku" for i in where)


def test_fillers_never_repeat_and_are_sparing(sample):
    """No short answer of the host is said twice in the video, and there is at most one per
    paragraph boundary (never two in a row, never more than one per three sentences of the guest)."""
    _settings, script = sample
    said = [text for _k, _i, text in fillers(script)]
    assert said, "the host never answers"
    assert len(said) == len(set(said)), said
    guest = sum(1 for _s, _i, n in script.phrases() if n.persona_id == "kohaku" and n.text.endswith(("。", "？", "！")))
    assert len(said) <= guest / 3


def test_one_wrap_up_merged_with_the_articles_own_summary(sample):
    """The article's まとめ is the closing: the host asks for the gist once and no second recap is
    called for; the guest's summary goes straight on to what the video covered."""
    _settings, script = sample
    spoken = [n.text for _s, _i, n in script.phrases()]
    assert sum(t in ("ここまでをまとめると、どうなりますか？", "最後に、今回の内容を振り返りましょう。") for t in spoken) == 1
    assert [s.title for s in script.sections].count("まとめ") == 1
    closing = turns(script.sections[-1])
    assert [who for who, _, _ in closing] == ["mint", "kohaku", "mint", "kohaku"]
    assert closing[1][1].startswith("ミニトマト栽培のポイントは") and "について紹介しました。" in closing[1][1]


def test_the_recap_slide_lists_every_part(sample):
    """The closing section's slide is the recap card listing every part, and nothing in its lines
    replaces that card by a bullet list it does not have (an empty slide under 「まとめ」)."""
    from stages.slides.beats import State, plan_beats

    _settings, script = sample
    last = script.sections[-1]
    assert last.slide.layout == "closing" and last.slide.bullets == HEADINGS[:-1]
    assert all(n.bullet is None for n in last.narrations)
    _bullets, beats = plan_beats(last, first=False, layout="closing", bullets=[],
                                 durations=[2.0] * len(last.narrations), visual_pages=[], language="ja")
    assert beats == [(0, State("base"))]


def test_readings_are_katakana_and_follow_the_question(sample):
    """Every line has a katakana reading; the heading in a question is read as words (は as ワ)."""
    _settings, script = sample
    for _section, _i, narration in script.phrases():
        assert narration.reading and is_katakana_reading(narration.reading), narration
    questions = {s.title: turns(s)[0][2] for s in script.sections[2:-1]}
    assert "ナエヲエラブ" in questions["苗を選ぶ"]
    assert questions["プランターと土の準備"].startswith("ツギワ")


def test_the_dialogue_is_deterministic(tmp_path, sample):
    """Two runs on the same article write the same script."""
    settings, script = sample
    again = write_extractive(article_of(SAMPLE, tmp_path / "again", settings), settings)
    assert again.model_dump() == script.model_dump()


def test_no_url_or_markup_is_spoken(tmp_path):
    """A sentence holding a URL is left out; markup left by the extraction is not said."""
    article = tmp_path / "links.md"
    article.write_text(
        "# リンクの多い記事\n\n## 導入の手順\n\n"
        "詳しくは [公式サイト](https://example.com/docs) を見てください。"
        "設定は `config.toml` に書きます。参考: https://example.com/a?b=c です。"
        "*強調*と__太字__の説明です。snake_case の名前も使えます。\n\n"
        "- 手順その一 <b>タグ</b>\n- www.example.org を開く\n",
        encoding="utf-8",
    )
    settings = dialogue_settings(tmp_path)
    script = write_extractive(article_of(article, tmp_path, settings), settings)
    texts = [n.text for _s, _i, n in script.phrases()]
    readings = "".join(n.reading or "" for _s, _i, n in script.phrases())
    spoken = "".join(texts)
    assert not re.search(r"https?|www|example|[*`#|<>]", spoken), spoken
    assert "エイチティーティーピー" not in readings and "ダブリューダブリュー" not in readings
    assert "snake_case" in spoken and "config.toml" in spoken  # names inside words stay
    assert "手順その一" in spoken and "公式サイト" in spoken


def test_english_articles_get_an_english_dialogue(tmp_path):
    """The same conversation in English wording for an English article."""
    article = tmp_path / "en.md"
    article.write_text("# Caching\n\n## Why cache\n\nDisks are slow. Memory is fast. Caches keep hot data close."
                       " They trade memory for time.\n\n## When to evict\n\nLeast recently used is a good default.\n",
                       encoding="utf-8")  # fmt: skip
    settings = dialogue_settings(tmp_path)
    script = write_extractive(article_of(article, tmp_path, settings), settings)
    body = {s.title: turns(s) for s in script.sections}
    assert body["Why cache"][0] == ("mint", "Let's start with Why cache.Tell me about it.", "")
    assert body["When to evict"][0][1].startswith("Next up: When to evict.")
    assert [who for who, _, _ in body["Why cache"]] == ["mint", "kohaku", "mint", "kohaku"]


def test_expressions_only_for_characters_that_have_them(tmp_path, monkeypatch):
    """With the bundled characters some lines change expression (all of them ones the character has);
    without characters no line names an expression."""
    monkeypatch.chdir(tmp_path)  # the character folders are relative to the settings file, not here
    settings = load_settings(config=SAMPLE.parent / "offline-personas.toml", home=tmp_path / "home")
    script = write_extractive(article_of(SAMPLE, tmp_path, settings), settings)
    used = {n.expression for _s, _i, n in script.phrases()}
    assert {"happy", "surprised", "troubled"} <= used <= {None, "normal", "happy", "surprised", "troubled"}
    thanks = [n.expression for n in script.sections[-1].narrations if n.text in ("とてもよくわかりました！", "ご視聴ありがとうございました。")]
    assert thanks == ["happy", "happy"]
    plain = write_extractive(article_of(SAMPLE, tmp_path / "plain", dialogue_settings(tmp_path)), dialogue_settings(tmp_path))
    assert {n.expression for _s, _i, n in plain.phrases()} == {None}
