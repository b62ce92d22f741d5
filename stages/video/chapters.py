"""Chapters inside the MP4: the timeline's sections as QuickTime/Nero chapters a player lists.

Both renderers hand their finished file to :func:`embed_chapters`, which remuxes it once with
ffmpeg (streams copied, nothing re-encoded) adding the chapters from an ``ffmetadata`` file, so
``ffprobe -show_chapters`` and players' chapter menus show the same sections as the ``.json``
sidecar and ``chapters.txt``. Titles are user text: they only ever reach ffmpeg inside that file,
escaped as the format requires (``=``, ``;``, ``#``, ``\\`` and newlines), never on a command line.
"""

from __future__ import annotations

import threading
from pathlib import Path

from stages.base import atomic_temp_path, commit_temp
from stages.process import run_process
from stages.video.timeline import Chapter

CHAPTER_TIMEBASE = 1000  # milliseconds


def ffmetadata_text(chapters: list[Chapter], duration: float) -> str:
    """The ``;FFMETADATA1`` document with one ``[CHAPTER]`` per chapter that lasts at least 1 ms.

    A chapter ends where the next begins; the last one at ``duration``.
    """
    lines = [";FFMETADATA1"]
    for i, chapter in enumerate(chapters):
        start = 0 if i == 0 else round(chapter.start * CHAPTER_TIMEBASE)
        end = round((chapters[i + 1].start if i + 1 < len(chapters) else duration) * CHAPTER_TIMEBASE)
        if end <= start:
            continue
        title = " ".join(chapter.title.split()) or f"Chapter {i + 1}"
        lines += ["[CHAPTER]", f"TIMEBASE=1/{CHAPTER_TIMEBASE}", f"START={start}", f"END={end}",
                  f"title={escape_ffmetadata(title)}"]
    return "\n".join(lines) + "\n"


def escape_ffmetadata(value: str) -> str:
    """Escape a value for an ffmetadata file: ``=``, ``;``, ``#``, ``\\`` and newlines get a backslash."""
    out = []
    for char in value:
        if char in "=;#\\\n":
            out.append("\\")
        out.append(char)
    return "".join(out)


def embed_chapters(video: Path, chapters: list[Chapter], duration: float, *,
                   cancel: threading.Event | None = None) -> Path:
    """Rewrite ``video`` in place (atomically) with ``chapters`` in its container; streams are copied.

    Without chapters the file is left as it is.
    """
    video = Path(video)
    text = ffmetadata_text(chapters, duration)
    if "[CHAPTER]" not in text:
        return video
    meta = atomic_temp_path(video.with_suffix(".ffmeta"))
    tmp = atomic_temp_path(video)
    try:
        meta.write_text(text, encoding="utf-8")
        run_process(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(video), "-f", "ffmetadata", "-i", str(meta),
             "-map", "0", "-map_metadata", "0", "-map_chapters", "1", "-c", "copy", "-movflags", "+faststart",
             "-f", "mp4", str(tmp)],
            cancel=cancel, what="ffmpeg (chapters)",
        )
        return commit_temp(tmp, video)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        meta.unlink(missing_ok=True)
