"""The soundtrack: narration clips placed at their starts, then BGM mixed under them, in numpy.

One WAV for the whole video (48 kHz stereo, 16-bit) is simpler and faster than an ``adelay``/``amix``
graph with a input per clip, and sample-exact.
"""

from __future__ import annotations

import threading
import wave
from pathlib import Path

import numpy as np

from stages.process import run_process
from stages.video.plan import read_wav_mono
from stages.video.timeline import Bgm, NarrationClip, Timeline

DUCK_RAMP_SECONDS = 0.25


def write_soundtrack(timeline: Timeline, out_path: Path, *, cancel: threading.Event | None = None) -> Path:
    """Write the video's whole soundtrack to ``out_path`` (WAV, stereo, ``timeline.sample_rate``)."""
    rate = timeline.sample_rate
    total = int(round(timeline.duration * rate))
    voice = narration_track(timeline.narration, total, rate)
    mix = np.repeat(voice[:, None], 2, axis=1)
    if timeline.bgm is not None:
        music = _bgm_track(timeline.bgm, total, rate, Path(out_path).parent, cancel)
        mix += music * _bgm_gain(timeline.bgm, timeline.narration, total, rate)[:, None]
    pcm = (np.clip(mix, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(out_path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return Path(out_path)


def narration_track(clips: list[NarrationClip], total: int, rate: int) -> np.ndarray:
    """Every clip at its start in one mono float32 track of ``total`` samples."""
    track = np.zeros(total, dtype=np.float32)
    for clip in clips:
        samples, clip_rate = read_wav_mono(Path(clip.audio))
        if clip_rate != rate:
            samples = _resample(samples, clip_rate, rate)
        start = int(round(clip.start * rate))
        end = min(total, start + len(samples))
        if end > start:
            track[start:end] += samples[: end - start]
    return track


def _bgm_track(bgm: Bgm, total: int, rate: int, work: Path, cancel: threading.Event | None) -> np.ndarray:
    raw = work / ".bgm.f32"
    try:
        run_process(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", bgm.path, "-ac", "2", "-ar", str(rate), "-f", "f32le", str(raw)],
            cancel=cancel,
            what="ffmpeg (bgm decode)",
        )
        music = np.fromfile(raw, dtype="<f4").reshape(-1, 2)
    finally:
        raw.unlink(missing_ok=True)
    if len(music) == 0:
        return np.zeros((total, 2), dtype=np.float32)
    if bgm.loop and len(music) < total:
        music = np.tile(music, (total // len(music) + 1, 1))
    out = np.zeros((total, 2), dtype=np.float32)
    out[: min(total, len(music))] = music[:total]
    return out


def _bgm_gain(bgm: Bgm, clips: list[NarrationClip], total: int, rate: int) -> np.ndarray:
    """Volume x fade-in x fade-out x ducking, per sample."""
    gain = np.full(total, bgm.volume, dtype=np.float32)
    t = np.arange(total, dtype=np.float32) / rate
    duration = total / rate
    if bgm.fade_in > 0:
        gain *= np.clip(t / bgm.fade_in, 0.0, 1.0)
    if bgm.fade_out > 0:
        gain *= np.clip((duration - t) / bgm.fade_out, 0.0, 1.0)
    if bgm.duck and clips:
        speaking = np.zeros(total, dtype=np.float32)
        for clip in clips:
            speaking[int(clip.start * rate) : int((clip.start + clip.duration) * rate)] = 1.0
        ramp = max(1, int(DUCK_RAMP_SECONDS * rate))
        smooth = _moving_average(speaking, ramp)
        gain *= 1.0 - (1.0 - bgm.duck_volume) * np.clip(smooth, 0.0, 1.0)
    return gain


def _moving_average(values: np.ndarray, width: int) -> np.ndarray:
    """A centred box filter of ``width`` samples, via a cumulative sum (O(n))."""
    padded = np.concatenate([np.zeros(width // 2 + 1), values, np.zeros(width)]).astype(np.float64)
    sums = np.cumsum(padded)
    return ((sums[width : width + len(values)] - sums[: len(values)]) / width).astype(np.float32)


def _resample(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    count = int(round(len(samples) * dst / src))
    positions = np.arange(count) * (src / dst)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)
