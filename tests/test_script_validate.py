"""Script files: parsing, legacy forms, and problems reported with line and column."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stages.base import InputError
from stages.script import ScriptIssue, dump_script, load_script, validate_script_file
from stages.settings import load_settings

DATA = Path(__file__).parent / "data"


@pytest.fixture
def settings(tmp_path):
    return load_settings(
        home=tmp_path,
        personas=[{"id": "zundamon", "name": "ずんだもん"}, {"id": "metan", "name": "四国めたん"}],
        default_persona="zundamon",
    )


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_two_errors_in_one_file_are_both_reported_with_positions(settings):
    """Every problem is listed, each at the line and column of the offending value or key."""
    issues = validate_script_file(DATA / "script_two_errors.yaml", settings)
    assert ScriptIssue(6, 21, "sections[0].narrations[0].persona_id: unknown persona 'ghost' (configured: zundamon, metan)") in issues
    assert any(i.line == 7 and i.column == 5 and "missing required field 'title'" in i.message for i in issues)
    assert any(i.line == 9 and i.column == 9 and "unknown field 'colour'" in i.message for i in issues)
    assert len(issues) == 3


def test_load_script_raises_input_error_listing_every_issue(settings):
    """load_script refuses an invalid file with one InputError naming all issues by line:column."""
    with pytest.raises(InputError) as caught:
        load_script(DATA / "script_two_errors.yaml", settings)
    message = str(caught.value)
    assert "script_two_errors.yaml:6:21:" in message
    assert "script_two_errors.yaml:7:5:" in message
    assert "script_two_errors.yaml:9:9:" in message


def test_unknown_persona_is_only_checked_with_settings(tmp_path):
    """Without settings the persona ids cannot be checked, so the file validates."""
    path = write(tmp_path, "s.yaml", "title: t\nsections:\n  - title: a\n    narrations:\n      - {text: x, persona_id: ghost}\n")
    assert validate_script_file(path, None) == []
    assert validate_script_file(path, load_settings(home=tmp_path)) != []


def test_legacy_forms_are_accepted_and_normalised(settings):
    """narration strings, dialogues with speaker/persona and role_assignments all load."""
    script = load_script(DATA / "script_legacy.yaml", settings)
    intro, dialogue, plain = script.sections
    assert len(intro.narrations) >= 2  # the single string was split into phrases
    assert "".join(n.text for n in intro.narrations).replace(" ", "") == (
        "今日は型ヒントの話をするのだ。Pythonのバージョン3.5から使えるようになった機能で、コードの意図を読み手に伝えるための仕組みなのだ！"
    )
    assert all(len(n.text) <= 40 for n in intro.narrations)
    assert [(n.persona_id, n.text) for n in dialogue.narrations] == [
        ("zundamon", "型ヒントって知ってる？"),
        ("metan", "名前だけは聞いたことがあるわ。"),
        ("zundamon", "実は簡単なのだ。"),
    ]
    assert dialogue.narrations[0].reading == "カタヒントッテシッテル？"
    assert plain.narrations[0].text == "まずは関数から始めるのだ。" and plain.narrations[0].persona_id is None
    assert [r.role for r in script.role_assignments] == ["解説役", "質問役"]


def test_legacy_dialogue_with_unknown_speaker_points_at_the_speaker(tmp_path, settings):
    """A dialogue's unknown speaker is reported where the speaker key's value is."""
    path = write(tmp_path, "d.yaml", "title: t\nsections:\n  - title: a\n    dialogues:\n      - speaker: nobody\n        text: hi\n")
    [issue] = validate_script_file(path, settings)
    assert (issue.line, issue.column) == (5, 18)
    assert "unknown persona 'nobody'" in issue.message


def test_only_one_narration_form_per_section(tmp_path, settings):
    """narrations and dialogues together in one section are an error at that section."""
    path = write(tmp_path, "x.yaml", "title: t\nsections:\n  - title: a\n    narrations: [x]\n    dialogues: [{speaker: metan, text: y}]\n")
    [issue] = validate_script_file(path, settings)
    assert issue.line == 3 and "only one of narrations, dialogues" in issue.message


def test_yaml_syntax_error_names_the_line(tmp_path, settings):
    """A YAML syntax error is one issue at the line where the parser stopped."""
    path = write(tmp_path, "bad.yaml", "title: t\nsections:\n  - title: [unclosed\n    narrations: []\n")
    [issue] = validate_script_file(path, settings)
    assert issue.line in (3, 4) and "YAML syntax error" in issue.message
    with pytest.raises(InputError, match=r"bad\.yaml:\d+:\d+: YAML syntax error"):
        load_script(path, settings)


@pytest.mark.parametrize("text, expected", [
    ("- just\n- a list\n", "this file holds list"),
    ("", "this file holds nothing"),
    ("just a string\n", "this file holds str"),
])
def test_not_a_mapping_is_reported(tmp_path, settings, text, expected):
    """A YAML document that is not a mapping says what it holds instead."""
    [issue] = validate_script_file(write(tmp_path, "s.yaml", text), settings)
    assert expected in issue.message and issue.line == 1


def test_random_bytes_are_a_clear_input_error(tmp_path, settings):
    """Binary garbage is refused with a line number, not a traceback."""
    path = write(tmp_path, "garbage.yaml", b"title: x\n" + os.urandom(512) + b"\x00\xff")
    with pytest.raises(InputError, match=r"garbage\.yaml:\d+:\d+: the file (is not UTF-8|holds binary)"):
        load_script(path, settings)


def test_json_syntax_error_has_line_and_column(tmp_path, settings):
    """JSON scripts report syntax errors at the decoder's line and column."""
    path = write(tmp_path, "s.json", '{"title": "t",\n "sections": [\n  {"title": "a",, }\n]}')
    [issue] = validate_script_file(path, settings)
    assert (issue.line, issue.column) == (3, 17)
    assert issue.message.startswith("JSON syntax error")


def test_json_validation_errors_map_to_positions(tmp_path, settings):
    """Schema errors in a JSON script point at the JSON value."""
    doc = '{\n  "title": "t",\n  "sections": [\n    {"title": null, "narrations": [{"text": "x", "persona_id": "ghost"}]}\n  ]\n}\n'
    issues = validate_script_file(write(tmp_path, "s.json", doc), settings)
    assert [(i.line, i.column) for i in issues] == [(4, 15), (4, 64)]
    assert "sections[0].title" in issues[0].message and "ghost" in issues[1].message


def test_dump_and_load_round_trip(tmp_path, settings):
    """dump_script writes readable UTF-8 YAML that loads back to the same script."""
    script = load_script(DATA / "script_legacy.yaml", settings)
    text = dump_script(script)
    assert "型ヒント" in text and "\\u" not in text
    assert "dialogues" not in text and "narration:" not in text
    again = load_script(write(tmp_path, "again.yaml", text), settings)
    assert again == script


def test_a_valid_json_script_loads(tmp_path, settings):
    """The JSON form of the canonical script loads like the YAML one."""
    doc = {"title": "t", "language": "en", "sections": [{"title": "a", "narrations": ["Hello.", {"text": "Bye.", "persona_id": "metan"}]}]}
    script = load_script(write(tmp_path, "s.json", json.dumps(doc)), settings)
    assert [n.text for n in script.sections[0].narrations] == ["Hello.", "Bye."]
    assert [pid for pid, _, _ in script.phrases()] == ["000-000", "000-001"]


def test_numbers_are_text_and_empty_narrations_are_errors(tmp_path, settings):
    """`title: 2024` is read as text; an empty narration is reported at its position."""
    path = write(tmp_path, "n.yaml", "title: 2024\nsections:\n  - title: 1\n    narrations:\n      - 42\n      - text: '  '\n")
    [issue] = validate_script_file(path, settings)
    assert (issue.line, issue.column) == (6, 15) and "needs some text" in issue.message
    path.write_text("title: 2024\nsections:\n  - title: 1\n    narrations: [42]\n")
    script = load_script(path, settings)
    assert script.title == "2024" and script.sections[0].narrations[0].text == "42"


def test_a_missing_file_is_one_issue(tmp_path, settings):
    """validate reports an unreadable file as an issue; load_script raises InputError."""
    [issue] = validate_script_file(tmp_path / "nope.yaml", settings)
    assert "cannot read the file" in issue.message
    with pytest.raises(InputError, match="nope.yaml:1:1: cannot read"):
        load_script(tmp_path / "nope.yaml", settings)
