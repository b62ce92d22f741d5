"""16-bit PCM WAV in and out, and a polyphase resampler, with numpy only.

All clips leave the stage as 48 kHz mono 16-bit so renderers never resample. Engines hand over
float samples in [-1, 1] at their own rate; :func:`resample` brings them to the clip rate.
"""

from __future__ import annotations

import io
import wave
from functools import lru_cache
from math import gcd
from pathlib import Path

import numpy as np

# Zero crossings of the windowed-sinc kernel on each side, and its Kaiser window's beta:
# about 80 dB stop-band, far below what a narration clip can show.
_HALF_TAPS = 16
_KAISER_BETA = 8.0
_ROLLOFF = 0.94
_CHUNK = 1 << 15


def encode_wav(samples: np.ndarray, rate: int) -> bytes:
    """Mono 16-bit PCM WAV bytes of float samples; anything beyond ±1 is clipped."""
    pcm = np.clip(np.round(np.asarray(samples, dtype=np.float64) * 32767.0), -32768, 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Float samples in [-1, 1] (channels averaged) and the rate of 16-bit PCM WAV bytes.

    Raises:
        ValueError: the bytes are not 16-bit PCM WAV.
    """
    try:
        with wave.open(io.BytesIO(data), "rb") as src:
            channels, width, rate = src.getnchannels(), src.getsampwidth(), src.getframerate()
            raw = src.readframes(src.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a PCM WAV file: {exc}") from exc
    if width != 2:
        raise ValueError(f"expected 16-bit samples, got {8 * width}-bit")
    pcm = np.frombuffer(raw[: len(raw) - len(raw) % (2 * channels)], dtype="<i2").astype(np.float64)
    if channels > 1:
        pcm = pcm.reshape(-1, channels).mean(axis=1)
    return pcm / 32768.0, rate


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Float samples and rate of a 16-bit PCM WAV file."""
    return decode_wav(Path(path).read_bytes())


def wav_duration(path: Path) -> float:
    """Seconds of audio in a WAV file, from its frame count (the header only is read)."""
    with wave.open(str(path), "rb") as src:
        return src.getnframes() / src.getframerate()


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample with a Kaiser-windowed sinc polyphase filter (band-limited, unit DC gain)."""
    samples = np.asarray(samples, dtype=np.float64)
    if src_rate == dst_rate or samples.size == 0:
        return samples.copy()
    g = gcd(src_rate, dst_rate)
    up, down = dst_rate // g, src_rate // g
    bank, half = _filter_bank(up, down)
    n_out = int(np.ceil(samples.size * up / down))
    padded = np.concatenate([np.zeros(half), samples, np.zeros(half + 1)])
    out = np.empty(n_out)
    offsets = np.arange(2 * half)
    for start in range(0, n_out, _CHUNK):
        n = np.arange(start, min(start + _CHUNK, n_out))
        base = (n * down) // up
        phase = (n * down) % up
        # Tap j of output n reads input sample base - half + 1 + j (shifted by the padding).
        idx = base[:, None] + 1 + offsets[None, :]
        out[start : start + n.size] = np.einsum("ij,ij->i", padded[idx], bank[phase])
    return out


@lru_cache(maxsize=8)
def _filter_bank(up: int, down: int) -> tuple[np.ndarray, int]:
    """One row of taps per output phase; ``half`` taps on each side of the output instant."""
    scale = min(1.0, up / down)  # when downsampling, the cut-off follows the output's Nyquist
    cutoff = _ROLLOFF * scale
    half = int(np.ceil(_HALF_TAPS / scale))
    frac = np.arange(up)[:, None] / up
    # Distance (in input samples) from the output instant to each tap k = base - half + 1 + j.
    t = frac + (half - 1) - np.arange(2 * half)[None, :]
    window = np.kaiser(2 * half + 1, _KAISER_BETA)
    # Evaluate the symmetric window at the continuous position t (linear interpolation).
    w = np.interp(t, np.arange(-half, half + 1), window, left=0.0, right=0.0)
    taps = cutoff * np.sinc(cutoff * t) * w
    taps /= taps.sum(axis=1, keepdims=True)
    return taps, half
