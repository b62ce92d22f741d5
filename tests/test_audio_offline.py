"""The audio stage with its offline engines, for real: pyopenjtalk-plus and espeak-ng."""

import json
import shutil
import threading
import wave
from pathlib import Path

import pytest
import yaml

from stages.audio import AudioStage, generate_audio
from stages.audio.level import peak_db, speech_level_db
from stages.audio.openjtalk import MEI_CREDIT
from stages.audio.wav import read_wav
from stages.base import Cancelled, InputError, JobContext
from stages.settings import load_settings

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def write_script(path: Path, narrations, language="ja", sections=None) -> Path:
    sections = sections or [{"title": "一", "narrations": narrations}]
    path.write_text(yaml.safe_dump({"title": "t", "language": language, "sections": sections}, allow_unicode=True))
    return path


def make_settings(tmp_path: Path, **overrides):
    return load_settings(home=tmp_path / "home", **overrides)


class Recorder:
    def __init__(self):
        self.notes = []
        self.progress = []

    def note(self, message, **data):
        self.notes.append((message, data))

    def __call__(self, current, total, message):
        self.progress.append((current, total))

    def named(self, message):
        return [data for m, data in self.notes if m == message]


def index_of(path: Path) -> dict:
    return json.loads(path.read_text("utf-8"))


def test_openjtalk_clip_is_48k_mono_16bit_speech(tmp_path):
    """A short Japanese phrase becomes a 48 kHz mono 16-bit clip: non-silent, plausible, unclipped."""
    script = write_script(tmp_path / "script.yaml", ["今日はいい天気ですね。"])
    rec = Recorder()
    index_path = generate_audio(script, tmp_path, make_settings(tmp_path), rec, note=rec.note)
    index = index_of(index_path)
    clip = index["clips"]["000-000"]
    with wave.open(clip["path"]) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (48000, 1, 2)
        assert clip["duration"] == pytest.approx(w.getnframes() / 48000)
    samples, _ = read_wav(Path(clip["path"]))
    assert 0.8 < clip["duration"] < 4.0  # 11 characters of Japanese
    assert peak_db(samples) <= -1.0 + 0.01
    assert speech_level_db(samples, 48000) == pytest.approx(-20.0, abs=1.0)
    assert clip["engine"] == "openjtalk" and clip["speaker"] == "narrator"
    assert index["credits"] == [MEI_CREDIT]
    assert rec.named("clip synthesized") == [{"phrase": "000-000", "engine": "openjtalk"}]
    assert rec.progress[-1] == (1, 1)


def test_second_run_synthesizes_nothing_and_one_edit_one_clip(tmp_path):
    """A second job with the same lines is all cache hits; editing one line re-synthesizes one clip."""
    lines = ["一つ目の文です。", "二つ目の文です。", "三つ目の文です。"]
    settings = make_settings(tmp_path)
    first = Recorder()
    generate_audio(write_script(tmp_path / "a.yaml", lines), tmp_path / "job1", settings, first, note=first.note)
    assert first.named("audio cache") == [{"synthesized": 3, "cached": 0}]

    again = Recorder()
    index = index_of(generate_audio(tmp_path / "a.yaml", tmp_path / "job2", settings, again, note=again.note))
    assert again.named("clip synthesized") == []
    assert index["stats"] == {"synthesized": 0, "cached": 3}
    assert again.progress == [(3, 3)]

    edited = Recorder()
    lines[1] = "二つ目の文を直しました。"
    write_script(tmp_path / "b.yaml", lines)
    index = index_of(generate_audio(tmp_path / "b.yaml", tmp_path / "job3", settings, edited, note=edited.note))
    assert edited.named("clip synthesized") == [{"phrase": "000-001", "engine": "openjtalk"}]
    assert index["stats"] == {"synthesized": 1, "cached": 2}


def test_persona_speed_changes_the_clip(tmp_path):
    """A faster persona gives a shorter clip (speed reaches pyopenjtalk) and its own cache entry."""
    settings = make_settings(
        tmp_path, personas=[{"id": "narrator"}, {"id": "fast", "speed": 1.5}]
    )
    script = write_script(
        tmp_path / "s.yaml",
        [{"text": "早口で話しています。"}, {"text": "早口で話しています。", "persona_id": "fast"}],
    )
    clips = index_of(generate_audio(script, tmp_path, settings))["clips"]
    assert clips["000-001"]["path"] != clips["000-000"]["path"]
    assert clips["000-001"]["duration"] < clips["000-000"]["duration"] * 0.85


def test_reading_is_spoken_and_pronunciation_dictionary_applies(tmp_path):
    """The reading is what is spoken; a dictionary word changes only the clips that contain it."""
    script = write_script(
        tmp_path / "s.yaml", [{"text": "moviegenで作る"}, {"text": "別の文です。"}]
    )
    plain = index_of(generate_audio(script, tmp_path / "j1", make_settings(tmp_path)))["clips"]
    dictionary = [{"surface": "moviegen", "reading": "ムービージェン", "accent": 3}]
    rec = Recorder()
    with_dict = index_of(
        generate_audio(script, tmp_path / "j2", make_settings(tmp_path, pronunciation=dictionary), rec, note=rec.note)
    )["clips"]
    assert [n["phrase"] for n in rec.named("clip synthesized")] == ["000-000"]
    # Spelled out letter by letter ("エムオーブイ...") the word is far longer than ムービージェン.
    assert with_dict["000-000"]["duration"] < plain["000-000"]["duration"] - 0.3
    assert with_dict["000-001"]["path"] == plain["000-001"]["path"]


def test_empty_and_emoji_phrases_are_dropped_with_a_note(tmp_path):
    """Empty and emoji-only phrases are dropped with a note; emoji inside a phrase stay in the text."""
    script = write_script(tmp_path / "s.yaml", [{"text": "字幕だけ", "reading": " "}, "🎉🎉", "完成なのだ🎉"])
    rec = Recorder()
    index = index_of(generate_audio(script, tmp_path, make_settings(tmp_path), rec, note=rec.note))
    assert index["dropped"] == ["000-000", "000-001"]
    assert [n["phrase"] for n in rec.named("phrase dropped")] == ["000-000", "000-001"]
    assert index["clips"]["000-002"]["text"] == "完成なのだ🎉"
    assert index["clips"]["000-002"]["reading"] == "完成なのだ"
    assert rec.progress[-1] == (1, 1)


def test_a_script_with_nothing_to_speak_is_an_input_error(tmp_path):
    """When every phrase is dropped there is no narration to make: the input is wrong."""
    with pytest.raises(InputError, match="nothing to speak"):
        generate_audio(write_script(tmp_path / "s.yaml", ["✨", "🎉"]), tmp_path, make_settings(tmp_path))


def test_long_phrase_is_split_and_an_absurd_one_rejected(tmp_path):
    """A phrase over the chunk size is spoken in pieces; one over the hard limit is an InputError."""
    long_line = "これは長い文章の一部です。" * 4
    settings = make_settings(tmp_path, audio={"max_chunk_chars": 20, "max_phrase_chars": 100})
    clips = index_of(generate_audio(write_script(tmp_path / "a.yaml", [long_line]), tmp_path, settings))["clips"]
    assert clips["000-000"]["duration"] > 4 * 1.0
    with pytest.raises(InputError, match="000-001"):
        generate_audio(write_script(tmp_path / "b.yaml", ["短い。", "あ" * 101]), tmp_path, settings)


def test_unknown_persona_is_an_input_error_naming_the_phrase(tmp_path):
    """A phrase naming a persona the settings lack fails before any synthesis, naming both."""
    script = write_script(tmp_path / "s.yaml", [{"text": "やあ", "persona_id": "ghost"}])
    with pytest.raises(InputError, match=r"000-000.*ghost"):
        generate_audio(script, tmp_path, make_settings(tmp_path))


def test_cancellation_is_checked_between_phrases(tmp_path):
    """Setting the token during a run stops it after the current phrase with Cancelled."""
    script = write_script(tmp_path / "s.yaml", [f"{i}番目の文です。" for i in range(6)])
    cancel = threading.Event()
    seen = []

    def progress(current, total, message):
        seen.append(current)
        if current >= 2:
            cancel.set()

    with pytest.raises(Cancelled):
        generate_audio(script, tmp_path, make_settings(tmp_path), progress, cancel=cancel)
    assert max(seen) == 2
    assert not (tmp_path / "audio" / "index.json").exists()


@needs_espeak
def test_english_script_goes_to_espeak(tmp_path):
    """A non-Japanese script with the default openjtalk persona is spoken by espeak-ng at 48 kHz."""
    script = write_script(tmp_path / "s.yaml", ["-Hello there, this is a short test."], language="en")
    index = index_of(generate_audio(script, tmp_path, make_settings(tmp_path)))
    clip = index["clips"]["000-000"]
    assert clip["engine"] == "espeak" and clip["voice"] == "en"
    samples, rate = read_wav(Path(clip["path"]))
    assert rate == 48000
    assert 1.0 < clip["duration"] < 5.0
    assert speech_level_db(samples, rate) == pytest.approx(-20.0, abs=1.0)
    assert any("eSpeak" in line for line in index["credits"])


@needs_espeak
def test_engines_and_personas_are_levelled_alike(tmp_path):
    """Two engines and a quiet persona all land within 1 dB of the target level."""
    settings = make_settings(
        tmp_path,
        personas=[
            {"id": "narrator"},
            {"id": "robot", "engine": "espeak", "speaker": "en-us", "speed": 1.2},
            {"id": "low", "pitch": -0.05},
        ],
    )
    script = write_script(
        tmp_path / "s.yaml",
        [
            {"text": "日本語のナレーションです。"},
            {"text": "An English robot speaks here.", "persona_id": "robot"},
            {"text": "低い声で話します。", "persona_id": "low"},
        ],
    )
    clips = index_of(generate_audio(script, tmp_path, settings))["clips"]
    assert [c["engine"] for c in clips.values()] == ["openjtalk", "espeak", "openjtalk"]
    for clip in clips.values():
        samples, rate = read_wav(Path(clip["path"]))
        assert speech_level_db(samples, rate) == pytest.approx(-20.0, abs=1.0), clip["speaker"]
        assert peak_db(samples) <= -0.99


@needs_espeak
def test_unknown_espeak_voice_is_an_input_error(tmp_path):
    """A persona asking espeak-ng for a voice it lacks fails up front, naming the voice."""
    settings = make_settings(tmp_path, personas=[{"id": "narrator", "engine": "espeak", "speaker": "xx-nope"}])
    with pytest.raises(InputError, match="xx-nope"):
        generate_audio(write_script(tmp_path / "s.yaml", ["hello"], language="en"), tmp_path, settings)


def test_stage_lists_clips_as_outputs_and_fingerprints_its_inputs(tmp_path):
    """The stage's outputs are the index and every clip; the fingerprint follows script and voice."""
    settings = make_settings(tmp_path)
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    write_script(job_dir / "script.yaml", ["ステージのテストです。"])
    job = JobContext("j1", job_dir, settings, tmp_path / "cache", job_dir / "script.yaml", "script")
    stage = AudioStage()
    result = stage.run(job, lambda *a: None)
    index = index_of(job_dir / "audio" / "index.json")
    assert result.outputs[0] == job_dir / "audio" / "index.json"
    assert result.outputs[1:] == [Path(index["clips"]["000-000"]["path"])]
    assert str(result.outputs[1]).startswith(str(tmp_path / "cache" / "audio"))

    before = stage.fingerprint(job)
    job.settings = make_settings(tmp_path, personas=[{"id": "narrator", "speed": 1.2}])
    assert stage.fingerprint(job) != before
    job.settings = settings
    assert stage.fingerprint(job) == before
    write_script(job_dir / "script.yaml", ["ステージのテストを直した。"])
    assert stage.fingerprint(job) != before
