"""The `moviegen` CLI: help texts, exit codes, and each command against real files and a real log."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from daemon.cli import cli
from daemon.events import EventStore

FIXTURE_CONFIG = '[daemon]\nstage_factory = "tests.fixtures_service:service_stages"\n'


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / "gates").mkdir(parents=True)
    (home / "moviegen.toml").write_text(FIXTURE_CONFIG)
    return home


@pytest.fixture
def invoke(home: Path):
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli, ["--home", str(home), *args], catch_exceptions=False, env={"COLUMNS": "250"})

    return run


@pytest.fixture
def store(home: Path):
    db = EventStore(home / "state" / "moviegen.db")
    yield db
    db.close()


def test_every_command_has_help_with_an_example() -> None:
    """Each command documents itself and shows an Example: block."""
    runner = CliRunner()
    for name, command in cli.commands.items():
        assert command.help and "Example:" in command.help, name
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output, name
    assert set(cli.commands) >= {"run", "status", "events", "retry", "cancel", "submit", "rebuild", "make",
                                 "extract", "validate", "doctor"}


def test_unknown_option_is_a_usage_error(invoke) -> None:
    """Click's usage errors exit 2."""
    assert invoke("status", "--bogus").exit_code == 2


def test_status_table_and_json(invoke, store) -> None:
    """status prints each job; --json gives the rows."""
    store.submit("20261126-010000-aaaaaa", source="a.md", kind="article")
    store.submit("20261126-010001-bbbbbb", source="b.md", kind="article")
    store.append("20261126-010001-bbbbbb", "job.failed", error="no voice")
    result = invoke("status")
    assert result.exit_code == 0
    assert "20261126-010000-aaaaaa" in result.output and "no voice" in result.output
    rows = json.loads(invoke("status", "--json").output)
    assert {r["job_id"]: r["state"] for r in rows} == {"20261126-010000-aaaaaa": "queued",
                                                       "20261126-010001-bbbbbb": "failed"}
    only = json.loads(invoke("status", "--json", "--state", "failed").output)
    assert [r["job_id"] for r in only] == ["20261126-010001-bbbbbb"]


def test_events_history_and_follow_of_an_ended_job(invoke, store) -> None:
    """events prints the history; --follow on a finished job returns its outcome as exit code."""
    store.submit("20261126-010000-aaaaaa", source="a.md", kind="article")
    store.append("20261126-010000-aaaaaa", "job.started", stage="fetch")
    store.append("20261126-010000-aaaaaa", "job.finished", output="/x.mp4")
    store.submit("20261126-020000-cccccc", source="c.md", kind="article")
    store.append("20261126-020000-cccccc", "job.failed", error="broken")
    result = invoke("events", "20261126-010000")
    assert result.exit_code == 0
    assert [line.split()[2] for line in result.output.splitlines()] == ["job.submitted", "job.started", "job.finished"]
    assert invoke("events", "20261126-010000-aaaaaa", "--follow").exit_code == 0
    assert invoke("events", "20261126-020000-cccccc", "--follow").exit_code == 1
    lines = invoke("events", "20261126-020000-cccccc", "--json").output.splitlines()
    assert json.loads(lines[-1])["data"]["error"] == "broken"


def test_unknown_or_ambiguous_job_is_a_usage_error(invoke, store) -> None:
    """A job id that matches nothing, or several jobs, exits 2."""
    store.submit("20261126-010000-aaaaaa", source="a.md", kind="article")
    store.submit("20261126-010000-bbbbbb", source="b.md", kind="article")
    assert invoke("events", "nope").exit_code == 2
    assert invoke("cancel", "20261126-010000").exit_code == 2


def test_cancel_and_retry_queue_requests_for_the_daemon(invoke, store) -> None:
    """cancel/retry write requests (the daemon takes them); wrong states are usage errors."""
    store.submit("20261126-010000-aaaaaa", source="a.md", kind="article")
    store.submit("20261126-010001-bbbbbb", source="b.md", kind="article")
    store.append("20261126-010001-bbbbbb", "job.failed", error="x")
    assert invoke("retry", "20261126-010000-aaaaaa").exit_code == 2  # queued: nothing to retry
    assert invoke("cancel", "20261126-010001-bbbbbb").exit_code == 2  # already failed
    assert invoke("cancel", "20261126-010000-aaaaaa").exit_code == 0
    assert invoke("retry", "20261126-010001-bbbbbb").exit_code == 0
    assert store.take_requests() == [("20261126-010000-aaaaaa", "cancel"), ("20261126-010001-bbbbbb", "retry")]


def test_submit_url_and_file(invoke, home: Path, tmp_path: Path) -> None:
    """submit drops a .url for a URL and a copy for a file; a missing file exits 2."""
    result = invoke("submit", "https://example.com/post")
    assert result.exit_code == 0
    dropped = Path(result.stdout.strip())
    assert dropped.parent == home / "inbox" and dropped.read_text() == "https://example.com/post\n"
    assert "no daemon is running" in result.stderr  # nothing will take it until one starts
    article = tmp_path / "a.md"
    article.write_text("# A\n")
    assert Path(invoke("submit", str(article)).stdout.strip()).read_text() == "# A\n"
    assert invoke("submit", str(tmp_path / "missing.md")).exit_code == 2


def test_rebuild_recomputes_jobs(invoke, store) -> None:
    """rebuild reports the number of jobs and leaves the table equal to the fold."""
    store.submit("20261126-010000-aaaaaa", source="a.md", kind="article")
    store.db.execute("DELETE FROM jobs")
    result = invoke("rebuild")
    assert result.exit_code == 0 and "1 job" in result.output
    assert store.job("20261126-010000-aaaaaa")["state"] == "queued"


def test_make_runs_the_stages_in_process(invoke, home: Path, tmp_path: Path) -> None:
    """make writes OUT.mp4 (and .srt, .json) without a daemon; a stage failure exits 1; a missing source 2."""
    article = tmp_path / "a.md"
    article.write_text("# Made\n\ntext\n")
    out = tmp_path / "out" / "made.mp4"
    result = invoke("make", str(article), "-o", str(out), "--size", "320x180")
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"not really an mp4") and out.with_suffix(".srt").exists()
    sidecar = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))  # as the daemon delivers
    assert sidecar["files"] == {"video": "made.mp4", "subtitles": "made.srt"}
    assert sidecar["source"] == "a.md" and sidecar["input_kind"] == "article" and sidecar["job_id"]
    assert {"title", "duration", "chapters", "credits"} <= set(sidecar)
    (home / "gates" / "fail-audio").touch()
    failed = invoke("make", str(article), "-o", str(tmp_path / "x.mp4"))
    assert failed.exit_code == 1 and not (tmp_path / "x.mp4").exists()
    assert invoke("make", str(tmp_path / "missing.md"), "-o", str(out)).exit_code == 2
    assert invoke("make", str(article), "-o", str(out), "--size", "big").exit_code == 2


def test_validate_reports_lines(invoke, tmp_path: Path) -> None:
    """validate prints path:line:column for each problem and exits 1; a good script exits 0."""
    good = tmp_path / "good.yaml"
    good.write_text("title: ok\nsections:\n  - title: one\n    narrations: [hello]\n")
    assert invoke("validate", str(good)).exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: bad\nsections:\n  - title: one\n")
    result = invoke("validate", str(bad))
    assert result.exit_code == 1
    assert re.search(r"bad\.yaml:\d+:\d+: ", result.output)


def test_extract_a_local_markdown_file(invoke, tmp_path: Path) -> None:
    """extract prints the article text, or its JSON."""
    page = tmp_path / "p.md"
    page.write_text("# Heading\n\nFirst paragraph of the article.\n")
    text = invoke("extract", str(page))
    assert text.exit_code == 0 and "First paragraph of the article." in text.output
    data = json.loads(invoke("extract", str(page), "--format", "json").output)
    assert isinstance(data, dict) and data.get("blocks")


def test_doctor_reports_and_fails_on_an_unreachable_voicevox(home: Path, tmp_path: Path) -> None:
    """doctor lists tools; a configured VOICEVOX on a closed port is reported and exits 1;
    secrets are masked."""
    config = tmp_path / "doctor.toml"
    config.write_text('[audio]\nengine = "voicevox"\n[voicevox]\nurl = "http://127.0.0.1:9"\ntimeout = 2\n'
                      '[script]\nwriter = "llm"\n[llm]\nbase_url = "http://127.0.0.1:9/v1"\napi_key = "sk-secret-123"\n')
    result = CliRunner().invoke(cli, ["--home", str(home), "--config", str(config), "doctor"],
                                catch_exceptions=False, terminal_width=200)
    assert result.exit_code == 1
    assert "ffmpeg" in result.output and "voicevox" in result.output
    assert "sk-secret-123" not in result.output


def test_bad_config_is_a_usage_error(home: Path) -> None:
    """A typo in the settings file exits 2 with the validation message."""
    (home / "moviegen.toml").write_text("[daemon]\nmax_jobz = 3\n")
    result = CliRunner().invoke(cli, ["--home", str(home), "status"])
    assert result.exit_code == 2 and "max_jobz" in result.output


def test_home_option_works_after_the_command(home: Path) -> None:
    """`moviegen run --home DIR` style: --home is accepted on the subcommand too."""
    assert isinstance(cli.commands["run"], click.Command)
    result = CliRunner().invoke(cli, ["status", "--home", str(home), "--json"])
    assert result.exit_code == 0 and json.loads(result.output) == []


def test_events_follow_shows_live_progress_until_the_end(invoke, store, home: Path) -> None:
    """--follow keeps reading new events (another writer holding the daemon's lock) and ends when
    the job does."""
    import threading
    import time

    from daemon.lock import hold_home_lock

    job = "20261126-030000-dddddd"
    store.submit(job, source="d.md", kind="article")
    lock = hold_home_lock(home / "state")  # the writer stands in for a running daemon

    def writer() -> None:
        other = EventStore(home / "state" / "moviegen.db")
        time.sleep(0.4)
        other.append(job, "job.started", stage="fetch")
        other.append(job, "stage.progress", "fetch", current=1, total=2, percent=2.5, message="half")
        time.sleep(0.4)
        other.append(job, "stage.finished", "fetch", next="script", percent=5.0)
        other.append(job, "job.finished", output="/out.mp4")
        other.close()

    thread = threading.Thread(target=writer)
    thread.start()
    result = invoke("events", job, "--follow")
    thread.join()
    lock.close()
    assert result.exit_code == 0
    assert "stage.finished" in result.output and "job.finished" in result.output


def test_broken_toml_is_a_usage_error(home: Path) -> None:
    """A TOML syntax error exits 2 with a message, not a traceback."""
    (home / "moviegen.toml").write_text("[daemon]\nmax_jobs = 2\nmax_jobs = 3\n")
    result = CliRunner().invoke(cli, ["--home", str(home), "status"])
    assert result.exit_code == 2 and "not valid TOML" in result.output
