"""Reading and writing script files, with every problem reported at its line and column.

YAML is composed with PyYAML (the node tree keeps each value's position) and JSON is parsed with
the standard library (its syntax errors carry a line and column); either way every pydantic error
location is mapped back to the position of the value, or of the nearest enclosing value that
exists in the file (a missing field is reported at its parent mapping), and named as the file
names it (``dialogues[0].narration``, not the normalised ``narrations[0].text``).

Reading is budgeted (:mod:`stages.script.limits`): size, values, nesting and aliases while parsing,
then sections, phrases, characters and speaking time. A script the user wrote (a dropped or
validated file, not one a writer produced) also has its files checked (:mod:`stages.script.assets`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from stages.base import ConfigError, InputError
from stages.script.limits import (
    LimitExceeded,
    check_content,
    check_json_shape,
    check_phrase_count,
    check_section_count,
    check_size,
    compose_yaml,
    construct_yaml,
    default_limits,
)
from stages.script.model import LEGACY_NARRATION_KEYS, Script

if TYPE_CHECKING:
    from stages.settings import ScriptLimitSettings, Settings

Position = tuple[int, int]
_KEY = "<key>"  # positions[path + (_KEY,)] is where the key of the value at ``path`` is written
_LEAF = "<leaf>"  # positions[path + (_LEAF,)] exists when the value at ``path`` is a scalar
_ALIASES: dict[str, tuple[str, ...]] = {
    "narrations": ("dialogues", "narration"),
    "persona_id": ("speaker", "persona"),
    "text": ("narration",),
}


@dataclass(frozen=True)
class ScriptIssue:
    """One problem in a script file; ``line`` and ``column`` count from 1.

    ``limit`` names the ``script.limits`` setting the file is over, when that is the problem.
    """

    line: int
    column: int
    message: str
    limit: str | None = field(default=None, compare=False)
    config: bool = field(default=False, compare=False)  # the fix is in the settings (an unknown persona)

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: {self.message}"


class ScriptInvalid(InputError):
    """A script file failed validation; ``issues`` lists every problem found."""

    def __init__(self, path: Path, issues: list[ScriptIssue], name: str | None = None):
        self.path = Path(path)
        self.issues = issues
        self.limits = sorted({issue.limit for issue in issues if issue.limit})
        shown = name or self.path.name
        lines = "\n".join(f"  {shown}:{issue}" for issue in issues)
        if self.limits:
            head = f"{shown} is over the script limits ({', '.join('script.limits.' + n for n in self.limits)})"
        else:
            head = f"{shown} is not a valid script"
        super().__init__(f"{head} ({len(issues)} problem(s)):\n{lines}")


class ScriptNeedsConfig(ScriptInvalid, ConfigError):
    """A script whose only problems are persona ids the configuration lacks: the fix is in the settings."""

    def __init__(self, path: Path, issues: list[ScriptIssue], name: str | None = None,
                 config_name: str = "moviegen.toml"):
        super().__init__(path, issues, name)
        shown = name or self.path.name
        lines = "\n".join(f"  {shown}:{issue}" for issue in issues)
        self.args = (f"{shown} names personas the configuration does not define: add them as [[personas]] "
                     f"entries to {config_name}, or use the configured ids ({len(issues)} problem(s)):\n{lines}",)


def load_script(
    path: Path, settings: "Settings | None" = None, *, name: str | None = None, user_file: bool = False
) -> Script:
    """Parse and validate a script file (YAML or JSON).

    Args:
        path: a ``.yaml``, ``.yml`` or ``.json`` script.
        settings: when given, persona ids are checked against ``settings.personas`` and the budgets
            are ``settings.script.limits`` (else the defaults).
        name: the file's name as the user knows it, for messages (default: ``path.name``).
        user_file: the user wrote it (needs ``settings``): every file it names (slide images,
            backgrounds) must exist inside the home, relative paths resolve against the home, and
            the returned script names them by absolute path.

    Raises:
        ScriptInvalid: (an :class:`InputError`) listing every issue with its line and column.
    """
    script, issues = _parse_and_validate(Path(path), settings, user_file)
    if issues:
        if settings is not None and all(issue.config for issue in issues):
            raise ScriptNeedsConfig(Path(path), issues, name, settings.config_name())
        raise ScriptInvalid(Path(path), issues, name)
    assert script is not None
    return script


def validate_script_file(path: Path, settings: "Settings | None") -> list[ScriptIssue]:
    """Every problem in a user's script file, in file order; ``[]`` when it is valid.

    With ``settings``, the files it names are checked too (see :func:`load_script`'s ``user_file``).
    """
    return _parse_and_validate(Path(path), settings, settings is not None)[1]


def parse_script_text(
    text: str, *, json_syntax: bool = False, settings: "Settings | None" = None, user_file: bool = False
) -> tuple[Script | None, list[ScriptIssue]]:
    """Validate script text; returns the script (None when invalid) and the issues."""
    limits = settings.script.limits if settings is not None else default_limits()
    data, positions, issues = _parse(text, json_syntax, limits)
    if issues:
        return None, issues
    return _validate(data, positions, settings, limits, user_file)


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump_script(script: Script) -> str:
    """The YAML text of a script: fields in model order, unset fields left out, Unicode kept."""
    data = script.model_dump(mode="json", exclude_none=True)
    for section in data["sections"]:  # empty visuals (and a visual's empty table fields) say nothing
        if not section.get("visuals"):
            section.pop("visuals", None)
        for visual in section.get("visuals", []):
            for key in ("header", "rows"):
                if not visual.get(key):
                    visual.pop(key, None)
    options = {"allow_unicode": True, "sort_keys": False, "width": 4096, "default_flow_style": False}
    # libyaml's emitter writes the same text as PyYAML's about 5x faster (0.1 s on a long article),
    # except that it escapes characters beyond the BMP (an emoji becomes "\U0001F609"): such a
    # script is written by PyYAML's, so the file shows what the subtitles will
    text = yaml.dump(data, Dumper=_DUMPER, **options)
    return text if "\\U" not in text else yaml.dump(data, Dumper=yaml.SafeDumper, **options)


# --- parsing ----------------------------------------------------------------------------------


def _parse_and_validate(path: Path, settings: "Settings | None", user_file: bool) -> tuple[Script | None, list[ScriptIssue]]:
    limits = settings.script.limits if settings is not None else default_limits()
    try:
        with path.open("rb") as handle:
            check_size(os.fstat(handle.fileno()).st_size, limits)
            raw = handle.read(limits.max_bytes + 1)  # the file may grow after the check
        check_size(len(raw), limits)
    except LimitExceeded as exc:
        return None, [_limit_issue(exc)]
    except OSError as exc:
        return None, [ScriptIssue(1, 1, f"cannot read the file: {exc.strerror or exc}")]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [ScriptIssue(line, column, "the file is not UTF-8 text (is it a script at all?)")]
    return parse_script_text(text, json_syntax=path.suffix.lower() == ".json", settings=settings, user_file=user_file)


def _parse(text: str, json_syntax: bool, limits: "ScriptLimitSettings") -> tuple[Any, dict[tuple, Position], list[ScriptIssue]]:
    """The data, the position of every value by path, and any syntax problem."""
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        return None, {}, [ScriptIssue(line, 1, "the file holds binary data, not a script")]
    if json_syntax:
        try:
            check_json_shape(text, limits)
            data = json.loads(text)
        except LimitExceeded as exc:
            return None, {}, [_limit_issue(exc)]
        except json.JSONDecodeError as exc:
            return None, {}, [ScriptIssue(exc.lineno, exc.colno, f"JSON syntax error: {exc.msg}")]
        try:
            node = compose_yaml(text, limits)
        except LimitExceeded as exc:
            return None, {}, [_limit_issue(exc)]
        except yaml.YAMLError:
            node = None  # valid JSON that YAML 1.1 cannot read: positions fall back to 1:1
        return _check_mapping(data, _positions(node) if node is not None else {})
    try:
        data, node = construct_yaml(text, limits)
    except LimitExceeded as exc:
        return None, {}, [_limit_issue(exc)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        return None, {}, [ScriptIssue(line, column, f"YAML syntax error: {problem}")]
    except yaml.YAMLError as exc:
        return None, {}, [ScriptIssue(1, 1, f"YAML error: {exc}")]
    positions = _positions(node) if node is not None else {}
    issues = _duplicate_keys(node) if node is not None else []
    data, positions, shape = _check_mapping(data, positions)
    return data, positions, issues + shape


def _check_mapping(data: Any, positions: dict[tuple, Position]) -> tuple[Any, dict[tuple, Position], list[ScriptIssue]]:
    if isinstance(data, dict):
        return data, positions, []
    got = "nothing" if data is None else type(data).__name__
    line, column = positions.get((), (1, 1))
    return data, positions, [ScriptIssue(line, column, f"a script is a mapping with title and sections; this file holds {got}")]


def _positions(node: yaml.Node, path: tuple = ()) -> dict[tuple, Position]:
    marks: dict[tuple, Position] = {path: (node.start_mark.line + 1, node.start_mark.column + 1)}
    if isinstance(node, yaml.ScalarNode):
        marks[path + (_LEAF,)] = marks[path]
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                marks.update(_positions(value_node, path + (key_node.value,)))
                marks[path + (key_node.value, _KEY)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            marks.update(_positions(item, path + (index,)))
    return marks


def _duplicate_keys(node: yaml.Node) -> list[ScriptIssue]:
    issues: list[ScriptIssue] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    mark = key_node.start_mark
                    issues.append(ScriptIssue(mark.line + 1, mark.column + 1, f"duplicate key {key_node.value!r}"))
                seen.add(key_node.value)
            issues.extend(_duplicate_keys(value_node))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            issues.extend(_duplicate_keys(item))
    return issues


# --- validation -------------------------------------------------------------------------------


def _validate(
    data: dict,
    positions: dict[tuple, Position],
    settings: "Settings | None",
    limits: "ScriptLimitSettings",
    user_file: bool,
) -> tuple[Script | None, list[ScriptIssue]]:
    at_sections = positions.get(("sections", _KEY), (1, 1))
    sections = data.get("sections")
    if isinstance(sections, list):
        try:  # before each section is validated: a huge list costs pydantic time and memory
            check_section_count(len(sections), limits, at_sections)
            check_phrase_count(_raw_phrases(sections), limits, at_sections)
        except LimitExceeded as exc:
            return None, [_limit_issue(exc)]
    issues = _persona_issues(data, positions, settings) if settings is not None else []
    try:
        script: Script | None = Script.model_validate(data)
    except ValidationError as exc:
        script = None
        issues += [_issue_for(error, positions) for error in exc.errors(include_url=False)]
    if script is not None:
        issues += [_limit_issue(exc) for exc in check_content(script, limits, at_sections)]
    if script is not None and user_file and settings is not None and not issues:
        from stages.script.assets import resolve_assets

        script, problems = resolve_assets(script, settings)
        issues += [ScriptIssue(*_position(loc, positions), f"{_dotted(_user_loc(loc, positions))}: {message}")
                   for loc, message in problems]
    issues = sorted(set(issues), key=lambda i: (i.line, i.column, i.message))
    return (None if issues else script), issues


def _raw_phrases(sections: list) -> int:
    """Phrases in the raw sections: a list item is one, a ``narration:`` string at least one."""
    count = 0
    for section in sections:
        for key in LEGACY_NARRATION_KEYS if isinstance(section, dict) else ():
            value = section.get(key)
            count += len(value) if isinstance(value, list) else 1 if isinstance(value, str) else 0
    return count


def _limit_issue(exc: LimitExceeded) -> ScriptIssue:
    return ScriptIssue(*exc.mark, str(exc), limit=exc.setting)


def _issue_for(error: dict, positions: dict[tuple, Position]) -> ScriptIssue:
    loc = tuple(error["loc"])
    where_loc = _user_loc(loc, positions)
    line, column = _position(loc + (_KEY,) if error["type"] == "extra_forbidden" else loc, positions)
    where = _dotted(where_loc)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = f"unknown field {loc[-1]!r}"
    elif error["type"] == "missing":
        others = " or ".join(repr(name) for name in _ALIASES.get(loc[-1], ()))
        message = f"missing required field {loc[-1]!r}" + (f" (or {others})" if others else "")
    return ScriptIssue(line, column, f"{where}: {message}" if where else message)


def _user_loc(loc: tuple, positions: dict[tuple, Position]) -> tuple:
    """``loc`` (a path in the normalised script) as the file spells it.

    Legacy key names are used where the file used them (``dialogues``, ``narration``, ``speaker``);
    a path into a value the loader expanded (a ``narration:`` string split into phrases, a plain
    string read as ``{text: ...}``) stops at that value; a path to a missing field keeps its name.
    """
    path: tuple = ()
    for index, part in enumerate(loc):
        if part == _KEY:
            return path + (_KEY,)
        if path and path + (_LEAF,) in positions:
            return path
        names = (part, *_ALIASES.get(part, ())) if isinstance(part, str) else (part,)
        found = next((path + (name,) for name in names if path + (name,) in positions), None)
        if found is None:
            return path if isinstance(part, int) else path + tuple(loc[index:])
        path = found
    return path


def _position(loc: tuple, positions: dict[tuple, Position]) -> Position:
    """The position of ``loc`` as the file spells it, else of its nearest existing parent."""
    path = _user_loc(loc, positions)
    while path and path not in positions:
        path = path[:-1]
    return positions.get(path, positions.get((), (1, 1)))


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _expression_issues(
    expression: str, persona_id: object, loc: tuple, positions: dict[tuple, Position], settings: "Settings"
) -> list[ScriptIssue]:
    """An expression the line's persona's character does not have (a persona without one accepts any)."""
    from stages.characters import expression_names

    try:
        persona = settings.persona(persona_id if isinstance(persona_id, str) else None)
    except KeyError:
        return []  # reported as an unknown persona
    if persona.character is None:
        return []
    known = expression_names(persona.character)
    if expression in known:
        return []
    line, column = _position(loc, positions)
    return [ScriptIssue(
        line, column, f"{_dotted(loc)}: persona {persona.id!r} has no expression {expression!r} "
        f"(configured: {', '.join(known) or 'none'})", config=True,
    )]


def _persona_issues(data: dict, positions: dict[tuple, Position], settings: "Settings") -> list[ScriptIssue]:
    """Unknown persona ids, read from the raw data so they are reported beside schema errors."""
    known = [p.id for p in settings.personas]
    issues: list[ScriptIssue] = []

    def check(value: object, loc: tuple) -> None:
        if isinstance(value, str) and value not in known:
            line, column = _position(loc, positions)
            issues.append(ScriptIssue(
                line, column, f"{_dotted(loc)}: unknown persona {value!r} (configured: {', '.join(known)})",
                config=True,
            ))

    sections = data.get("sections")
    for si, section in enumerate(sections if isinstance(sections, list) else []):
        if not isinstance(section, dict):
            continue
        for key in ("narrations", "dialogues", "narration"):
            items = section.get(key)
            for ni, item in enumerate(items if isinstance(items, list) else []):
                if isinstance(item, dict):
                    persona = None
                    for name in ("persona_id", "speaker", "persona"):
                        if name in item:
                            check(item[name], ("sections", si, key, ni, name))
                            persona = item[name]
                            break
                    if isinstance(item.get("expression"), str):
                        issues += _expression_issues(item["expression"], persona, ("sections", si, key, ni, "expression"),
                                                     positions, settings)
    roles = data.get("role_assignments")
    for ri, role in enumerate(roles if isinstance(roles, list) else []):
        if isinstance(role, dict):
            check(role.get("persona_id"), ("role_assignments", ri, "persona_id"))
    return issues
