"""Kinsoku line breaking and the fontconfig font finder."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from PIL import ImageFont

from stages.fonts import FontNotFound, find_font, find_font_face, font_family_name
from stages.linebreak import (
    FORBIDDEN_END,
    FORBIDDEN_START,
    WIDOW_CHARS,
    kinsoku_units,
    phrases,
    tokens,
    widow_free_break,
    wrap,
    wrap_balanced,
)


def chars(text: str) -> float:
    """A monospace measure: every character is one unit wide."""
    return float(len(text))


def test_forbidden_sets_cover_the_issue_list():
    """The characters named in the issue are in the forbidden sets."""
    for char in "。、」）ーぁぃぅぇぉっゃゅょァィゥェォッャュョ":
        assert char in FORBIDDEN_START
    for char in "「（":
        assert char in FORBIDDEN_END


def test_no_line_starts_with_closing_punctuation():
    """A full stop that would start a line takes the character before it along (oidashi).

    The phrases here are wider than the line, so they are split by characters, and a split
    phrase first fills what is left of the current line."""
    lines = wrap("あいうえお。かきくけこ」", 5, chars)
    assert lines[:2] == ["あいうえ", "お。かきく"]
    assert all(line[0] not in FORBIDDEN_START for line in lines)


def test_no_line_ends_with_opening_bracket():
    """An opening bracket moves to the next line with the word it opens."""
    lines = wrap("あいうえ「かきくけこ」", 5, chars)
    assert lines[0] == "あいうえ"
    assert lines[1].startswith("「")


def test_small_kana_and_long_vowel_stay_with_previous_character():
    """Small kana and ー never start a line."""
    for text in ["コーヒーコーヒーコーヒー", "きゃっきゃっきゃっきゃっ", "チョコレートケーキ"]:
        for width in range(2, 8):
            for line in wrap(text, width, chars):
                assert line[0] not in FORBIDDEN_START, (text, width, line)


def test_latin_words_are_never_broken():
    """English text breaks between words only."""
    text = "The quick brown fox jumps over the lazy dog, again and again."
    lines = wrap(text, 16, chars)
    assert " ".join(lines) == text
    assert all(len(line) <= 16 for line in lines)


def test_mixed_japanese_and_latin_keep_words_whole():
    """A Latin word inside Japanese text is one unit."""
    lines = wrap("今日はPythonとJavaScriptの話です。", 12, chars)
    assert "".join(lines) == "今日はPythonとJavaScriptの話です。"
    assert any("JavaScript" in line for line in lines)


def test_a_word_wider_than_the_line_is_split_as_last_resort():
    """Only a single over-long word is split by characters, every piece fitting."""
    lines = wrap("Supercalifragilisticexpialidocious", 10, chars)
    assert "".join(lines) == "Supercalifragilisticexpialidocious"
    assert all(len(line) <= 10 for line in lines)


def test_newlines_are_hard_breaks_and_spaces_are_trimmed():
    """Newlines force breaks; lines carry no leading or trailing spaces."""
    assert wrap("  one two  \nthree", 100, chars) == ["one two", "three"]
    assert wrap("", 10, chars) == []


def test_tokens_glue_kinsoku_characters():
    """Forbidden-start characters join the unit before, forbidden-end the unit after."""
    assert kinsoku_units("「はい」。") == ["「は", "い」。"]
    assert tokens("「はい」。") == ["「はい」。"]  # one phrase
    assert tokens("Hello, world!") == ["Hello,", " ", "world!"]


JA = st.text(alphabet="あいうえおかきくけこ漢字仮名。、」）ー「（っゃァヵabc XYZ", min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(text=JA, width=st.integers(min_value=3, max_value=20))
def test_property_kinsoku_holds_and_nothing_is_lost(text, width):
    """For any text: no content is lost, lines fit, and kinsoku holds wherever it can."""
    lines = wrap(text, width, chars)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    for i, line in enumerate(lines):
        assert len(line) <= width or len(kinsoku_units(line)) == 1  # only an indivisible cluster overflows
        if i > 0:
            assert line[0] not in FORBIDDEN_START or not text.lstrip().startswith(line)
        if i < len(lines) - 1:
            assert line[-1] not in FORBIDDEN_END


def test_wrap_with_a_real_font_measure():
    """Measured with Noto Sans CJK, each line fits the width in pixels."""
    font = ImageFont.truetype(str(find_font()), 40)
    text = "保存ボタンを押すと、一瞬固まるのだ！原因はメインスレッドでの同期I/Oなのだ。"
    lines = wrap(text, 400, font.getlength)
    assert len(lines) >= 3
    assert all(font.getlength(line) <= 400 for line in lines)
    assert all(line[0] not in FORBIDDEN_START for line in lines)


def test_find_font_default_covers_japanese():
    """The default family resolves to a Noto Sans CJK file, regular and bold."""
    regular = find_font()
    bold = find_font(bold=True)
    assert regular.is_file() and bold.is_file()
    assert "CJK" in regular.name
    assert regular != bold
    assert font_family_name(regular) == "Noto Sans CJK JP"


def test_find_font_accepts_a_file_path():
    """A font file that covers Japanese is accepted as is, with its face index."""
    face = find_font_face(str(find_font()))
    assert face.path == find_font()
    assert face.index == 0


def test_font_without_japanese_is_refused_with_install_hint(tmp_path: Path):
    """A Latin-only font, a missing file, or no fontconfig at all gives FontNotFound naming the package."""
    for family in ["DejaVu Sans", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", str(tmp_path / "none.ttf")]:
        with pytest.raises(FontNotFound, match="fonts-noto-cjk"):
            find_font(family)


def test_missing_fontconfig_gives_install_hint(monkeypatch):
    """Without fc-match on PATH the error says what to install."""
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(FontNotFound, match="apt-get install fonts-noto-cjk"):
        find_font("Some Family That Is Not Cached")


def test_wrap_balanced_leaves_no_orphan():
    """Two lines come out even at a kinsoku-legal break instead of a greedy full line plus one kana."""
    text = "古いデータは定期的に消して、容量不足を避けましょう"
    width = len(text) - 1
    assert wrap(text, width, len)[-1] == "避けましょう"  # greedy: a long line and a short one
    lines = wrap_balanced(text, width, len)
    assert lines == ["古いデータは定期的に消して、", "容量不足を避けましょう"]  # at the phrase nearest the middle


def test_wrap_balanced_keeps_kinsoku_words_and_other_line_counts():
    # the middle falls inside "Python" and before "、": the nearest phrase boundary is taken
    assert wrap_balanced("これはPythonの、テストです", 11, len) == ["これはPythonの、", "テストです"]
    assert wrap_balanced("短い", 10, len) == ["短い"]
    long = "あ" * 25
    assert wrap_balanced(long, 10, len) == wrap(long, 10, len)  # three lines: as wrap
    assert wrap_balanced("一行目\n二行目です", 10, len) == ["一行目", "二行目です"]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="あいうえおかきくけこっゃー。、「」ab ", min_size=1, max_size=30), st.integers(4, 20))
def test_property_wrap_balanced_fits_and_loses_nothing(text, width):
    lines = wrap_balanced(text, width, len)
    greedy = wrap(text, width, len)
    assert len(lines) == len(greedy)
    assert "".join(lines).replace(" ", "") == "".join(greedy).replace(" ", "")
    if len(lines) == 2:
        assert max(map(len, lines)) <= max(map(len, greedy))


def test_widow_free_break_moves_the_break_back_for_a_lone_particle():
    """「…苗」/「は」 becomes 「…苗は」 on the second line: the last line gets 3+ characters."""
    text = "ベランダで育てた葉が黄色くなっている苗は"  # 20 characters on 18-wide lines: greedy leaves 「苗は」
    assert wrap(text, 18, chars)[-1] == "苗は"
    first, rest = widow_free_break(text, 18, 18, chars)
    assert first + rest == text and len(rest) >= WIDOW_CHARS and len(first) <= 18
    assert first == "ベランダで育てた葉が" and rest == "黄色くなっている苗は"  # the latest phrase boundary


def test_widow_free_break_keeps_kinsoku_and_says_none_when_nothing_to_fix():
    """Kinsoku still holds after the move; no widow or no legal break gives None."""
    first, rest = widow_free_break("苗を植えたら水をやる。よし", 11, 11, chars)  # greedy: 「よし」 alone
    assert (first, rest) == ("苗を植えたら水を", "やる。よし")  # 。 stays with its phrase
    assert widow_free_break("あいうえお", 10, 10, chars) is None  # one line
    assert widow_free_break("あいうえおかきくけこさしす", 10, 10, chars) is None  # the rest has 3 already
    assert widow_free_break("あいうえおかきくけこ" * 2 + "さ", 10, 10, chars) is None  # two more lines: not the last
    assert widow_free_break("あいうえお", 4, 4, chars) is None  # moving would leave a short first line


def test_widow_free_break_respects_the_next_line_width():
    """The rest must fit the next line, which may be narrower (beside a corner)."""
    assert widow_free_break("あいうえおかきくけこさ", 10, 2, chars) is None
    first, rest = widow_free_break("the quick brown fox ok", 19, 19, chars)
    assert (first, rest) == ("the quick brown", "fox ok")


@settings(max_examples=200, deadline=None)
@given(text=JA, width=st.integers(min_value=6, max_value=20))
def test_property_widow_free_break_loses_nothing_and_fits(text, width):
    """Whenever it answers, the text is kept, both lines fit, the rest is 3+ characters and kinsoku holds."""
    answer = widow_free_break(text, width, width, chars)
    if answer is None:
        return
    first, rest = answer
    assert (first + rest).replace(" ", "") == text.replace(" ", "")
    assert len(first) <= width and len(rest) <= width
    assert len(rest.replace(" ", "")) >= WIDOW_CHARS and len(first.replace(" ", "")) >= WIDOW_CHARS
    assert rest[0] not in FORBIDDEN_START and first[-1] not in FORBIDDEN_END


DEMO = [
    "日当たりのよいベランダがあれば、プランターひとつで夏の間ずっと収穫を楽しめます",
    "ひょろりと背の高い苗や、葉が黄色くなっている苗は避けましょう",
    "最初の実がふくらみ始めたら、二週間に一度を目安に追肥をします",
    "植え付けたらすぐに支柱を立て、茎を八の字に結んでゆるく固定します",
    "毎日少しずつ様子を見ながら、自分で育てたトマトの味をぜひ楽しんでください",
    "一番下の花房に、つぼみが付いているものを選ぶと、その後の生育が安定します",
    "わき芽をそのままにすると、栄養が分散して実が小さくなるので、小さいうちに手で摘み取りましょう",
]
BAD = ["プラン|ター", "黄|色く", "二|週間", "茎|を", "育|てた", "生|育", "小|さく", "避け|ましょう", "楽しんで|ください",
       "なって|いる", "付いて|いる"]


@pytest.mark.parametrize("width", range(10, 31))
def test_demo_sentences_break_only_between_phrases(width):
    """The issue's bad breaks (inside a word, before a particle or an auxiliary) never happen,
    whether wrapped greedily or balanced, at any width a phrase fits in."""
    for text in DEMO:
        for lines in (wrap(text, width, chars), wrap_balanced(text, width, chars)):
            assert "".join(lines) == text
            joined = "|".join(lines)
            assert not [b for b in BAD if b in joined], (width, joined)


def test_dictionary_vetoes_budoux_boundaries_inside_words_and_set_phrases():
    """BudouX's guesses are checked against pyopenjtalk's dictionary: no break before a dependent
    verb (「とめて/おく」) and none inside a compound particle (「に/ついて」, 「と/いう」)."""
    assert phrases("「コスト関数」について見ていきます") == ["「コスト関数」に", "ついて", "見ていきます"]
    assert tokens("「コスト関数」について見ていきます") == ["「コスト関数」について", "見ていきます"]
    assert tokens("嫌いでもない」という情報から") == ["嫌いでもない」という", "情報から"]
    assert tokens("万次元くらいでとめておくか") == ["万次元くらいでとめておくか"]
    # with no Japanese analysis possible, the set phrases still hold
    assert "ついて" not in tokens("$\\vec{x}$」について")


def test_a_phrase_wider_than_the_line_splits_at_its_words_first():
    """「419378回インクリメントする」 is one phrase: on a narrow line it splits between words,
    never 「イ/ンクリメント」; only a word wider than the line is split by characters."""
    lines = wrap("419378回インクリメントする", 9, chars)
    assert lines == ["419378回", "インクリメント", "する"] or lines == ["419378回", "インクリメントする"]
    assert "".join(wrap("インクリメント", 4, chars)) == "インクリメント"  # the last resort still loses nothing


def test_a_wave_dash_after_a_space_does_not_start_a_line():
    """Kinsoku across a space: 「基礎 ～微分編～」 keeps ～ on the line before."""
    for width in range(4, 20):
        for line in wrap("制限ボルツマンマシンの基礎 ～微分編～について解説します", width, chars)[1:]:
            assert line[0] not in FORBIDDEN_START, (width, line)
