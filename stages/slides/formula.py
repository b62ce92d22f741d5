"""Math pictures: display math shown legibly without a TeX engine.

No TeX engine is available offline, so the formula is typeset by matplotlib's *mathtext* (a large
TeX subset: sub- and superscripts, ``\\frac``, ``\\sqrt``, ``\\sum`` with limits, accents, ``\\mathbf``,
``\\mathbb``, ``\\text``, ``\\left(``…), in the Computer Modern fonts that ship inside matplotlib's
wheel; nothing is downloaded. Each line of the formula (up to a ``\\\\``; a newline is a space; environments
such as ``aligned`` are unwrapped, ``&`` dropped; matrices, ``array``/``pmatrix``/``bmatrix``…, which
mathtext lacks, are laid out cell by cell between drawn delimiters) is one picture, centred on a light panel in dark
ink at the body type's size, shrunk to fit, then paged. matplotlib keeps its settings and font
list in ``MPLCONFIGDIR``, set to a folder of the slides cache (``<cache>/matplotlib``, never under
``$HOME``) before it is first imported.

Fallback, for what mathtext cannot parse (an unknown command, a Japanese word in ``\\text{}``): the
formula's TeX source is shown in a monospace box, made easier to read: common commands become their symbols
(``\\alpha`` α, ``\\sum`` Σ, ``\\le`` ≤, ``\\to`` →, ``\\cdot`` ·, …), ``\\frac{a}{b}`` becomes
``(a)/(b)``, ``\\sqrt{x}`` ``√(x)``, accents combine with their letter (``\\hat{y}`` ŷ), font commands
keep their content, and spacing commands and ``\\left``/``\\right`` go. Whatever is not known is left as written, so nothing is lost. Lines
(``\\\\`` and the source's own) wrap at spaces when too wide; the type shrinks to fit, down to a
minimum, then the box is paged like code. The picture's ``math`` box says which was used
(``"engine": "mathtext"`` or ``"text"`` with the ``reason``), and the slides stage notes a fallback.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from stages.slides.layout import SafeArea
from stages.slides.panel import Box, heading_slide, mix, mono_faces, page_label, rounded
from stages.slides.typeset import Drawn, Theme, first_line, font_for, measure_for

SIZES = (0.06, 0.03)
LINE = 1.5
MATH_SIZES = (0.075, 0.035)  # mathtext's type, of the short side (its glyphs run smaller than the UI font's)
INK = (22, 27, 34)
_LOG = logging.getLogger(__name__)
_MPL_LOCK = threading.Lock()  # matplotlib is not thread-safe; slides are drawn in a thread pool
_MATHTEXT_FIXES = [
    (re.compile(r"\\(?:displaystyle|textstyle|scriptstyle|nonumber|notag|limits|nolimits)(?![A-Za-z])"), ""),
    (re.compile(r"\\(?:label|tag)\{[^{}]*\}"), ""),
    (re.compile(r"\\[lr]Vert(?![A-Za-z])"), r"\\Vert"),
    (re.compile(r"\\[lr]vert(?![A-Za-z])"), "|"),
    (re.compile(r"\\frac(?![A-Za-z])"), r"\\dfrac"),  # display math: fractions at full size, as TeX sets them
    (re.compile(r"\\tfrac(?![A-Za-z])"), r"\\frac"),
    (re.compile(r"\\bm(?![A-Za-z])"), r"\\boldsymbol"),
    (re.compile(r"\\operatorname\*"), r"\\operatorname"),
    (re.compile(r"\\coloneqq(?![A-Za-z])"), ":="),
]
SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε", "zeta": "ζ",
    "eta": "η", "theta": "θ", "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ",
    "sigma": "σ", "tau": "τ", "phi": "φ", "varphi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω",
    "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
    "sum": "Σ", "prod": "Π", "int": "∫", "partial": "∂", "nabla": "∇", "infty": "∞", "cdot": "·", "times": "×",
    "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥", "ne": "≠", "neq": "≠", "approx": "≈", "sim": "∼", "pm": "±",
    "to": "→", "rightarrow": "→", "leftarrow": "←", "Rightarrow": "⇒", "Leftrightarrow": "⇔", "mapsto": "↦",
    "in": "∈", "notin": "∉", "subset": "⊂", "subseteq": "⊆", "cup": "∪", "cap": "∩", "forall": "∀",
    "exists": "∃", "ldots": "…", "cdots": "⋯", "dots": "…", "propto": "∝", "equiv": "≡", "log": "log",
    "exp": "exp", "sin": "sin", "cos": "cos", "max": "max", "min": "min", "lim": "lim", "det": "det",
}
_ACCENTS = {"hat": "\u0302", "widehat": "\u0302", "bar": "\u0304", "overline": "\u0304", "tilde": "\u0303",
            "widetilde": "\u0303", "dot": "\u0307", "vec": "\u20d7"}
_STYLES = ("mathrm", "mathbf", "mathit", "operatorname", "text", "boldsymbol", "mathcal", "mathbb")


def readable(tex: str) -> list[str]:
    """The TeX source as lines of readable text (rules in the module docstring)."""
    text = tex.strip().strip("$").strip()
    text = re.sub(r"\\(?:begin|end)\{[A-Za-z*]+\}", "", text)
    text = re.sub(r"\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])", "", text)
    text = re.sub(r"\\(?:quad|qquad|,|;|!|:)", " ", text)
    text = _commands(text)
    text = re.sub(r"\\([A-Za-z]+)", lambda m: SYMBOLS.get(m.group(1), m.group(0)), text)
    # W_{ac} -> W_ac when nothing that could join the subscript follows (W_{ac}v_a keeps its braces)
    text = re.sub(r"([_^])\{([A-Za-z0-9]{1,3})\}(?![A-Za-z0-9])", r"\1\2", text)
    text = text.replace("&", "")
    lines = [" ".join(part.split()) for part in re.split(r"\\\\|\n", text)]
    return [line for line in lines if line] or [tex.strip()]


def _commands(text: str) -> str:
    """``\\frac{a}{b}``, ``\\sqrt{x}``, accents and font styles, with nested braces."""
    out = []
    i = 0
    while i < len(text):
        m = re.match(r"\\([dt]?frac|sqrt|[A-Za-z]+)\s*(?=\{)", text[i:])
        if m and (m.group(1) in ("frac", "dfrac", "tfrac", "sqrt") or m.group(1) in _ACCENTS or m.group(1) in _STYLES):
            name = m.group(1)
            j = i + m.end()
            args = []
            for _ in range(2 if name.endswith("frac") else 1):
                arg, j = _group(text, j)
                args.append(re.sub(r"\\([A-Za-z]+)", lambda a: SYMBOLS.get(a.group(1), a.group(0)), _commands(arg)))
            if name.endswith("frac"):
                out.append(f"({args[0]})/({args[1]})" if len(args) == 2 else args[0])
            elif name == "sqrt":
                out.append(f"√({args[0]})")
            elif name in _ACCENTS:
                out.append(args[0] + _ACCENTS[name] if len(args[0]) == 1 else args[0])
            else:
                out.append(args[0])
            i = j
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _group(text: str, i: int) -> tuple[str, int]:
    """The brace group starting at ``text[i]`` (its content) and the index after it."""
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text) or text[i] != "{":
        return (text[i], i + 1) if i < len(text) else ("", i)
    depth = 0
    for k in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[k], 0)
        if depth == 0:
            return text[i + 1:k], k + 1
    return text[i + 1:], len(text)


@dataclass(frozen=True)
class Matrix:
    """A matrix or array of the formula: its cells' mathtext sources by row, and its delimiters
    (``(`` ``)``, ``[`` ``]``, ``|``, ``‖``, ``{``, or "" for none)."""

    rows: tuple[tuple[str, ...], ...]
    left: str = ""
    right: str = ""


_MATRIX = re.compile(
    r"(?:\\left\s*(\\[A-Za-z]+|\\[{|]|[^\sA-Za-z\\])\s*)?"
    r"\\begin\{(array|matrix|pmatrix|bmatrix|Bmatrix|vmatrix|Vmatrix|smallmatrix)\}(?:\{[^{}]*\})?"
    r"(.*?)\\end\{\2\}"
    r"(?:\s*\\right\s*(\\[A-Za-z]+|\\[}|]|[^\sA-Za-z\\]))?", re.S)
_ENV_DELIMITERS = {"pmatrix": ("(", ")"), "bmatrix": ("[", "]"), "Bmatrix": ("{", "}"), "vmatrix": ("|", "|"),
                   "Vmatrix": ("‖", "‖")}
_DELIMITER_NAMES = {"\\{": "{", "\\}": "}", "\\lbrace": "{", "\\rbrace": "}", "\\|": "‖", "\\Vert": "‖",
                    "\\lVert": "‖", "\\rVert": "‖", "\\vert": "|", "\\lvert": "|", "\\rvert": "|", "\\langle": "(",
                    "\\rangle": ")", "\\lbrack": "[", "\\rbrack": "]", ".": ""}


def tex_lines(tex: str) -> list[list[str | Matrix]]:
    r"""The formula's lines, each a list of pieces: mathtext sources (without ``$``) and matrices
    (``array``, ``pmatrix``, ``bmatrix``…, with the ``\left(``/``\right)`` around them). Other
    environments (``aligned``…) are unwrapped, lines end at ``\\`` (a newline is a space), ``&`` is
    dropped, and commands mathtext lacks are rewritten (``\displaystyle`` goes, ``\lVert`` is
    ``\Vert``, ``\frac`` is ``\dfrac`` as in display math, ``\tfrac`` is ``\frac``...)."""
    text = tex.strip().strip("$").strip()
    for pattern, replacement in _MATHTEXT_FIXES:
        text = pattern.sub(replacement, text)
    matrices: list[Matrix] = []

    def keep(match: re.Match) -> str:
        left, right = _ENV_DELIMITERS.get(match.group(2), ("", ""))
        rows = tuple(tuple(" ".join(cell.split()) for cell in row.split("&"))
                     for row in re.split(r"\\\\", match.group(3)) if row.strip())
        left = _DELIMITER_NAMES.get(match.group(1), match.group(1)) if match.group(1) else left
        right = _DELIMITER_NAMES.get(match.group(4), match.group(4)) if match.group(4) else right
        matrices.append(Matrix(rows, left, right))
        return f"\x00{len(matrices) - 1}\x00"

    text = _MATRIX.sub(keep, text)
    text = re.sub(r"\\(?:begin|end)\{[A-Za-z*]+\}(?:\{[^{}]*\})?", "", text)
    lines: list[list[str | Matrix]] = []
    for part in re.split(r"\\\\", text):  # a newline in TeX is a space: only \\ ends a line
        pieces: list[str | Matrix] = []
        for k, piece in enumerate(re.split(r"\x00(\d+)\x00", part)):
            if k % 2:
                pieces.append(matrices[int(piece)])
            elif source := " ".join(piece.replace("&", " ").split()):
                pieces.append(source)
        if pieces:
            lines.append(pieces)
    return lines


def mathtext_pictures(tex: str, px: int, colour: tuple[int, int, int] = INK,
                      config_dir: Path | None = None) -> list[Image.Image]:
    """Each line of ``tex`` typeset by matplotlib's mathtext at ``px`` pixels (matrices laid out
    cell by cell, between drawn delimiters): RGBA pictures, ink on clear. Raises ``ValueError``
    when mathtext cannot parse a piece or the formula holds CJK text (its math fonts have no
    such glyphs)."""
    lines = tex_lines(tex)
    if not lines:
        raise ValueError("empty formula")
    if any(ord(ch) >= 0x2E80 for ch in tex):
        raise ValueError("the formula holds CJK text, which the math fonts cannot draw")
    mathtext, font_properties, rc_context = _matplotlib(config_dir)
    out = []
    with _MPL_LOCK, rc_context({"mathtext.fontset": "cm"}):
        parser = mathtext.MathTextParser("agg")

        def raster(source: str) -> tuple[np.ndarray, int]:
            if not source.strip():
                return np.zeros((1, 1), np.uint8), 1
            parsed = parser.parse(f"${source}$", dpi=72, prop=font_properties(size=px))
            ink = np.asarray(parsed.image, dtype=np.uint8)
            return ink, ink.shape[0] - round(parsed.depth)

        for line in lines:
            pieces = [raster(p) if isinstance(p, str) else _matrix(p, px, raster) for p in line]
            ink, _ = _row(pieces, round(px * 0.22))
            picture = Image.new("RGBA", (ink.shape[1], ink.shape[0]), (*colour, 0))
            picture.putalpha(Image.fromarray(ink, "L"))
            out.append(picture)
    return out


def _row(pieces: list[tuple[np.ndarray, int]], gap: int) -> tuple[np.ndarray, int]:
    """Pieces (coverage, baseline row) set side by side on one baseline; the result and its baseline."""
    ascent = max(base for _ink, base in pieces)
    descent = max(ink.shape[0] - base for ink, base in pieces)
    width = sum(ink.shape[1] for ink, _ in pieces) + gap * (len(pieces) - 1)
    out = np.zeros((ascent + descent, max(1, width)), np.uint8)
    x = 0
    for ink, base in pieces:
        y = ascent - base
        region = out[y:y + ink.shape[0], x:x + ink.shape[1]]
        np.maximum(region, ink, out=region)
        x += ink.shape[1] + gap
    return out, ascent


def _matrix(matrix: Matrix, px: int, raster) -> tuple[np.ndarray, int]:
    """A matrix as coverage and baseline: cells centred in their columns, rows on their own
    baselines, delimiters drawn as tall strokes, the whole centred on the math axis."""
    cells = [[raster(cell) for cell in row] for row in matrix.rows]
    columns = max(len(row) for row in cells)
    widths = [max((row[c][0].shape[1] for row in cells if c < len(row)), default=1) for c in range(columns)]
    col_gap, row_gap = round(px * 0.9), round(px * 0.3)
    # every row as tall as the tallest (TeX's strut), so that rows of 0s sit as far apart as rows of 1/2s
    ascent = max([round(px * 0.75)] + [base for row in cells for _ink, base in row])
    descent = max([round(px * 0.25)] + [ink.shape[0] - base for row in cells for ink, base in row])
    heights = [(ascent, descent)] * len(cells)
    grid_w = sum(widths) + col_gap * (columns - 1)
    grid_h = sum(a + d for a, d in heights) + row_gap * (len(cells) - 1)
    stroke, side, extend = max(2, round(px * 0.07)), round(px * 0.55), round(px * 0.12)
    left = side if matrix.left else 0
    right = side if matrix.right else 0
    out = np.zeros((grid_h + 2 * extend, left + grid_w + right), np.uint8)
    y = extend
    for row, (ascent, descent) in zip(cells, heights):
        x = left
        for c, (ink, base) in enumerate(row):
            cx = x + (widths[c] - ink.shape[1]) // 2
            top = y + ascent - base
            region = out[top:top + ink.shape[0], cx:cx + ink.shape[1]]
            np.maximum(region, ink, out=region)
            x += widths[c] + col_gap
        y += ascent + descent + row_gap
    canvas = Image.fromarray(out, "L")
    draw = ImageDraw.Draw(canvas)
    height = out.shape[0]
    for delimiter, x0, mirrored in ((matrix.left, 0, False), (matrix.right, left + grid_w, True)):
        if delimiter:
            _delimiter(draw, delimiter, x0, side, height, stroke, mirrored)
    out = np.asarray(canvas)
    return out, height // 2 + round(px * 0.25)  # the math axis sits about a quarter em above the baseline


def _delimiter(draw: ImageDraw.ImageDraw, kind: str, x0: int, width: int, height: int, stroke: int,
               mirrored: bool) -> None:
    """A tall ( ) [ ] | ‖ { } as strokes in a ``width`` wide column (``mirrored``: the closing one)."""
    inner, outer = (x0 + width // 6, x0 + width * 3 // 5) if not mirrored else (x0 + width * 2 // 5, x0 + width * 5 // 6)
    top, bottom = stroke, height - stroke - 1
    if kind in ("(", ")", "{", "}"):
        # an arc: the left half of a tall ellipse (the right half for the closing one)
        x_left = min(inner, outer) if not mirrored else min(inner, outer) - (abs(outer - inner))
        box = (x_left, top, x_left + 2 * abs(outer - inner), bottom)
        draw.arc(box, 90, 270, fill=255, width=stroke) if not mirrored else draw.arc(box, 270, 90, fill=255,
                                                                                     width=stroke)
    elif kind in ("[", "]"):
        x = min(inner, outer) if not mirrored else max(inner, outer)
        end = max(inner, outer) if not mirrored else min(inner, outer)
        draw.line([(x, top), (x, bottom)], fill=255, width=stroke)
        draw.line([(min(x, end), top), (max(x, end), top)], fill=255, width=stroke)
        draw.line([(min(x, end), bottom), (max(x, end), bottom)], fill=255, width=stroke)
    else:  # | and ‖
        xs = [x0 + width // 2] if kind == "|" else [x0 + width // 3, x0 + width * 2 // 3]
        for x in xs:
            draw.line([(x, top), (x, bottom)], fill=255, width=stroke)


def _matplotlib(config_dir: Path | None):
    """matplotlib's mathtext, imported once with ``MPLCONFIGDIR`` set to ``config_dir`` (else a
    folder in the temporary directory), so that it writes its font list there and never under
    ``$HOME``."""
    with _MPL_LOCK:
        if "matplotlib" not in sys.modules:
            folder = config_dir or Path(tempfile.gettempdir()) / f"moviegen-matplotlib-{os.getuid()}"
            folder.mkdir(parents=True, exist_ok=True)
            os.environ["MPLCONFIGDIR"] = str(folder)
        from matplotlib import mathtext, rc_context
        from matplotlib.font_manager import FontProperties
    return mathtext, FontProperties, rc_context


def draw_math(tex: str, caption: str | None, heading: str, theme: Theme, area: SafeArea, logo: Image.Image | None,
              *, transparent: bool = False, lang: str = "ja", config_dir: Path | None = None) -> list[Drawn]:
    """One picture per page of the formula (usually one); each records a ``math`` box.

    mathtext typesets it (the module docstring); what it cannot parse is shown as readable text,
    logged, with the reason in the box (``engine``/``reason``). ``config_dir``: matplotlib's
    settings folder (``MPLCONFIGDIR``), used if matplotlib is not imported yet."""
    try:
        return _draw_typeset(tex, caption, heading, theme, area, logo, transparent, lang, config_dir)
    except Exception as exc:  # mathtext's parser raises ValueError; anything else of it is no reason to fail
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        _LOG.info("math shown as text: %s (%s)", reason, tex[:80])
        pages = _draw_text(tex, caption, heading, theme, area, logo, transparent, lang)
        for page in pages:
            page.boxes[-1].update({"engine": "text", "reason": reason})
        return pages


def _draw_typeset(tex: str, caption: str | None, heading: str, theme: Theme, area: SafeArea,
                  logo: Image.Image | None, transparent: bool, lang: str, config_dir: Path | None) -> list[Drawn]:
    base, body = heading_slide(heading, theme, area, logo, transparent)
    pad = max(4, round(area.height * 0.03))
    cap_h = round(area.height * 0.06) if caption else 0
    inner = Box(body.x0 + pad, body.y0 + pad, body.x1 - pad, body.y1 - pad - cap_h)
    short = min(area.width, area.height)
    size = max(8, round(short * MATH_SIZES[0]))
    low = max(6, round(short * MATH_SIZES[1]))
    gap = lambda px: round(px * 0.5)  # noqa: E731 (between lines)
    while True:
        pictures = mathtext_pictures(tex, size, config_dir=config_dir)
        widest = max(p.width for p in pictures)
        tallest = sum(p.height for p in pictures) + gap(size) * (len(pictures) - 1)
        if (widest <= inner.width and tallest <= inner.height) or size <= low:
            break
        size = max(low, int(size * 0.9))
    # at the smallest size, a line still too wide is scaled to the width (never cut)
    pictures = [p if p.width <= inner.width else
                p.resize((inner.width, max(1, round(p.height * inner.width / p.width))), Image.Resampling.LANCZOS)
                for p in pictures]
    pages: list[list[Image.Image]] = [[]]
    used = 0
    for picture in pictures:
        need = picture.height + (gap(size) if pages[-1] else 0)
        if pages[-1] and used + need > inner.height:
            pages.append([])
            used, need = 0, picture.height
        pages[-1].append(picture)
        used += need
    source = readable(tex)
    out: list[Drawn] = []
    for n, page in enumerate(pages, 1):
        image = base.image.copy()
        height = sum(p.height for p in page) + gap(size) * (len(page) - 1)
        panel = (body.x0, body.y0, body.x1, body.y0 + height + 2 * pad + cap_h)
        rounded(image, panel, round(area.height * 0.016), mix(theme.background, (255, 255, 255), 0.92))
        y = body.y0 + pad
        for picture in page:
            x = (body.x0 + body.x1 - picture.width) // 2
            if image.mode == "RGBA":
                image.alpha_composite(picture, (x, y))
            else:
                image.paste(picture, (x, y), picture)
            y += picture.height + gap(size)
        _footer(image, body, panel, pad, cap_h, caption, theme, page_label(n, len(pages)),
                font_for(theme.regular, max(6, size // 3)))
        boxes = [*base.boxes, {"kind": "math", "box": list(panel), "page": n, "pages": len(pages), "lines": source,
                               "size": size, "engine": "mathtext"}]
        out.append(Drawn(image, boxes, list(base.truncated)))
    return out


def _draw_text(tex: str, caption: str | None, heading: str, theme: Theme, area: SafeArea, logo: Image.Image | None,
               transparent: bool, lang: str) -> list[Drawn]:
    """The fallback: the TeX source made readable (:func:`readable`) in a monospace box."""
    regular, _ = mono_faces(lang)
    base, body = heading_slide(heading, theme, area, logo, transparent)
    pad = max(4, round(area.height * 0.03))
    cap_h = round(area.height * 0.06) if caption else 0
    inner = Box(body.x0 + pad, body.y0 + pad, body.x1 - pad, body.y1 - pad - cap_h)
    short = min(area.width, area.height)
    source = readable(tex)
    size = max(6, round(short * SIZES[0]))
    low = max(5, round(short * SIZES[1]))
    while True:
        measure = measure_for(regular, size)
        lines = [piece for line in source for piece in _wrap(line, inner.width, measure)]
        rows = max(1, int(inner.height // round(size * LINE)))
        if len(lines) <= rows or size <= low:
            break
        size = max(low, int(size * 0.9))
    pages = [lines[i:i + rows] for i in range(0, len(lines), rows)]
    line_h = round(size * LINE)
    out: list[Drawn] = []
    for n, page in enumerate(pages, 1):
        image = base.image.copy()
        draw = ImageDraw.Draw(image)
        height = len(page) * line_h + 2 * pad
        panel = (body.x0, body.y0, body.x1, body.y0 + height + cap_h)
        rounded(image, panel, round(area.height * 0.016), mix(theme.background, (255, 255, 255), 0.92))
        ink = INK
        font = font_for(regular, size)
        for j, line in enumerate(page):
            y = body.y0 + pad + j * line_h + line_h // 2
            draw.text(((body.x0 + body.x1) // 2, y), line, font=font, fill=_ink(image, ink), anchor="mm")
        _footer(image, body, panel, pad, cap_h, caption, theme, page_label(n, len(pages)),
                font_for(regular, max(6, size // 2)))
        boxes = [*base.boxes, {"kind": "math", "box": list(panel), "page": n, "pages": len(pages), "lines": page,
                               "size": size, "engine": "text"}]
        out.append(Drawn(image, boxes, list(base.truncated)))
    return out


def _footer(image: Image.Image, body: Box, panel: tuple[int, int, int, int], pad: int, cap_h: int, caption: str | None,
            theme: Theme, marker: str | None, marker_font) -> None:
    """The caption centred under the formula and the page marker in the panel's corner (both drawers)."""
    draw = ImageDraw.Draw(image)
    if caption:
        draw.text(((body.x0 + body.x1) // 2, panel[3] - cap_h // 2 - pad // 3), caption,
                  font=font_for(theme.regular, max(6, round(cap_h * 0.5))), fill=_ink(image, (90, 96, 105)), anchor="mm")
    if marker:
        draw.text((body.x1 - pad // 2, panel[3] - pad // 3), marker, font=marker_font, fill=_ink(image, (90, 96, 105)),
                  anchor="rd")


def _wrap(text: str, width: float, measure) -> list[str]:
    lines = []
    while text:
        line, text = first_line(text, width, measure)
        if not line:
            break
        lines.append(line)
    return lines


def _ink(image: Image.Image, colour: tuple[int, int, int]):
    return (*colour, 255) if image.mode == "RGBA" else colour
