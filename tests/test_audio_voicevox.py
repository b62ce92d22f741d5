"""The audio stage against the VOICEVOX engine double (real HTTP on 127.0.0.1)."""

import json
import threading
import wave
from pathlib import Path

import pytest
import yaml

from stages.audio import generate_audio
from stages.audio.level import speech_level_db
from stages.audio.wav import read_wav
from stages.base import Cancelled, InputError, TransientError
from stages.settings import load_settings
from tests.doubles.voicevox import VoicevoxDouble, expected_samples


@pytest.fixture
def engine():
    double = VoicevoxDouble().start()
    yield double
    double.stop()


def write_script(path: Path, narrations) -> Path:
    path.write_text(
        yaml.safe_dump({"title": "t", "sections": [{"title": "一", "narrations": narrations}]}, allow_unicode=True)
    )
    return path


def vv_settings(tmp_path: Path, engine: VoicevoxDouble, **overrides):
    overrides.setdefault("voicevox", {})
    fast_retries = {"retry_base_seconds": 0.01, "retry_max_seconds": 0.02}
    overrides["voicevox"] = {"url": engine.url, "timeout": 5.0, **fast_retries, **overrides["voicevox"]}
    return load_settings(home=tmp_path / "home", audio={"engine": "voicevox"}, **overrides)


def index_of(path: Path) -> dict:
    return json.loads(path.read_text("utf-8"))


def test_persona_speaker_and_scales_reach_the_engine(tmp_path, engine):
    """The persona's style id and speed/pitch/intonation/volume/silences travel in the requests."""
    settings = vv_settings(
        tmp_path,
        engine,
        personas=[
            {"id": "narrator"},
            {"id": "zunda", "engine": "voicevox", "speaker": 1, "speed": 1.25, "pitch": 0.05,
             "intonation": 1.3, "volume": 0.8, "pre_phoneme_length": 0.2, "post_phoneme_length": 0.3},
        ],  # fmt: skip
    )
    script = write_script(tmp_path / "s.yaml", ["こんにちは。", {"text": "ずんだもんなのだ", "persona_id": "zunda"}])
    index = index_of(generate_audio(script, tmp_path, settings))

    queries = {r.params["text"]: r.params["speaker"] for r in engine.calls("POST", "/audio_query")}
    assert queries == {"こんにちは。": "3", "ずんだもんなのだ": "1"}
    synth = {r.params["speaker"]: r.body for r in engine.calls("POST", "/synthesis")}
    assert synth["1"]["speedScale"] == 1.25
    assert synth["1"]["pitchScale"] == 0.05
    assert synth["1"]["intonationScale"] == 1.3
    assert synth["1"]["volumeScale"] == 0.8
    assert (synth["1"]["prePhonemeLength"], synth["1"]["postPhonemeLength"]) == (0.2, 0.3)
    assert synth["3"]["speedScale"] == 1.0
    assert index["clips"]["000-001"]["voice"] == "1"
    assert "VOICEVOX:ずんだもん" in index["credits"]
    assert engine.calls("GET", "/user_dict") == []  # no dictionary configured: the engine's is left alone


def test_clip_length_follows_the_query(tmp_path, engine):
    """The clip lasts what the engine's WAV lasts (frames of 1/93.75 s), resampled to 48 kHz."""
    settings = vv_settings(tmp_path, engine, personas=[{"id": "narrator", "speed": 1.5}])
    index = index_of(generate_audio(write_script(tmp_path / "s.yaml", ["あいうえお、かきくけこ。"]), tmp_path, settings))
    body = engine.calls("POST", "/synthesis")[0].body
    seconds = expected_samples(body) / body["outputSamplingRate"]
    clip = index["clips"]["000-000"]
    with wave.open(clip["path"]) as w:
        assert w.getframerate() == 48000
        assert w.getnframes() == pytest.approx(seconds * 48000, abs=2)
    assert clip["duration"] == pytest.approx(seconds, abs=1e-4)


def test_quiet_engine_output_is_levelled(tmp_path, engine):
    """A persona with a low volumeScale still comes out at the target level (volume is relative)."""
    settings = vv_settings(tmp_path, engine, personas=[{"id": "narrator", "volume": 1.0}])
    index = index_of(generate_audio(write_script(tmp_path / "s.yaml", ["らりるれろ。"]), tmp_path, settings))
    samples, rate = read_wav(Path(index["clips"]["000-000"]["path"]))
    assert speech_level_db(samples, rate) == pytest.approx(-20.0, abs=1.0)


def test_unknown_style_at_start_is_an_input_error_naming_it(tmp_path, engine):
    """A configured style id the engine lacks fails before any synthesis, naming the id."""
    settings = vv_settings(tmp_path, engine, personas=[{"id": "narrator", "speaker": 999}])
    with pytest.raises(InputError, match="999"):
        generate_audio(write_script(tmp_path / "s.yaml", ["こんにちは"]), tmp_path, settings)
    assert engine.calls("POST", "/audio_query") == []
    assert [r.path for r in engine.requests][:2] == ["/version", "/speakers"]


def test_engine_down_is_a_transient_error_naming_the_url(tmp_path, engine):
    """Connection refused is a TransientError that names the engine's URL."""
    settings = vv_settings(tmp_path, engine)
    engine.stop()
    with pytest.raises(TransientError, match=engine.url):
        generate_audio(write_script(tmp_path / "s.yaml", ["こんにちは"]), tmp_path, settings)


def test_engine_going_down_mid_job_then_back_resumes_from_the_cache(tmp_path, engine):
    """The engine dying mid-job is transient; after a restart only the missing clips are made."""
    settings = vv_settings(tmp_path, engine, voicevox={"concurrency": 1})
    script = write_script(tmp_path / "s.yaml", ["いち。", "に。", "さん。", "よん。"])

    def progress(current, total, message):
        if current == 2:
            engine.stop()

    first = []
    with pytest.raises(TransientError, match=engine.url):
        generate_audio(script, tmp_path, settings, progress, note=lambda m, **d: first.append((m, d)))
    made = [d["phrase"] for m, d in first if m == "clip synthesized"]
    assert len(made) == 2
    engine.start()
    notes = []
    index = index_of(generate_audio(script, tmp_path, settings, note=lambda m, **d: notes.append((m, d))))
    assert index["stats"] == {"synthesized": 2, "cached": 2}
    again = [d["phrase"] for m, d in notes if m == "clip synthesized"]
    assert sorted(made + again) == ["000-000", "000-001", "000-002", "000-003"]  # each clip made once


def test_server_errors_are_transient(tmp_path, engine):
    """A 503 from the engine is a TransientError (retried), not a failure of the input."""
    settings = vv_settings(tmp_path, engine, voicevox={"attempts": 1})
    engine.fail_next(1, status=503, paths=("/synthesis",))
    with pytest.raises(TransientError, match="503"):
        generate_audio(write_script(tmp_path / "s.yaml", ["こんにちは"]), tmp_path, settings)


def test_unprocessable_requests_are_input_errors_with_the_engine_message(tmp_path, engine):
    """A 422 is an InputError carrying the engine's own message, in both of its body shapes."""
    script = write_script(tmp_path / "s.yaml", ["こんにちは"])
    settings = vv_settings(tmp_path, engine, personas=[{"id": "narrator", "speaker": 77}])
    with pytest.raises(InputError, match="指定されたスタイルが見つかりませんでした"):
        _run_with_styles(engine, [77], lambda: generate_audio(script, tmp_path, settings))

    bad_word = [{"surface": "変", "reading": "ヘン", "accent": 9}]
    settings = vv_settings(tmp_path, engine, pronunciation=bad_word)
    with pytest.raises(InputError, match="アクセント型"):  # a {"detail": "..."} 422
        generate_audio(script, tmp_path, settings)


def _run_with_styles(engine: VoicevoxDouble, extra: list[int], run):
    """Run with the style ids listed by /speakers but unknown to synthesis (a changed engine)."""
    listed = {"name": "幻", "speaker_uuid": "0", "styles": [{"name": "x", "id": i, "type": "talk"} for i in extra],
              "version": "1", "supported_features": {}}  # fmt: skip
    real_ids = engine.style_ids
    engine.speakers.append(listed)
    engine.style_ids = lambda: real_ids() - set(extra)
    try:
        return run()
    finally:
        engine.speakers.remove(listed)
        del engine.style_ids


def test_validation_error_shape_is_reported(engine):
    """The client turns FastAPI's {"detail": [...]} into a readable message."""
    from stages.audio.voicevox import VoicevoxEngine
    from stages.settings import VoicevoxSettings

    client = VoicevoxEngine(VoicevoxSettings(url=engine.url), state_dir=Path("/nonexistent"))
    try:
        with pytest.raises(InputError, match=r"query\.speaker: Field required"):
            client._call("POST", "/audio_query", params={"text": "あ"}, what="the audio query")
    finally:
        client.close()


def test_dictionary_words_are_added_updated_and_removed(tmp_path, engine):
    """The engine's user dictionary follows the settings; words added by hand are left alone."""
    hand = engine.user_dict.setdefault("hand-added", {"surface": "手動", "pronunciation": "シュドウ",
                                                       "accent_type": 1, "priority": 5})  # fmt: skip
    script = write_script(tmp_path / "s.yaml", ["こんにちは"])
    words = [
        {"surface": "moviegen", "reading": "ムービージェン", "accent": 3},
        {"surface": "燕三条", "reading": "つばめさんじょう", "priority": 7},
    ]
    generate_audio(script, tmp_path / "j1", vv_settings(tmp_path, engine, pronunciation=words))
    by_surface = {w["surface"]: (u, w) for u, w in engine.user_dict.items()}
    assert by_surface["ｍｏｖｉｅｇｅｎ"][1]["pronunciation"] == "ムービージェン"
    assert by_surface["燕三条"][1]["pronunciation"] == "ツバメサンジョウ"  # hiragana sent as katakana
    assert by_surface["燕三条"][1]["priority"] == 7
    movie_uuid = by_surface["ｍｏｖｉｅｇｅｎ"][0]

    words[0]["accent"] = 2
    del words[1]
    generate_audio(script, tmp_path / "j2", vv_settings(tmp_path, engine, pronunciation=words))
    assert set(engine.user_dict) == {movie_uuid, "hand-added"}
    assert engine.user_dict[movie_uuid]["accent_type"] == 2
    assert engine.user_dict["hand-added"] == hand
    assert len(engine.calls("PUT", "/user_dict_word")) == 1
    assert len(engine.calls("DELETE", "/user_dict_word")) == 1

    before = len(engine.requests)
    generate_audio(script, tmp_path / "j3", vv_settings(tmp_path, engine, pronunciation=words))
    changes = [r for r in engine.requests[before:] if r.path.startswith("/user_dict_word")]
    assert changes == []  # in step already: nothing sent


def test_dictionary_word_invalidates_only_the_clips_containing_it(tmp_path, engine):
    """Adding a dictionary word re-synthesizes the lines with that word and no others."""
    script = write_script(tmp_path / "s.yaml", ["moviegenを使う", "ほかの文"])
    generate_audio(script, tmp_path / "j1", vv_settings(tmp_path, engine))
    notes = []
    words = [{"surface": "moviegen", "reading": "ムービージェン"}]
    generate_audio(
        script, tmp_path / "j2", vv_settings(tmp_path, engine, pronunciation=words),
        note=lambda m, **d: notes.append((m, d)),
    )  # fmt: skip
    assert [d["phrase"] for m, d in notes if m == "clip synthesized"] == ["000-000"]


def test_parallel_requests_keep_progress_monotonic(tmp_path, engine):
    """Up to `concurrency` syntheses run at once, and progress still only goes up, by one phrase."""
    engine.synthesis_delay = 0.1
    settings = vv_settings(tmp_path, engine, voicevox={"concurrency": 3})
    seen = []
    script = write_script(tmp_path / "s.yaml", [f"{i}ばんめ" for i in range(9)])
    generate_audio(script, tmp_path, settings, lambda c, t, m: seen.append((c, t)))
    assert engine.max_in_flight == 3
    assert [c for c, _t in seen] == list(range(0, 10))
    assert {t for _c, t in seen} == {9}


def test_cancel_stops_submitting_phrases(tmp_path, engine):
    """Cancelling during a parallel run stops it; phrases not yet started are never sent."""
    engine.synthesis_delay = 0.05
    settings = vv_settings(tmp_path, engine, voicevox={"concurrency": 2})
    cancel = threading.Event()

    def progress(current, total, message):
        if current >= 2:
            cancel.set()

    script = write_script(tmp_path / "s.yaml", [f"{i}ばんめ" for i in range(10)])
    with pytest.raises(Cancelled):
        generate_audio(script, tmp_path, settings, progress, cancel=cancel)
    assert len(engine.calls("POST", "/synthesis")) <= 4


def test_environment_selects_voicevox(tmp_path, engine, monkeypatch):
    """MOVIEGEN_AUDIO__ENGINE, MOVIEGEN_VOICEVOX__URL and __SPEAKER pick the engine and the style."""
    monkeypatch.setenv("MOVIEGEN_AUDIO__ENGINE", "voicevox")
    monkeypatch.setenv("MOVIEGEN_VOICEVOX__URL", engine.url)
    monkeypatch.setenv("MOVIEGEN_VOICEVOX__SPEAKER", "2")
    settings = load_settings(home=tmp_path / "home")
    index = index_of(generate_audio(write_script(tmp_path / "s.yaml", ["めたんです"]), tmp_path, settings))
    assert index["clips"]["000-000"]["engine"] == "voicevox"
    assert [r.params["speaker"] for r in engine.calls("POST", "/synthesis")] == ["2"]
    assert index["credits"] == ["VOICEVOX:四国めたん"]


def test_a_phrase_that_yields_silence_is_an_input_error_naming_it(tmp_path, engine):
    """Text the engine turns into silence alone (no moras) fails clearly, naming the phrase."""
    script = write_script(tmp_path / "s.yaml", ["こんにちは", "ー"])
    with pytest.raises(InputError, match=r"phrase 000-001: .*no audio"):
        generate_audio(script, tmp_path, vv_settings(tmp_path, engine))
