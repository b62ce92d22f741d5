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


def probe(path: Path, *, count_packets: bool = False) -> dict[str, Any]:
    """ffprobe's view of a media file: ``{"format": {...}, "streams": [...]}``.

    ``count_packets`` demuxes the whole file (no decoding) and adds each stream's ``nb_read_packets``.
    """
    done = subprocess.run(
        ["ffprobe", "-v", "error", *(["-count_packets"] if count_packets else []), "-show_format", "-show_streams",
         "-of", "json", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if done.returncode != 0:
        raise RenderCheckFailed(f"ffprobe cannot read {path}: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)


def verify_video(path: Path, timeline: Timeline, *, decode: bool = True) -> None:
    """Raise :class:`RenderCheckFailed` unless ``path`` matches the timeline and decodes cleanly.

    Checks: an H.264 video stream of the timeline's size whose duration is within one frame of the
    timeline's, an audio stream, and a full decode (``ffmpeg -v error -i … -f null -``) that reports
    no error.

    ``decode=False`` is for a renderer that already decoded exactly the streams it muxed (the
    segments renderer decodes its H.264 stream while writing it, and its AAC file): instead of the
    decode, the whole file is demuxed and the video must have one packet per frame.
    """
    info = probe(path, count_packets=not decode)
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
    if not decode:
        packets = int(stream.get("nb_read_packets") or 0)
        if packets != timeline.frames:
            raise RenderCheckFailed(f"{path.name} has {packets} video packets; the timeline has {timeline.frames} frames")
        return
    # one decoding thread: frame threads add ~50 % CPU on mostly-copied pictures and the decode
    # usually runs beside other work
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-threads", "1", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=3600, check=False,
    )
    if done.returncode != 0 or done.stderr.strip():
        raise RenderCheckFailed(f"{path.name} does not decode cleanly: {done.stderr.strip()[-500:]}")
