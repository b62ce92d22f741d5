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


PW, PH = 96, 72  # 6 x 5 macroblocks, the last row cropped to 8 lines (as 1080 is to 1088)


def _yuv_frames(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, PW * PH * 3 // 2, dtype=np.uint8)
    frames = []
    for i in range(n):
        frame = base.copy()
        frame[i * PW * 4 : i * PW * 4 + PW * 8] = 30 * i  # a few luma rows differ per picture
        frames.append(frame)
    return frames


def _x264_yuv(frames: list[np.ndarray], preset: str, keyframes: list[int]) -> bytes:
    force = "+".join(f"eq(n,{k})" for k in keyframes)
    return subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{PW}x{PH}", "-r", "30", "-i", "-",
         "-c:v", "libx264", "-preset", preset, "-crf", "23",
         "-x264-params", "bframes=0:ref=1:scenecut=0:keyint=infinite:partitions=none:me=dia:subme=1",
         "-force_key_frames", f"expr:{force}", "-forced-idr", "1", "-f", "h264", "-"],
        input=b"".join(f.tobytes() for f in frames), capture_output=True, check=True,
    ).stdout


def _decode_yuv(stream: bytes) -> list[np.ndarray]:
    done = subprocess.run(["ffmpeg", "-v", "error", "-f", "h264", "-i", "-", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
                          input=stream, capture_output=True, check=True)
    assert done.stderr == b""
    size = PW * PH * 3 // 2
    return [np.frombuffer(done.stdout[i : i + size], dtype=np.uint8) for i in range(0, len(done.stdout), size)]


def _planes(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = frame[: PW * PH].reshape(PH, PW)
    u = frame[PW * PH : PW * PH * 5 // 4].reshape(PH // 2, PW // 2)
    v = frame[PW * PH * 5 // 4 :].reshape(PH // 2, PW // 2)
    return y, u, v


def _patch(frame: np.ndarray, mbs: list[int], seed: int) -> tuple[bytes, np.ndarray]:
    """Random samples for ``mbs`` and ``frame`` with them in place (cropped rows dropped)."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    samples = bytearray()
    for mb in mbs:
        mx, my = mb % (PW // 16), mb // (PW // 16)
        block = rng.integers(0, 256, 384, dtype=np.uint8)
        samples += block.tobytes()
        for plane, data, size in zip(_planes(out), (block[:256], block[256:320], block[320:]), (16, 8, 8)):
            tile = data.reshape(size, size)
            rows = plane[my * size : my * size + size, mx * size : mx * size + size]
            rows[...] = tile[: rows.shape[0]]
    return bytes(samples), out


@pytest.mark.parametrize("preset", ["ultrafast", "veryfast"])  # CAVLC, CABAC (with weighted prediction)
def test_patch_pictures_decode_to_the_x264_picture_with_exact_macroblocks(preset):
    """Patch pictures (P_Skip + I_PCM, written here) between x264 pictures: each decodes to its x264
    picture with exactly the given samples in its macroblocks, copies of patches are exact, and the
    x264 pictures after them still decode exactly as x264 made them (frame_num and the reference
    list rewritten), across an IDR."""
    frames = _yuv_frames(4, seed=11)
    encoded = _x264_yuv(frames, preset, keyframes=[0, 2])
    reference = _decode_yuv(encoded)
    splicer = Splicer(refs=4)
    expected: list[np.ndarray] = []
    # x264 picture 0, a copy; patch A (+2 copies), patch B (+ a copy of A); x264 picture 1 (+ a copy of
    # itself, one of B); patch C at the cropped bottom row; x264 picture 2 (IDR); patch D; x264 picture 3
    splicer.copies([(0, 1)])
    expected += [reference[0]] * 2
    samples_a, a = _patch(reference[0], [1, 7, 8], seed=1)
    splicer.patch([(0, 2)], [1, 7, 8], samples_a)
    expected += [a] * 3
    samples_b, b = _patch(reference[0], [0, 29], seed=2)
    splicer.patch([(1, 1)], [0, 29], samples_b)
    expected += [b, a]
    splicer.copies([(0, 1), (1, 1)])
    expected += [reference[1]] * 2 + [b]
    samples_c, c = _patch(reference[1], [24, 25, 26, 27, 28, 29], seed=3)
    splicer.patch([], [24, 25, 26, 27, 28, 29], samples_c)
    expected += [c]
    splicer.copies([])
    expected += [reference[2]]
    samples_d, d = _patch(reference[2], [14], seed=4)
    splicer.patch([(0, 1)], [14], samples_d)
    expected += [d, d]
    splicer.copies([])
    expected += [reference[3]]
    spliced = splicer.feed(encoded[:150]) + splicer.feed(encoded[150:]) + splicer.finish()
    decoded = _decode_yuv(spliced)
    assert len(decoded) == len(expected) == splicer.frames_out
    for i, (got, want) in enumerate(zip(decoded, expected)):
        assert (got == want).all(), f"frame {i} differs"


def test_patches_must_leave_the_x264_picture_in_the_reference_window():
    splicer = Splicer(refs=3)
    splicer.copies([])
    block = bytes(384)
    splicer.patch([], [0], block)
    splicer.patch([], [1], block)
    with pytest.raises(ValueError):
        splicer.patch([], [2], block)  # the x264 picture would be 3 references back, out of a window of 3
    with pytest.raises(ValueError):
        Splicer().patch([], [0], block)  # nothing to patch
