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
        assert len(line) <= width or " " not in line and len(tokens(line)) == 1
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
    first, rest = widow_free_break("あいうえおかきくけ。こ", 10, 10, chars)
    assert rest[0] not in FORBIDDEN_START and first + rest == "あいうえおかきくけ。こ"
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
