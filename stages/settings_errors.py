"""Readable settings errors: which file (or variable) holds the bad value, which key, what is allowed.

pydantic's own text names neither the TOML file nor the keys a section accepts. :func:`explain`
turns each of its errors into one line a user can act on, e.g.::

    invalid settings in /etc/moviegen/moviegen.toml (1 problem):
      [video] widht: unknown key (did you mean width?); [video] accepts: bgm, ..., width
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError


class SettingsError(ValueError):
    """The settings cannot be read at all (the file is not TOML); the message names the file."""


class InvalidSettings(ValidationError):
    """Settings that do not validate; ``str()`` is the readable list of :func:`explain`.

    Still a pydantic ``ValidationError``, so code that catches that keeps working.
    """

    message = "invalid settings"

    def __str__(self) -> str:
        return self.message


def explain(exc: ValidationError, model: type[BaseModel], toml_path: Path | None,
            overrides: dict[str, Any] | None = None) -> ValidationError | SettingsError:
    """The readable form of ``exc``: an :class:`InvalidSettings` (or a :class:`SettingsError`)."""
    lines = [_describe(error, model, overrides or {}) for error in exc.errors()]
    where = f" in {toml_path}" if toml_path is not None else ""
    count = f"{len(lines)} problem{'s' if len(lines) != 1 else ''}"
    message = f"invalid settings{where} ({count}):\n" + "\n".join(f"  {line}" for line in lines)
    try:
        readable = InvalidSettings.from_exception_data(exc.title, exc.errors())
    except (TypeError, ValueError, KeyError):  # an error type pydantic cannot rebuild: keep the text
        return SettingsError(message)
    readable.message = message
    return readable


def unreadable(toml_path: Path | None, exc: Exception) -> SettingsError:
    """A :class:`SettingsError` for a file that is not valid TOML."""
    return SettingsError(f"the settings file {toml_path} is not valid TOML: {exc}")


# --- one error ---------------------------------------------------------------------------------


def _describe(error: dict, model: type[BaseModel], overrides: dict[str, Any]) -> str:
    loc = tuple(error.get("loc") or ())
    key = _key_name(loc)
    source = _source(loc, overrides)
    value = error.get("input")
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        allowed = sorted(owner.model_fields) if owner is not None else []
        section = _section_name(loc[:-1])
        guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean {guess[0]}?)" if guess else ""
        return f"{source}{key}: unknown key{hint}; {section} accepts: {', '.join(allowed)}"
    if kind == "missing":
        return f"{source}{key}: is required"
    shown = f"{key or 'settings'} = {value!r}" if _is_scalar(value) else (key or "settings")
    if kind in ("literal_error", "enum"):
        return f"{source}{shown}: not allowed; allowed values: {ctx.get('expected', '?')}"
    problem = str(error.get("msg", "")).removeprefix("Value error, ")
    description = _description(model, loc)
    return f"{source}{shown}: {problem}" + (f" ({description})" if description else "")


def _source(loc: tuple, overrides: dict[str, Any]) -> str:
    names = [str(part) for part in loc if isinstance(part, str)]
    if names:
        variable = "MOVIEGEN_" + "__".join(names).upper()
        for name in os.environ:
            if name.upper() == variable:
                return f"(from the environment: {name}) "
    if loc and loc[0] in overrides:
        return ""
    return ""  # the file the heading names, or a default


def _key_name(loc: tuple) -> str:
    """``("video", "width")`` → ``[video] width``; ``("personas", 1, "speaker")`` → ``[[personas]] #2 speaker``."""
    parts: list[str] = []
    for index, part in enumerate(loc):
        if isinstance(part, int):
            parts[-1] = f"[[{parts[-1].strip('[]')}]] #{part + 1}"
        elif index == 0 and len(loc) > 1:
            parts.append(f"[{part}]")
        else:
            parts.append(str(part))
    return " ".join(parts)


def _section_name(loc: tuple) -> str:
    if not loc:
        return "the top level"
    name = _key_name(loc)
    return name if name.startswith("[") else f"[{name}]"


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class that ``loc`` leads to (list indexes and dict keys skipped)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        current = _inner_model(current.model_fields[part].annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None if typing.get_args(annotation) or isinstance(annotation, types.UnionType) else annotation


def _description(model: type[BaseModel], loc: tuple) -> str | None:
    if not loc or not isinstance(loc[-1], str):
        return None
    owner = _model_at(model, loc[:-1])
    field = owner.model_fields.get(loc[-1]) if owner is not None else None
    return field.description if field is not None else None


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None
