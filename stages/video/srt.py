"""Side files: SubRip subtitles and a YouTube-style chapter list."""

from __future__ import annotations

from stages.video.timeline import Chapter, SubtitleCue


def srt_text(cues: list[SubtitleCue]) -> str:
    """The cues as SubRip: numbered blocks, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, the wrapped lines."""
    blocks = []
    for number, cue in enumerate(cues, start=1):
        text = "\n".join(line for line in cue.lines if line.strip()) or " "
        blocks.append(f"{number}\n{srt_time(cue.start)} --> {srt_time(cue.end)}\n{text}\n")
    return "\n".join(blocks)


def srt_time(seconds: float) -> str:
    """``HH:MM:SS,mmm``."""
    millis = max(0, int(round(seconds * 1000)))
    h, rest = divmod(millis, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def chapters_text(chapters: list[Chapter]) -> str:
    """YouTube's description format: ``0:00 Title`` per line, the first at 0:00.

    Times are whole seconds (``M:SS``, or ``H:MM:SS`` past an hour), rounded down.
    """
    lines = []
    for i, chapter in enumerate(chapters):
        start = 0 if i == 0 else int(chapter.start)
        title = " ".join(chapter.title.split())
        lines.append(f"{chapter_time(start)} {title}")
    return "\n".join(lines) + ("\n" if lines else "")


def chapter_time(seconds: int) -> str:
    """``M:SS`` or ``H:MM:SS``."""
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
