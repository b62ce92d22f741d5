"""The beats of a section: visuals (code, table, math, image) and which line shows what."""

from __future__ import annotations

import pytest
import yaml

from stages.script import dump_script, load_script
from stages.script.model import Script
from stages.settings import load_settings


@pytest.fixture
def settings(tmp_path):
    return load_settings(home=tmp_path)


SCRIPT = {
    "title": "Union-Find",
    "language": "ja",
    "sections": [
        {
            "title": "計算量",
            "visuals": [
                {"kind": "code", "language": "python", "text": "def find(x):\n    return x"},
                {"kind": "table", "caption": "計算量", "header": ["操作", "計算量"], "rows": [["find", "O(1)"]]},
                {"kind": "math", "text": "E = mc^2"},
            ],
            "slide": {"heading": "計算量", "bullets": ["経路圧縮", "ほぼ定数時間"]},
            "narrations": [
                {"text": "経路圧縮を使います。", "bullet": 0},
                {"text": "コードはこうなります。", "show": 0},
                "次の表が計算量です。",
                {"text": "表を見ます。", "show": 1},
                {"text": "ほぼ定数時間です。", "bullet": 1},
            ],
        }
    ],
}


def test_visuals_round_trip_through_script_yaml(tmp_path, settings):
    """Visuals and show/bullet survive dump and load; empty table fields are not written."""
    script = Script.model_validate(SCRIPT)
    path = tmp_path / "script.yaml"
    path.write_text(dump_script(script), encoding="utf-8")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert "header" not in data["sections"][0]["visuals"][0]
    loaded = load_script(path, settings)
    section = loaded.sections[0]
    assert [v.kind for v in section.visuals] == ["code", "table", "math"]
    assert section.visuals[1].rows == [["find", "O(1)"]]
    assert [n.show for n in section.narrations] == [None, 0, None, 1, None]
    assert [n.bullet for n in section.narrations] == [0, None, None, None, 1]


def test_section_without_visuals_writes_none(tmp_path):
    """A plain section's YAML has no visuals key at all."""
    script = Script.model_validate({"title": "t", "sections": [{"title": "a", "narrations": ["x"]}]})
    assert "visuals" not in dump_script(script)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"narrations": [{"text": "x", "show": 3}]}, "show: 3 but the section has 3 visual(s)"),
        ({"narrations": [{"text": "x", "bullet": 2}]}, "bullet: 2 but the slide has 2 bullet(s)"),
        ({"narrations": [{"text": "x", "bullet": 0, "show": 0}]}, "show or bullet, not both"),
        ({"visuals": [{"kind": "code", "text": "  "}]}, "a code visual needs text"),
        ({"visuals": [{"kind": "table"}]}, "a table visual needs header or rows"),
        ({"visuals": [{"kind": "chart", "text": "x"}]}, "'code', 'table', 'math' or 'image'"),
    ],
)
def test_bad_beats_are_refused(change, message):
    """An index out of range, both kinds at once or an empty visual is an error that says so."""
    data = {**SCRIPT, "sections": [{**SCRIPT["sections"][0], **change}]}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Script.model_validate(data)


def test_image_visual_path_is_checked_in_the_home(tmp_path, settings):
    """A dropped script's image visual is resolved in the home; a missing file is a problem with its place."""
    data = {"title": "t", "sections": [{"title": "a", "visuals": [{"kind": "image", "src": "assets/nope.png"}],
                                        "narrations": [{"text": "x", "show": 0}]}]}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    from stages.script import validate_script_file

    issues = validate_script_file(path, settings)
    assert issues and "visual 1" in issues[0].message
