"""ScriptStage: writing from article.json, adopting dropped scripts, fingerprints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stages.base import Cancelled, InputError, JobContext, Stage
from stages.script import ScriptStage, load_script
from stages.settings import load_settings

DATA = Path(__file__).parent / "data"


def make_job(tmp_path: Path, kind: str, source_name: str, settings=None) -> JobContext:
    job_dir = tmp_path / "jobs" / "job1"
    job_dir.mkdir(parents=True)
    source = job_dir / f"source{Path(source_name).suffix}"
    shutil.copy(DATA / source_name, source)
    if kind == "article":
        shutil.copy(DATA / source_name, job_dir / "article.json")
    settings = settings or load_settings(
        home=tmp_path, personas=[{"id": "zundamon"}, {"id": "metan"}], default_persona="zundamon"
    )
    return JobContext("job1", job_dir, settings, tmp_path / "cache", source, kind)


def test_script_stage_follows_the_stage_protocol():
    """The stage has the contract's name, version and resource."""
    stage = ScriptStage()
    assert isinstance(stage, Stage)
    assert (stage.name, stage.version, stage.resource) == ("script", "6", "cpu")


def test_run_writes_script_yaml_from_the_article(tmp_path):
    """kind article: article.json becomes a valid script.yaml, reported in the result."""
    job = make_job(tmp_path, "article", "script_article_ja.json")
    calls = []
    result = ScriptStage().run(job, lambda c, t, m: calls.append((c, t, m)))
    out = job.job_dir / "script.yaml"
    assert result.outputs == [out]
    script = load_script(out, job.settings)
    assert result.data["sections"] == len(script.sections) and result.data["phrases"] > 0
    assert result.data["writer"] == "extractive"
    assert calls and calls[-1][0] == calls[-1][1]


def test_run_adopts_a_legacy_script_normalised(tmp_path):
    """kind script: a legacy script is validated and written in the canonical form."""
    job = make_job(tmp_path, "script", "script_legacy.yaml")
    ScriptStage().run(job, lambda *a: None)
    text = (job.job_dir / "script.yaml").read_text(encoding="utf-8")
    assert "dialogues:" not in text and "speaker:" not in text
    script = load_script(job.job_dir / "script.yaml", job.settings)
    assert script.language == "ja"  # defaulted from settings
    assert script.sections[1].narrations[1].persona_id == "metan"


def test_invalid_script_never_produces_script_yaml(tmp_path):
    """A script that fails validation stops the job here with an InputError listing the problems."""
    job = make_job(tmp_path, "script", "script_two_errors.yaml")
    with pytest.raises(InputError, match=r"source\.yaml:6:21: .*ghost"):
        ScriptStage().run(job, lambda *a: None)
    assert not (job.job_dir / "script.yaml").exists()


def test_missing_article_is_an_input_error(tmp_path):
    """Without article.json the stage explains what is missing."""
    job = make_job(tmp_path, "url", "script_article_en.json")
    with pytest.raises(InputError, match="article.json is missing"):
        ScriptStage().run(job, lambda *a: None)


def test_cancelled_job_stops(tmp_path):
    """A set cancellation token stops the stage with Cancelled."""
    job = make_job(tmp_path, "article", "script_article_en.json")
    job.cancel.set()
    with pytest.raises(Cancelled):
        ScriptStage().run(job, lambda *a: None)


def test_fingerprint_tracks_inputs_and_settings_but_never_the_key(tmp_path):
    """Article bytes and script settings change the fingerprint; the API key does not."""
    job = make_job(tmp_path, "article", "script_article_en.json")
    stage = ScriptStage()
    base = stage.fingerprint(job)
    assert stage.fingerprint(job) == base

    def with_settings(**overrides):
        settings = load_settings(home=tmp_path, personas=[{"id": "zundamon"}, {"id": "metan"}], default_persona="zundamon", **overrides)
        return JobContext(job.job_id, job.job_dir, settings, job.cache_dir, job.source, job.kind)

    assert stage.fingerprint(with_settings(script={"max_minutes": 2})) != base
    assert stage.fingerprint(with_settings(pronunciation=[{"surface": "x", "reading": "エックス"}])) != base
    llm_a = with_settings(script={"writer": "llm"}, llm={"model": "a", "api_key": "sk-one"})
    llm_b = with_settings(script={"writer": "llm"}, llm={"model": "a", "api_key": "sk-two"})
    llm_c = with_settings(script={"writer": "llm"}, llm={"model": "b", "api_key": "sk-one"})
    assert stage.fingerprint(llm_a) == stage.fingerprint(llm_b)
    assert stage.fingerprint(llm_a) != stage.fingerprint(llm_c)
    article = json.loads((job.job_dir / "article.json").read_text())
    article["title"] = "Changed"
    (job.job_dir / "article.json").write_text(json.dumps(article))
    assert stage.fingerprint(job) != base


def test_fingerprint_of_a_dropped_script_follows_its_bytes(tmp_path):
    """kind script: the source's bytes and the persona ids make the fingerprint."""
    job = make_job(tmp_path, "script", "script_legacy.yaml")
    stage = ScriptStage()
    base = stage.fingerprint(job)
    job.source.write_text(job.source.read_text(encoding="utf-8") + "\n# a comment\n", encoding="utf-8")
    assert stage.fingerprint(job) != base
