"""The script stage: an article becomes a validated script.yaml (or a dropped script is adopted).

Direct API::

    generate_script(article_json, out_dir, settings, progress)   # -> out_dir / "script.yaml"
    load_script(path, settings)                                  # parse + validate, or InputError
    validate_script_file(path, settings)                         # [ScriptIssue(line, column, message)]
    dump_script(script)                                          # the YAML text of script.yaml

Writers: ``script.writer = extractive`` (offline, deterministic; :mod:`stages.script.extractive`)
or ``llm`` (any OpenAI-compatible chat API; :mod:`stages.script.llm`).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from stages.script.loader import ScriptInvalid, ScriptIssue, dump_script, load_script, validate_script_file
from stages.script.model import Narration, Script, Section, SlideContent, phrase_id
from stages.script.text import estimate_seconds

if TYPE_CHECKING:
    from stages.settings import Settings

__all__ = [
    "Narration",
    "Script",
    "ScriptInvalid",
    "ScriptIssue",
    "ScriptStage",
    "Section",
    "SlideContent",
    "adopt_script",
    "with_latin_readings",
    "dump_script",
    "estimate_script_seconds",
    "generate_script",
    "load_script",
    "phrase_id",
    "validate_script_file",
]

SCRIPT_FILE = "script.yaml"
_LATIN = re.compile(r"[A-Za-zＡ-Ｚａ-ｚ]")


class ScriptStage:
    """Writes ``script.yaml`` from ``article.json``, or validates and adopts a dropped script."""

    name = "script"
    version = "6"  # 2: visuals and beats; dropped scripts get Latin-word readings; 3: dialogue fillers, one wrap-up;
    # 4: bullets are key phrases or nothing (no lone word, no clause cut before its verb, asides dropped);
    # 5: bullets name something (not 「見てみましょう」 nor 「この式」), list numbers dropped;
    # 6: spec boxes, telephone numbers, tweet bylines, "Send us…" and "Get … delivered" are not said;
    # an English bullet of function words only ("This is it") is none, nor a noun phrase that starts on
    # a dependent noun (「ところ場数」)
    resource = "cpu"

    def fingerprint(self, job: JobContext) -> str:
        """Version, the input's sha256 and the settings the output depends on (never the API key)."""
        settings = job.settings
        personas = [p.id for p in settings.personas]
        if job.kind == "script":
            # The home is in it because the relative file names in a script are read from the home.
            return fingerprint_of(self.version, "adopt", file_hash_or_none(job.source), personas,
                                  settings.script.language, str(settings.home))
        llm = None
        if settings.script.writer == "llm":
            llm = settings.llm.model_dump(mode="json", exclude={"api_key", "api_key_env"})
        return fingerprint_of(
            self.version,
            "write",
            file_hash_or_none(job.job_dir / "article.json"),
            settings.script.model_dump(mode="json", exclude={"limits"}),  # raising a limit rewrites nothing
            llm,
            personas,
            settings.default_persona,
            [entry.model_dump(mode="json") for entry in settings.pronunciation],
            settings.slides.backend,  # image-api: body sections get a slide_prompt
        )

    def run(self, job: JobContext, progress: Progress) -> StageResult:
        """Write or adopt the script; an invalid script raises :class:`InputError` here."""
        out = job.job_dir / SCRIPT_FILE
        if job.kind == "script":
            progress(0, 1, f"validating {job.display_name}")
            script = adopt_script(job.source, out, job.settings, name=job.display_name)
            progress(1, 1, "script adopted")
        else:
            article = job.job_dir / "article.json"
            if not article.is_file():
                raise InputError(f"{article.name} is missing: the fetch stage has not produced it")
            generate_script(article, job.job_dir, job.settings, progress, cancel=job.cancel, note=job.note)
            script = load_script(out, job.settings)
        return StageResult(
            outputs=[out],
            data={
                "sections": len(script.sections),
                "phrases": sum(len(s.narrations) for s in script.sections),
                "estimated_seconds": round(estimate_script_seconds(script), 1),
                "writer": "adopted" if job.kind == "script" else job.settings.script.writer,
            },
        )


def generate_script(
    article: Path,
    out_dir: Path,
    settings: "Settings",
    progress: Progress = no_progress,
    *,
    cancel: threading.Event | None = None,
    note: Note = no_note,
) -> Path:
    """Write ``out_dir/script.yaml`` from an ``article.json`` with the configured writer.

    Args:
        article: the fetch stage's ``article.json``.
        out_dir: where ``script.yaml`` goes (written atomically).
        settings: ``script.*``, ``llm.*``, personas and pronunciation are read.
        progress: ``(current, total, message)`` per section or step.
        cancel: checked between sections; when set, :class:`stages.base.Cancelled` is raised.
        note: receives remarks worth an event (the article was truncated for the LLM...).

    Raises:
        InputError: the article is unusable, or the LLM refused or kept answering invalidly.
        TransientError: the LLM API was rate-limited, down or unreachable.
    """
    data = _read_article(Path(article))
    if settings.script.writer == "llm":
        from stages.script.llm import write_with_llm

        script = write_with_llm(data, settings, progress, cancel=cancel, note=note)
    else:
        from stages.script.extractive import write_extractive

        script = write_extractive(data, settings, progress, cancel=cancel)
    script = unique_titles(script)
    if settings.slides.backend == "image-api":
        script = with_slide_prompts(script)
    path = Path(out_dir) / SCRIPT_FILE
    atomic_write_text(path, dump_script(script))
    return path


def adopt_script(source: Path, out: Path, settings: "Settings", *, name: str | None = None) -> Script:
    """Validate a dropped script and write it, normalised (legacy forms, language), to ``out``.

    The files it names must exist inside the home (relative paths are read from the home); the
    written script names them by absolute path. ``name`` is the file's name as dropped, so errors
    point at the user's file, not the job's copy.
    """
    script = load_script(source, settings, name=name, user_file=True)
    if script.language is None:
        script = script.model_copy(update={"language": settings.script.language})
    script = with_latin_readings(script, settings)
    atomic_write_text(out, dump_script(script))
    return script


def with_latin_readings(script: Script, settings: "Settings") -> Script:
    """A Japanese script whose lines without ``reading`` that hold Latin words get one.

    The voice then says 「GitHub」 as ギットハブ, as in a script the writers made, instead of
    spelling it letter by letter. Lines with a reading, and lines without Latin letters (which the
    voice reads well as they are), are left alone.
    """
    from stages.script.text import is_japanese, reading_for

    if not is_japanese(script.language):
        return script
    pronunciation = [(e.surface, e.reading) for e in settings.pronunciation]
    sections = []
    for section in script.sections:
        narrations = [
            n.model_copy(update={"reading": reading_for(n.text, pronunciation)})
            if n.reading is None and _LATIN.search(n.text) else n
            for n in section.narrations
        ]
        sections.append(section.model_copy(update={"narrations": narrations}))
    return script.model_copy(update={"sections": sections})


def unique_titles(script: Script) -> Script:
    """The script with repeated section titles numbered (「その他」, 「その他 (2)」): they are chapter names."""
    seen: dict[str, int] = {}
    sections = []
    for section in script.sections:
        count = seen[section.title] = seen.get(section.title, 0) + 1
        sections.append(section if count == 1 else section.model_copy(update={"title": f"{section.title} ({count})"}))
    return script.model_copy(update={"sections": sections})


def with_slide_prompts(script: Script) -> Script:
    """Body sections without an article image get a ``slide_prompt`` built from the section.

    With ``slides.backend = "image-api"`` this is what makes URL and article jobs request pictures:
    the prompt names the video's topic, the section's title and its first bullets. The title card,
    the closing and sections that show an article image keep their typeset slides.
    """
    sections = []
    for section in script.sections:
        slide = section.slide
        plain = slide is None or (slide.layout not in ("title", "closing") and not slide.image)
        if plain and not section.source_image_url and not section.slide_prompt:
            points = "; ".join((slide.bullets if slide else [])[:3])
            prompt = f"{script.title}: {section.title}" + (f" ({points})" if points else "")
            section = section.model_copy(update={"slide_prompt": prompt})
        sections.append(section)
    return script.model_copy(update={"sections": sections})


def estimate_script_seconds(script: Script) -> float:
    """The estimated spoken length of a script's phrases (no pauses)."""
    return sum(estimate_seconds(n.text, n.reading, script.language) for _, _, n in script.phrases())


def _read_article(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{path} does not exist") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path.name} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path.name} must hold a JSON object (url, title, language, blocks)")
    return data
