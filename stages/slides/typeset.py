"""Drawing a slide with Pillow: type that fits, kinsoku breaks, and the safe areas kept clear.

:func:`draw_slide` returns the picture and the boxes it drew into (text blocks with their lines,
images, the logo), so tests and the video stage can check that nothing crosses the safe areas.
Text is laid out top-down; each line asks :meth:`SafeArea.span` how wide it may be at its height,
so a line beside a character corner is narrower than one above it. A paragraph's last line is
never a widow of one or two characters (「…苗」/「は」) when an earlier kinsoku-legal break avoids
it (:func:`stages.linebreak.widow_free_break`). Auto-fit shrinks the type
step by step to a minimum size, then truncates with an ellipsis and says so.

A *transparent* slide (``draw_slide(..., transparent=True)``, for a section whose background the
video shows: an override, or an image/video default) is RGBA: the canvas is clear (alpha 0), with
no full-frame decoration, and the text blocks sit on translucent rounded panels in the theme's
background colour (``Theme.panel``) so they stay legible over any picture. The text is laid out
inside the safe area shrunk by the panel's padding, so the panels respect the safe areas too.
Pixels are drawn in RGB over the theme's background as for an opaque slide, while an ``L`` ink
channel records the coverage of everything drawn; the alpha is ink over panels
(``screen(ink, panels)``, i.e. ``a + b - ab``), straight (not premultiplied), as PNG stores it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFont

from stages.fonts import FontFace
from stages.linebreak import WIDOW_CHARS, is_cjk, split_oversized, tokens, widow_free_break
from stages.slides.layout import SafeArea, SlideSpec

ELLIPSIS = "…"
SUPERSAMPLE = 4


@dataclass(frozen=True)
class Theme:
    """Colours and faces resolved from ``settings.theme``."""

    background: tuple[int, int, int]
    accent: tuple[int, int, int]
    text: tuple[int, int, int]
    regular: FontFace
    bold: FontFace
    logo: Path | None = None
    panel: float = 0.72  # opacity of the text panels of transparent slides (not in key(): see deck.key)

    @property
    def muted(self) -> tuple[int, int, int]:
        return _mix(self.text, self.background, 0.38)

    @property
    def card(self) -> tuple[int, int, int]:
        return _mix(self.background, self.text, 0.07)

    @property
    def glow(self) -> tuple[int, int, int]:
        return _mix(self.background, self.accent, 0.10)

    def key(self) -> dict[str, Any]:
        """The theme as plain data for cache keys."""
        return {
            "background": self.background,
            "accent": self.accent,
            "text": self.text,
            "regular": [str(self.regular.path), self.regular.index],
            "bold": [str(self.bold.path), self.bold.index],
        }


@dataclass
class Drawn:
    """A drawn slide: the picture, the boxes drawn into, and the texts that had to be truncated."""

    image: Image.Image
    boxes: list[dict[str, Any]] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)


def parse_colour(value: str) -> tuple[int, int, int]:
    """``#rrggbb`` (or ``#rgb``, ``#rrggbbaa``) as an RGB tuple."""
    text = value.strip().lstrip("#")
    if len(text) == 3:
        text = "".join(c * 2 for c in text)
    if len(text) not in (6, 8):
        raise ValueError(f"not a colour: {value!r}")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def draw_slide(spec: SlideSpec, theme: Theme, area: SafeArea, image: Image.Image | None, logo: Image.Image | None,
               *, fit: str = "contain", transparent: bool = False) -> Drawn:
    """Draw ``spec`` at the frame size of ``area``.

    One grid for every content slide: without characters the text column spans the frame
    between the margins; with characters (lower corners kept free) every bullets slide uses the
    column between the corners down to the subtitle band, so margins never move from slide to
    slide. A title slide may use the full width above the corners when its text fits there.

    Args:
        spec: the content.
        theme: colours and fonts.
        area: the frame geometry (with the logo's box when there is a logo).
        image: the decoded article image for image layouts (RGB or RGBA), else None.
        logo: the decoded logo, already scaled to the box in ``area.logo``.
        fit: ``cover`` or ``contain`` for the article image.
        transparent: draw an RGBA slide: a clear canvas, text on translucent panels (see the module).
    """
    layout = spec.layout if (spec.layout not in ("image", "image_caption") or image is not None) else "bullets"
    pad = panel_padding(area.height) if transparent else (0, 0)
    target = area
    if layout == "bullets" and area.has_corners():
        target = area.column()
    elif layout == "title" and area.has_corners():
        trial = _Canvas(theme, area.above_corners().inset(*pad), dry=True)
        _compose(trial, layout, spec, image, fit)
        target = area.above_corners() if trial.comfortable() else area.column()
    canvas = _Canvas(theme, target.inset(*pad), frame=area, transparent=transparent)
    canvas.decorate(layout, area)
    if logo is not None and area.logo is not None:
        canvas.paste(logo, area.logo[:2], "logo")
    _compose(canvas, layout, spec, image, fit)
    return canvas.result()


def _compose(canvas: "_Canvas", layout: str, spec: SlideSpec, image: Image.Image | None, fit: str) -> None:
    area = canvas.area
    if layout == "title":
        _title(canvas, spec)
    elif layout == "closing":
        _closing(canvas, spec)
    elif layout == "image" and image is not None:
        y = _heading(canvas, spec.heading)
        canvas.picture(image, y, area.bottom, fit)
    elif layout == "image_caption" and image is not None:
        _image_caption(canvas, spec, image, fit)
    else:
        y = _heading(canvas, spec.heading)
        _bullets(canvas, spec.bullets, y, area.bottom, spec.current, spec.also)


# --- layouts -------------------------------------------------------------------------------------


def _title(c: "_Canvas", spec: SlideSpec) -> None:
    a = c.area
    h = a.height
    y = a.top + round(h * 0.06)
    if spec.kicker:
        y = c.text_block("kicker", [spec.kicker], y, a.bottom, bold=True, sizes=(0.036, 0.026), colour=c.theme.accent,
                         max_lines=1, line=1.3, align="center") + round(h * 0.02)
    y = c.text_block("title", [spec.heading], y, a.bottom, bold=True, sizes=(0.088, 0.05), max_lines=3, line=1.25,
                     align="center")
    y += round(h * 0.035)
    bar_w = round(a.width * 0.06)
    c.bar((a.left + a.right - bar_w) // 2, y, bar_w, max(2, round(h * 0.008)))
    y += round(h * 0.008) + round(h * 0.03)
    extras = [t for t in (*spec.bullets, spec.footer) if t]
    if extras:
        c.text_block("footer", extras, y, a.bottom, sizes=(0.036, 0.024), colour=c.theme.muted, max_lines=3,
                     line=1.4, para_gap=0.2, align="center")


def _heading(c: "_Canvas", heading: str) -> int:
    """Draw the heading with its accent bar; return where the body may start."""
    a = c.area
    h = a.height
    y = c.text_block("heading", [heading], a.top + round(h * 0.03), a.bottom, bold=True, sizes=(0.066, 0.042),
                     max_lines=2, line=1.25)
    y += round(h * 0.018)
    c.bar(a.left, y, round(a.width * 0.045), max(2, round(h * 0.007)))
    return y + round(h * 0.007) + round(h * 0.04)


def _bullets(c: "_Canvas", bullets: tuple[str, ...], y: int, bottom: int, current: int | None = None,
             also: tuple[int, ...] = ()) -> None:
    if not bullets:
        return
    plan = c.plan("bullets", list(bullets), y, bottom, sizes=(0.047, 0.03), line=1.45, para_gap=0.55, marker=True)
    _emit_marked(c, plan, current, len(bullets), also=also)


def _emit_marked(c: "_Canvas", plan: "_Plan", current: int | None, count: int, card: bool = True,
                 also: tuple[int, ...] = ()) -> None:
    """Draw a planned list; the bullet being spoken (``current``, and any in ``also``, said in the
    same line) on a card (or, ``card=False``, in the accent colour), the others muted, in the same
    layout so nothing moves."""
    if current is None or not 0 <= current < count:
        c.emit(plan)
        return
    marked = {current, *also}
    paragraphs: list[list[_Line]] = []
    for ln in plan.lines:
        if ln.marker or not paragraphs:
            paragraphs.append([])
        paragraphs[-1].append(ln)
    if plan.overflow:
        c.truncated.append("bullets")
    ascent, descent = font_for(plan.face, plan.size).getmetrics()
    for k, lines in enumerate(paragraphs):
        if k in marked and lines and card:
            pad = round(plan.size * 0.35)
            x0 = max(c.area.left, lines[0].x - round(plan.size * 1.05) - pad)
            c.card(x0, lines[0].baseline - ascent - pad, c.area.right if plan.column is None else plan.column.x1,
                   lines[-1].baseline + descent + pad)
        colour = (plan.colour if card else c.theme.accent) if k in marked else c.theme.muted
        c._emit("current" if k in marked else "bullets", lines, plan.face, plan.size, colour, plan.align, plan.column)


def _closing(c: "_Canvas", spec: SlideSpec) -> None:
    a = c.area
    h = a.height
    y = c.text_block("heading", [spec.heading], a.top + round(h * 0.05), a.bottom, bold=True, sizes=(0.07, 0.044),
                     max_lines=2, line=1.25, align="center")
    y += round(h * 0.02)
    bar_w = round(a.width * 0.05)
    c.bar((a.width - bar_w) // 2, y, bar_w, max(2, round(h * 0.007)))
    y += round(h * 0.007) + round(h * 0.045)
    if not spec.bullets:
        return
    pad = round(h * 0.035)
    # between the corners when they reach up beside the card (landscape); a portrait band is below it
    x0, x1 = (a.column().left, a.column().right) if a.has_corners() else (a.left, a.right)
    plan = c.plan("bullets", list(spec.bullets), y + pad, a.bottom - pad, sizes=(0.044, 0.028), line=1.45,
                  para_gap=0.45, marker=True, column=_Column(x0 + pad, x1 - pad))
    c.card(x0, y, x1, plan.end + pad - round(plan.size * 0.2))
    _emit_marked(c, plan, spec.current, len(spec.bullets), card=False, also=spec.also)  # the recap item(s) being said


def _image_caption(c: "_Canvas", spec: SlideSpec, image: Image.Image, fit: str) -> None:
    a = c.area
    h = a.height
    caption_h = round(h * 0.11) + c.pad[1]  # a transparent slide's caption panel clears the image
    box = c.picture(image, a.top + round(h * 0.03), a.bottom - caption_h, fit)
    if spec.caption and box is not None:
        c.text_block("caption", [spec.caption], box[3] + round(h * 0.02) + c.pad[1], a.bottom, sizes=(0.04, 0.028),
                     colour=c.theme.text, max_lines=2, line=1.35, align="center")


# --- the canvas ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    x0: int
    x1: int


@dataclass
class _Line:
    text: str
    x: int
    baseline: int
    marker: bool


@dataclass
class _Plan:
    kind: str
    lines: list[_Line]
    face: FontFace
    size: int
    colour: tuple[int, int, int]
    align: str
    column: _Column | None
    end: int
    overflow: bool


class _Canvas:
    def __init__(self, theme: Theme, area: SafeArea, *, dry: bool = False, frame: SafeArea | None = None,
                 transparent: bool = False):
        self.theme = theme
        self.area = area  # where text goes (inset by the panel padding on a transparent slide)
        self.frame = frame or area  # the slide's safe area, which the panels respect
        self.dry = dry  # a dry canvas lays out text without drawing (to choose between areas)
        size = (1, 1) if dry else (area.width, area.height)
        self.image = Image.new("RGB", size, theme.background)
        self.draw = ImageDraw.Draw(self.image)
        self.transparent = transparent and not dry
        # the coverage of everything drawn (transparent slides only): the alpha, with the panels
        self.ink = Image.new("L", size, 0) if self.transparent else None
        self.ink_draw = ImageDraw.Draw(self.ink) if self.ink is not None else None
        self.pad = panel_padding(area.height) if self.transparent else (0, 0)  # (x, y)
        # what the panels frame, in drawing order: (box, padding), None where an image breaks a group
        self.framed: list[tuple[list[int], tuple[int, int]] | None] = []
        self.boxes: list[dict[str, Any]] = []
        self.truncated: list[str] = []
        self.shrink = 1.0  # the smallest size/preferred-size ratio of any block

    def comfortable(self) -> bool:
        """True when nothing was truncated and no text had to shrink much."""
        return not self.truncated and self.shrink >= 0.85

    def result(self) -> Drawn:
        if not self.transparent:
            return Drawn(self.image, self.boxes, self.truncated)
        panels = Image.new("L", self.image.size, 0)
        level = max(0, min(255, round(255 * self.theme.panel)))
        for x0, y0, x1, y1 in self._panels():
            mask = _rounded_mask(x1 - x0, y1 - y0, round(self.area.height * 0.018))
            panels.paste(ImageChops.lighter(panels.crop((x0, y0, x1, y1)), mask.point(lambda v: v * level // 255)),
                         (x0, y0))
            self.boxes.append({"kind": "panel", "box": [x0, y0, x1, y1]})
        self.image.putalpha(ImageChops.screen(self.ink, panels))  # RGB -> RGBA in place
        return Drawn(self.image, self.boxes, self.truncated)

    def _panels(self) -> list[list[int]]:
        """Panel rectangles: consecutive framed boxes share one panel while it stays in the safe area."""
        panels: list[list[int]] = []
        current: list[int] | None = None
        for item in [*self.framed, None]:
            if item is None:
                if current is not None:
                    panels.append(current)
                current = None
                continue
            (x0, y0, x1, y1), (px, py) = item
            padded = self._clamp([x0 - px, y0 - py, x1 + px, y1 + py])
            if current is None:
                current = padded
                continue
            merged = [min(current[0], padded[0]), min(current[1], padded[1]),
                      max(current[2], padded[2]), max(current[3], padded[3])]
            if self.frame.allows(merged):
                current = merged
            else:
                panels.append(current)
                current = padded
        return [p for p in panels if p[2] > p[0] and p[3] > p[1]]

    def _clamp(self, box: list[int]) -> list[int]:
        f = self.frame
        return [max(box[0], f.left), max(box[1], f.top), min(box[2], f.right), min(box[3], f.bottom)]

    def _frame(self, box: list[int], pad: tuple[int, int] | None = None) -> None:
        if self.transparent:
            self.framed.append((list(box), self.pad if pad is None else pad))

    # decorations never enter the safe areas: they stay above the corners and the subtitle band;
    # a transparent slide has none (they would hide the background the video shows)
    def decorate(self, layout: str, frame: SafeArea) -> None:
        if self.transparent:
            return
        a = frame
        w, h = a.width, a.height
        self.draw.rectangle([0, 0, w - 1, max(1, round(h * 0.008)) - 1], fill=self.theme.accent)
        limit = min(a.corner_top, a.subtitle_top) - a.gap
        if layout == "title":
            r = round(h * 0.40)
            cx, cy = round(w * 0.86), round(h * 0.02)
        else:
            r = round(h * 0.26)
            cx, cy = round(w * 0.97), round(-h * 0.05)
        r = min(r, max(0, limit - cy))
        if r > 4:
            self._soft_disc(cx, cy, r, self.theme.glow)

    def bar(self, x: int, y: int, width: int, height: int) -> None:
        if self.dry or self.area.span(y, y + height) is None:
            return
        self._rounded(x, y, x + width, y + height, height // 2, self.theme.accent)
        self._frame([x, y, x + width, y + height])

    def card(self, x0: int, y0: int, x1: int, y1: int) -> None:
        """A rounded panel behind text (drawn before the text it holds)."""
        y1 = min(y1, self.area.bottom)
        if y1 - y0 > 0 and x1 - x0 > 0 and not self.dry:
            if self.transparent:  # the translucent panel is the card (it already has its padding)
                self._frame([x0, y0, x1, y1], (0, 0))
            else:
                self._rounded(x0, y0, x1, y1, round(self.area.height * 0.018), self.theme.card)
            self.boxes.append({"kind": "card", "box": [x0, y0, x1, y1]})

    def paste(self, picture: Image.Image, xy: tuple[int, int], kind: str) -> list[int]:
        mask = picture.getchannel("A") if picture.mode == "RGBA" else None
        self.image.paste(picture.convert("RGB"), xy, mask)
        box = [xy[0], xy[1], xy[0] + picture.width, xy[1] + picture.height]
        if self.ink is not None:
            self.ink.paste(255, tuple(box), mask)
        self.boxes.append({"kind": kind, "box": box})
        return box

    def picture(self, image: Image.Image, y0: int, y1: int, fit: str) -> list[int] | None:
        """Place an article image in the largest free box between ``y0`` and ``y1``."""
        target = self._image_box(image.size, y0, y1)
        if target is None:
            return None
        x0, top, x1, bottom = target
        scaled = fit_image(image, (x1 - x0, bottom - top), fit)
        px = x0 + (x1 - x0 - scaled.width) // 2
        py = top + (bottom - top - scaled.height) // 2
        mask = _rounded_mask(scaled.width, scaled.height, round(self.area.height * 0.014))
        if scaled.mode == "RGBA":
            mask = ImageChops.darker(mask, scaled.getchannel("A"))
        self.image.paste(scaled.convert("RGB"), (px, py), mask)
        box = [px, py, px + scaled.width, py + scaled.height]
        if self.ink is not None:
            self.ink.paste(255, tuple(box), mask)
        self.framed.append(None)  # text above and below an image gets panels of its own
        self.boxes.append({"kind": "image", "box": box})
        return box

    def text_block(self, kind: str, paragraphs: list[str], y: int, bottom: int, **options: Any) -> int:
        """Lay out and draw paragraphs from ``y``; return the y below the block."""
        plan = self.plan(kind, paragraphs, y, bottom, **options)
        self.emit(plan)
        return plan.end

    def plan(self, kind: str, paragraphs: list[str], y: int, bottom: int, *, sizes: tuple[float, float],
             bold: bool = False, colour: tuple[int, int, int] | None = None, max_lines: int | None = None,
             line: float = 1.3, para_gap: float = 0.0, marker: bool = False, align: str = "left",
             column: _Column | None = None) -> "_Plan":
        """Fit paragraphs between ``y`` and ``bottom``: the largest size that fits, else truncate at the minimum."""
        face = self.theme.bold if bold else self.theme.regular
        paragraphs = [p for p in (" ".join(t.split("\n")).strip() for t in paragraphs) if p]
        # type sizes follow the frame's short side: a portrait (9:16) slide keeps landscape's sizes
        # instead of growing them with its height (a title of 4 characters a line)
        h = min(self.area.width, self.area.height)
        top_px, min_px = max(6, round(h * sizes[0])), max(5, round(h * sizes[1]))
        size = top_px
        lines: list[_Line] = []
        end, overflow = y, False
        while paragraphs:
            lines, end, overflow = self._layout(paragraphs, face, size, y, bottom, line, para_gap, marker,
                                                max_lines, column, truncate=size <= min_px)
            if not overflow or size <= min_px:
                break
            size = max(min_px, int(size * 0.92))
        self.shrink = min(self.shrink, size / top_px)
        return _Plan(kind, lines, face, size, colour or self.theme.text, align, column, end, overflow)

    def emit(self, plan: "_Plan") -> None:
        """Draw a planned block and record its box."""
        if plan.overflow:
            self.truncated.append(plan.kind)
        self._emit(plan.kind, plan.lines, plan.face, plan.size, plan.colour, plan.align, plan.column)

    # --- text layout ----------------------------------------------------------------------------

    def _layout(self, paragraphs: list[str], face: FontFace, size: int, y: int, bottom: int, line: float,
                para_gap: float, marker: bool, max_lines: int | None, column: _Column | None,
                truncate: bool) -> tuple[list[_Line], int, bool]:
        font = font_for(face, size)
        measure = measure_for(face, size)
        ascent, descent = font.getmetrics()
        line_h = max(round(size * line), ascent + descent if line >= 1.4 else round(size * line))
        indent = round(size * 1.05) if marker else 0
        out: list[_Line] = []
        cursor = y
        for pi, paragraph in enumerate(paragraphs):
            rest = paragraph
            first = True
            while rest:
                baseline = cursor + (line_h - (ascent + descent)) // 2 + ascent
                ink_top, ink_bottom = baseline - ascent, baseline + descent
                span = self._span(ink_top, ink_bottom, bottom, column)
                full = max_lines is not None and len(out) >= max_lines
                if span is None or full:
                    if truncate and out:
                        self._ellipsize(out, rest, measure, bottom, column, ascent, descent, indent)
                    return out, cursor, True
                x0, x1 = span
                text, rest = self._line(rest, x1 - x0 - indent - 1, measure, cursor + line_h, line_h, ascent,
                                        descent, bottom, column, indent,
                                        max_lines is None or len(out) + 1 < max_lines)
                if not text:
                    return out, cursor, True
                if measure(text) > x1 - x0 - indent:
                    if not truncate:
                        return out, cursor, True
                    text = _fit_with_ellipsis(text, x1 - x0 - indent, measure)
                out.append(_Line(text, x0 + indent, baseline, marker and first))
                first = False
                cursor += line_h
            if pi < len(paragraphs) - 1:
                cursor += round(size * para_gap)
        return out, cursor, False

    def _line(self, text: str, width: float, measure, next_cursor: int, line_h: int, ascent: int, descent: int,
              bottom: int, column: _Column | None, indent: int, room: bool) -> tuple[str, str]:
        """The next line of ``text`` and the rest, the break moved earlier when the rest would be a widow.

        The rest is a widow when it would make one last line of fewer than ``WIDOW_CHARS``
        characters (「…苗」/「は」); then :func:`stages.linebreak.widow_free_break` ends this line at
        an earlier kinsoku-legal break, if one leaves both lines long enough and fitting.
        """
        line, rest = first_line(text, width, measure)
        if not rest or len(rest.replace(" ", "")) >= WIDOW_CHARS or not room:
            return line, rest
        baseline = next_cursor + (line_h - (ascent + descent)) // 2 + ascent
        span = self._span(baseline - ascent, baseline + descent, bottom, column)
        if span is None:
            return line, rest
        better = widow_free_break(text, width, span[1] - span[0] - indent - 1, measure)
        return better if better is not None else (line, rest)

    def _span(self, y0: int, y1: int, bottom: int, column: _Column | None) -> tuple[int, int] | None:
        if y1 > bottom:
            return None
        span = self.area.span(y0, y1)
        if span is None:
            return None
        if column is not None:
            span = (max(span[0], column.x0), min(span[1], column.x1))
        return span if span[1] > span[0] else None

    def _ellipsize(self, out: list[_Line], rest: str, measure, bottom: int, column: _Column | None,
                   ascent: int, descent: int, indent: int) -> None:
        last = out[-1]
        span = self._span(last.baseline - ascent, last.baseline + descent, bottom, column)
        width = (span[1] - span[0] - indent) if span else measure(last.text)
        last.text = _fit_with_ellipsis(last.text + rest.strip(), width, measure, force=True)

    def _emit(self, kind: str, lines: list[_Line], face: FontFace, size: int, colour: tuple[int, int, int],
              align: str, column: _Column | None) -> None:
        if not lines:
            return
        font = font_for(face, size)
        measure = measure_for(face, size)
        ascent, descent = font.getmetrics()
        union: list[int] | None = None
        for ln in lines:
            x = ln.x
            if align == "center":
                span = self._span(ln.baseline - ascent, ln.baseline + descent, self.area.bottom, column)
                if span is not None:
                    x = span[0] + round((span[1] - span[0] - measure(ln.text)) / 2)
                    ln.x = x
            if not self.dry:
                self.draw.text((x, ln.baseline), ln.text, font=font, fill=colour, anchor="ls")
                if self.ink_draw is not None:
                    self.ink_draw.text((x, ln.baseline), ln.text, font=font, fill=255, anchor="ls")
            box = list(self.draw.textbbox((x, ln.baseline), ln.text, font=font, anchor="ls"))
            if ln.marker and not self.dry:
                box = self._marker(ln, size, box)
            union = box if union is None else [min(union[0], box[0]), min(union[1], box[1]),
                                                max(union[2], box[2]), max(union[3], box[3])]
        self.boxes.append({"kind": kind, "box": union, "lines": [ln.text for ln in lines], "size": size,
                           "align": align})
        if not self.dry and union is not None:
            self._frame(union)

    def _marker(self, ln: _Line, size: int, box: list[int]) -> list[int]:
        """An accent dot before the first line of a bullet; returns the line's box grown to hold it."""
        d = max(3, round(size * 0.34))
        centre_y = ln.baseline - round(size * 0.36)
        x0 = ln.x - round(size * 1.05)
        x0 = max(x0, 0)
        self._soft_disc(x0 + d // 2, centre_y, d // 2, self.theme.accent)
        return [min(box[0], x0), min(box[1], centre_y - d // 2), box[2], max(box[3], centre_y + d // 2)]

    # --- shapes ---------------------------------------------------------------------------------

    def _rounded(self, x0: int, y0: int, x1: int, y1: int, radius: int, colour: tuple[int, int, int]) -> None:
        w, h = x1 - x0, y1 - y0
        if w <= 0 or h <= 0:
            return
        mask = _rounded_mask(w, h, radius)
        self.image.paste(colour, (x0, y0, x1, y1), mask)
        if self.ink is not None:
            self.ink.paste(255, (x0, y0, x1, y1), mask)

    def _soft_disc(self, cx: int, cy: int, r: int, colour: tuple[int, int, int]) -> None:
        """An anti-aliased disc (drawn large on a mask, then reduced)."""
        if r <= 0:
            return
        mask = _disc_mask(r)
        x0, y0 = cx - r, cy - r
        self.image.paste(colour, (x0, y0, x0 + mask.width, y0 + mask.height), mask)
        if self.ink is not None:
            self.ink.paste(255, (x0, y0, x0 + mask.width, y0 + mask.height), mask)

    def _image_box(self, size: tuple[int, int], y0: int, y1: int) -> tuple[int, int, int, int] | None:
        a = self.area
        candidates = []
        wide_bottom = min(y1, a.corner_top - a.gap)
        wide = self._span(y0, wide_bottom, y1, None) if wide_bottom > y0 else None
        if wide is not None:
            candidates.append((wide[0], y0, wide[1], wide_bottom))
        narrow = self._span(y0, y1, y1, None)
        if narrow is not None:
            candidates.append((narrow[0], y0, narrow[1], y1))
        if not candidates:
            return None
        iw, ih = size

        def shown(box: tuple[int, int, int, int]) -> float:
            bw, bh = box[2] - box[0], box[3] - box[1]
            scale = min(bw / iw, bh / ih, 2.0)
            return iw * scale * ih * scale

        return max(candidates, key=shown)


def panel_padding(height: int) -> tuple[int, int]:
    """The padding ``(x, y)`` between a text panel's edge and its text on a transparent slide."""
    return max(3, round(height * 0.04)), max(2, round(height * 0.028))


def fit_image(image: Image.Image, box: tuple[int, int], fit: str) -> Image.Image:
    """Scale ``image`` to ``box`` by ``cover`` (crop to fill) or ``contain`` (fit inside), at most 2×."""
    bw, bh = box
    iw, ih = image.size
    if fit == "cover":
        scale = min(max(bw / iw, bh / ih), 2.0)
    else:
        scale = min(bw / iw, bh / ih, 2.0)
    nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
    resized = image.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=2.0) if (nw, nh) != (iw, ih) else image
    if nw > bw or nh > bh:
        left, top = max(0, (nw - bw) // 2), max(0, (nh - bh) // 2)
        resized = resized.crop((left, top, left + min(nw, bw), top + min(nh, bh)))
    return resized


# --- fonts and measuring -------------------------------------------------------------------------

_local = threading.local()


def font_for(face: FontFace, size: int) -> ImageFont.FreeTypeFont:
    """A font at ``size`` px, cached per thread (FreeType faces are not shared across threads)."""
    cache = _local.__dict__.setdefault("fonts", {})
    key = (face.path, face.index, size)
    font = cache.get(key)
    if font is None:
        font = ImageFont.truetype(str(face.path), size, index=face.index, layout_engine=ImageFont.Layout.BASIC)
        cache[key] = font
    return font


def measure_for(face: FontFace, size: int):
    """A fast width function: with the basic layout engine a string's advance is the sum of its characters'."""
    cache = _local.__dict__.setdefault("measures", {})
    key = (face.path, face.index, size)
    measure = cache.get(key)
    if measure is None:
        font = font_for(face, size)
        widths: dict[str, float] = {}

        def measure(text: str) -> float:
            total = 0.0
            for char in text:
                w = widths.get(char)
                if w is None:
                    w = widths[char] = font.getlength(char)
                total += w
            return total

        cache[key] = measure
    return measure


def first_line(text: str, max_width: float, measure) -> tuple[str, str]:
    """The first line of ``text`` under kinsoku rules, and the rest (leading spaces dropped)."""
    text = text.lstrip()
    line = ""
    for unit in tokens(text):
        candidate = line + unit
        if unit.isspace() or measure(candidate.rstrip()) <= max_width:
            line = candidate
            continue
        if measure(unit) > max_width:
            # a phrase wider than any line is split anyway (at its words, else by characters):
            # its first piece fills what is left of this line
            first = split_oversized(unit, max_width, measure, line)[0].rstrip()
            if first.strip():
                return first, text[len(first):].lstrip()
        if line.strip():
            return line.rstrip(), text[len(line):].lstrip()
        return unit, text[len(unit):].lstrip()  # not reached: a unit that fits was taken above
    return line.rstrip(), ""


def ellipsis_for(text: str) -> str:
    """``…`` for Japanese text; three full stops for Latin text (CJK fonts centre ``…``)."""
    return ELLIPSIS if any(is_cjk(c) for c in text) else "..."


def _fit_with_ellipsis(text: str, width: float, measure, force: bool = False) -> str:
    text = text.rstrip()
    if not force and measure(text) <= width:
        return text
    mark = ellipsis_for(text)
    while text and measure(text.rstrip(" 、，,") + mark) > width:
        text = text[:-1]
    text = text.rstrip(" 、，,。.")
    while text and text[-1] in "「『（([{“‘":
        text = text[:-1]
    return text + mark


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


_mask_cache: dict[tuple[str, int, int, int], Image.Image] = {}
_mask_lock = threading.Lock()


def _rounded_mask(w: int, h: int, radius: int) -> Image.Image:
    key = ("r", w, h, radius)
    with _mask_lock:
        cached = _mask_cache.get(key)
    if cached is not None:
        return cached
    s = 2
    big = Image.new("L", (w * s, h * s), 0)
    ImageDraw.Draw(big).rounded_rectangle([0, 0, w * s - 1, h * s - 1], radius=max(0, radius * s), fill=255)
    mask = big.reduce(s)
    with _mask_lock:
        if len(_mask_cache) > 256:
            _mask_cache.clear()
        _mask_cache[key] = mask
    return mask


def _disc_mask(r: int) -> Image.Image:
    key = ("d", r, 0, 0)
    with _mask_lock:
        cached = _mask_cache.get(key)
    if cached is not None:
        return cached
    s = SUPERSAMPLE if r < 200 else 2
    big = Image.new("L", (2 * r * s, 2 * r * s), 0)
    ImageDraw.Draw(big).ellipse([0, 0, 2 * r * s - 1, 2 * r * s - 1], fill=255)
    mask = big.reduce(s)
    with _mask_lock:
        _mask_cache[key] = mask
    return mask

