"""The skip-picture splicer: held frames decode bit-identically, with CAVLC and CABAC streams."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from stages.video.h264 import Splicer, from_rbsp, to_rbsp

W, H = 96, 64


def _x264(frames: list[np.ndarray], preset: str) -> bytes:
    raw = b"".join(f.tobytes() for f in frames)
    return subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-r", "30", "-i", "-",
         "-c:v", "libx264", "-preset", preset, "-crf", "23", "-x264-params", "bframes=0:ref=1", "-pix_fmt", "yuv420p",
         "-f", "h264", "-"],
        input=raw, capture_output=True, check=True,
    ).stdout


def _decode(stream: bytes) -> np.ndarray:
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "h264", "-i", "-", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        input=stream, capture_output=True, check=True,
    )
    assert done.stderr == b""
    return np.frombuffer(done.stdout, dtype=np.uint8).reshape(-1, H, W, 3)


@pytest.mark.parametrize("preset", ["ultrafast", "veryfast"])  # CAVLC, CABAC
def test_spliced_holds_decode_to_exact_copies(preset):
    rng = np.random.default_rng(7)
    base = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    pictures = []
    for i in range(5):
        picture = base.copy()
        picture[8 * i : 8 * i + 16, 10:40] = (255, 0, 255) if i % 2 else (0, 255, 0)
        pictures.append(picture)
    holds = [4, 1, 7, 2, 3]
    encoded = _x264(pictures, preset)
    splicer = Splicer()
    for hold in holds:
        splicer.hold(hold)
    half = len(encoded) // 2
    spliced = splicer.feed(encoded[:half]) + splicer.feed(encoded[half:]) + splicer.finish()
    assert splicer.frames_out == sum(holds)
    reference = _decode(encoded)
    decoded = _decode(spliced)
    assert len(decoded) == sum(holds)
    expected = np.concatenate([np.repeat(reference[i : i + 1], hold, axis=0) for i, hold in enumerate(holds)])
    assert (decoded == expected).all()


def test_emulation_prevention_round_trip():
    payload = bytes([0, 0, 1, 0, 0, 0, 0, 0, 3, 7, 0, 0])
    escaped = from_rbsp(payload)
    assert b"\x00\x00\x01" not in escaped and b"\x00\x00\x00" not in escaped
    assert to_rbsp(escaped) == payload
