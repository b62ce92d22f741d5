"""The soundtrack: narration clips placed at their starts, then BGM mixed under them, in numpy.

One WAV for the whole video (48 kHz stereo, 16-bit) is simpler and faster than an ``adelay``/``amix``
graph with a input per clip, and sample-exact. It is mixed and written a block at a time, so memory
stays flat however long the video: an hour of 48 kHz stereo as whole float32 arrays took several GB.
"""

from __future__ import annotations

import threading
import wave
from pathlib import Path

import numpy as np

from stages.base import Cancelled, InputError
from stages.process import run_process
from stages.video.timeline import Bgm, NarrationClip, Timeline

DUCK_RAMP_SECONDS = 0.25
BLOCK_SECONDS = 10.0  # samples mixed at once: ~4 MB of float32 stereo at 48 kHz


def read_wav_mono(path: Path) -> tuple[np.ndarray, int]:
    """A 16-bit PCM WAV as float32 mono in [-1, 1] and its sample rate."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate, channels, width = wav.getframerate(), wav.getnchannels(), wav.getsampwidth()
            raw = wav.readframes(wav.getnframes())
    except (FileNotFoundError, wave.Error, EOFError) as exc:
        raise InputError(f"cannot read narration clip {path}: {exc}") from exc
    if width != 2:
        raise InputError(f"narration clip {path} is {8 * width}-bit; 16-bit PCM is expected")
    data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return data, rate



def write_soundtrack(timeline: Timeline, out_path: Path, *, cancel: threading.Event | None = None) -> Path:
    """Write the video's whole soundtrack to ``out_path`` (WAV, stereo, ``timeline.sample_rate``)."""
    rate = timeline.sample_rate
    total = int(round(timeline.duration * rate))
    block = max(1, int(BLOCK_SECONDS * rate))
    voice = _NarrationTrack(timeline.narration, total, rate)
    music = _BgmTrack(timeline.bgm, total, rate, Path(out_path).parent, cancel) if timeline.bgm is not None else None
    # where someone speaks, in samples (the BGM ducks there)
    speech = np.array([(int(c.start * rate), int((c.start + c.duration) * rate)) for c in timeline.narration],
                      dtype=np.int64).reshape(-1, 2)
    try:
        with wave.open(str(out_path), "wb") as wav:
            wav.setnchannels(2)
            wav.setsampwidth(2)
            wav.setframerate(rate)
            for a in range(0, total, block):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("the soundtrack was cancelled")
                b = min(total, a + block)
                mix = np.repeat(voice.block(a, b)[:, None], 2, axis=1)
                if music is not None:
                    mix += music.block(a, b) * _bgm_gain(timeline.bgm, speech, a, b, total, rate)[:, None]
                wav.writeframes((np.clip(mix, -1.0, 1.0) * 32767.0).astype("<i2").tobytes())
    finally:
        if music is not None:
            music.close()
    return Path(out_path)


class _NarrationTrack:
    """The narration, read block by block in time order: each clip is read once, when it starts."""

    def __init__(self, clips: list[NarrationClip], total: int, rate: int):
        self._clips = sorted(clips, key=lambda c: c.start)
        self._next = 0
        self._playing: list[tuple[int, np.ndarray]] = []  # (first sample, samples)
        self.total, self.rate = total, rate

    def block(self, a: int, b: int) -> np.ndarray:
        """Samples ``a`` to ``b`` (called with increasing, adjacent ranges)."""
        out = np.zeros(b - a, dtype=np.float32)
        while self._next < len(self._clips) and int(round(self._clips[self._next].start * self.rate)) < b:
            clip = self._clips[self._next]
            self._next += 1
            samples, clip_rate = read_wav_mono(Path(clip.audio))
            if clip_rate != self.rate:
                samples = _resample(samples, clip_rate, self.rate)
            self._playing.append((int(round(clip.start * self.rate)), samples))
        for start, samples in self._playing:
            lo, hi = max(a, start), min(b, self.total, start + len(samples))
            if hi > lo:
                out[lo - a : hi - a] += samples[lo - start : hi - start]
        self._playing = [(s, x) for s, x in self._playing if s + len(x) > b]
        return out


class _BgmTrack:
    """The BGM decoded once to a raw file in the work folder and read a block at a time (looped if set)."""

    def __init__(self, bgm: Bgm, total: int, rate: int, work: Path, cancel: threading.Event | None):
        self._raw = work / ".bgm.f32"
        self._loop = bgm.loop
        try:
            run_process(
                ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", bgm.path, "-ac", "2", "-ar", str(rate), "-f", "f32le",
                 str(self._raw)],
                cancel=cancel,
                what="ffmpeg (bgm decode)",
            )
        except BaseException:
            self.close()
            raise
        size = self._raw.stat().st_size // 8
        self._music = np.memmap(self._raw, dtype="<f4", mode="r", shape=(size, 2)) if size else None

    def block(self, a: int, b: int) -> np.ndarray:
        """Samples ``a`` to ``b`` as float32 stereo."""
        out = np.zeros((b - a, 2), dtype=np.float32)
        music = self._music
        if music is None:
            return out
        n = len(music)
        if self._loop:
            out[:] = music[np.arange(a, b) % n]
        elif a < n:
            out[: min(b, n) - a] = music[a : min(b, n)]
        return out

    def close(self) -> None:
        """Drop the map and delete the raw file."""
        self._music = None
        self._raw.unlink(missing_ok=True)


def _bgm_gain(bgm: Bgm, speech: np.ndarray, a: int, b: int, total: int, rate: int) -> np.ndarray:
    """Volume x fade-in x fade-out x ducking, per sample, for samples ``a`` to ``b`` of ``total``.

    ``speech`` holds the narration's ``(first, end)`` sample of each clip.
    """
    gain = np.full(b - a, bgm.volume, dtype=np.float32)
    t = np.arange(a, b, dtype=np.float64) / rate
    duration = total / rate
    if bgm.fade_in > 0:
        gain *= np.clip(t / bgm.fade_in, 0.0, 1.0).astype(np.float32)
    if bgm.fade_out > 0:
        gain *= np.clip((duration - t) / bgm.fade_out, 0.0, 1.0).astype(np.float32)
    if bgm.duck and len(speech):
        # A centred box filter of ``ramp`` samples over "someone is speaking": sample i averages
        # [i - ramp//2, i + ramp - 1 - ramp//2], so this block needs that much on either side.
        ramp = max(1, int(DUCK_RAMP_SECONDS * rate))
        lo, hi = a - ramp // 2, b + ramp - 1 - ramp // 2
        speaking = np.zeros(hi - lo, dtype=np.float64)
        for first, end in speech[(speech[:, 1] > lo) & (speech[:, 0] < hi)]:
            first, end = max(int(first), lo, 0), min(int(end), hi, total)
            if end > first:
                speaking[first - lo : end - lo] = 1.0
        sums = np.concatenate([[0.0], np.cumsum(speaking)])
        smooth = ((sums[ramp:] - sums[:-ramp]) / ramp).astype(np.float32)
        gain *= 1.0 - (1.0 - bgm.duck_volume) * np.clip(smooth, 0.0, 1.0)
    return gain


def _resample(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    count = int(round(len(samples) * dst / src))
    positions = np.arange(count) * (src / dst)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)
