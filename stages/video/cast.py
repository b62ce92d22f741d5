"""The characters' part of the plan: where each stands, and what it shows at every moment.

- **Place.** A persona with a ``position`` stands there; the others take free slots, right first,
  then left, then further in beside those already on a side (the side with fewer characters next).
  The characters of a side share that lower corner of ``slides.safe_area`` (``corner_width`` by
  ``corner_height``; in portrait half of the band across the bottom, see
  :class:`stages.slides.layout.FrameBands`), which the slides keep free of text, and shrink together
  when they would not fit: they never overlap each other or the slide's text column. (With ``corner_width = 0`` they
  keep their size and stand side by side from the frame's edge.)
- **Expression.** A line's ``expression:`` holds from its start until the persona's next line; a
  line without one shows the persona's ``default_expression``.
- **Mouth.** Closed, half or open from each clip's per-frame loudness (RMS) against the clip's
  own loud level, with an absolute floor so silence never moves it.
- **Eyes.** Blinks every 2–5 s at times that depend only on the persona id.
- **Breath.** A slow rise of a pixel (two in 4K), a different phase per persona.
- **Who speaks.** With two or more characters, the one not speaking is dimmed from the moment
  another starts until its own next line.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from stages.base import InputError
from stages.characters import EYES, character_pictures
from stages.script.model import Script
from stages.slides.layout import FrameBands
from stages.video.timeline import (
    Breath,
    CharacterTrack,
    ExpressionImages,
    ExpressionSpan,
    Interval,
    MouthImages,
    MouthSpan,
    NarrationClip,
)

if TYPE_CHECKING:
    from stages.settings import CharacterSettings, Settings

BLINK_SECONDS = 0.15
BLINK_GAP = (2.0, 5.0)
MOUTH_MIN_HOLD_FRAMES = 2
MOUTH_FLOOR_RMS = 0.01  # about -40 dBFS: below this the mouth stays shut however quiet the clip
MOUTH_HALF = 0.25  # half open above this fraction of the clip's loud (95th percentile) level
MOUTH_OPEN = 0.6  # open above this fraction
BREATH_PERIOD = 4.0
DIM = 0.78
EDGE_MARGIN = 0.02  # of the width, between a character and the frame's edge
GAP = 0.01  # of the width, between two characters on one side


def plan_characters(
    script: Script, narration: list[NarrationClip], settings: "Settings", duration: float, fps: int
) -> list[CharacterTrack]:
    """The character tracks of every persona with a character that speaks, in settings order.

    Raises:
        InputError: a character's files are missing or unreadable, or a line asks for an
            expression its persona's character does not have.
    """
    spoken = {clip.speaker for clip in narration}
    cast = [p for p in settings.personas if p.character is not None and p.id in spoken]
    if not cast:
        return []
    lines = {pid: item for pid, _, item in script.phrases()}
    pictures = {}
    for persona in cast:
        character = persona.character
        own = [c for c in narration if c.speaker == persona.id]
        used = [character.default_expression] + [lines[c.phrase_id].expression for c in own
                                                 if c.phrase_id in lines and lines[c.phrase_id].expression]
        pictures[persona.id] = character_pictures(character, settings.cache_dir, used, what=f"persona {persona.id}: character")
    width, height = settings.video.width, settings.video.height
    # one pixel up to 1080p: each breath step is a new picture to encode, and two steps cost ~25% of the render
    amplitude = float(max(1, round(height / 1440)))
    boxes = place(
        [(p.character, _aspect(pictures[p.id][p.character.default_expression][("open", "closed")])) for p in cast],
        settings,
    )
    dimmed = _dimmed(narration, [p.id for p in cast]) if len(cast) > 1 else {}
    tracks = []
    for persona, (position, x, y, w, h) in zip(cast, boxes):
        character = persona.character
        default = character.default_expression
        own = [c for c in narration if c.speaker == persona.id]
        mouth = _merge_mouth([span for c in own for span in mouth_spans(Path(c.audio), c.start, fps)])
        expressions = {name: _images(poses) for name, poses in pictures[persona.id].items()}
        default_images = expressions[default]
        tracks.append(CharacterTrack(
            persona_id=persona.id,
            base=default_images.eyes_open.closed,
            mouth_open=default_images.eyes_open.open,
            eyes_closed=default_images.eyes_closed.closed,
            position=position,
            x=x, y=y + amplitude, width=w, height=h,
            visible=[(0.0, duration)],
            speaking=_merge([(c.start, c.start + c.duration) for c in own]),
            mouth_open_intervals=_merge([(s.start, s.end) for s in mouth]),
            blinks=blink_schedule(persona.id, duration, fps),
            expressions=expressions,
            default_expression=default,
            expression_spans=_expression_spans(own, lines, default, duration),
            mouth=mouth,
            dimmed=dimmed.get(persona.id, []),
            dim=DIM,
            breath=Breath(period=BREATH_PERIOD, amplitude=amplitude, phase=(zlib.crc32(persona.id.encode()) % 1000) / 1000),
        ))
    return tracks


def place(characters: list[tuple["CharacterSettings", float]], settings: "Settings") -> list[tuple[str, int, int, int, int]]:
    """``(position, x, y, width, height)`` in output pixels for each ``(character, aspect)``, in order.

    ``y`` puts the bottom edge on the frame's bottom.
    """
    width, height = settings.video.width, settings.video.height
    safe = settings.slides.safe_area
    sides: list[str] = []
    for character, _ in characters:
        side = character.position
        if side is None:
            side = "left" if sides.count("left") < sides.count("right") else "right"
        sides.append(side)
    # sized by the frame's short side, so a portrait (9:16) frame shows them as large as landscape does
    # instead of a character's height of a tall frame squeezed into a narrow corner
    short = min(width, height)
    sizes = [(character.height * short * aspect, character.height * short) for character, aspect in characters]
    margin, gap = round(EDGE_MARGIN * width), round(GAP * width)
    corner_w, corner_h = safe.corner_width * width, safe.corner_height * height
    bands = FrameBands.of(settings)
    if bands.portrait:  # the corners join into a band across the bottom: each side owns half of it
        corner_w, corner_h = float(bands.corner_width), float(height - bands.corner_top)
    out: list[tuple[str, int, int, int, int] | None] = [None] * len(characters)
    for side in ("right", "left"):
        members = [i for i, s in enumerate(sides) if s == side]
        if not members:
            continue
        scale = 1.0
        if corner_w > 0 and corner_h > 0:
            room = max(1.0, corner_w - margin - gap * (len(members) - 1))
            scale = min(1.0, room / sum(sizes[i][0] for i in members), corner_h / max(sizes[i][1] for i in members))
        edge = margin
        for i in members:  # from the frame's edge inward, in settings order
            w, h = max(2, int(sizes[i][0] * scale)), max(2, int(sizes[i][1] * scale))
            x = edge if side == "left" else width - edge - w
            out[i] = (side, x, height - h, w, h)
            edge += w + gap
    for i, side in enumerate(sides):
        if side == "center":
            w, h = round(sizes[i][0]), round(sizes[i][1])
            out[i] = ("center", (width - w) // 2, height - h, w, h)
    return [box for box in out if box is not None]


def mouth_spans(wav_path: Path, start: float, fps: int) -> list[MouthSpan]:
    """The mouth's half and open spans while this clip plays, from its RMS per frame.

    Thresholds are relative to the clip's own loud level (so a quiet voice still moves the mouth)
    with an absolute floor (so silence never does). A state lasts at least
    ``MOUTH_MIN_HOLD_FRAMES`` frames (a shorter one keeps the state before it), so it does not flicker.
    """
    from stages.video.mix import read_wav_mono

    samples, rate = read_wav_mono(wav_path)
    window = max(1, int(round(rate / fps)))
    count = len(samples) // window
    if count == 0:
        return []
    rms = np.sqrt(np.mean(samples[: count * window].reshape(count, window) ** 2, axis=1))
    loud = float(np.percentile(rms, 95))
    half = max(MOUTH_FLOOR_RMS, MOUTH_HALF * loud)
    wide = max(2 * MOUTH_FLOOR_RMS, MOUTH_OPEN * loud)
    states = np.where(rms > wide, 2, np.where(rms > half, 1, 0))
    runs: list[list[int]] = []  # [state, first, end)
    for f, state in enumerate(states.tolist()):
        if runs and runs[-1][0] == state:
            runs[-1][2] = f + 1
        else:
            runs.append([state, f, f + 1])
    held: list[list[int]] = []
    for run in runs:
        if held and (run[2] - run[1] < MOUTH_MIN_HOLD_FRAMES or held[-1][0] == run[0]):
            held[-1][2] = run[2]
        else:
            held.append(run)
    first = round(start * fps)
    return [MouthSpan(start=(first + a) / fps, end=(first + b) / fps, state=("half", "open")[s - 1])
            for s, a, b in held if s > 0]


def blink_schedule(persona_id: str, duration: float, fps: int) -> list[Interval]:
    """Blinks every 2–5 s at pseudo-random times that depend only on the persona id."""
    rng = random.Random(f"blink:{persona_id}")
    blinks = []
    t = rng.uniform(*BLINK_GAP)
    length = max(BLINK_SECONDS, 2 / fps)
    while t + length < duration:
        start = round(t * fps) / fps
        blinks.append((start, round((start + length) * fps) / fps))
        t += rng.uniform(*BLINK_GAP)
    return blinks


def _images(poses: dict[tuple[str, str], Path]) -> ExpressionImages:
    rows = {eye: MouthImages(**{m: str(poses[(eye, m)]) for m in ("closed", "half", "open")}) for eye in EYES}
    return ExpressionImages(eyes_open=rows["open"], eyes_closed=rows["closed"])


def _aspect(path: Path) -> float:
    try:
        with Image.open(path) as image:
            return image.width / image.height
    except OSError as exc:
        raise InputError(f"cannot read character picture {path}: {exc}") from exc


def _expression_spans(own: list[NarrationClip], lines: dict, default: str, duration: float) -> list[ExpressionSpan]:
    spans: list[ExpressionSpan] = []
    for clip, after in zip(own, [*own[1:], None]):
        item = lines.get(clip.phrase_id)
        expression = (item.expression if item is not None else None) or default
        end = after.start if after is not None else duration
        if expression == default:
            continue
        if spans and spans[-1].expression == expression and abs(spans[-1].end - clip.start) < 1e-9:
            spans[-1] = spans[-1].model_copy(update={"end": end})
        else:
            spans.append(ExpressionSpan(start=clip.start, end=end, expression=expression))
    return spans


def _dimmed(narration: list[NarrationClip], cast: list[str]) -> dict[str, list[Interval]]:
    """For each persona, from another's line start until its own next line start."""
    out: dict[str, list[Interval]] = {p: [] for p in cast}
    ordered = sorted(narration, key=lambda c: c.start)
    for clip, after in zip(ordered, [*ordered[1:], None]):
        end = after.start if after is not None else clip.start + clip.duration
        if clip.speaker not in out:
            continue
        for persona in cast:
            if persona != clip.speaker and end > clip.start:
                out[persona].append((clip.start, end))
    return {p: _merge(spans) for p, spans in out.items()}


def _merge(intervals: list[Interval]) -> list[Interval]:
    merged: list[list[float]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1] + 1e-9:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def _merge_mouth(spans: list[MouthSpan]) -> list[MouthSpan]:
    out: list[MouthSpan] = []
    for span in sorted(spans, key=lambda s: s.start):
        if out and out[-1].state == span.state and span.start <= out[-1].end + 1e-9:
            out[-1] = out[-1].model_copy(update={"end": max(out[-1].end, span.end)})
        elif out and span.start < out[-1].end:  # clips never overlap; keep the earlier span whole
            continue
        else:
            out.append(span)
    return out
