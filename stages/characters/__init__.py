"""Character sources: the picture a persona's character shows for each expression, eye and mouth state.

Three sources (``CharacterSettings``, one per persona):

- a **PNG set** (``base``, ``mouth_open``, ``eyes_closed``: whole pictures): one expression, named
  ``default_expression``; the half-open mouth is the open one, and with the eyes closed and the
  mouth open the open mouth wins;
- a **folder per expression** (``folder``): ``<folder>/<expr>/base.png`` and, optional, the
  overlays ``mouth/{closed,half,open}.png`` and ``eyes/{open,closed}.png``, each the size of
  ``base.png`` and transparent outside its part. A missing ``half`` mouth falls back to ``open``,
  then ``closed``; a missing ``open`` to ``half``, then ``closed``; missing eyes do not blink;
- a **layered PSD** with PSDToolKit naming (``psd``, see :mod:`stages.characters.psd`): each
  expression's layers, plus its (or the character's) eye and mouth layers.

Every picture is a whole RGBA image of the source's canvas. Composited pictures (folder overlays,
PSD poses) are made once and kept in ``<cache>/characters/<sha256>.png``, keyed by the bytes of
their sources and what was composited, so a render only reads finished images.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from PIL import Image

from stages.base import InputError, atomic_write_bytes, file_sha256

if TYPE_CHECKING:
    from stages.settings import CharacterSettings

EYES = ("open", "closed")
MOUTHS = ("closed", "half", "open")
CACHE_VERSION = "characters-1"

Pose = tuple[str, str]
"""``(eyes, mouth)``: one of :data:`EYES` and one of :data:`MOUTHS`."""


def expression_names(character: "CharacterSettings") -> list[str]:
    """The expressions ``character`` can show (a folder source lists its subfolders holding ``base.png``)."""
    if character.psd is not None:
        return list(character.psd.expressions)
    if character.folder is not None:
        folder = Path(character.folder)
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / "base.png").is_file())
    return [character.default_expression]


def character_pictures(
    character: "CharacterSettings", cache_dir: Path, expressions: Iterable[str] | None = None, *, what: str = "character"
) -> dict[str, dict[Pose, Path]]:
    """``{expression: {(eyes, mouth): png}}`` for ``expressions`` (default: all), made or found in the cache.

    Raises:
        InputError: a file is missing or unreadable, an overlay's size differs from its base, a
            PSD layer path names no layer, or an expression is not configured (``what`` names the
            setting in the message, e.g. ``persona zundamon: character``).
    """
    known = expression_names(character)
    wanted = list(dict.fromkeys(expressions if expressions is not None else known))
    missing = [e for e in wanted if e not in known]
    if missing:
        raise InputError(f"{what}: no expression {', '.join(map(repr, missing))} (configured: {', '.join(known) or 'none'})")
    store = Path(cache_dir) / "characters"
    if character.psd is not None:
        return _psd_pictures(character, wanted, store, what)
    if character.folder is not None:
        return {e: _folder_pictures(Path(character.folder) / e, store, f"{what}.folder") for e in wanted}
    return {e: _png_set(character, what) for e in wanted}


# --- the PNG set -------------------------------------------------------------------------------


def _png_set(character: "CharacterSettings", what: str) -> dict[Pose, Path]:
    base = _existing(character.base, f"{what}.base")
    mouth = _existing(character.mouth_open, f"{what}.mouth_open") if character.mouth_open else base
    eyes = _existing(character.eyes_closed, f"{what}.eyes_closed") if character.eyes_closed else base
    return {
        ("open", "closed"): base, ("open", "half"): mouth, ("open", "open"): mouth,
        ("closed", "closed"): eyes, ("closed", "half"): mouth if character.mouth_open else eyes,
        ("closed", "open"): mouth if character.mouth_open else eyes,
    }


# --- a folder per expression -------------------------------------------------------------------


_MOUTH_FALLBACK = {"closed": ("closed",), "half": ("half", "open", "closed"), "open": ("open", "half", "closed")}


def _folder_pictures(folder: Path, store: Path, what: str) -> dict[Pose, Path]:
    base = _existing(folder / "base.png", what)
    eyes = {e: folder / "eyes" / f"{e}.png" for e in EYES if (folder / "eyes" / f"{e}.png").is_file()}
    mouths = {m: folder / "mouth" / f"{m}.png" for m in MOUTHS if (folder / "mouth" / f"{m}.png").is_file()}
    out: dict[Pose, Path] = {}
    for eye in EYES:
        eye_layer = eyes.get(eye) if eye in eyes else (eyes.get("open") if eye == "closed" else None)
        for mouth in MOUTHS:
            mouth_layer = next((mouths[m] for m in _MOUTH_FALLBACK[mouth] if m in mouths), None)
            layers = [p for p in (eye_layer, mouth_layer) if p is not None]
            out[(eye, mouth)] = _overlaid(base, layers, store, what) if layers else base
    return out


def _overlaid(base: Path, layers: list[Path], store: Path, what: str) -> Path:
    key = _key({"kind": "folder", "files": [file_sha256(p) for p in (base, *layers)]})
    target = store / f"{key}.png"
    if target.is_file():
        return target
    picture = _open_rgba(base, what)
    for path in layers:
        layer = _open_rgba(path, what)
        if layer.size != picture.size:
            raise InputError(f"{what}: {path} is {layer.size[0]}x{layer.size[1]}, its base.png {picture.size[0]}x{picture.size[1]} "
                             "(overlays are drawn over the whole base: make them the same size)")
        picture = Image.alpha_composite(picture, layer)
    return _save(picture, target)


# --- a layered PSD ------------------------------------------------------------------------------


def _psd_pictures(character: "CharacterSettings", wanted: list[str], store: Path, what: str) -> dict[str, dict[Pose, Path]]:
    conf = character.psd
    source = _existing(conf.path, f"{what}.psd.path")
    digest = file_sha256(source)
    plans: dict[str, dict[Pose, tuple[Path, list[str]]]] = {}
    for name in wanted:
        expression = conf.expressions[name]
        eyes = expression.eyes or conf.eyes
        mouth = expression.mouth or conf.mouth
        plans[name] = {}
        for eye in EYES:
            eye_paths = eyes.closed if eye == "closed" and eyes.closed else eyes.open
            for state in MOUTHS:
                mouth_paths = next((getattr(mouth, m) for m in _MOUTH_FALLBACK[state] if getattr(mouth, m)), [])
                paths = [*expression.layers, *eye_paths, *mouth_paths]
                key = _key({"kind": "psd", "file": digest, "layers": paths, "flipx": conf.flipx})
                plans[name][(eye, state)] = (store / f"{key}.png", paths)
    todo = {target: paths for plan in plans.values() for target, paths in plan.values() if not target.is_file()}
    if todo:
        from stages.characters.psd import compose, open_psd

        psd = open_psd(source)
        for target, paths in todo.items():
            try:
                _save(compose(psd, paths, flipx=conf.flipx), target)
            except InputError as exc:
                raise type(exc)(f"{what}.psd ({source}): {exc}") from None
    return {name: {pose: target for pose, (target, _) in plan.items()} for name, plan in plans.items()}


# --- helpers ------------------------------------------------------------------------------------


def _existing(path: Path | str | None, what: str) -> Path:
    resolved = Path(str(path)).expanduser() if path else None
    if resolved is None or not resolved.is_file():
        raise InputError(f"{what}: file not found: {resolved}")
    return resolved.resolve()


def _open_rgba(path: Path, what: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGBA")
    except OSError as exc:
        raise InputError(f"{what}: cannot read {path}: {exc}") from exc


def _key(spec: dict) -> str:
    text = json.dumps({"version": CACHE_VERSION, **spec}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _save(picture: Image.Image, target: Path) -> Path:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return atomic_write_bytes(target, buffer.getvalue())
