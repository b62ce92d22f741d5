"""The video stage: plan ``timeline.json``, then render ``video.mp4`` (+ ``video.srt``, ``chapters.txt``).

Direct API::

    plan_timeline(job_dir, settings) -> Timeline
    render_video(job_dir, out_path, settings, progress) -> Path
    render_timeline(timeline, out_path, settings, progress, renderer=None, cache_dir=None) -> Path
    verify_video(path, timeline) -> None

With a ``cache_dir`` (the stage passes the job's), a render is looked up in and stored into the
render cache (:mod:`stages.video.cache`): the same timeline, assets, renderer and settings give the
same MP4, placed by a hard link instead of rendered again.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from stages.base import (
    InputError,
    JobContext,
    Note,
    Progress,
    StageResult,
    atomic_write_text,
    file_hash_or_none,
    fingerprint_of,
    no_note,
    no_progress,
)
from stages.video.chapters import embed_chapters
from stages.video.probe import RenderCheckFailed, verify_video
from stages.video.srt import chapters_text, srt_text
from stages.video.timeline import Timeline

if TYPE_CHECKING:
    from stages.settings import Settings

__all__ = [
    "VideoStage",
    "plan_timeline",
    "render_video",
    "render_timeline",
    "verify_video",
    "write_side_files",
    "Timeline",
    "RenderCheckFailed",
]


def plan_timeline(job_dir: Path, settings: "Settings") -> Timeline:
    """Plan the video of the job in ``job_dir`` (see :func:`stages.video.plan.plan_timeline`).

    Imported when called: the planner pulls in the script, slides and character modules, which the
    render process (``python -m stages.video.render_process`` imports this package) never needs.
    """
    from stages.video.plan import plan_timeline as plan

    return plan(job_dir, settings)


class VideoStage:
    """script.yaml + audio/index.json + slides/index.json -> timeline.json -> video.mp4."""

    name = "video"
    version = "2"  # 2: subtitles break at phrases, long phrases become several cues, no overlap
    resource = "render"

    def fingerprint(self, job: JobContext) -> str:
        """Version, upstream artifacts, video settings, personas (with image hashes), renderer, font."""
        settings = job.settings
        personas = []
        for persona in settings.personas:
            character = None
            if persona.character is not None:
                character = persona.character.model_dump(mode="json")
                for key in ("base", "mouth_open", "eyes_closed"):
                    path = getattr(persona.character, key)
                    character[f"{key}_sha256"] = file_hash_or_none(Path(path)) if path else None
                # a redrawn folder or PSD is a new picture, as a changed PNG set is
                if persona.character.folder is not None:
                    folder = Path(persona.character.folder)
                    character["folder_sha256"] = {
                        str(f.relative_to(folder)): file_hash_or_none(f) for f in sorted(folder.rglob("*.png"))
                    } if folder.is_dir() else None  # fmt: skip
                if persona.character.psd is not None:
                    character["psd_sha256"] = file_hash_or_none(Path(persona.character.psd.path))
            personas.append({"id": persona.id, "subtitle_color": persona.subtitle_color, "character": character})
        # speed and storage, not picture (the render cache's key does count x264's threads)
        video = settings.video.model_dump(mode="json", exclude={"workers", "decode_check", "cache_max_gb"})
        extra = {}
        for key, path in (("bgm", settings.video.bgm.path), ("background", settings.video.background.path)):
            extra[key] = file_hash_or_none(Path(path)) if path else None
        return fingerprint_of(
            self.name,
            self.version,
            file_hash_or_none(job.job_dir / "script.yaml"),
            file_hash_or_none(job.job_dir / "audio" / "index.json"),
            file_hash_or_none(job.job_dir / "slides" / "index.json"),
            video,
            extra,
            personas,
            settings.default_persona,
            settings.theme.font,
            settings.slides.safe_area.model_dump(mode="json"),
        )

    def run(self, job: JobContext, progress: Progress) -> StageResult:
        """Plan, render and verify; write the side files."""
        settings = job.settings
        timeline = plan_timeline(job.job_dir, settings)
        timeline_path = timeline.save(job.job_dir / "timeline.json")
        job.check_cancelled()
        cache: dict = {}

        def note(message: str, **data) -> None:
            if message == "video cache":
                cache.update(data)
            job.note(message, **data)

        video = render_timeline(
            timeline, job.job_dir / "video.mp4", settings, progress, cancel=job.cancel, work_dir=None,
            timeline_path=timeline_path, cache_dir=job.cache_dir, note=note,
        )
        srt, chapters = write_side_files(timeline, job.job_dir)
        return StageResult(
            outputs=[Path("timeline.json"), Path("video.mp4"), Path("video.srt"), Path("chapters.txt")],
            data={
                "duration": timeline.duration,
                "frames": timeline.frames,
                "renderer": settings.video.renderer,
                "chapters": [c.model_dump() for c in timeline.chapters],
                "video": str(video),
                "srt": str(srt),
                "chapters_file": str(chapters),
                "cache": ("hit" if cache.get("hit") else "miss") if cache else "off",
                "cache_key": cache.get("key"),
            },
        )


def render_video(
    job_dir: Path,
    out_path: Path,
    settings: "Settings",
    progress: Progress = no_progress,
    *,
    cancel: threading.Event | None = None,
    renderer: str | None = None,
    cache_dir: Path | None = None,
    note: Note = no_note,
) -> Path:
    """Plan the job in ``job_dir`` and render it to ``out_path`` (with ``.srt`` and chapters beside it)."""
    job_dir = Path(job_dir)
    timeline = plan_timeline(job_dir, settings)
    timeline_path = timeline.save(job_dir / "timeline.json")
    out = render_timeline(timeline, out_path, settings, progress, cancel=cancel, renderer=renderer, timeline_path=timeline_path,
                          cache_dir=cache_dir, note=note)
    write_side_files(timeline, Path(out_path).parent, stem=Path(out_path).stem)
    return out


def render_timeline(
    timeline: Timeline,
    out_path: Path,
    settings: "Settings",
    progress: Progress = no_progress,
    *,
    cancel: threading.Event | None = None,
    renderer: str | None = None,
    work_dir: Path | None = None,
    timeline_path: Path | None = None,
    cache_dir: Path | None = None,
    note: Note = no_note,
) -> Path:
    """Render a timeline with ``renderer`` (default ``settings.video.renderer``): ffmpeg or Remotion.

    With ``cache_dir``, the render cache is asked first and given the result after (see
    :func:`stages.video.cache.cached_render`; ``note("video cache", hit=..., key=...)`` says which).
    """
    chosen = renderer or settings.video.renderer
    if chosen not in ("ffmpeg", "remotion"):
        raise InputError(f"unknown renderer {chosen!r}: use ffmpeg or remotion")

    def render() -> Path:
        video = _render(timeline, out_path, settings, progress, chosen, cancel=cancel, work_dir=work_dir,
                        timeline_path=timeline_path)
        # both renderers' files get the sections as MP4 chapters (before the cache keeps a copy); the
        # ffmpeg renderer writes them in its own mux
        if chosen == "remotion":
            return embed_chapters(video, timeline.chapters, timeline.duration, cancel=cancel)
        return video

    if cache_dir is None:
        return render()
    from stages.video.cache import cached_render

    return cached_render(timeline, Path(out_path), settings, chosen, render, cache_dir=Path(cache_dir), progress=progress,
                         note=note)


def _render(
    timeline: Timeline,
    out_path: Path,
    settings: "Settings",
    progress: Progress,
    chosen: str,
    *,
    cancel: threading.Event | None,
    work_dir: Path | None,
    timeline_path: Path | None,
) -> Path:
    if chosen == "ffmpeg":
        # in a child process: what compositing and mixing allocate is returned when it exits
        from stages.video.render_process import render_in_child

        return render_in_child(timeline, out_path, settings, progress, cancel=cancel, work_dir=work_dir)
    if chosen == "remotion":
        from stages.video.remotion import render_with_remotion

        if timeline_path is None:
            timeline_path = timeline.save(Path(out_path).with_name(Path(out_path).stem + ".timeline.json"))
        # render_with_remotion runs verify_video on its temporary file before renaming it into
        # place (as render_with_ffmpeg does): no second decode here
        return Path(render_with_remotion(timeline_path, out_path, settings, progress, cancel=cancel))
    raise InputError(f"unknown renderer {chosen!r}: use ffmpeg or remotion")


def write_side_files(timeline: Timeline, folder: Path, *, stem: str = "video") -> tuple[Path, Path]:
    """Write ``<stem>.srt`` and ``chapters.txt`` (YouTube's ``0:00 Title`` lines) into ``folder``."""
    folder = Path(folder)
    srt = atomic_write_text(folder / f"{stem}.srt", srt_text(timeline.subtitles))
    chapters_name = "chapters.txt" if stem == "video" else f"{stem}.chapters.txt"
    chapters = atomic_write_text(folder / chapters_name, chapters_text(timeline.chapters))
    return srt, chapters
