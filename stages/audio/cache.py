"""The clip cache shared by all jobs: ``<cache>/audio/<ab>/<key>.wav``, content-addressed.

A clip's key is the hash of everything its sound depends on (engine and its version, voice,
speed/pitch/intonation/volume, the spoken text, the dictionary words that occur in it, the clip
format and loudness target). The same line in another job finds the same file; editing one line
changes one key. A hit refreshes the clip's recency, so the daemon's trim to ``audio.cache_max_gb``
(:func:`stages.cache.trim`) drops the clips unused for longest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.base import atomic_write_bytes, fingerprint_of
from stages.cache import touch

# Bump when the clip bytes would change for the same inputs (levelling, resampler, chunk joins).
FORMAT_VERSION = 1


class ClipCache:
    """Clips by key under ``root`` (normally ``<cache_dir>/audio``)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @staticmethod
    def key(**parts: Any) -> str:
        """The content address of a clip made from ``parts``."""
        return fingerprint_of("audio-clip", FORMAT_VERSION, parts)

    def path(self, key: str) -> Path:
        """Where the clip with this key lives (whether or not it exists yet)."""
        return self.root / key[:2] / f"{key}.wav"

    def get(self, key: str) -> Path | None:
        """The clip's path when it is in the cache (marked as just used), else None."""
        path = self.path(key)
        touch(path)  # before the check: a trim that listed the clip as old sees it in use and skips it
        try:
            return path if path.stat().st_size > 44 else None
        except OSError:
            return None

    def put(self, key: str, wav_bytes: bytes) -> Path:
        """Store a clip atomically (a reader never sees half a file) and return its path."""
        return atomic_write_bytes(self.path(key), wav_bytes)
