"""Relative paths in a settings file mean "next to that file", not "wherever the daemon was started".

A ``moviegen.toml`` that says ``folder = "characters/mint"`` should work from any current
directory: from a shell in another folder, from ``make demo``, and from a systemd unit whose
working directory is ``/``. :func:`anchor_paths` rewrites the TOML data before validation: every
value of a ``Path`` setting (found by walking the settings models' field types, so a new ``Path``
setting is covered without a list to keep up to date) that is relative becomes absolute against the
file's folder, with ``~`` expanded. Settings that hold a file name *or* something else (a font: a
fontconfig family or a path) opt in with ``json_schema_extra={"path": "if_path_like"}`` and are
anchored only when they look like a path. Environment variables are not touched: a path given on a
command line is relative to the current directory, as a shell user expects.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo


def anchor_paths(data: dict[str, Any], model: type[BaseModel], base: Path) -> dict[str, Any]:
    """Return ``data`` (one model's TOML table) with its relative path settings made absolute under ``base``.

    Unknown keys and values of the wrong type are left as they are, for validation to report.
    """
    out = dict(data)
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is not None:
            out[key] = _anchor_value(value, field.annotation, field, base)
    return out


def _anchor_value(value: Any, annotation: Any, field: FieldInfo | None, base: Path) -> Any:
    kinds = _unwrap(annotation)
    if isinstance(value, str):
        if Path in kinds or (field is not None and _path_like_opt_in(field) and _looks_like_path(value)):
            return _absolute(value, base)
        return value
    if isinstance(value, dict):
        for kind in kinds:
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                return anchor_paths(value, kind, base)
            if typing.get_origin(kind) is dict:
                args = typing.get_args(kind)
                if len(args) == 2:
                    return {k: _anchor_value(v, args[1], None, base) for k, v in value.items()}
        return value
    if isinstance(value, list):
        for kind in kinds:
            if typing.get_origin(kind) is list and typing.get_args(kind):
                item = typing.get_args(kind)[0]
                return [_anchor_value(v, item, None, base) for v in value]
        return value
    return value


def _unwrap(annotation: Any) -> list[Any]:
    """The alternatives of an annotation: ``Path | None`` gives ``[Path, NoneType]``; Annotated is peeled."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [kind for arg in typing.get_args(annotation) for kind in _unwrap(arg)]
    return [annotation]


def _path_like_opt_in(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    return isinstance(extra, dict) and extra.get("path") == "if_path_like"


def _looks_like_path(value: str) -> bool:
    # The same test stages/fonts.py applies to tell a font file from a fontconfig family.
    return "/" in value or value.lower().endswith((".ttf", ".otf", ".ttc", ".otc"))


def _absolute(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)
