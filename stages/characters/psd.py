"""Layered PSD 立ち絵 with PSDToolKit naming: which layers one pose shows, composited by psd-tools.

PSDToolKit's conventions (as character artists distribute them):

- ``!name``: always visible (its parent groups decide whether it shows at all);
- ``*name``: one of a radio group: among the ``*`` layers of one group exactly one is visible;
- ``name:flipx``: the variant of ``name`` to use when the picture is mirrored.

A pose is the file's saved visibility, normalised by those rules, with the requested layer paths
(``"!口/*あ"``: layer names from the top level down, joined by ``/``) switched on in order; each
switches on its parent groups and, for a ``*`` layer, off the other ``*`` layers of its group. A
path segment may leave out the ``!``/``*`` prefix when that leaves one match. Mirrored, every layer
``X:flipx`` takes ``X``'s visibility and the composite is flipped left to right; not mirrored,
``:flipx`` layers never show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from PIL import Image, ImageOps

from stages.base import InputError

FLIPX = ":flipx"


class LayerNotFound(InputError):
    """A layer path in the settings names no layer of the PSD."""


def open_psd(path: Path):
    """The PSD at ``path`` (psd-tools' ``PSDImage``); an unreadable file is an InputError."""
    from psd_tools import PSDImage

    try:
        return PSDImage.open(path)
    except (OSError, ValueError, AssertionError, TypeError) as exc:
        raise InputError(f"cannot read the PSD {path}: {exc}") from exc


def compose(psd, paths: Iterable[str], *, flipx: bool = False) -> Image.Image:
    """The RGBA picture of ``psd`` with ``paths`` switched on (see the module's rules).

    Raises:
        LayerNotFound: a path names no layer (the message lists the layers it could have meant).
    """
    layers = list(psd.descendants())
    for layer in layers:  # keep the visibility each pose starts from
        if not hasattr(layer, "_moviegen_saved"):
            layer._moviegen_saved = layer.visible
        layer.visible = layer._moviegen_saved
    _normalise(psd)
    for path in paths:
        _switch_on(psd, path)
    _apply_flipx(psd, flipx)
    picture = psd.composite(force=True).convert("RGBA")
    if picture.size != psd.size:
        canvas = Image.new("RGBA", psd.size, (0, 0, 0, 0))
        canvas.paste(picture, (0, 0))
        picture = canvas
    return ImageOps.mirror(picture) if flipx else picture


def layer_paths(psd) -> list[str]:
    """Every layer's path (``group/sub/layer``), top level first, as the settings name them."""
    out: list[str] = []

    def walk(group, prefix: str) -> None:
        for layer in reversed(list(group)):  # psd-tools lists bottom first; artists read top first
            path = f"{prefix}{layer.name}"
            out.append(path)
            if layer.is_group():
                walk(layer, path + "/")

    walk(psd, "")
    return out


def _normalise(group) -> None:
    children = list(group)
    radio = [c for c in children if c.name.startswith("*") and not c.name.endswith(FLIPX)]
    for child in children:
        if child.name.startswith("!"):
            child.visible = True
    shown = [c for c in reversed(radio) if c.visible]  # topmost first
    keep = shown[0] if shown else (radio[-1] if radio else None)
    for child in radio:
        child.visible = child is keep
    for child in children:
        if child.is_group():
            _normalise(child)


def _switch_on(psd, path: str) -> None:
    group, chain = psd, []
    for segment in (s for s in path.split("/") if s):
        layer = _child(group, segment)
        if layer is None:
            raise LayerNotFound(
                f"the PSD has no layer {path!r} (no {segment!r} in {'/'.join(l.name for l in chain) or 'the top level'}; "
                f"it has: {', '.join(c.name for c in reversed(list(group))) or 'nothing'})"
            )
        chain.append(layer)
        group = layer
    for layer in chain:
        layer.visible = True
        if layer.name.startswith("*"):
            for sibling in layer.parent:
                if sibling is not layer and sibling.name.startswith("*") and not sibling.name.endswith(FLIPX):
                    sibling.visible = False


def _child(group, segment: str):
    if not group.is_group():
        return None
    children = [c for c in group if not c.name.endswith(FLIPX)]
    exact = [c for c in children if c.name == segment]
    if exact:
        return exact[0]
    loose = [c for c in children if c.name.lstrip("!*") == segment.lstrip("!*")]
    return loose[0] if len(loose) == 1 else None


def _apply_flipx(group, flipx: bool) -> None:
    children = list(group)
    names = {c.name: c for c in children}
    for child in children:
        if child.name.endswith(FLIPX):
            twin = names.get(child.name[: -len(FLIPX)])
            child.visible = bool(flipx and twin is not None and twin.visible)
            if flipx and twin is not None and child.visible:
                twin.visible = False
        if child.is_group():
            _apply_flipx(child, flipx)
