"""Finding fonts through fontconfig, and making sure they can draw Japanese.

A fresh machine has no Japanese font (``fc-list :lang=ja`` is empty) and fontconfig then happily
matches DejaVu, which draws every kanji as a box. So every match is verified: the file must be one
fontconfig lists for the language. Slides (Pillow) and subtitles (libass) use the same font.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stages.base import InputError

INSTALL_HINT = (
    "install fonts-noto-cjk (apt-get install fonts-noto-cjk) or set theme.font to a font file "
    "that covers the language (fonts-ipaexfont-gothic is a smaller alternative)"
)


class FontNotFound(InputError):
    """No usable font for the language: the message says what to install."""


@dataclass(frozen=True)
class FontFace:
    """A font file and the face inside it (collections such as ``.ttc`` hold several)."""

    path: Path
    index: int = 0


def find_font(family: str = "Noto Sans CJK JP", *, lang: str = "ja", bold: bool = False) -> Path:
    """The file of the font ``family`` (a fontconfig family or a font file) that covers ``lang``.

    Raises:
        FontNotFound: fontconfig is missing, nothing matches, or the match lacks the language.
    """
    return find_font_face(family, lang=lang, bold=bold).path


def find_font_face(family: str = "Noto Sans CJK JP", *, lang: str = "ja", bold: bool = False) -> FontFace:
    """Like :func:`find_font`, with the face index inside a collection (for Pillow's ``index=``)."""
    return _find_font_face(family, lang, bold)


def font_family_name(path: Path) -> str:
    """The family name of a font file (what an ASS style's ``Fontname`` needs)."""
    try:
        out = _run(["fc-query", "-f", "%{family[0]}\n", str(path)])
    except FontNotFound:
        out = ""
    first = out.splitlines()[0].strip() if out.strip() else ""
    if first:
        return first
    from PIL import ImageFont

    return ImageFont.truetype(str(path), 12).getname()[0]


# --- internals -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _find_font_face(family: str, lang: str, bold: bool) -> FontFace:
    if _looks_like_path(family):
        return _font_file_face(Path(family).expanduser(), lang)
    pattern = f"{family}:lang={lang}" + (":weight=bold" if bold else "")
    out = _run(["fc-match", "-f", "%{file}\n%{index}\n", pattern])
    lines = out.splitlines()
    if not lines or not lines[0].strip():
        raise FontNotFound(f"no font matches {family!r} for language {lang!r}: {INSTALL_HINT}")
    path = Path(lines[0].strip())
    index = int(lines[1]) if len(lines) > 1 and lines[1].strip().isdigit() else 0
    if str(path) not in _files_for_lang(lang):
        raise FontNotFound(
            f"fontconfig matched {path.name} for {family!r}, but it cannot draw language {lang!r}: {INSTALL_HINT}"
        )
    return FontFace(path, index)


def _font_file_face(path: Path, lang: str) -> FontFace:
    if not path.is_file():
        raise FontNotFound(f"theme.font {str(path)!r} is not a file: {INSTALL_HINT}")
    out = _run(["fc-query", "-f", "%{index}\t%{lang}\n", str(path)])
    for line in out.splitlines():
        index, _, langs = line.partition("\t")
        if lang in langs.split("|"):
            return FontFace(path, int(index) if index.isdigit() else 0)
    raise FontNotFound(f"font file {path} does not cover language {lang!r}: {INSTALL_HINT}")


@functools.lru_cache(maxsize=8)
def _files_for_lang(lang: str) -> frozenset[str]:
    out = _run(["fc-list", f":lang={lang}", "file"])
    return frozenset(line.rstrip().rstrip(":").strip() for line in out.splitlines() if line.strip())


def _looks_like_path(family: str) -> bool:
    return "/" in family or family.lower().endswith((".ttf", ".otf", ".ttc", ".otc"))


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError as exc:
        raise FontNotFound(f"fontconfig ({argv[0]}) is not installed: install fontconfig, then {INSTALL_HINT}") from exc
    if done.returncode != 0:
        raise FontNotFound(f"{argv[0]} failed ({done.stderr.strip() or done.returncode}): {INSTALL_HINT}")
    return done.stdout
