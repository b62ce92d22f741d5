"""The files a user's script names: resolved against the home and checked when the script is read.

A script the user wrote may name a slide image (``slide.image``), an article image
(``source_image_url``), image visuals (``visuals[].src``) and a section background
(``background.path``). Relative paths resolve
against the moviegen home (the job folder is hidden and changes with every job, so a path relative
to it could never be fixed by the user), ``file:`` URLs are paths, and http(s) images are left to
the slides stage. Every named file must exist, be a regular file and lie inside the home
(:func:`stages.assets.resolve_script_asset`: symlinks are followed, ``../`` escapes refused). A
problem is reported with the absolute path it resolved to and the section's title, when the script
is validated, never late in the slides or video stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from stages.assets import resolve_script_asset
from stages.base import InputError

if TYPE_CHECKING:
    from stages.script.model import Script, Section
    from stages.settings import Settings

Problem = tuple[tuple, str]
"""``(loc, message)``: where in the (normalised) script, and what is wrong."""


def resolve_assets(script: "Script", settings: "Settings") -> tuple["Script", list[Problem]]:
    """The script with every local file it names replaced by its absolute path, and the problems.

    Returns:
        ``(script, problems)``; when ``problems`` is not empty the script is unchanged.
    """
    home = Path(settings.home).expanduser().absolute()
    problems: list[Problem] = []
    sections = []
    for index, section in enumerate(script.sections):
        updated, found = _section(index, section, home, settings)
        sections.append(updated)
        problems += found
    if problems:
        return script, problems
    return script.model_copy(update={"sections": sections}), []


def _section(index: int, section: "Section", home: Path, settings: "Settings") -> tuple["Section", list[Problem]]:
    where = f"section {index + 1} ({section.title!r})"
    problems: list[Problem] = []
    update: dict[str, object] = {}
    if section.slide is not None and section.slide.image:
        path = _local_path(section.slide.image)
        if path is not None:
            resolved = _check(path, home, settings, f"{where}: slide image", problems, ("sections", index, "slide", "image"))
            if resolved is not None:
                update["slide"] = section.slide.model_copy(update={"image": str(resolved)})
        elif not _is_http(section.slide.image):
            problems.append((("sections", index, "slide", "image"),
                             f"{where}: unsupported image address {section.slide.image!r} (use a path or an http(s) URL)"))
    if section.source_image_url:
        path = _local_path(section.source_image_url)
        if path is not None:
            resolved = _check(path, home, settings, f"{where}: source image", problems, ("sections", index, "source_image_url"))
            if resolved is not None:
                update["source_image_url"] = str(resolved)
    visuals = []
    for v, visual in enumerate(section.visuals):
        if visual.kind == "image" and visual.src and (path := _local_path(visual.src)) is not None:
            loc = ("sections", index, "visuals", v, "src")
            resolved = _check(path, home, settings, f"{where}: visual {v + 1}", problems, loc)
            if resolved is not None:
                visual = visual.model_copy(update={"src": str(resolved)})
        visuals.append(visual)
    if section.visuals:
        update["visuals"] = visuals
    background = section.background
    if background is not None and background.type != "color":
        loc = ("sections", index, "background", "path")
        if not background.path:
            problems.append((("sections", index, "background"), f"{where}: a {background.type} background needs a path"))
        else:
            resolved = _check(Path(background.path), home, settings, f"{where}: {background.type} background", problems, loc)
            if resolved is not None:
                update["background"] = background.model_copy(update={"path": str(resolved)})
    return section.model_copy(update=update), problems


def _check(path: Path, home: Path, settings: "Settings", what: str, problems: list[Problem], loc: tuple) -> Path | None:
    candidate = path.expanduser()
    if not candidate.is_absolute():
        candidate = home / candidate
    try:
        return resolve_script_asset(candidate, settings, home, what)
    except InputError as exc:
        shown = str(exc)
        target = _resolved(candidate)
        if target != candidate:
            shown += f" (it resolves to {target})"
        if not path.is_absolute() and not str(path).startswith("~"):
            shown += f"; relative paths are read from the home, {home}"
        problems.append((loc, shown))
        return None


def _local_path(source: str) -> Path | None:
    """The path an image source names, or None for URLs (``file:`` URLs are paths)."""
    source = source.strip()
    scheme = urlsplit(source).scheme.lower()
    if scheme == "file":
        return Path(unquote(urlsplit(source).path))
    if scheme and len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        return None
    return Path(source)


def _is_http(source: str) -> bool:
    return urlsplit(source.strip()).scheme.lower() in ("http", "https")


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path
