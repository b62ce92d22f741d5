"""The timeline: the renderer-neutral plan of a video (DESIGN.md, "The timeline").

Both renderers (ffmpeg and Remotion) read the same ``timeline.json``. All times are seconds
(floats) from the start of the video; a renderer converts them to frames with ``round(t * fps)``.
All asset paths are absolute. All pixel values are in the output's pixel space (``width`` x
``height``).

The JSON schema of :class:`Timeline` is kept in ``timeline.schema.json`` beside this module for the
TypeScript side; regenerate it with ``python -m stages.video.timeline`` after any change (changes
are additive only: renderers in the field read older and newer timelines alike).

How a frame is layered, bottom to top (both renderers):

1. the background in effect for the slide (``background.overrides`` has one interval per section
   whose script sets ``section.background``; elsewhere ``background.default``). A video background
   plays and loops: the default one from 0 s, an override from its interval's start;
2. the slide, contain-fitted and centred, with its own alpha: the background shows only where the
   slide is transparent or does not reach (an opaque full-frame slide hides it). In a transition the
   two slides (each over its background) meet: a ``fade`` dips through the background (the old slide
   fades out over the first half, the new one in over the second, never both texts at once);
   ``slide`` and ``wipe`` show each picture unblended, split at a moving edge;
3. the characters, never moved by a transition (a blink or mouth change during one is drawn);
4. the subtitle.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_PATH = Path(__file__).with_name("timeline.schema.json")

TIMELINE_VERSION = 1

Interval = tuple[float, float]
"""``[start, end)`` in seconds."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Transition(_Model):
    """How a slide enters: it overlaps the end of the previous slide by ``duration`` seconds."""

    type: Literal["fade", "slide", "wipe", "none"] = "none"
    duration: float = Field(0.0, ge=0, description="seconds; 0 for a cut")


class SlideClip(_Model):
    """One slide (one per section) shown from ``start`` to ``end``.

    The incoming transition runs in ``[start, start + transition_in.duration)``; during it the
    previous slide is still visible underneath.
    """

    section: int = Field(ge=0)
    image: str = Field(description="absolute path of the slide image")
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    transition_in: Transition = Field(default_factory=Transition)


class NarrationClip(_Model):
    """One phrase's audio, placed at ``start``."""

    phrase_id: str = Field(description='"SSS-NNN" from Script.phrases()')
    section: int = Field(ge=0)
    audio: str = Field(description="absolute path of the WAV")
    start: float = Field(ge=0)
    duration: float = Field(gt=0)
    speaker: str = Field(description="persona id")


class SubtitleCue(_Model):
    """One subtitle: its phrase's clip interval, or a consecutive part of it when the phrase is too long for one cue; text already wrapped."""

    phrase_id: str
    section: int = Field(ge=0)
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    text: str = Field(description='the wrapped lines joined by "\\n"')
    lines: list[str]
    speaker: str = Field(description="persona id")
    color: str = Field(description="#rrggbb")
    font_size: float = Field(gt=0, description="px; below the style's size when the text was shrunk to fit")


class SafeBox(_Model):
    """A rectangle in output pixels."""

    x: float
    y: float
    width: float
    height: float


class SubtitleStyle(_Model):
    """How subtitles look; lines are centred horizontally in ``safe_box``, bottom-aligned."""

    font_family: str = Field(description="family name (ASS Fontname, CSS font-family)")
    font_file: str | None = Field(None, description="absolute path of the font file")
    size: float = Field(gt=0, description="font size in px")
    outline: float = Field(ge=0, description="outline width in px (black)")
    bottom_margin: float = Field(ge=0, description="px from the bottom of the frame to the last line's baseline box")
    line_height: float = Field(gt=0, description="px between line tops")
    max_lines: int = Field(ge=1)
    outline_color: str = "#000000"
    safe_box: SafeBox


class MouthImages(_Model):
    """One picture per mouth state (absolute paths; several may be the same file)."""

    closed: str
    half: str
    open: str


class ExpressionImages(_Model):
    """An expression's pictures, by eye state then mouth state; each a whole picture of the character."""

    eyes_open: MouthImages
    eyes_closed: MouthImages


class ExpressionSpan(_Model):
    """The character shows ``expression`` in ``[start, end)``."""

    start: float = Field(ge=0)
    end: float = Field(ge=0)
    expression: str


class MouthSpan(_Model):
    """The mouth is ``state`` in ``[start, end)`` (closed outside every span)."""

    start: float = Field(ge=0)
    end: float = Field(ge=0)
    state: Literal["half", "open"]


class Breath(_Model):
    """Idle motion: the character rises by ``lift(t)`` px (whole pixels) and settles, every ``period`` s.

    ``lift(t) = round(amplitude * (1 - cos(2π (t / period + phase))) / 2)``; ``y`` already sits
    ``amplitude`` px low (the bottom edge hidden below the frame), so a lift never shows a gap.
    """

    period: float = Field(gt=0, description="seconds")
    amplitude: float = Field(ge=0, description="px")
    phase: float = Field(0.0, ge=0, lt=1, description="fraction of a period at t = 0")

    def lift(self, t: float) -> int:
        """Whole pixels the character is raised at time ``t``."""
        return round(self.amplitude * (1 - math.cos(2 * math.pi * (t / self.period + self.phase))) / 2)


class CharacterTrack(_Model):
    """A speaking persona's character, drawn in ``visible`` (the whole video) at a fixed place.

    With ``expressions`` (timelines since characters gained them): at time ``t`` the character
    shows ``expressions[e].eyes_(closed if t in blinks else open).<mouth>``, where ``e`` is the
    expression of the ``expression_spans`` entry holding ``t`` (else ``default_expression``) and
    ``<mouth>`` the ``mouth`` span's state (else closed); in ``dimmed`` (another persona is the one
    speaking) its colours are multiplied by ``dim``; ``breath`` raises it by a pixel or two.

    Without ``expressions`` (older timelines): ``base`` is drawn, except in ``mouth_open_intervals``
    (``mouth_open`` image) and ``blinks`` (``eyes_closed`` image; ``mouth_open`` wins when both apply).
    ``base``, ``mouth_open`` and ``eyes_closed`` are always filled in from the default expression.
    """

    persona_id: str
    base: str
    mouth_open: str | None = None
    eyes_closed: str | None = None
    position: Literal["left", "right", "center"]
    x: float = Field(description="px, left edge")
    y: float = Field(description="px, top edge")
    width: float = Field(gt=0, description="px")
    height: float = Field(gt=0, description="px")
    visible: list[Interval] = Field(default_factory=list, description="when the character is drawn")
    speaking: list[Interval] = Field(default_factory=list)
    mouth_open_intervals: list[Interval] = Field(
        default_factory=list, description="from the clips' loudness envelopes, within `speaking`"
    )
    blinks: list[Interval] = Field(default_factory=list)
    expressions: dict[str, ExpressionImages] = Field(default_factory=dict)
    default_expression: str | None = None
    expression_spans: list[ExpressionSpan] = Field(default_factory=list)
    mouth: list[MouthSpan] = Field(default_factory=list, description="from the clips' loudness, within `speaking`")
    dimmed: list[Interval] = Field(default_factory=list, description="while another persona is the one speaking")
    dim: float = Field(1.0, ge=0, le=1, description="colour multiplier in `dimmed`")
    breath: Breath | None = None


class Background(_Model):
    """Behind the slides: a colour, an image or a looping video."""

    type: Literal["color", "image", "video"] = "color"
    value: str | None = Field(None, description="#rrggbb for type color")
    path: str | None = Field(None, description="absolute path for image/video")
    fit: Literal["cover", "contain"] = "cover"


class BackgroundInterval(_Model):
    """A per-section override of the background in ``[start, end)``."""

    start: float = Field(ge=0)
    end: float = Field(ge=0)
    section: int = Field(ge=0)
    background: Background


class BackgroundTrack(_Model):
    default: Background = Field(default_factory=Background)
    overrides: list[BackgroundInterval] = Field(default_factory=list)

    def at(self, t: float) -> Background:
        """The background in effect at time ``t``."""
        for item in self.overrides:
            if item.start <= t < item.end:
                return item.background
        return self.default


class Bgm(_Model):
    """Background music, mixed under the narration."""

    path: str
    volume: float = Field(ge=0, description="linear gain")
    fade_in: float = Field(ge=0)
    fade_out: float = Field(ge=0)
    loop: bool = True
    duck: bool = True
    duck_volume: float = Field(ge=0, le=1, description="extra gain while narration plays (when duck)")


class Chapter(_Model):
    title: str
    start: float = Field(ge=0)


class SectionSpan(_Model):
    index: int = Field(ge=0)
    title: str
    start: float = Field(ge=0)
    end: float = Field(ge=0)


class Timeline(_Model):
    """The whole plan of one video."""

    version: int = TIMELINE_VERSION
    fps: int = Field(gt=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    duration: float = Field(gt=0, description="seconds; frames == round(duration * fps)")
    frames: int = Field(gt=0)
    sample_rate: int = Field(48000, gt=0, description="of the narration clips")
    slides: list[SlideClip]
    narration: list[NarrationClip]
    subtitles: list[SubtitleCue]
    subtitle_style: SubtitleStyle
    characters: list[CharacterTrack] = Field(default_factory=list)
    background: BackgroundTrack = Field(default_factory=BackgroundTrack)
    bgm: Bgm | None = None
    chapters: list[Chapter] = Field(default_factory=list)
    sections: list[SectionSpan] = Field(default_factory=list)

    def frame(self, t: float) -> int:
        """The frame index of time ``t`` (renderers use this rounding)."""
        return round(t * self.fps)

    def save(self, path: Path) -> Path:
        """Write the timeline as JSON atomically."""
        from stages.base import atomic_write_text

        return atomic_write_text(Path(path), self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Timeline":
        """Read a ``timeline.json``."""
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


def timeline_schema() -> dict:
    """The JSON schema of :class:`Timeline` (what ``timeline.schema.json`` holds)."""
    return Timeline.model_json_schema()


def schema_text() -> str:
    """The exact text of ``timeline.schema.json``."""
    return json.dumps(timeline_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    """Regenerate ``timeline.schema.json``."""
    Path(path).write_text(schema_text(), encoding="utf-8")
    return Path(path)


if __name__ == "__main__":
    print(write_schema())
