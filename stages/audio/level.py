"""Loudness levelling: every clip's speech at one RMS level, and no peak above the ceiling.

The measure is the RMS of *active speech* in dBFS: the signal is cut into 20 ms blocks, blocks
quieter than 40 dB below the loudest block (or below -70 dBFS) count as pauses and are left out,
and the mean power of the rest is the level (a sine at full scale reads -3 dBFS). Pauses therefore
do not make a slow speaker louder, which a plain whole-clip RMS would.
"""

from __future__ import annotations

import numpy as np

BLOCK_SECONDS = 0.020
_GATE_RELATIVE_DB = -40.0
_GATE_ABSOLUTE_DB = -70.0
_LIMIT_BLOCK_SECONDS = 0.005
_SILENCE_DB = -120.0


def speech_level_db(samples: np.ndarray, rate: int) -> float:
    """The RMS level of active speech in dBFS (``-120`` for silence)."""
    power = _block_power(samples, rate, BLOCK_SECONDS)
    if power.size == 0 or power.max() <= 0:
        return _SILENCE_DB
    block_db = 10 * np.log10(np.maximum(power, 1e-20))
    gate = max(block_db.max() + _GATE_RELATIVE_DB, _GATE_ABSOLUTE_DB)
    active = power[block_db >= gate]
    return float(10 * np.log10(active.mean()))


def peak_db(samples: np.ndarray) -> float:
    """The sample peak in dBFS."""
    peak = float(np.abs(samples).max()) if np.size(samples) else 0.0
    return 20 * np.log10(peak) if peak > 0 else _SILENCE_DB


def level(samples: np.ndarray, rate: int, target_db: float, ceiling_db: float = -1.0) -> np.ndarray:
    """Scale speech to ``target_db`` (see the module doc), then limit peaks to ``ceiling_db``.

    The limiter lowers the gain only around the blocks that would pass the ceiling, which lowers
    the level a little; one more gain-and-limit pass wins most of that back.
    """
    samples = np.asarray(samples, dtype=np.float64)
    current = speech_level_db(samples, rate)
    if current <= _SILENCE_DB:
        return samples.copy()
    ceiling = 10 ** (ceiling_db / 20)
    out = samples
    for _ in range(2):
        out = limit_peaks(out * 10 ** ((target_db - current) / 20), rate, ceiling)
        current = speech_level_db(out, rate)
    return out


def limit_peaks(samples: np.ndarray, rate: int, ceiling: float) -> np.ndarray:
    """Reduce the gain smoothly around peaks so that no sample exceeds ``ceiling`` (linear)."""
    block = max(1, int(rate * _LIMIT_BLOCK_SECONDS))
    n_blocks = -(-samples.size // block)
    padded = np.zeros(n_blocks * block)
    padded[: samples.size] = np.abs(samples)
    peaks = padded.reshape(n_blocks, block).max(axis=1)
    if peaks.max(initial=0.0) <= ceiling:
        return samples
    need = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))
    # Each block takes the smallest gain of itself and its neighbours, so the gain line drawn
    # between block centres is never above what any sample needs.
    gain = np.minimum(need, np.minimum(np.roll(need, 1), np.roll(need, -1)))
    gain[0] = min(need[0], need[1] if n_blocks > 1 else need[0])
    gain[-1] = min(need[-1], need[-2] if n_blocks > 1 else need[-1])
    centres = (np.arange(n_blocks) + 0.5) * block
    envelope = np.interp(np.arange(samples.size), centres, gain)
    return np.clip(samples * envelope, -ceiling, ceiling)


def _block_power(samples: np.ndarray, rate: int, seconds: float) -> np.ndarray:
    block = max(1, int(rate * seconds))
    n_blocks = samples.size // block
    if n_blocks == 0:
        return np.asarray([np.mean(np.square(samples))]) if samples.size else np.zeros(0)
    blocks = np.asarray(samples[: n_blocks * block], dtype=np.float64).reshape(n_blocks, block)
    return np.mean(np.square(blocks), axis=1)
