"""The bundled characters, ミント and コハク: drawn here in code with Pillow, MIT like the rest of moviegen.

Usage: python samples/characters/make.py [OUT_DIR]   (default: samples/characters)

Writes, for each character and expression (normal, happy, surprised, troubled), the folder layout
the character loader reads::

    <OUT_DIR>/<character>/<expression>/base.png
    <OUT_DIR>/<character>/<expression>/mouth/{closed,half,open}.png
    <OUT_DIR>/<character>/<expression>/eyes/{open,closed}.png

Every image is RGBA on the same 600x900 canvas. ``base.png`` is the whole character with open eyes
and a closed mouth, so it is a complete picture on its own. The mouth and eye images are overlays,
transparent except around their feature: each holds the character without eyes and mouth in an
ellipse around the feature, with that state drawn on it, so an overlay composited on the base (or on
another state) replaces exactly what was shown there.

The PNGs are committed (about 0.5 MB in all) so a fresh clone needs no build step; this script is
their source, and ``tests/test_bundled_characters.py`` checks that it still draws the same
pictures. Shapes are drawn at twice the size and scaled down, which smooths every edge.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

WIDTH, HEIGHT = 600, 900
SCALE = 2  # drawn at 2x, then scaled down (anti-aliasing)
EXPRESSIONS = ("normal", "happy", "surprised", "troubled")
MOUTHS = ("closed", "half", "open")
EYES = ("open", "closed")

Point = tuple[float, float]


@dataclass(frozen=True)
class Design:
    """One character's look: colours and the shapes that set it apart."""

    id: str
    name: str
    hair: str
    hair_dark: str
    hair_light: str
    iris: str
    iris_dark: str
    outfit: str
    outfit_dark: str
    accent: str
    twin_tails: bool


SKIN = "#ffe6d5"
SKIN_SHADE = "#f6cdb8"
LINE = "#4a2d2d"
BLUSH = "#ffb9bb"  # opaque: ImageDraw replaces RGBA pixels rather than blending into them
BLUSH_LINE = "#f08d98"
MOUTH_IN = "#b8413f"
TONGUE = "#ff8f8f"
WHITE = "#ffffff"

DESIGNS = (
    Design("mint", "ミント", hair="#63cfa9", hair_dark="#2c7f69", hair_light="#a8ecd2", iris="#1f9c8f",
           iris_dark="#0f4f4a", outfit="#f4f7fb", outfit_dark="#5f9fb0", accent="#ffc93c", twin_tails=False),
    Design("kohaku", "コハク", hair="#8a64c9", hair_dark="#4b2f7a", hair_light="#c3a8ee", iris="#e48a1c",
           iris_dark="#8a4208", outfit="#4a5fa8", outfit_dark="#26346b", accent="#e8414f", twin_tails=True),
)  # fmt: skip

# Face geometry (in the 2x drawing space).
HEAD_C, HEAD_RX, HEAD_RY = (600, 640), 330, 300
EYE_Y, EYE_DX, EYE_RX, EYE_RY = 715, 140, 62, 82
MOUTH_C = (600, 862)
EYE_PATCH = (EYE_RX + 42, EYE_RY + 22)
MOUTH_PATCH = (82, 58)


def make_all(out_dir: Path) -> list[Path]:
    """Draw both characters in every expression and state under ``out_dir``; return the files written."""
    written: list[Path] = []
    for design in DESIGNS:
        for expression in EXPRESSIONS:
            for name, image in draw_expression(design, expression).items():
                path = out_dir / design.id / expression / f"{name}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                image.save(path, optimize=True)
                written.append(path)
    return written


def draw_expression(design: Design, expression: str) -> dict[str, Image.Image]:
    """``{"base": …, "mouth/closed": …, …, "eyes/closed": …}`` for one expression, at 600x900."""
    faceless = _canvas()
    draw = ImageDraw.Draw(faceless)
    _back_hair(draw, design)
    _body(draw, design)
    _head(draw, design)
    _front_hair(draw, design)
    _brows(draw, design, expression)
    _extras(draw, design, expression)
    base = faceless.copy()
    draw = ImageDraw.Draw(base)
    _eyes(draw, design, expression, "open")
    _mouth(draw, expression, "closed")
    images = {"base": base}
    for state in MOUTHS:
        overlay = _patch(faceless, [_box(MOUTH_C, *MOUTH_PATCH)])
        _mouth(ImageDraw.Draw(overlay), expression, state)
        images[f"mouth/{state}"] = overlay
    for state in EYES:
        overlay = _patch(faceless, [_box((600 + side * EYE_DX, EYE_Y), *EYE_PATCH) for side in (-1, 1)])
        _eyes(ImageDraw.Draw(overlay), design, expression, state)
        images[f"eyes/{state}"] = overlay
    # A box filter is linear, so an overlay scaled down and composited equals the composite scaled down.
    return {name: image.resize((WIDTH, HEIGHT), Image.BOX) for name, image in images.items()}


# --- the figure --------------------------------------------------------------------------------


def _canvas() -> Image.Image:
    return Image.new("RGBA", (WIDTH * SCALE, HEIGHT * SCALE), (0, 0, 0, 0))


def _box(c: Point, rx: float, ry: float) -> tuple[float, float, float, float]:
    return (c[0] - rx, c[1] - ry, c[0] + rx, c[1] + ry)


def _patch(faceless: Image.Image, ellipses: list[tuple[float, float, float, float]]) -> Image.Image:
    """An overlay holding the character without eyes and mouth inside ``ellipses``: the feature drawn
    on it then replaces whatever state the picture below showed, brows and blush kept."""
    mask = Image.new("L", faceless.size, 0)
    for box in ellipses:
        ImageDraw.Draw(mask).ellipse(box, fill=255)
    overlay = _canvas()
    overlay.paste(faceless, (0, 0), mask)
    return overlay


def _ellipse(draw: ImageDraw.ImageDraw, c: Point, rx: float, ry: float, fill, outline=LINE, width=7) -> None:
    draw.ellipse((c[0] - rx, c[1] - ry, c[0] + rx, c[1] + ry), fill=fill, outline=outline, width=width)


def _back_hair(draw: ImageDraw.ImageDraw, d: Design) -> None:
    if d.twin_tails:
        for side in (-1, 1):
            x = lambda dx: 600 + side * dx  # noqa: E731 - mirrored x
            outer = _bezier([(x(300), 470), (x(560), 560), (x(430), 1150), (x(560), 1620)])
            inner = _bezier([(x(560), 1620), (x(330), 1350), (x(360), 900), (x(250), 560)])
            draw.polygon(outer + inner, fill=d.hair, outline=d.hair_dark, width=7)
            draw.line(_bezier([(x(330), 560), (x(470), 800), (x(380), 1150), (x(480), 1450)]), fill=d.hair_dark,
                      width=6)
            draw.line(_bezier([(x(320), 600), (x(430), 900), (x(360), 1200), (x(420), 1400)]), fill=d.hair_light,
                      width=10)
        return
    # A bob: a rounded mass behind the head down to the jaw, with a flick outwards.
    draw.polygon([(270, 560), (230, 900), (250, 1040), (330, 1000), (600, 1010), (870, 1000), (950, 1040),
                  (970, 900), (930, 560)], fill=d.hair, outline=d.hair_dark, width=7)  # fmt: skip


def _body(draw: ImageDraw.ImageDraw, d: Design) -> None:
    # Neck, then a rounded torso that widens to the bottom edge; arms as sleeves at the sides.
    draw.rectangle((555, 900, 645, 1030), fill=SKIN_SHADE, outline=LINE, width=6)
    torso = [(420, 1010), (780, 1010), (860, 1120), (900, 1800), (300, 1800), (340, 1120)]
    draw.polygon(torso, fill=d.outfit, outline=LINE, width=7)
    for side in (-1, 1):
        sleeve = [(600 + side * 190, 1020), (600 + side * 300, 1120), (600 + side * 360, 1500),
                  (600 + side * 260, 1520), (600 + side * 230, 1200)]  # fmt: skip
        draw.polygon(sleeve, fill=d.outfit, outline=LINE, width=7)
        _ellipse(draw, (600 + side * 312, 1540), 55, 50, SKIN, width=6)  # hands
    if d.twin_tails:
        # A sailor collar with a ribbon tie.
        draw.polygon([(420, 1010), (600, 1200), (780, 1010), (820, 1100), (600, 1290), (380, 1100)],
                     fill=WHITE, outline=LINE, width=6)  # fmt: skip
        draw.line([(405, 1070), (600, 1250), (795, 1070)], fill=d.outfit, width=10)
        draw.polygon([(600, 1230), (520, 1190), (520, 1300)], fill=d.accent, outline=LINE, width=6)
        draw.polygon([(600, 1230), (680, 1190), (680, 1300)], fill=d.accent, outline=LINE, width=6)
        _ellipse(draw, (600, 1235), 28, 26, d.accent, width=6)
    else:
        # A hoodie: the hood around the neck, a zip, drawstrings and a pocket.
        draw.polygon([(400, 1010), (600, 1080), (800, 1010), (840, 1080), (600, 1160), (360, 1080)],
                     fill=d.outfit_dark, outline=LINE, width=6)  # fmt: skip
        draw.line([(600, 1160), (600, 1800)], fill=d.outfit_dark, width=8)
        for x in (560, 640):
            draw.line([(x, 1120), (x, 1290)], fill=d.accent, width=9)
            _ellipse(draw, (x, 1300), 12, 12, d.accent, width=4)
        draw.rounded_rectangle((430, 1500, 770, 1680), radius=40, outline=d.outfit_dark, width=8)


def _head(draw: ImageDraw.ImageDraw, d: Design) -> None:
    _ellipse(draw, HEAD_C, HEAD_RX, HEAD_RY, SKIN)
    for side in (-1, 1):
        _ellipse(draw, (600 + side * 205, 845), 58, 30, BLUSH, outline=None)
        for k in range(3):  # blush strokes
            x = 600 + side * 205 - 30 + k * 24
            draw.line([(x, 835), (x - 12, 858)], fill=BLUSH_LINE, width=5)


def _front_hair(draw: ImageDraw.ImageDraw, d: Design) -> None:
    # The hair cap: the top of a slightly larger ellipse, then bangs cut as a row of points.
    cx, cy, rx, ry = 600, 620, 360, 340
    points: list[Point] = []
    for step in range(0, 181, 6):
        a = math.radians(180 + step)
        points.append((cx + rx * math.cos(a), cy + ry * math.sin(a)))
    # Right side lock down to the cheek, the bangs from right to left, the left side lock.
    points += [(960, 700), (930, 930), (880, 990), (850, 760), (800, 610)]
    if d.twin_tails:  # a blunt fringe, gently scalloped
        tips = [(780, 585), (720, 580), (660, 575), (600, 575), (540, 575), (480, 580), (420, 585)]
        valleys = [(750, 555), (690, 550), (630, 548), (570, 548), (510, 550), (450, 555)]
    else:  # spiky, uneven bangs
        tips = [(760, 560), (705, 610), (650, 530), (600, 600), (545, 525), (480, 615), (430, 545)]
        valleys = [(735, 470), (680, 470), (625, 450), (570, 455), (515, 450), (455, 470)]
    for i, tip in enumerate(tips):
        points.append(tip)
        if i < len(valleys):
            points.append(valleys[i])
    points += [(400, 610), (350, 760), (320, 990), (270, 930), (240, 700)]
    draw.polygon(points, fill=d.hair, outline=d.hair_dark, width=7)
    # Shine on the crown and a few strands.
    draw.arc((360, 330, 840, 620), start=200, end=250, fill=d.hair_light, width=22)
    draw.arc((360, 330, 840, 620), start=275, end=320, fill=d.hair_light, width=22)
    for x0, x1 in ((640, 620), (520, 540), (760, 720)):
        draw.line([(x0, 330), (x1, 470)], fill=d.hair_dark, width=5)
    if d.twin_tails:
        for side in (-1, 1):  # ribbons where the tails are tied
            c = (600 + side * 320, 470)
            draw.polygon([c, (c[0] - 75, c[1] - 60), (c[0] - 75, c[1] + 55)], fill=d.accent, outline=LINE, width=6)
            draw.polygon([c, (c[0] + 75, c[1] - 60), (c[0] + 75, c[1] + 55)], fill=d.accent, outline=LINE, width=6)
            _ellipse(draw, c, 26, 24, d.accent, width=6)
    else:
        # An ahoge and a star hairpin.
        ahoge = _bezier([(600, 295), (590, 200), (680, 160), (720, 215)])
        draw.line(ahoge, fill=d.hair_dark, width=24, joint="curve")
        draw.line(ahoge, fill=d.hair, width=12, joint="curve")
        _star(draw, (800, 470), 52, d.accent)


def _bezier(points: list[Point], steps: int = 24) -> list[Point]:
    """A cubic Bezier curve through four control points, as a polyline."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = points
    out = []
    for k in range(steps + 1):
        t = k / steps
        a, b, c, e = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
        out.append((a * x0 + b * x1 + c * x2 + e * x3, a * y0 + b * y1 + c * y2 + e * y3))
    return out


def _star(draw: ImageDraw.ImageDraw, c: Point, r: float, fill: str) -> None:
    points = []
    for k in range(10):
        a = math.radians(-90 + k * 36)
        rr = r if k % 2 == 0 else r * 0.45
        points.append((c[0] + rr * math.cos(a), c[1] + rr * math.sin(a)))
    draw.polygon(points, fill=fill, outline=LINE, width=5)


def _brows(draw: ImageDraw.ImageDraw, d: Design, expression: str) -> None:
    for side in (-1, 1):
        x = 600 + side * EYE_DX
        inner, outer = x - side * 45, x + side * 45
        y = {"normal": 612, "happy": 600, "surprised": 585, "troubled": 612}[expression]
        if expression == "troubled":  # inner ends raised: ハの字
            draw.line([(inner, y - 22), (outer, y + 10)], fill=d.hair_dark, width=11)
        else:
            draw.arc((x - 50, y, x + 50, y + 40), start=200, end=340, fill=d.hair_dark, width=11)


def _extras(draw: ImageDraw.ImageDraw, d: Design, expression: str) -> None:
    if expression == "troubled":  # a sweat drop
        drop = [(880, 600), (850, 680), (880, 700), (910, 680)]
        draw.polygon(drop, fill="#9fd8ff", outline="#3c7fb0", width=5)
    elif expression == "happy":  # sparkles
        for c, r in (((250, 420), 34), ((960, 560), 26)):
            draw.polygon([(c[0], c[1] - r), (c[0] + r / 4, c[1] - r / 4), (c[0] + r, c[1]), (c[0] + r / 4, c[1] + r / 4),
                          (c[0], c[1] + r), (c[0] - r / 4, c[1] + r / 4), (c[0] - r, c[1]), (c[0] - r / 4, c[1] - r / 4)],
                         fill="#fff27a", outline="#c9a227", width=4)  # fmt: skip
    elif expression == "surprised":  # shock lines
        for dx in (-40, 0, 40):
            draw.line([(960 + dx, 360 + abs(dx) // 2), (985 + dx, 300 + abs(dx) // 2)], fill=d.accent, width=9)


# --- eyes and mouth ----------------------------------------------------------------------------


def _eyes(draw: ImageDraw.ImageDraw, d: Design, expression: str, state: str) -> None:
    for side in (-1, 1):
        c = (600 + side * EYE_DX, EYE_Y)
        if state == "closed":
            _closed_eye(draw, c, side, smiling=expression == "happy")
        else:
            _open_eye(draw, d, c, side, expression)


def _open_eye(draw: ImageDraw.ImageDraw, d: Design, c: Point, side: int, expression: str) -> None:
    rx, ry = EYE_RX, EYE_RY
    if expression == "surprised":
        # Wide eyes, small irises.
        _ellipse(draw, c, rx, ry, WHITE, width=6)
        _ellipse(draw, (c[0], c[1] + 8), rx * 0.55, ry * 0.55, d.iris, outline=d.iris_dark, width=5)
        _ellipse(draw, (c[0], c[1] + 8), rx * 0.25, ry * 0.25, d.iris_dark, outline=None)
        _ellipse(draw, (c[0] - 10, c[1] - 10), 10, 10, WHITE, outline=None)
    else:
        _ellipse(draw, c, rx, ry, WHITE, width=6)
        _ellipse(draw, (c[0], c[1] + 6), rx * 0.86, ry * 0.9, d.iris, outline=d.iris_dark, width=5)
        _ellipse(draw, (c[0], c[1] + 34), rx * 0.62, ry * 0.42, _mix(d.iris, WHITE, 0.35), outline=None)
        _ellipse(draw, (c[0], c[1] + 2), rx * 0.42, ry * 0.48, d.iris_dark, outline=None)
        _ellipse(draw, (c[0] - 20, c[1] - 28), 19, 22, WHITE, outline=None)
        _ellipse(draw, (c[0] + 22, c[1] + 30), 9, 9, WHITE, outline=None)
        if expression == "happy":  # a smiling lower lid
            draw.chord((c[0] - rx - 20, c[1] + ry * 0.45, c[0] + rx + 20, c[1] + ry * 2.2), start=180, end=360,
                       fill=SKIN)
            draw.arc((c[0] - rx, c[1] + ry * 0.45, c[0] + rx, c[1] + ry * 1.4), start=200, end=340, fill=LINE,
                     width=6)
    # The upper lash line, heavier to the outer corner.
    draw.arc((c[0] - rx - 8, c[1] - ry - 6, c[0] + rx + 8, c[1] + ry), start=195, end=345, fill=LINE, width=16)
    outer = (c[0] + side * (rx + 6), c[1] - ry * 0.35)
    draw.line([outer, (outer[0] + side * 22, outer[1] - 16)], fill=LINE, width=10)


def _closed_eye(draw: ImageDraw.ImageDraw, c: Point, side: int, *, smiling: bool) -> None:
    if smiling:  # ^ ^
        draw.arc((c[0] - 58, c[1] - 30, c[0] + 58, c[1] + 60), start=200, end=340, fill=LINE, width=13)
    else:  # a gentle downward curve with lashes
        draw.arc((c[0] - 60, c[1] - 50, c[0] + 60, c[1] + 30), start=20, end=160, fill=LINE, width=13)
        end = (c[0] + side * 56, c[1] + 2)
        draw.line([end, (end[0] + side * 22, end[1] + 12)], fill=LINE, width=9)


def _mouth(draw: ImageDraw.ImageDraw, expression: str, state: str) -> None:
    x, y = MOUTH_C
    if expression == "surprised":
        size = {"closed": (16, 18), "half": (24, 30), "open": (34, 44)}[state]
        _ellipse(draw, (x, y), size[0], size[1], MOUTH_IN, width=7)
        if state == "open":
            _ellipse(draw, (x, y + 26), 20, 12, TONGUE, outline=None)
        return
    if state == "closed":
        if expression == "troubled":  # a wavy line
            draw.line([(x - 40, y + 6), (x - 20, y - 6), (x, y + 6), (x + 20, y - 6), (x + 40, y + 6)],
                      fill=LINE, width=8, joint="curve")
        else:  # a small smile, wider when happy
            w = 46 if expression == "happy" else 32
            draw.arc((x - w, y - 26, x + w, y + 16), start=25, end=155, fill=LINE, width=8)
        return
    # Open: a D shape (a half ellipse with a flat top), deeper for "open"; troubled is narrower.
    w = {"normal": 40, "happy": 52, "troubled": 32}[expression]
    h = 26 if state == "half" else 50
    top = y - 12
    box = (x - w, top - h, x + w, top + h)
    draw.chord(box, start=0, end=180, fill=MOUTH_IN, outline=LINE, width=7)
    if state == "open":
        draw.chord((x - w * 0.6, top + h * 0.35, x + w * 0.6, top + h * 1.2), start=180, end=360, fill=TONGUE)
        draw.chord(box, start=0, end=180, outline=LINE, width=7)


def _mix(a: str, b: str, t: float) -> str:
    ca = [int(a[i : i + 2], 16) for i in (1, 3, 5)]
    cb = [int(b[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(ca, cb))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    files = make_all(target)
    print(f"wrote {len(files)} images under {target}")
