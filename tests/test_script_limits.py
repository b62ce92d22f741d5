"""Script budgets: hostile and oversized script files are refused while they are read, naming the limit."""

from __future__ import annotations

import json
import resource
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from daemon.cli import cli
from stages.script import ScriptInvalid, load_script, validate_script_file
from stages.settings import load_settings

DATA = Path(__file__).parent / "data"
LAUGHS = DATA / "billion_laughs.yaml"
PHRASE = "保存ボタンを押すと、一瞬だけ画面が固まるのだ。"


@pytest.fixture
def settings(tmp_path):
    return load_settings(home=tmp_path / "home")


def limited(tmp_path: Path, **limits) -> object:
    return load_settings(home=tmp_path / "home", script={"limits": limits})


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def script_text(sections: int, phrases: int, text: str = PHRASE) -> str:
    """A valid YAML script of ``sections`` sections with ``phrases`` narrations each."""
    body = "".join(
        f"  - title: 第{s}節\n    narrations:\n" + "".join(f"      - {text}\n" for _ in range(phrases))
        for s in range(sections)
    )
    return f"title: 長い台本\nlanguage: ja\nsections:\n{body}"


def huge_script(path: Path, target_bytes: int) -> Path:
    """The 19 MB script of the report: about 160,000 phrases, days of speech, written line by line."""
    with path.open("w", encoding="utf-8") as out:
        out.write("title: 巨大な台本\nsections:\n")
        section = 0
        while out.tell() < target_bytes:
            out.write(f"  - title: 第{section}節\n    narrations:\n")
            out.writelines(f"      - {PHRASE}\n" for _ in range(25))
            section += 1
    return path


@pytest.fixture(params=["libyaml", "pure"])
def yaml_loader(request, monkeypatch):
    """Run a test with libyaml's loader (measured on its events) and with the pure-Python one."""
    from stages.script import limits

    if request.param == "pure":
        monkeypatch.setattr(limits, "_FAST_LOADER", None)
    elif limits._FAST_LOADER is None:
        pytest.skip("PyYAML without libyaml")
    return request.param


def the_issue(issues):
    assert len(issues) == 1, issues
    return issues[0]


def test_billion_laughs_yaml_is_refused_while_composing(settings, yaml_loader):
    """9 levels of 9 aliases (10^9 values from a few hundred bytes) stop at the node budget, in place."""
    assert LAUGHS.stat().st_size < 500
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    issue = the_issue(validate_script_file(LAUGHS, settings))
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert issue.limit == "max_nodes"
    assert "aliases expanded" in issue.message and "script.limits.max_nodes" in issue.message
    assert "MOVIEGEN_SCRIPT__LIMITS__MAX_NODES" in issue.message
    assert issue.line > 2  # where the expansion crossed the budget, not 1:1
    print(f"billion_laughs_peak_growth_kb={grown_kb}")


def test_aliases_within_budget_still_load(tmp_path, settings, yaml_loader):
    """Anchors and aliases are YAML PyYAML itself writes: a script reusing a narration loads."""
    path = write(tmp_path / "anchors.yaml", "title: t\nsections:\n  - title: a\n    narrations:\n"
                 "      - &hello {text: こんにちは}\n  - title: b\n    narrations: [*hello, *hello]\n")
    script = load_script(path, settings)
    assert [n.text for n in script.sections[1].narrations] == ["こんにちは", "こんにちは"]


def test_a_recursive_alias_is_a_syntax_error(tmp_path, settings, yaml_loader):
    """An alias inside its own anchor would be an endless tree: refused at the alias."""
    issue = the_issue(validate_script_file(write(tmp_path / "loop.yaml", "title: t\nsections: &s [*s]\n"), settings))
    assert (issue.line, issue.column) == (2, 15) and "inside its own anchor" in issue.message


def test_deeply_nested_yaml_is_refused_without_recursion(tmp_path, settings, yaml_loader):
    """1,500 indented levels stop at max_depth, where the 33rd opens, never with a RecursionError."""
    path = write(tmp_path / "deep.yaml", "title: t\nsections:\n" + "".join(" " * i + "- \n" for i in range(1500)))
    issue = the_issue(validate_script_file(path, settings))
    assert issue.limit == "max_depth" and "more than 32 levels" in issue.message and issue.line == 34


def test_100000_open_brackets_are_one_clean_issue(tmp_path, settings, yaml_loader):
    """Deep flow nesting is refused at line 2 (libyaml's own nesting cap may speak first)."""
    path = write(tmp_path / "deep.yaml", "title: t\nsections: " + "[" * 100_000 + "]" * 100_000 + "\n")
    issue = the_issue(validate_script_file(path, settings))
    assert issue.line == 2 and "nest" in issue.message


def test_deeply_nested_json_is_refused_before_json_loads(tmp_path, settings):
    """JSON nesting is measured on the text: json.loads never recurses 50,000 levels."""
    path = write(tmp_path / "deep.json", '{"title": "t", "sections": ' + "[" * 50_000 + "]" * 50_000 + "}")
    issue = the_issue(validate_script_file(path, settings))
    assert issue.limit == "max_depth" and "JSON is nested too deeply" in issue.message
    assert (issue.line, issue.column) == (1, 27 + 32)  # the bracket that opens level 33


def test_a_json_array_of_a_million_values_is_refused(tmp_path, settings):
    """A 2 MB JSON array is counted on the text, before it is parsed into a million objects."""
    path = write(tmp_path / "wide.json", '{"title": "t", "sections": [' + ",".join(["{}"] * 1_000_000) + "]}")
    issue = the_issue(validate_script_file(path, settings))
    assert issue.limit == "max_nodes" and "about 2,000,00" in issue.message


def test_brackets_inside_json_strings_do_not_count(tmp_path, settings):
    """Nesting is counted outside strings: a narration full of brackets is fine."""
    doc = {"title": "t", "sections": [{"title": "a", "narrations": ["[" * 100 + "{" * 100, "a, b: c"]}]}
    script = load_script(write(tmp_path / "s.json", json.dumps(doc)), settings)
    assert script.sections[0].narrations[0].text.startswith("[[[")


def test_the_19_mb_script_is_refused_by_size_without_being_read(tmp_path, settings):
    """The report's 19 MB script (160,000 phrases) is over max_bytes: one clear issue, nothing parsed."""
    path = huge_script(tmp_path / "huge.yaml", 19 * 1024 * 1024)
    issue = the_issue(validate_script_file(path, settings))
    assert issue.limit == "max_bytes" and (issue.line, issue.column) == (1, 1)
    assert "19.0 MB" in issue.message and "over the limit of 4.0 MB" in issue.message
    assert "script.limits.max_bytes" in issue.message and "MOVIEGEN_SCRIPT__LIMITS__MAX_BYTES" in issue.message
    with pytest.raises(ScriptInvalid) as caught:
        load_script(path, settings, name="huge.yaml")
    assert caught.value.limits == ["max_bytes"]
    assert str(caught.value).startswith("huge.yaml is over the script limits (script.limits.max_bytes)")


def test_with_the_size_limit_raised_the_content_limits_still_hold(tmp_path):
    """A 1 MB slice of the huge script passes max_bytes but not the phrase and speech budgets."""
    path = huge_script(tmp_path / "big.yaml", 1024 * 1024)
    phrases = the_issue(validate_script_file(path, limited(tmp_path, max_sections=100_000)))
    assert phrases.limit == "max_phrases"  # counted on the raw lists, before pydantic sees 13,000 items
    assert "13," in phrases.message and "phrases, over the limit of 10,000" in phrases.message
    speech = the_issue(validate_script_file(path, limited(tmp_path, max_sections=100_000, max_phrases=100_000)))
    assert speech.limit == "max_speech_minutes"
    assert "hours of speech, over the limit of 2.0 hours" in speech.message


@pytest.mark.parametrize("limit, value, found", [
    ("max_sections", 3, "4 sections, over the limit of 3"),
    ("max_phrases", 10, "12 phrases, over the limit of 10"),
    ("max_chars", 200, "276 characters, over the limit of 200"),
    ("max_speech_minutes", 0.5, "minutes of speech, over the limit of 0.5 minutes"),
])
def test_content_limits_name_the_value_and_the_setting(tmp_path, limit, value, found):
    """Sections, phrases, characters and speaking time: each limit says what it found and what to raise."""
    path = write(tmp_path / "s.yaml", script_text(sections=4, phrases=3))
    issues = validate_script_file(path, limited(tmp_path, **{limit: value}))
    issue = next(i for i in issues if i.limit == limit)
    assert found in issue.message, issue.message
    assert f"script.limits.{limit}" in issue.message and f"MOVIEGEN_SCRIPT__LIMITS__{limit.upper()}" in issue.message
    assert issue.line == 3  # at the sections key


def test_section_count_is_checked_before_the_sections_are_validated(tmp_path):
    """Too many sections is the only issue, even when every section is also invalid."""
    path = write(tmp_path / "s.yaml", "title: t\nsections:\n" + "  - {bogus: 1}\n" * 50)
    issue = the_issue(validate_script_file(path, limited(tmp_path, max_sections=10)))
    assert issue.limit == "max_sections" and "50 sections" in issue.message


def test_the_defaults_accept_a_hundred_minute_script(tmp_path, settings):
    """The defaults are generous: 100 sections of 20 phrases (about 100 minutes of speech) load."""
    from stages.script import estimate_script_seconds

    path = write(tmp_path / "long.yaml", script_text(sections=100, phrases=20))
    script = load_script(path, settings)
    assert 80 * 60 < estimate_script_seconds(script) < 120 * 60


def test_limits_are_settings_from_toml(tmp_path):
    """[script.limits] in moviegen.toml sets the budgets; a typo there is an error."""
    config = write(tmp_path / "moviegen.toml", "[script.limits]\nmax_phrases = 5\nmax_speech_minutes = 30\n")
    settings = load_settings(config=config, home=tmp_path)
    assert settings.script.limits.max_phrases == 5 and settings.script.limits.max_bytes == 4 * 1024 * 1024
    write(config, "[script.limits]\nmax_phrase = 5\n")
    with pytest.raises(Exception, match="max_phrase"):
        load_settings(config=config, home=tmp_path)


def test_the_annotated_example_shows_the_default_limits(tmp_path):
    """samples/moviegen.toml lists [script.limits] with exactly the defaults, so it cannot drift."""
    from stages.settings import ScriptLimitSettings

    sample = Path(__file__).resolve().parents[1] / "samples" / "moviegen.toml"
    assert "[script.limits]" in sample.read_text(encoding="utf-8")
    assert load_settings(config=sample, home=tmp_path).script.limits == ScriptLimitSettings()


def test_validate_command_names_the_limit(tmp_path):
    """`moviegen validate` on the 19 MB script exits 1 with the limit, the size and the setting."""
    path = huge_script(tmp_path / "huge.yaml", 19 * 1024 * 1024)
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "validate", str(path)], catch_exceptions=False)
    assert result.exit_code == 1
    assert f"{path}:1:1: the file is too large for a script: 19.0 MB" in result.output
    assert "script.limits.max_bytes" in result.output


# --- a live daemon -----------------------------------------------------------------------------


def real_script_stages() -> dict:
    """The daemon's stages for the live test: the real script stage, tiny fixture stages after it."""
    from stages.script import ScriptStage
    from tests.fixtures_service import service_stages

    return {**service_stages(), "script": ScriptStage()}


def peak_rss_kb(pid: int) -> int:
    """The process's peak resident set (VmHWM) in kB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])


def test_hostile_scripts_in_a_live_daemon_fail_with_a_note_and_the_daemon_goes_on(tmp_path):
    """Billion laughs (YAML and JSON), deep JSON and the 19 MB script each land in failed/ with a note
    naming the limit, the daemon stays up with its peak memory flat, and a valid script still runs."""
    from tests.fixtures_service import CONFIG, ServiceDaemon, drop, wait_for

    config = CONFIG.format(settle=0.2, cap=20 * 1024 * 1024, rescan=0.5).replace(
        "tests.fixtures_service:service_stages", "tests.test_script_limits:real_script_stages")
    daemon = ServiceDaemon(tmp_path / "home", config=config).start()
    try:
        inbox, failed = daemon.home / "inbox", daemon.home / "failed"
        peak_before = peak_rss_kb(daemon.proc.pid)
        hostile = {
            "laughs.yaml": (LAUGHS.read_bytes(), "script.limits.max_nodes"),
            "laughs.json": ('{"title": "t", "sections": [' + ",".join(["[1,1,1,1,1,1,1,1,1]"] * 200_000) + "]}",
                            "script.limits.max_nodes"),
            "deep.json": ('{"title": "t", "sections": ' + "[" * 50_000 + "]" * 50_000 + "}", "script.limits.max_depth"),
            "huge.yaml": (huge_script(tmp_path / "huge.yaml", 19 * 1024 * 1024).read_bytes(), "script.limits.max_bytes"),
        }
        for name, (body, _) in hostile.items():
            drop(inbox, name, body)
        for name, (body, limit) in hostile.items():
            note = failed / f"{name}.error.txt"
            wait_for(note.exists, 60, f"{name} in failed/", daemon)
            text = note.read_text(encoding="utf-8")
            assert "stage: script" in text and limit in text, text
            assert f"{name} is over the script limits" in text, text
            assert (failed / name).stat().st_size == len(body if isinstance(body, bytes) else body.encode())
        assert daemon.alive()
        peak_after = peak_rss_kb(daemon.proc.pid)
        print(f"daemon_peak_rss_before_kb={peak_before} daemon_peak_rss_after_hostile_kb={peak_after}")
        assert peak_after - peak_before < 512 * 1024  # before the budgets: past 5.8 GB in 60 s

        drop(inbox, "fine.yaml", "title: 大丈夫\nsections:\n  - title: 一\n    narrations:\n"
                                 "      - {persona_id: narrator, text: こんにちは。}\n")
        job = wait_for(lambda: daemon.job_of("fine.yaml"), 30, "the valid script's claim", daemon)
        wait_for(lambda: daemon.state(job) == "done", 60, "the valid script to be delivered", daemon)
        adopted = yaml.safe_load((daemon.home / "state" / "jobs" / job / "script.yaml").read_text(encoding="utf-8"))
        assert adopted["sections"][0]["narrations"] == [{"text": "こんにちは。", "persona_id": "narrator"}]
    finally:
        daemon.stop()


# --- articles ----------------------------------------------------------------------------------


def test_billion_laughs_in_an_articles_front_matter_is_ignored(tmp_path):
    """A Markdown article's YAML front matter is read with the same budget: the laughs are not metadata."""
    from stages.fetch import extract

    laughs = LAUGHS.read_text(encoding="utf-8").replace("title: lol\n", "").replace("sections: *i", "title: *i")
    article = tmp_path / "laughs.md"
    write(article, f"---\n{laughs}---\n\n# 本当の見出し\n\nこの記事の本文は、前付けが壊れていても読める長さがあるのだ。\n")
    result = extract(article, load_settings(home=tmp_path / "home"))
    assert result["title"] == "本当の見出し"


def test_a_local_article_over_fetch_max_bytes_is_refused(tmp_path):
    """A dropped .md or .html gets the download's size cap, with the setting named."""
    from stages.base import InputError
    from stages.fetch import extract

    settings = load_settings(home=tmp_path / "home", fetch={"max_bytes": 4096})
    for name in ("big.md", "big.html"):
        path = write(tmp_path / name, "# 見出し\n\n" + "本文のテキストなのだ。" * 400)
        with pytest.raises(InputError, match=r"over the limit of 4,096 for an article \(fetch\.max_bytes"):
            extract(path, settings)
    small = write(tmp_path / "small.md", "# 見出し\n\n" + "本文のテキストなのだ。" * 20)
    assert extract(small, settings)["title"] == "見出し"
