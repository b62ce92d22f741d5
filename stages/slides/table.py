"""Table pictures: the article's table with its header row emphasised, cells wrapped, long tables paged.

The header row is set in bold on an accent-tinted band; body rows alternate two shades. Column
widths follow the cells' natural widths: a column that needs less keeps it, the rest share what
is left, and a cell wider than its column wraps (kinsoku breaks, :func:`stages.slides.typeset.first_line`).
The type is as large as lets the table fit in one picture, down to a minimum legible at 1080p;
beyond that the rows are split over several pictures, each repeating the header and marked
``2/3``. A cell taller than a whole page (rare) is cut with an ellipsis and reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw

from stages.slides.layout import SafeArea
from stages.slides.panel import Box, heading_slide, mix, page_label, rounded
from stages.slides.typeset import Drawn, Theme, first_line, font_for, measure_for

SIZES = (0.042, 0.026)  # of the frame's short side: preferred, smallest
PAGED_SIZE = 0.032
LINE = 1.3
MAX_CELL_LINES = 4  # a cell needing more at one size makes the layout try a smaller size first


@dataclass
class _Layout:
    size: int
    widths: list[int]
    header: list[list[str]]  # the header's cells as lines
    rows: list[list[list[str]]]  # each row's cells as lines
    pages: list[list[int]]  # row indexes per page
    truncated: bool = False


def draw_table(header: list[str], rows: list[list[str]], caption: str | None, heading: str, theme: Theme,
               area: SafeArea, logo: Image.Image | None, *, transparent: bool = False) -> list[Drawn]:
    """One picture per page of the table (see the module docstring); each records a ``table`` box
    with the page's ``rows`` (first and last body row, 1-based) and ``page``/``pages``."""
    columns = max([len(header), *(len(r) for r in rows)] or [1])
    header = _pad(header, columns) if header else []
    rows = [_pad(r, columns) for r in rows] or [[""] * columns]
    base, body = heading_slide(heading, theme, area, logo, transparent)
    cap_h = round(area.height * 0.05) if caption else 0
    box = Box(body.x0, body.y0 + cap_h, body.x1, body.y1)
    layout = _layout(header, rows, box, theme, min(area.width, area.height))
    pad_x, pad_y = _padding(layout.size)
    line_h = round(layout.size * LINE)
    out: list[Drawn] = []
    for n, page in enumerate(layout.pages, 1):
        image = base.image.copy()
        draw = ImageDraw.Draw(image)
        if caption:
            draw.text((box.x0, body.y0 + cap_h // 2), caption, font=font_for(theme.bold, max(6, round(cap_h * 0.5))),
                      fill=_ink(image, theme.muted), anchor="lm")
        y = box.y0
        heights = [_row_height(layout.header, line_h, pad_y)] if layout.header else []
        heights += [_row_height(layout.rows[i], line_h, pad_y) for i in page]
        total_w = sum(layout.widths)
        x_start = box.x0
        table_box = [x_start, y, x_start + total_w, y + sum(heights)]
        rounded(image, tuple(table_box), round(area.height * 0.012), mix(theme.background, theme.text, 0.05))
        cells: list[tuple[list[list[str]], bool]] = ([(layout.header, True)] if layout.header else [])
        cells += [(layout.rows[i], False) for i in page]
        for k, ((row, is_header), height) in enumerate(zip(cells, heights)):
            if is_header:
                fill = mix(theme.background, theme.accent, 0.45)
            else:
                fill = mix(theme.background, theme.text, 0.10 if k % 2 else 0.04)
            top_radius = round(area.height * 0.012) if k == 0 else 0
            if top_radius:
                rounded(image, (x_start, y, x_start + total_w, y + height), top_radius, fill)
                draw.rectangle((x_start, y + height - top_radius, x_start + total_w - 1, y + height - 1), fill=_ink(image, fill))
            else:
                draw.rectangle((x_start, y, x_start + total_w - 1, y + height - 1), fill=_ink(image, fill))
            x = x_start
            face = theme.bold if is_header else theme.regular
            font = font_for(face, layout.size)
            ascent = font.getmetrics()[0]
            for lines, width in zip(row, layout.widths):
                for j, text in enumerate(lines):
                    baseline = y + pad_y + j * line_h + (line_h - layout.size) // 2 + ascent - round(layout.size * 0.08)
                    draw.text((x + pad_x, baseline), text, font=font, fill=_ink(image, theme.text), anchor="ls")
                x += width
            y += height
        for x in _column_edges(x_start, layout.widths)[1:-1]:  # thin separators between columns
            draw.line((x, table_box[1], x, table_box[3] - 1), fill=_ink(image, mix(theme.background, theme.text, 0.2)))
        marker = page_label(n, len(layout.pages))
        if marker:
            draw.text((box.x1, min(box.y1, table_box[3] + round(layout.size * 1.2))), marker,
                      font=font_for(theme.regular, max(6, round(layout.size * 0.75))), fill=_ink(image, theme.muted),
                      anchor="rd")
        truncated = list(base.truncated) + (["table"] if layout.truncated else [])
        boxes = [*base.boxes, {"kind": "table", "box": table_box, "page": n, "pages": len(layout.pages),
                               "rows": [page[0] + 1, page[-1] + 1], "size": layout.size,
                               "header": [table_box[1], table_box[1] + heights[0]] if layout.header else None}]
        out.append(Drawn(image, boxes, truncated))
    return out


# --- layout --------------------------------------------------------------------------------------


def _layout(header: list[str], rows: list[list[str]], box: Box, theme: Theme, short: int) -> _Layout:
    top, low = max(6, round(short * SIZES[0])), max(5, round(short * SIZES[1]))
    size = top
    while True:  # the largest size at which the table fits one picture
        layout = _at(header, rows, box, theme, size)
        if len(layout.pages) == 1 and not layout.truncated and _max_lines(layout) <= MAX_CELL_LINES:
            return layout
        if size <= low:
            break
        size = max(low, int(size * 0.92))
    return _at(header, rows, box, theme, max(low, min(top, round(short * PAGED_SIZE))))


def _at(header: list[str], rows: list[list[str]], box: Box, theme: Theme, size: int) -> _Layout:
    pad_x, pad_y = _padding(size)
    widths = _widths(header, rows, box.width, theme, size, pad_x)
    line_h = round(size * LINE)
    wrap_header = [_wrap(c, w - 2 * pad_x, measure_for(theme.bold, size)) for c, w in zip(header, widths)]
    wrapped = [[_wrap(c, w - 2 * pad_x, measure_for(theme.regular, size)) for c, w in zip(r, widths)] for r in rows]
    room = box.height - (_row_height(wrap_header, line_h, pad_y) if header else 0)
    most = max(1, (room - 2 * pad_y) // line_h)  # the lines a single row may have on a page
    truncated = False
    for r in wrapped:
        for k, lines in enumerate(r):
            if len(lines) > most:
                r[k] = lines[:most - 1] + [lines[most - 1].rstrip(" 、，,") + "…"]
                truncated = True
    pages: list[list[int]] = [[]]
    used = 0
    for i, r in enumerate(wrapped):
        h = _row_height(r, line_h, pad_y)
        if pages[-1] and used + h > room:
            pages.append([])
            used = 0
        pages[-1].append(i)
        used += h
    return _Layout(size, widths, wrap_header, wrapped, pages, truncated)


def _widths(header: list[str], rows: list[list[str]], total: int, theme: Theme, size: int, pad_x: int) -> list[int]:
    """Natural widths when they fit; else columns needing less than a fair share keep theirs."""
    regular, bold = measure_for(theme.regular, size), measure_for(theme.bold, size)
    columns = len(header) if header else len(rows[0])
    natural = []
    for k in range(columns):
        widest = max([bold(header[k]) if header else 0, *(regular(r[k]) for r in rows)])
        natural.append(int(widest) + 2 * pad_x + 1)
    if sum(natural) <= total:
        extra = (total - sum(natural)) // columns  # fill the column: one grid for every table
        return [w + extra for w in natural]
    widths = [0] * columns
    left = list(range(columns))
    room = total
    while left:
        share = room // len(left)
        small = [k for k in left if natural[k] <= share]
        if not small:
            for k in left:
                widths[k] = share
            break
        for k in small:
            widths[k] = natural[k]
            room -= natural[k]
            left.remove(k)
    return widths


def _wrap(text: str, width: float, measure) -> list[str]:
    text = " ".join(text.split())
    lines: list[str] = []
    while text:
        line, text = first_line(text, max(1.0, width), measure)
        if not line:
            break
        lines.append(line)
    return lines or [""]


def _row_height(row: list[list[str]], line_h: int, pad_y: int) -> int:
    return max(len(lines) for lines in row) * line_h + 2 * pad_y


def _max_lines(layout: _Layout) -> int:
    return max(len(lines) for row in [layout.header, *layout.rows] if row for lines in row)


def _padding(size: int) -> tuple[int, int]:
    return max(3, round(size * 0.6)), max(2, round(size * 0.3))


def _column_edges(x0: int, widths: list[int]) -> list[int]:
    edges = [x0]
    for w in widths:
        edges.append(edges[-1] + w)
    return edges


def _pad(row: list[str], columns: int) -> list[str]:
    return [str(c) for c in row[:columns]] + [""] * (columns - len(row))


def _ink(image: Image.Image, colour: tuple[int, int, int]):
    return (*colour, 255) if image.mode == "RGBA" else colour
