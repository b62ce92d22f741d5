"""What the picture kinds share: a slide with the section's heading, and the box below it for a panel.

Code, table and formula pictures are drawn in two steps: :func:`heading_slide` draws the theme's
slide with only the heading (the same grid, decoration and logo as a bullets slide, via
:func:`stages.slides.typeset.draw_slide`), and returns the box under the heading's accent bar that
the kind may fill. Panels are opaque, so they stay legible on a transparent slide too.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw

from stages.fonts import FontFace, find_font_face
from stages.slides.layout import SafeArea, SlideSpec
from stages.slides.typeset import Drawn, Theme, draw_slide

MONO_FAMILY = "Noto Sans Mono CJK JP"  # fonts-noto-cjk: Latin half width, kana and kanji full width


@dataclass(frozen=True)
class Box:
    """A rectangle ``[x0, x1) × [y0, y1)`` in pixels."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


def mono_faces(lang: str = "ja") -> tuple[FontFace, FontFace]:
    """The monospace faces (regular, bold) for code and TeX: Noto Sans Mono CJK JP, which draws
    Latin and Japanese alike (a ``FontNotFound`` names the package to install)."""
    return find_font_face(MONO_FAMILY, lang=lang), find_font_face(MONO_FAMILY, lang=lang, bold=True)


def body_box(area: SafeArea, drawn: Drawn) -> Box:
    """Where a panel may go on a heading-only slide: below the heading's accent bar, inside the
    grid's column (between the character corners when there are characters), above the subtitles."""
    h = area.height
    target = area.column() if area.has_corners() else area
    heading = next((b["box"] for b in drawn.boxes if b.get("kind") == "heading"), None)
    top = (heading[3] if heading else target.top) + round(h * 0.018) + round(h * 0.007) + round(h * 0.035)
    for b in drawn.boxes:  # a transparent slide's heading panel must not be covered
        if b.get("kind") == "panel" and heading and b["box"][1] <= heading[1]:
            top = max(top, b["box"][3] + round(h * 0.015))
    return Box(target.left, top, target.right, target.bottom)


def heading_slide(heading: str, theme: Theme, area: SafeArea, logo: Image.Image | None,
                  transparent: bool) -> tuple[Drawn, Box]:
    """The section's slide with only its heading, and the free box below it."""
    drawn = draw_slide(SlideSpec(layout="bullets", heading=heading), theme, area, None, logo, transparent=transparent)
    return drawn, body_box(area, drawn)


def rounded(image: Image.Image, box: tuple[int, int, int, int], radius: int, colour: tuple[int, int, int]) -> None:
    """An opaque rounded rectangle (alpha 255 on an RGBA slide)."""
    fill = (*colour, 255) if image.mode == "RGBA" else colour
    ImageDraw.Draw(image).rounded_rectangle(box, radius=radius, fill=fill)


def page_label(page: int, pages: int) -> str:
    """``"2/3"``: which picture of a paged block this is (empty for a single page)."""
    return f"{page}/{pages}" if pages > 1 else ""


def mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    """``a`` moved ``t`` of the way to ``b``."""
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]
