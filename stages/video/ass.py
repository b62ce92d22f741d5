"""Subtitles as ASS for libass: one style per speaker, the timeline's wrapped lines kept as drawn.

User text is escaped so it can never become an override tag: ``{`` and ``}`` become ``\\{`` and
``\\}`` (drawn literally by libass), and a backslash is followed by a word joiner so ``\\N``, ``\\h``
and friends stay plain text. Only this module's own tags (``\\fs``, ``\\N``) reach libass.
"""

from __future__ import annotations

from pathlib import Path

from stages.base import atomic_write_text
from stages.video.timeline import SubtitleCue, SubtitleStyle, Timeline

WORD_JOINER = "\u2060"


def write_ass(
    timeline: Timeline, path: Path, *, cues: list[SubtitleCue] | None = None, times: list[tuple[float, float]] | None = None,
    height: int | None = None,
) -> Path:
    """Write the timeline's subtitles as an ASS file.

    Args:
        cues: the cues to write (default: all of the timeline's).
        times: replacement ``(start, end)`` per cue (for a "sheet" that shows each cue once).
        height: draw on a band this tall instead of the whole frame: the bottom ``height`` pixels
            of the frame, pixel for pixel (cues are bottom-aligned; margins count from the bottom).
    """
    return atomic_write_text(Path(path), ass_text(timeline, cues=cues, times=times, height=height))


def ass_text(
    timeline: Timeline, *, cues: list[SubtitleCue] | None = None, times: list[tuple[float, float]] | None = None,
    height: int | None = None,
) -> str:
    """The ASS document for the timeline's subtitles (``height``: see :func:`write_ass`)."""
    style = timeline.subtitle_style
    cues = timeline.subtitles if cues is None else cues
    speakers: list[str] = []
    for cue in timeline.subtitles:
        if (cue.speaker, cue.color) not in speakers:
            speakers.append((cue.speaker, cue.color))
    names = {key: f"s{i}" for i, key in enumerate(speakers)}
    ass_size = ass_font_size(style, style.size)
    head = [
        "[Script Info]",
        "ScriptType: v4.00+",
        f"PlayResX: {timeline.width}",
        f"PlayResY: {height or timeline.height}",
        "WrapStyle: 2",
        "ScaledBorderAndShadow: yes",
        "YCbCr Matrix: None",
        "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
        "Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, "
        "MarginV, Encoding",
    ]
    family = style.font_family.replace(",", " ")
    margin_side = round(style.safe_box.x)
    for key, name in names.items():
        colour = _ass_colour(key[1])
        head.append(
            f"Style: {name},{family},{ass_size:.2f},{colour},{colour},{_ass_colour(style.outline_color)},&H00000000,"
            f"0,0,0,0,100,100,0,0,1,{style.outline:.2f},0,2,{margin_side},{margin_side},{round(style.bottom_margin)},1"
        )
    head += ["", "[Events]", "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text"]
    for i, cue in enumerate(cues):
        start, end = times[i] if times is not None else (cue.start, cue.end)
        size_tag = "" if abs(cue.font_size - style.size) < 0.05 else "{\\fs%.2f}" % ass_font_size(style, cue.font_size)
        text = "\\N".join(escape_ass_text(line) for line in cue.lines)
        head.append(f"Dialogue: 0,{_ass_time(start)},{_ass_time(end)},{names[(cue.speaker, cue.color)]},,0,0,0,,{size_tag}{text}")
    return "\n".join(head) + "\n"


def escape_ass_text(text: str) -> str:
    """Make user text inert for libass: no override blocks, no ``\\N``-style escapes, one line."""
    text = text.replace("\r", " ").replace("\n", " ")
    text = text.replace("\\", "\\" + WORD_JOINER)
    return text.replace("{", "\\{").replace("}", "\\}")


def ass_font_size(style: SubtitleStyle, em_px: float) -> float:
    """The ASS ``Fontsize`` that draws glyphs ``em_px`` tall (libass sizes by ascent + descent)."""
    if not style.font_file:
        return em_px
    from stages.video.plan import _font

    font = _font(style.font_file, 100)
    ascent, descent = font.getmetrics()
    return em_px * (ascent + descent) / 100.0


def _ass_colour(hex_colour: str) -> str:
    value = hex_colour.lstrip("#")[:6].ljust(6, "f")
    r, g, b = value[0:2], value[2:4], value[4:6]
    return f"&H00{b}{g}{r}".upper()


def _ass_time(seconds: float) -> str:
    centis = max(0, int(round(seconds * 100)))
    h, rest = divmod(centis, 360000)
    m, rest = divmod(rest, 6000)
    s, cs = divmod(rest, 100)
    return f"{h}:{m:02d}:{s:02d}.{cs:02d}"
