"""Scripts from the original movie-generator load; the files a script names are checked when it is read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from daemon.cli import cli
from stages.base import InputError
from stages.script import adopt_script, load_script, validate_script_file
from stages.settings import load_settings

# The original's dialogue form: each item names its persona and carries its words in `narration`.
ORIGINAL_DIALOGUE = """\
title: 型ヒント入門
sections:
  - title: イントロ
    dialogues:
      - persona_id: zundamon
        narration: やっほー！
      - persona_id: metan
        narration: こんにちは！
        reading: コンニチワ！
    slide_prompt: 二人が手を振る
"""


@pytest.fixture
def home(tmp_path) -> Path:
    home = tmp_path / "home"
    (home / "assets").mkdir(parents=True)
    return home


@pytest.fixture
def settings(home):
    return load_settings(home=home, personas=[{"id": "zundamon"}, {"id": "metan"}], default_persona="zundamon")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def png(path: Path, size: tuple[int, int] = (160, 90)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (40, 120, 200)).save(path)
    return path


def with_files(slide_image: str, background: str) -> str:
    return f"""\
title: 資産の確認
sections:
  - title: はじめに
    narrations: [始めるのだ。]
  - title: 図で見る
    narrations: [この図を見るのだ。]
    slide: {{heading: 図, image: {slide_image}}}
    background: {{type: image, path: {background}}}
"""


def test_original_dialogues_with_narration_load(tmp_path, settings):
    """`dialogues:` items with `persona_id` and `narration` become narrations, readings kept."""
    script = load_script(write(tmp_path / "original.yaml", ORIGINAL_DIALOGUE), settings)
    assert [(n.persona_id, n.text, n.reading) for n in script.sections[0].narrations] == [
        ("zundamon", "やっほー！", None), ("metan", "こんにちは！", "コンニチワ！"),
    ]


def test_original_json_response_form_loads(tmp_path, settings):
    """The original's JSON (an LLM response saved as a file) loads the same way."""
    doc = {"title": "t", "sections": [{"title": "イントロ", "dialogues": [
        {"persona_id": "zundamon", "narration": "やっほー！"}, {"persona_id": "metan", "narration": "こんにちは！"}],
        "slide_prompt": "..."}]}
    script = load_script(write(tmp_path / "original.json", json.dumps(doc, ensure_ascii=False)), settings)
    assert [n.persona_id for n in script.sections[0].narrations] == ["zundamon", "metan"]


@pytest.mark.parametrize("item, where, message", [
    ("{persona_id: zundamon, narration: ''}", "sections[0].dialogues[1].narration", "a narration needs some text"),
    ("{persona_id: zundamon, narration: x, colour: red}", "sections[0].dialogues[1].colour", "unknown field 'colour'"),
    ("{persona_id: zundamon, narration: x, text: y}", "sections[0].dialogues[1]",
     "use only one of text, narration (they name the same field)"),
    ("{speaker: zundamon}", "sections[0].dialogues[1].text", "missing required field 'text' (or 'narration')"),
])
def test_errors_name_paths_as_the_file_writes_them(tmp_path, settings, item, where, message):
    """An error in a dialogue cites `dialogues[i].narration`, never the internal `narrations[i].text`."""
    text = ORIGINAL_DIALOGUE.replace("      - persona_id: metan\n        narration: こんにちは！\n        reading: コンニチワ！\n",
                                     f"      - {item}\n")
    [issue] = validate_script_file(write(tmp_path / "bad.yaml", text), settings)
    assert issue.message == f"{where}: {message}", issue.message
    assert "narrations" not in issue.message
    assert issue.line == 7


def test_an_empty_narration_string_is_named_as_written(tmp_path, settings):
    """A `narration: ""` section is reported at `narration`, the key the file used."""
    path = write(tmp_path / "s.yaml", "title: t\nsections:\n  - title: a\n    narration: '  '\n")
    [issue] = validate_script_file(path, settings)
    assert issue.message.startswith("sections[0].narration:") and (issue.line, issue.column) == (4, 16)


def test_relative_files_resolve_against_the_home(tmp_path, home, settings):
    """`assets/chart.png` is read from the home; the loaded script names the absolute path."""
    png(home / "assets" / "chart.png")
    png(home / "assets" / "bg.png")
    path = write(tmp_path / "s.yaml", with_files("assets/chart.png", "assets/bg.png"))
    assert validate_script_file(path, settings) == []
    script = load_script(path, settings, user_file=True)
    assert script.sections[1].slide.image == str((home / "assets" / "chart.png").resolve())
    assert script.sections[1].background.path == str((home / "assets" / "bg.png").resolve())


def test_adopted_script_names_absolute_paths(tmp_path, home, settings):
    """The script stage writes the resolved paths into script.yaml: later stages never guess."""
    png(home / "assets" / "chart.png")
    png(home / "assets" / "bg.png")
    out = tmp_path / "job" / "script.yaml"
    out.parent.mkdir()
    adopt_script(write(tmp_path / "s.yaml", with_files("file:assets/chart.png", "./assets/bg.png")), out, settings)
    written = yaml.safe_load(out.read_text(encoding="utf-8"))["sections"][1]
    assert written["slide"]["image"] == str((home / "assets" / "chart.png").resolve())
    assert written["background"]["path"] == str((home / "assets" / "bg.png").resolve())


def test_missing_files_are_reported_with_absolute_path_and_section_title(tmp_path, home, settings):
    """Each missing file: its line, the path as written in the file, the absolute path and the section."""
    path = write(tmp_path / "s.yaml", with_files("assets/nope.png", "assets/gone.png"))
    image, background = validate_script_file(path, settings)
    assert (image.line, image.column) == (7, 32) and (background.line, background.column) == (8, 37)
    assert image.message.startswith("sections[1].slide.image: section 2 ('図で見る'): slide image: ")
    assert f"{home / 'assets' / 'nope.png'!s}" in image.message and "does not exist" in image.message
    assert "relative paths are read from the home" in image.message
    assert background.message.startswith("sections[1].background.path: section 2 ('図で見る'): image background")
    assert str(home / "assets" / "gone.png") in background.message


def test_files_outside_the_home_are_refused(tmp_path, home, settings):
    """`../` escapes, absolute paths elsewhere and symlinks out of the home are refused, naming the target."""
    outside = png(tmp_path / "outside.png")
    (home / "assets" / "link.png").symlink_to(outside)
    for image in ("../outside.png", str(outside), "assets/link.png"):
        [issue] = validate_script_file(write(tmp_path / "s.yaml", with_files(image, "assets/link.png").replace(
            "    background: {type: image, path: assets/link.png}\n", "")), settings)
        assert "outside the job folder and the moviegen home" in issue.message, image
    [issue] = validate_script_file(write(tmp_path / "s.yaml", with_files("https://example.com/a.png", "assets/link.png")),
                                   settings)
    assert f"it resolves to {outside}" in issue.message


def test_an_image_background_without_a_path_is_an_error_at_validation(tmp_path, settings):
    """A background that needs a file but names none fails when read, not in the video stage."""
    path = write(tmp_path / "s.yaml", "title: t\nsections:\n  - title: a\n    narrations: [x]\n    background: {type: video}\n")
    [issue] = validate_script_file(path, settings)
    assert issue.message == "sections[0].background: section 1 ('a'): a video background needs a path"


def test_scripts_a_writer_made_are_not_held_to_user_files(tmp_path, settings):
    """Without user_file (the script stage's own output), a missing image is the slides stage's fallback."""
    path = write(tmp_path / "s.yaml", with_files("assets/nope.png", "assets/gone.png"))
    assert load_script(path, settings).sections[1].slide.image == "assets/nope.png"


def test_validate_command_prints_absolute_paths_and_titles(tmp_path, home):
    """`moviegen validate` names the resolved file and the section for each problem (exit 1)."""
    path = write(tmp_path / "s.yaml", with_files("assets/nope.png", "https://example.com/x.png"))
    result = CliRunner().invoke(cli, ["--home", str(home), "validate", str(path)], catch_exceptions=False)
    assert result.exit_code == 1
    assert f"{path}:7:32: sections[1].slide.image: section 2 ('図で見る')" in result.output
    assert str(home / "assets" / "nope.png") in result.output


def test_make_fails_at_the_script_stage_on_a_missing_file(tmp_path, home):
    """`moviegen make` stops at the script stage (no audio is made) with the file's absolute path."""
    path = write(tmp_path / "s.yaml", with_files("assets/nope.png", "https://example.com/x.png"))
    result = CliRunner().invoke(cli, ["--home", str(home), "make", str(path), "-o", str(tmp_path / "out.mp4")])
    assert result.exit_code == 1
    assert "s.yaml is not a valid script" in result.output and "source.yaml" not in result.output
    assert "nope.png" in "".join(result.output.split())  # the console wraps long lines
    assert not (tmp_path / "out.mp4").exists() and not (home / "state" / "cache" / "audio").exists()


def test_the_video_plan_uses_the_home_file_a_relative_path_named(tmp_path):
    """End to end through the plan: a relative background from the user's script is the home's file."""
    from stages.video.plan import plan_timeline
    from tests.test_video_fixtures import Phrase, make_job

    job = make_job(tmp_path, [[Phrase("a")], [Phrase("b")]])
    background = png(job.settings.home / "assets" / "bg.png", (320, 180))
    user = yaml.safe_load((job.dir / "script.yaml").read_text(encoding="utf-8"))
    user["sections"][1]["background"] = {"type": "image", "path": "assets/bg.png"}
    source = write(tmp_path / "dropped.yaml", yaml.safe_dump(user, allow_unicode=True))
    adopt_script(source, job.dir / "script.yaml", job.settings)
    timeline = plan_timeline(job.dir, job.settings)
    assert [o.background.path for o in timeline.background.overrides] == [str(background.resolve())]


def test_a_missing_file_fails_the_job_at_the_script_stage_in_a_live_daemon(tmp_path):
    """Dropped into the daemon, a script naming a missing file ends in failed/ from the script stage,
    and the note gives the absolute path and the section; with the file in place it is delivered."""
    from tests.fixtures_service import CONFIG, ServiceDaemon, drop, wait_for

    config = CONFIG.format(settle=0.2, cap=1024 * 1024, rescan=0.5).replace(
        "tests.fixtures_service:service_stages", "tests.test_script_limits:real_script_stages")
    daemon = ServiceDaemon(tmp_path / "home", config=config).start()
    try:
        text = with_files("assets/chart.png", "assets/bg.png")
        drop(daemon.home / "inbox", "figures.yaml", text)
        note = daemon.home / "failed" / "figures.yaml.error.txt"
        wait_for(note.exists, 30, "the note", daemon)
        body = note.read_text(encoding="utf-8")
        assert "stage: script" in body and "section 2 ('図で見る')" in body, body
        assert str(daemon.home / "assets" / "chart.png") in body and str(daemon.home / "assets" / "bg.png") in body
        png(daemon.home / "assets" / "chart.png")
        png(daemon.home / "assets" / "bg.png")
        drop(daemon.home / "inbox", "figures-fixed.yaml", text + "description: with the files\n")
        job = wait_for(lambda: daemon.job_of("figures-fixed.yaml"), 30, "the claim", daemon)
        wait_for(lambda: daemon.state(job) == "done", 60, "the fixed script to be delivered", daemon)
        adopted = yaml.safe_load((daemon.home / "state" / "jobs" / job / "script.yaml").read_text(encoding="utf-8"))
        assert adopted["sections"][1]["background"]["path"] == str((daemon.home / "assets" / "bg.png").resolve())
        assert daemon.alive()
    finally:
        daemon.stop()


def test_symlinked_home_paths_stay_allowed(tmp_path):
    """A home reached through a symlink still holds its files (the check compares resolved paths)."""
    real = tmp_path / "real-home"
    png(real / "assets" / "chart.png")
    png(real / "assets" / "bg.png")
    os.symlink(real, tmp_path / "home-link")
    settings = load_settings(home=tmp_path / "home-link")
    path = write(tmp_path / "s.yaml", with_files("assets/chart.png", "assets/bg.png"))
    assert validate_script_file(path, settings) == []
    with pytest.raises(InputError):
        load_script(write(tmp_path / "t.yaml", with_files("assets/none.png", "assets/bg.png")), settings, user_file=True)
