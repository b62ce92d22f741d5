"""Checking a render before it is handed on: duration, streams, and that it decodes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from stages.base import StageError
from stages.video.timeline import Timeline


class RenderCheckFailed(StageError):
    """The rendered file is not what the timeline asked for."""


def probe(path: Path) -> dict[str, Any]:
    """ffprobe's view of a media file: ``{"format": {...}, "streams": [...]}``."""
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if done.returncode != 0:
        raise RenderCheckFailed(f"ffprobe cannot read {path}: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def verify_video(path: Path, timeline: Timeline) -> None:
    """Raise :class:`RenderCheckFailed` unless ``path`` matches the timeline and decodes cleanly.

    Checks: an H.264 video stream of the timeline's size whose duration is within one frame of the
    timeline's, an audio stream, and a full decode (``ffmpeg -v error -i … -f null -``) that reports
    no error.
    """
    info = probe(path)
    streams = info.get("streams", [])
    video = [s for s in streams if s.get("codec_type") == "video"]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if not video:
        raise RenderCheckFailed(f"{path.name} has no video stream")
    if not audio:
        raise RenderCheckFailed(f"{path.name} has no audio stream")
    stream = video[0]
    if (int(stream.get("width", 0)), int(stream.get("height", 0))) != (timeline.width, timeline.height):
        raise RenderCheckFailed(f"{path.name} is {stream.get('width')}x{stream.get('height')}, not {timeline.width}x{timeline.height}")
    duration = float(stream.get("duration") or info.get("format", {}).get("duration") or 0.0)
    if abs(duration - timeline.duration) > 1.0 / timeline.fps + 1e-6:
        raise RenderCheckFailed(f"{path.name} lasts {duration:.3f} s; the timeline says {timeline.duration:.3f} s")
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-threads", "0", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=3600, check=False,
    )
    if done.returncode != 0 or done.stderr.strip():
        raise RenderCheckFailed(f"{path.name} does not decode cleanly: {done.stderr.strip()[-500:]}")
