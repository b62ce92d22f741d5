"""Code pictures: the article's code block, syntax-highlighted, in a monospace face that draws Japanese.

The source is highlighted with Pygments (the block's language, else plain text; a dark
``github-dark`` panel whatever the theme, as code is usually read) and set in Noto Sans Mono CJK
JP, where Latin is half width and kana/kanji full width, so comments in Japanese line up. The
type is as large as lets the whole block fit in one picture, down to a minimum still legible at
1080p (about 26 px); a longer block is *paged*: several pictures, each marked ``2/3``, the lines
shown in order, never cut. A line wider than the panel at the minimum size wraps, its
continuation marked with ``»``. Tabs become four spaces.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw
from pygments.lexers import get_lexer_by_name
from pygments.lexers.special import TextLexer
from pygments.styles import get_style_by_name
from pygments.token import Token
from pygments.util import ClassNotFound

from stages.slides.layout import SafeArea
from stages.slides.panel import Box, heading_slide, mix, mono_faces, page_label, rounded
from stages.slides.typeset import Drawn, Theme, font_for, measure_for

STYLE = "github-dark"
SIZES = (0.036, 0.026)  # of the frame's short side: preferred, smallest (1080p: 39 px, 28 px)
PAGED_SIZE = 0.03  # when the block needs several pictures anyway, a comfortable size
LINE = 1.38
CONTINUATION = "» "  # (the font has no ↪)
OMITTED = {"ja": "… 残り {} 行 (記事を参照)", "en": "… {} more lines (see the article)"}
MAX_PAGES = 6  # more would flash by: the rest is named on the last page ("… 残り 120 行"), not dropped silently

Run = tuple[str, tuple[int, int, int], bool]  # text, colour, bold


@dataclass
class _Layout:
    size: int
    pages: list[list[list[Run]]]  # pages of visual lines of coloured runs


def highlight(text: str, language: str | None) -> list[list[Run]]:
    """The code's lines as coloured runs (Pygments tokens in the ``github-dark`` style)."""
    style = get_style_by_name(STYLE)
    try:
        lexer = get_lexer_by_name((language or "text").strip().lower() or "text", stripnl=False, ensurenl=False)
    except ClassNotFound:
        lexer = TextLexer(stripnl=False, ensurenl=False)
    default = _hex(style.style_for_token(Token.Text).get("color") or "e6edf3")
    lines: list[list[Run]] = [[]]
    for ttype, value in lexer.get_tokens(_normalise(text)):
        spec = style.style_for_token(ttype)
        colour = _hex(spec["color"]) if spec.get("color") else default
        for i, part in enumerate(value.split("\n")):
            if i:
                lines.append([])
            if part:
                lines[-1].append((part, colour, bool(spec.get("bold"))))
    while len(lines) > 1 and not "".join(r[0] for r in lines[-1]).strip():
        lines.pop()
    return lines


def draw_code(text: str, language: str | None, caption: str | None, heading: str, theme: Theme, area: SafeArea,
              logo: Image.Image | None, *, transparent: bool = False, lang: str = "ja") -> list[Drawn]:
    """One picture per page of the code block (see the module docstring); each records a
    ``code`` box with the page's first and last source line and ``page``/``pages``."""
    regular, bold = mono_faces(lang)
    lines = highlight(text, language)
    base, body = heading_slide(heading, theme, area, logo, transparent)
    pad = max(4, round(area.height * 0.022))
    tab_h = round(area.height * 0.045) if (caption or language) else 0
    panel = Box(body.x0, body.y0 + tab_h, body.x1, body.y1)
    inner = Box(panel.x0 + pad, panel.y0 + pad, panel.x1 - pad, panel.y1 - pad)
    layout = _layout(lines, inner, regular, min(area.width, area.height), OMITTED["ja" if lang == "ja" else "en"])
    rows = max(len(page) for page in layout.pages)  # the panel fits the longest page, not the whole body
    panel = Box(panel.x0, panel.y0, panel.x1, min(panel.y1, panel.y0 + 2 * pad + rows * round(layout.size * LINE)))
    out: list[Drawn] = []
    source_line = 1
    for n, page in enumerate(layout.pages, 1):
        image = base.image.copy()
        bg = _hex(get_style_by_name(STYLE).background_color)
        radius = round(area.height * 0.016)
        if tab_h:
            label = caption or language or ""
            face_size = max(6, round(tab_h * 0.5))
            font = font_for(regular, face_size)
            tab_w = min(panel.width, round(measure_for(regular, face_size)(label)) + 2 * pad)
            rounded(image, (panel.x0, body.y0, panel.x0 + tab_w, panel.y0 + radius), radius, mix(bg, theme.accent, 0.35))
            ImageDraw.Draw(image).text((panel.x0 + pad, body.y0 + tab_h // 2), label, font=font,
                                       fill=_opaque(image, theme.text), anchor="lm")
        rounded(image, (panel.x0, panel.y0, panel.x1, panel.y1), radius, bg)
        _draw_lines(image, page, inner, layout.size, regular, bold)
        marker = page_label(n, len(layout.pages))
        if marker:
            small = max(6, round(layout.size * 0.75))
            ImageDraw.Draw(image).text((panel.x1 - pad, panel.y1 - pad // 2), marker, font=font_for(regular, small),
                                       fill=_opaque(image, mix(bg, (255, 255, 255), 0.55)), anchor="rd")
        first = source_line
        source_line += sum(1 for line in page if not _is_continuation(line))
        boxes = [*base.boxes, {"kind": "code", "box": [panel.x0, panel.y0, panel.x1, panel.y1], "page": n,
                               "pages": len(layout.pages), "lines": [first, source_line - 1], "size": layout.size}]
        out.append(Drawn(image, boxes, list(base.truncated)))
    return out


# --- layout --------------------------------------------------------------------------------------


def _layout(lines: list[list[Run]], inner: Box, face, short: int, omitted: str) -> _Layout:
    top, low = max(6, round(short * SIZES[0])), max(5, round(short * SIZES[1]))
    size = top
    while True:  # the largest size at which the whole block fits one picture unwrapped
        measure = measure_for(face, size)
        rows = max(1, int(inner.height // round(size * LINE)))
        widest = max((measure("".join(r[0] for r in line)) for line in lines), default=0)
        if widest <= inner.width and len(lines) <= rows:
            return _Layout(size, [_wrap_all(lines, inner.width, measure)])
        if size <= low:
            break
        size = max(low, int(size * 0.93))
    # several pictures: a comfortable size, long lines wrapped, pages of whole visual lines
    size = max(low, min(top, round(short * PAGED_SIZE)))
    measure = measure_for(face, size)
    rows = max(1, int(inner.height // round(size * LINE)))
    wrapped = _wrap_all(lines, inner.width, measure)
    if len(wrapped) <= rows:  # wrapping alone made it fit
        return _Layout(size, [wrapped])
    pages = [wrapped[i:i + rows] for i in range(0, len(wrapped), rows)]
    if len(pages) > MAX_PAGES:
        pages = pages[:MAX_PAGES]
        shown = sum(1 for page in pages for line in page if not _is_continuation(line))
        rest = len(lines) - shown + sum(1 for line in pages[-1][-1:] if not _is_continuation(line))
        pages[-1] = pages[-1][:-1] + [[(omitted.format(rest), (139, 148, 158), False)]]
    return _Layout(size, pages)


def _wrap_all(lines: list[list[Run]], width: float, measure) -> list[list[Run]]:
    out: list[list[Run]] = []
    for line in lines:
        out.extend(_wrap(line, width, measure))
    return out


def _wrap(line: list[Run], width: float, measure) -> list[list[Run]]:
    """A source line cut into visual lines no wider than ``width``, by characters."""
    if measure("".join(r[0] for r in line)) <= width:
        return [line]
    out: list[list[Run]] = [[]]
    used = 0.0
    for text, colour, bold in line:
        for char in text:
            w = measure(char)
            if used + w > width and out[-1]:
                out.append([(CONTINUATION, (139, 148, 158), False)])
                used = measure(CONTINUATION)
            last = out[-1][-1] if out[-1] else None
            if last is not None and last[1] == colour and last[2] == bold and last[0] != CONTINUATION:
                out[-1][-1] = (last[0] + char, colour, bold)
            else:
                out[-1].append((char, colour, bold))
            used += w
    return out


def _is_continuation(line: list[Run]) -> bool:
    return bool(line) and line[0][0] == CONTINUATION


def _draw_lines(image: Image.Image, page: list[list[Run]], inner: Box, size: int, regular, bold) -> None:
    draw = ImageDraw.Draw(image)
    line_h = round(size * LINE)
    ascent = font_for(regular, size).getmetrics()[0]
    y = inner.y0
    for line in page:
        x = float(inner.x0)
        baseline = y + (line_h - size) // 2 + ascent - round(size * 0.06)
        for text, colour, is_bold in line:
            face = bold if is_bold else regular
            draw.text((round(x), baseline), text, font=font_for(face, size), fill=_opaque(image, colour), anchor="ls")
            x += measure_for(face, size)(text)
        y += line_h


def _normalise(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").expandtabs(4).split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    return "\n".join(lines)


def _hex(value: str) -> tuple[int, int, int]:
    value = value.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _opaque(image: Image.Image, colour: tuple[int, int, int]):
    return (*colour, 255) if image.mode == "RGBA" else colour
