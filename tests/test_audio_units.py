"""The audio stage's building blocks: text cleaning and splitting, resampling, levelling, WAV."""

import numpy as np
import pytest

from stages.audio.level import level, peak_db, speech_level_db
from stages.audio.text import clean_for_speech, is_speakable, mora_count, split_for_speech, to_fullwidth
from stages.audio.wav import decode_wav, encode_wav, resample


@pytest.mark.parametrize(
    "raw, spoken",
    [
        ("保存するのだ🎉", "保存するのだ"),
        ("👍🏽 いいね！", "いいね！"),
        ("家族👨‍👩‍👧です", "家族です"),
        ("♪ラララ★", "ラララ"),
        ("Hello\u200b  world\n", "Hello world"),
        ("価格は$100、50%オフ", "価格は$100、50%オフ"),
    ],
)
def test_emoji_and_unsayable_symbols_are_removed(raw, spoken):
    """Emoji (with skin tones and joiners), pictographs and invisible characters go; text stays."""
    assert clean_for_speech(raw) == spoken


def test_punctuation_alone_is_not_speakable():
    """A phrase of only symbols or emoji has nothing to say."""
    assert not is_speakable(clean_for_speech("🎉！？…"))
    assert is_speakable("あ")


def test_long_text_is_split_at_sentence_ends_first():
    """Splitting prefers sentence ends, keeps every piece within the limit and loses no text."""
    text = "これは最初の文です。" * 3 + "そして、これは読点で区切られた、とても長い二番目の文なのです。"
    pieces = split_for_speech(text, 40)
    assert all(len(p) <= 40 for p in pieces)
    assert "".join(pieces) == text
    assert pieces[0].endswith("。")


def test_text_without_breaks_is_cut_hard():
    """A run with no natural break is still cut to the limit."""
    pieces = split_for_speech("あ" * 95, 40)
    assert [len(p) for p in pieces] == [40, 40, 15]


def test_fullwidth_and_morae():
    """Helpers for dictionary entries: MeCab's full-width surface, and a katakana mora count."""
    assert to_fullwidth("GNU 2") == "ＧＮＵ\u3000２"
    assert mora_count("キャッシュ") == 3
    assert mora_count("ムービージェン") == 6


@pytest.mark.parametrize("src", [22050, 24000])
def test_resampler_keeps_a_tone_and_the_duration(src):
    """A 1 kHz tone resampled to 48 kHz is still that tone, with the same duration."""
    t = np.arange(src) / src
    out = resample(0.5 * np.sin(2 * np.pi * 1000 * t), src, 48000)
    assert out.size == 48000
    ref = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(48000) / 48000)
    assert np.max(np.abs(out - ref)[1000:-1000]) < 1e-3


def test_resampler_removes_what_the_new_rate_cannot_carry():
    """Downsampling filters content above the new Nyquist instead of aliasing it."""
    t = np.arange(48000) / 48000
    out = resample(np.sin(2 * np.pi * 15000 * t), 48000, 24000)
    assert np.sqrt(np.mean(out[500:-500] ** 2)) < 0.01


def test_levelling_reaches_the_target_and_never_clips():
    """Quiet and loud speech-like signals both come out at the target level, peaks under the ceiling."""
    rate = 48000
    rng = np.random.default_rng(1)
    t = np.arange(rate * 2) / rate
    envelope = (np.sin(2 * np.pi * 3 * t) > 0).astype(float)  # syllables and pauses
    for gain in (0.01, 3.0):
        speechy = gain * envelope * (np.sin(2 * np.pi * 180 * t) + 0.3 * rng.standard_normal(t.size))
        out = level(speechy, rate, -20.0, -1.0)
        assert speech_level_db(out, rate) == pytest.approx(-20.0, abs=0.5)
        assert peak_db(out) <= -1.0 + 1e-6


def test_pauses_do_not_change_the_measured_level():
    """The level is of active speech: adding silence does not make the speech read quieter."""
    rate = 48000
    tone = 0.1 * np.sin(2 * np.pi * 200 * np.arange(rate) / rate)
    with_pause = np.concatenate([tone, np.zeros(rate * 2)])
    assert speech_level_db(with_pause, rate) == pytest.approx(speech_level_db(tone, rate), abs=0.1)


def test_wav_round_trip_clips_instead_of_wrapping():
    """Encoding clips samples beyond full scale (no int16 wrap-around) and keeps mono 16-bit."""
    samples, rate = decode_wav(encode_wav(np.array([0.0, 0.5, 1.7, -2.0]), 48000))
    assert rate == 48000
    assert samples[2] == pytest.approx(32767 / 32768)
    assert samples[3] == -1.0
