"""Math pictures: display math shown legibly without a TeX engine.

No TeX engine is available offline (and matplotlib is not a dependency), so the formula's TeX
source is shown in a monospace box, made easier to read: common commands become their symbols
(``\\alpha`` α, ``\\sum`` Σ, ``\\le`` ≤, ``\\to`` →, ``\\cdot`` ·, …), ``\\frac{a}{b}`` becomes
``(a)/(b)``, ``\\sqrt{x}`` ``√(x)``, accents combine with their letter (``\\hat{y}`` ŷ), font commands
keep their content, and spacing commands and ``\\left``/``\\right`` go. Whatever is not known is left as written, so nothing is lost. Lines
(``\\\\`` and the source's own) wrap at spaces when too wide; the type shrinks to fit, down to a
minimum, then the box is paged like code.
"""

from __future__ import annotations

import re

from PIL import Image, ImageDraw

from stages.slides.layout import SafeArea
from stages.slides.panel import Box, heading_slide, mix, mono_faces, page_label, rounded
from stages.slides.typeset import Drawn, Theme, first_line, font_for, measure_for

SIZES = (0.06, 0.03)
LINE = 1.5
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


def draw_math(tex: str, caption: str | None, heading: str, theme: Theme, area: SafeArea, logo: Image.Image | None,
              *, transparent: bool = False, lang: str = "ja") -> list[Drawn]:
    """One picture per page of the formula (usually one); each records a ``math`` box."""
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
        ink = (22, 27, 34)
        font = font_for(regular, size)
        for j, line in enumerate(page):
            y = body.y0 + pad + j * line_h + line_h // 2
            draw.text(((body.x0 + body.x1) // 2, y), line, font=font, fill=_ink(image, ink), anchor="mm")
        if caption:
            draw.text(((body.x0 + body.x1) // 2, panel[3] - cap_h // 2 - pad // 3), caption,
                      font=font_for(theme.regular, max(6, round(cap_h * 0.5))), fill=_ink(image, (90, 96, 105)),
                      anchor="mm")
        marker = page_label(n, len(pages))
        if marker:
            draw.text((body.x1 - pad // 2, panel[3] - pad // 3), marker, font=font_for(regular, max(6, size // 2)),
                      fill=_ink(image, (90, 96, 105)), anchor="rd")
        boxes = [*base.boxes, {"kind": "math", "box": list(panel), "page": n, "pages": len(pages), "lines": page,
                               "size": size}]
        out.append(Drawn(image, boxes, list(base.truncated)))
    return out


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
