"""Readings of Latin-script words in Japanese narration (stages/script/readings.py)."""

from __future__ import annotations

import sys

import pytest

from stages.script import readings
from stages.script.text import is_katakana_reading, reading_for


@pytest.fixture
def fresh_caches():
    """Drop cached word and part readings, before and after the test."""
    readings.word_reading.cache_clear()
    readings._transliterated.cache_clear()
    yield
    readings.word_reading.cache_clear()
    readings._transliterated.cache_clear()


@pytest.fixture
def without_e2k(monkeypatch, fresh_caches):
    """e2k cannot be imported (as on an install without it)."""
    monkeypatch.setitem(sys.modules, "e2k", None)
    monkeypatch.setattr(readings, "_e2k_models", readings._UNLOADED)
    yield
    monkeypatch.undo()
    readings.word_reading.cache_clear()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GitHubでPythonのコードを書く", "ギットハブデパイソンノコードヲカク"),
        ("SQLiteのWALモード", "エスキューライトノワルモード"),
        ("Docker", "ドッカー"),
        ("TypeScript", "タイプスクリプト"),
        ("GitHubでコードを書く", "ギットハブデコードヲカク"),
        ("KubernetesとLinux", "クバネティストリナックス"),
        ("READMEを読む", "リードミーヲヨム"),
        ("JSONとYAML", "ジェイソントヤムル"),
        ("Node.jsとWi-Fi", "ノードジェイエストワイファイ"),
        ("iPhoneで.NETとC++", "アイフォーンデドットネットトシープラスプラス"),
        ("ＧｉｔＨｕｂ", "ギットハブ"),
    ],
)
def test_dictionary_words_read_as_engineers_say_them(text, expected):
    """Curated words get their dictionary reading; the Japanese around them keeps its own."""
    assert reading_for(text) == expected


def test_dictionary_is_case_insensitive():
    """github, GITHUB and GitHub read alike."""
    assert reading_for("github") == reading_for("GITHUB") == reading_for("GitHub") == "ギットハブ"


def test_every_dictionary_reading_is_katakana():
    """The shipped dictionary holds only katakana readings, and a few hundred words."""
    table = readings.loanwords()
    assert len(table) >= 300
    bad = {word: reading for word, reading in table.items() if not is_katakana_reading(reading)}
    assert bad == {}


@pytest.mark.parametrize("word", ["Zendesk", "geogaddi"])
def test_unknown_pronounceable_word_is_transliterated(word, fresh_caches):
    """A word in no dictionary is read as a word by e2k, not spelled letter by letter."""
    reading = reading_for(f"{word}を使う")
    assert reading.endswith("ヲツカウ")
    assert is_katakana_reading(reading)
    spelled = readings.spell(word)
    assert not reading.startswith(spelled[:4])
    assert len(reading) < len(spelled)


def test_unknown_word_reading_is_deterministic(fresh_caches):
    """The same word gives the same reading after the cache is dropped (greedy decoding)."""
    first = reading_for("Zendeskのチケット")
    readings.word_reading.cache_clear()
    readings._transliterated.cache_clear()
    assert reading_for("Zendeskのチケット") == first


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HTMLとCSS", "エイチティーエムエルトシーエスエス"),
        ("AWSのAPI", "エーダブリューエスノエーピーアイ"),
        ("VPNで接続", "ブイピーエヌデセツゾク"),
        ("HTTPServer", "エイチティーティーピーサーバー"),
    ],
)
def test_acronyms_are_spelled(text, expected):
    """Short all-capital words are spelled with the letter names, also inside camelCase."""
    assert reading_for(text) == expected


def test_words_pyopenjtalk_knows_keep_its_reading():
    """Units after numbers and words in pyopenjtalk's lexicon are left to it."""
    assert reading_for("10GBのメモリ") == "ジューギガバイトノメモリ"
    assert reading_for("50Hz") == "ゴジューヘルツ"
    assert reading_for("TVを見る") == "テレビヲミル"


def test_numbers_keep_pyopenjtalks_reading():
    """Digits next to a word are read as numbers by g2p."""
    assert reading_for("Python3で書く") == "パイソンサンデカク"
    assert reading_for("2024年にGitHubへ") == "ニセンニジューヨネンニギットハブエ"


def test_compounds_are_read_part_by_part(fresh_caches):
    """camelCase, dotted and underscored words are cut into parts the dictionary knows."""
    assert reading_for("GitHubActions") == "ギットハブアクションズ"
    assert reading_for("macOS") == "マックオーエス"
    assert reading_for("example.com") == readings.word_reading("example") + "ドットコム"


@pytest.mark.parametrize(
    "text",
    [
        "GitHubでPythonのコードを書く",
        "Zendeskとgeogaddiとfoo_barBazとxyzzy、それから3DとIPv6。",
        "Visual Studio Codeで don't panic と書いた！",
        "ＡＢＣ１２３のｅ－ｍａｉｌ",
    ],
)
def test_output_is_katakana_only(text, fresh_caches):
    """Whatever the Latin words, the reading holds only katakana and pauses."""
    reading = reading_for(text)
    assert reading
    assert is_katakana_reading(reading)


def test_user_pronunciation_wins():
    """An entry of settings.pronunciation beats the curated dictionary and e2k."""
    assert reading_for("GitHubを使う", [("GitHub", "ギッハブ")]) == "ギッハブヲツカウ"
    assert reading_for("Zendeskを使う", [("Zendesk", "ゼンデス")]) == "ゼンデスヲツカウ"


def test_without_e2k_falls_back_to_g2p(without_e2k):
    """Without e2k, unknown words are spelled by g2p; dictionary words still read right."""
    assert readings._e2k() is None
    assert reading_for("Zendesk") == "ゼットイーエヌディーイーエスケー"
    assert reading_for("GitHubでコードを書く") == "ギットハブデコードヲカク"
    assert is_katakana_reading(reading_for("geogaddiとxyzzy"))


def test_multi_word_and_symbol_entries():
    """Dictionary entries with spaces or symbols match as a whole."""
    assert reading_for("App Storeで配信") == "アップストアデハイシン"
    assert reading_for("E2EテストとCI/CD") == "イートゥーイーテストトシーアイシーディー"


def test_llm_readings_that_are_not_katakana_get_the_same_treatment():
    """A reading the LLM wrote with Latin letters is read like narration text."""
    from stages.script.text import normalise_reading

    assert normalise_reading("Dockerで動かす") == "ドッカーデウゴカス"
    assert normalise_reading("ドッカー") == "ドッカー"


def test_a_dropped_script_without_readings_reads_latin_words_as_words(tmp_path):
    """A dropped Japanese script's GitHub is ギットハブ, not spelled letter by letter; given readings stay."""
    from stages.script import adopt_script
    from stages.settings import load_settings

    source = tmp_path / "s.yaml"
    source.write_text(
        "title: t\nlanguage: ja\nsections:\n  - title: a\n    narrations:\n"
        "      - GitHubにプッシュします。\n      - {text: Docker, reading: ドッカーサン}\n      - こんにちは。\n",
        encoding="utf-8",
    )
    script = adopt_script(source, tmp_path / "script.yaml", load_settings(home=tmp_path))
    first, given, plain = script.sections[0].narrations
    assert first.reading and first.reading.startswith("ギットハブ") and "ジーアイ" not in first.reading
    assert given.reading == "ドッカーサン"
    assert plain.reading is None


def test_e2k_on_one_blas_thread_reads_the_same_and_restores_the_pool(fresh_caches):
    """Decoding on one BLAS thread gives e2k's own katakana, and the BLAS pool is given back."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    models = readings._e2k()
    if models is None:
        pytest.skip("e2k is not installed")
    c2k, _ngram, one_blas_thread = models
    controller = threadpoolctl.ThreadpoolController()
    before = [lib.num_threads for lib in controller.select(user_api="blas").lib_controllers]
    words = ["percolation", "zendesk", "boltzmann", "geogaddi"]
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        unlimited = [c2k(word) for word in words]
    assert [readings._part_reading(word) for word in words] == unlimited
    with one_blas_thread():
        assert {lib.num_threads for lib in controller.select(user_api="blas").lib_controllers} <= {1}
    assert [lib.num_threads for lib in threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers] == before


def test_dictionary_words_alone_need_no_lexicon_check():
    """A text whose Latin words are all in the dictionary is not analysed for them; the reading is the same."""
    from stages.jtalk import analyse

    text = "GitHubとDockerを使う"
    assert all(word.lower() in readings.loanwords() for word in ("GitHub", "Docker"))
    analyse.cache_clear()
    assert readings.katakanize_latin(text) == "ギットハブとドッカーを使う"
    assert analyse.cache_info().misses == 0
    assert readings.known_words(analyse(text)) == frozenset()  # what the check would have found


def test_a_part_shared_by_words_is_transliterated_once(fresh_caches):
    """Union-Find and UnionFind share their parts: e2k decodes each once, and both read alike."""
    if readings._e2k() is None:
        pytest.skip("e2k is not installed")
    assert "union" not in readings.loanwords() and "find" not in readings.loanwords()
    first = readings.word_reading("Union-Find")
    decoded = readings._transliterated.cache_info().misses
    assert readings.word_reading("UnionFind") == first
    assert readings._transliterated.cache_info().misses == decoded
    readings._transliterated.cache_clear()
    readings.word_reading.cache_clear()
    assert readings.word_reading("UnionFind") == first  # the cache gives what e2k gives
