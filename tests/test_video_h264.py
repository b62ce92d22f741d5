"""The skip-picture splicer: held frames decode bit-identically, with CAVLC and CABAC streams."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from stages.video.h264 import Splicer, UnsupportedStream, from_rbsp, to_rbsp

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


def _x264_keyed(frames: list[np.ndarray], preset: str, keyframes: list[int]) -> bytes:
    raw = b"".join(f.tobytes() for f in frames)
    force = "+".join(f"eq(n,{k})" for k in keyframes)
    return subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-r", "30", "-i", "-",
         "-c:v", "libx264", "-preset", preset, "-crf", "23", "-x264-params", "bframes=0:ref=1:scenecut=0:keyint=infinite",
         "-force_key_frames", f"expr:{force}", "-forced-idr", "1", "-pix_fmt", "yuv420p", "-f", "h264", "-"],
        input=raw, capture_output=True, check=True,
    ).stdout


@pytest.mark.parametrize("preset", ["ultrafast", "veryfast"])  # CAVLC, CABAC
def test_copies_of_earlier_pictures_decode_exactly(preset):
    """Copies may show any of the last ``refs`` x264 pictures (a mouth open, shut, open again), across an IDR."""
    rng = np.random.default_rng(3)
    base = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    pictures = []
    for i in range(5):
        picture = base.copy()
        picture[8 * i : 8 * i + 16, 10:40] = (40 * i, 255 - 40 * i, 128)
        pictures.append(picture)
    after = [[(0, 2)], [(0, 1), (1, 3), (0, 2)], [(2, 2), (1, 1), (0, 1)], [(0, 3)], [(1, 2), (0, 1)]]
    encoded = _x264_keyed(pictures, preset, keyframes=[0, 3])
    splicer = Splicer(refs=3)
    for spans in after:
        splicer.copies(spans)
    spliced = splicer.feed(encoded[:100]) + splicer.feed(encoded[100:]) + splicer.finish()
    reference = _decode(encoded)
    expected = []
    for i, spans in enumerate(after):
        expected.append(reference[i])
        expected += [reference[i - back] for back, count in spans for _ in range(count)]
    decoded = _decode(spliced)
    assert len(decoded) == len(expected) == splicer.frames_out
    assert all((d == e).all() for d, e in zip(decoded, expected))


def test_a_copy_cannot_reach_past_an_idr():
    pictures = [np.full((H, W, 3), 40 * i, dtype=np.uint8) for i in range(3)]
    encoded = _x264_keyed(pictures, "ultrafast", keyframes=[0, 2])
    splicer = Splicer(refs=3)
    for spans in ([], [], [(1, 1)]):
        splicer.copies(spans)
    with pytest.raises(UnsupportedStream):
        splicer.feed(encoded) + splicer.finish()


def test_from_rbsp_matches_the_byte_by_byte_rule():
    rng = np.random.default_rng(5)

    def slow(rbsp: bytes) -> bytes:
        out, zeros = bytearray(), 0
        for byte in rbsp:
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(out)

    for _ in range(3000):
        payload = bytes(rng.choice([0, 0, 0, 1, 2, 3, 4, 255], size=int(rng.integers(0, 24))).tolist())
        assert from_rbsp(payload) == slow(payload)
        assert to_rbsp(from_rbsp(payload)) == payload
