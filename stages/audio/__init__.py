"""The audio stage: every phrase of the script as a 48 kHz mono 16-bit clip, levelled and cached.

``generate_audio`` is the direct API; :class:`AudioStage` runs it for the daemon. The contract
with the video stage is ``audio/index.json`` (see :func:`generate_audio`), whose clips live in
the shared cache ``<cache>/audio``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from stages.base import JobContext, Progress, StageResult, file_hash_or_none, fingerprint_of

if TYPE_CHECKING:
    from stages.audio.generate import INDEX_VERSION, generate_audio, load_script, voice_for
    from stages.settings import Settings

__all__ = ["AudioStage", "INDEX_VERSION", "generate_audio", "load_script", "voice_for"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that OpenJTalk worker processes, which import only
    # stages.audio.openjtalk, start without the YAML, HTTP and script-model machinery.
    if name in ("INDEX_VERSION", "generate_audio", "load_script", "voice_for"):
        from stages.audio import generate

        return getattr(generate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

_VOICE_FIELDS = ("id", "engine", "speaker", "speed", "pitch", "intonation", "volume",
                 "pre_phoneme_length", "post_phoneme_length")  # fmt: skip


class AudioStage:
    """Narration clips for ``script.yaml``; writes ``audio/index.json``."""

    name = "audio"
    version = "1"
    resource = "tts"

    def fingerprint(self, job: JobContext) -> str:
        """Hash of the script, the audio and VOICEVOX settings, the voices and the dictionary."""
        s = job.settings
        return fingerprint_of(
            self.version,
            file_hash_or_none(job.job_dir / "script.yaml"),
            s.audio.model_dump(mode="json", exclude={"workers"}),  # workers change speed, not sound
            {"url": s.voicevox.url, "speaker": s.voicevox.speaker},
            [{f: getattr(p, f) for f in _VOICE_FIELDS} for p in s.personas],
            s.default_persona,
            s.script.language,
            [entry.model_dump(mode="json") for entry in s.pronunciation],
        )

    def warm(self, settings: "Settings") -> None:
        """Start the OpenJTalk worker processes ahead of the first job, when a voice uses them."""
        from stages.audio.openjtalk import warm_up

        warm_up(settings)

    def run(self, job: JobContext, progress: Progress) -> StageResult:
        """Synthesize (or reuse) every clip; the outputs are the index and every clip it names,
        so a clip that vanished from the cache makes the daemon run the stage again."""
        from stages.audio.generate import generate_audio

        index_path = generate_audio(
            job.job_dir / "script.yaml",
            job.job_dir,
            job.settings,
            progress,
            cancel=job.cancel,
            cache_dir=job.cache_dir,
            note=job.note,
        )
        index = json.loads(index_path.read_text("utf-8"))
        return StageResult.of_index(
            index_path,
            (clip["path"] for clip in index["clips"].values()),
            **index["stats"], clips=len(index["clips"]), dropped=len(index["dropped"]),
        )
