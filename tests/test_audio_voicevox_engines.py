"""VOICEVOX-compatible engines (AivisSpeech, VOICEVOX NEMO) and the voices' terms, against protocol-faithful doubles."""

import json
import wave
from pathlib import Path

import pytest
import yaml

from daemon.outbox import job_metadata
from stages.audio import generate_audio
from stages.settings import load_settings
from tests.doubles.voicevox import POLICIES, VoicevoxDouble, aivisspeech_double, nemo_double

ZUNDAMON_UUID = "388f246b-8c41-4ac1-8e2d-5d79f3ff56d9"
METAN_UUID = "7ffcb7ce-00ec-4bdc-82cd-45a8889e43ff"


@pytest.fixture
def serve():
    started: list[VoicevoxDouble] = []

    def start(double: VoicevoxDouble) -> VoicevoxDouble:
        started.append(double.start())
        return double

    yield start
    for double in started:
        double.stop()


def run_audio(tmp_path: Path, engine: VoicevoxDouble, personas: list[dict], narrations: list, **voicevox) -> dict:
    settings = load_settings(
        home=tmp_path / "home", audio={"engine": "voicevox"}, personas=personas, default_persona=personas[0]["id"],
        voicevox={"url": engine.url, "timeout": 5.0, "retry_base_seconds": 0.01, "retry_max_seconds": 0.02, **voicevox},
    )  # fmt: skip
    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "s.yaml"
    script.write_text(yaml.safe_dump({"title": "t", "sections": [{"title": "一", "narrations": narrations}]},
                                     allow_unicode=True))  # fmt: skip
    return json.loads(Path(generate_audio(script, tmp_path / "job", settings)).read_text("utf-8"))


def test_speaker_terms_come_from_speaker_info_and_reach_the_sidecar(tmp_path, serve):
    """Each VOICEVOX character used: its credit and /speaker_info's policy in the audio index and the .json sidecar."""
    engine = serve(VoicevoxDouble())
    personas = [{"id": "zunda", "engine": "voicevox", "speaker": 3}, {"id": "metan", "engine": "voicevox", "speaker": 2}]
    index = run_audio(tmp_path, engine, personas, [{"text": "こんにちは。", "persona_id": "zunda"},
                                                   {"text": "こんばんは。", "persona_id": "metan"}])  # fmt: skip
    assert index["credits"] == ["VOICEVOX:ずんだもん", "VOICEVOX:四国めたん"]
    by_credit = {t["credit"]: t for t in index["terms"]}
    assert by_credit["VOICEVOX:ずんだもん"]["policy"] == POLICIES[ZUNDAMON_UUID]
    assert by_credit["VOICEVOX:ずんだもん"]["speaker_uuid"] == ZUNDAMON_UUID
    assert by_credit["VOICEVOX:四国めたん"]["policy"] == POLICIES[METAN_UUID]
    asked = engine.calls("GET", "/speaker_info")
    assert sorted(r.params["speaker_uuid"] for r in asked) == sorted([ZUNDAMON_UUID, METAN_UUID])
    assert all(r.params["resource_format"] == "url" for r in asked)  # no megabytes of inline portraits

    sidecar = job_metadata(tmp_path / "job", "job-1", {"name": "a.md"})
    assert "VOICEVOX:ずんだもん" in sidecar["credits"]
    assert [t["credit"] for t in sidecar["voice_terms"]] == ["VOICEVOX:ずんだもん", "VOICEVOX:四国めたん"]
    assert "VOICEVOX:ずんだもん" in sidecar["voice_terms"][0]["policy"]


def test_a_speaker_without_terms_still_gets_its_credit(tmp_path, serve):
    """An engine that states no policy for a character: the credit stays, the policy is None."""
    engine = serve(VoicevoxDouble(policies={}))
    index = run_audio(tmp_path, engine, [{"id": "zunda", "speaker": 3}], ["こんにちは。"])
    assert index["terms"] == [{"engine": "VOICEVOX", "speaker": "ずんだもん", "speaker_uuid": ZUNDAMON_UUID,
                               "credit": "VOICEVOX:ずんだもん", "policy": None, "styles": [3]}]  # fmt: skip


def test_aivisspeech_is_detected_and_spoken_to_without_pitch(tmp_path, serve):
    """An AivisSpeech engine (found by its manifest): 32-bit style ids work, pitch is sent neutral, credits say AivisSpeech."""
    engine = serve(aivisspeech_double())
    personas = [{"id": "mao", "speaker": 888753760, "pitch": 0.1, "speed": 1.2}]
    index = run_audio(tmp_path, engine, personas, ["こんにちは、今日もいい天気ですね。"])
    query = engine.calls("POST", "/audio_query")[0]
    assert query.params["speaker"] == "888753760"
    body = engine.calls("POST", "/synthesis")[0].body
    assert body["pitchScale"] == 0.0 and body["speedScale"] == 1.2
    assert body["tempoDynamicsScale"] == 1.0 and body["outputSamplingRate"] == 44100  # its own fields kept
    assert index["credits"] == ["AivisSpeech:まお"]
    assert index["terms"][0]["policy"].startswith("# まお")
    clip = index["clips"]["000-000"]
    assert clip["voice"] == "888753760"
    with wave.open(clip["path"]) as w:
        assert w.getframerate() == 48000 and w.getnframes() > 48000 * 0.5


def test_the_profile_setting_wins_and_sets_the_default_port(tmp_path, serve):
    """voicevox.profile = aivisspeech drops pitch even when the manifest is missing; its default URL is port 10101."""
    assert load_settings(home=tmp_path, voicevox={"profile": "aivisspeech"}).voicevox.url == "http://127.0.0.1:10101"
    assert load_settings(home=tmp_path, voicevox={"profile": "nemo"}).voicevox.url == "http://127.0.0.1:50121"
    assert load_settings(home=tmp_path).voicevox.url == "http://127.0.0.1:50021"
    engine = aivisspeech_double()
    engine.manifest = None
    serve(engine)
    run_audio(tmp_path, engine, [{"id": "mao", "speaker": 888753762, "pitch": 0.1}], ["はい。"], profile="aivisspeech")
    assert engine.calls("POST", "/synthesis")[0].body["pitchScale"] == 0.0


def test_nemo_and_old_engines_keep_pitch(tmp_path, serve):
    """A NEMO engine and an engine without /engine_manifest are spoken to as VOICEVOX: the persona's pitch is sent."""
    nemo = serve(nemo_double())
    index = run_audio(tmp_path / "nemo", nemo, [{"id": "n", "speaker": 10005, "pitch": 0.05}], ["こんにちは。"])
    assert nemo.calls("GET", "/engine_manifest") and nemo.calls("POST", "/synthesis")[0].body["pitchScale"] == 0.05
    assert index["credits"] == ["VOICEVOX:女声1"] and "Nemo" in index["terms"][0]["policy"]
    old = serve(VoicevoxDouble(manifest=None))
    index = run_audio(tmp_path / "old", old, [{"id": "z", "speaker": 3, "pitch": 0.05}], ["こんにちは。"])
    assert old.calls("POST", "/synthesis")[0].body["pitchScale"] == 0.05
    assert index["credits"] == ["VOICEVOX:ずんだもん"]
