"""Which stages a job visits, in what order, and how their progress maps onto 0–100 %."""

from __future__ import annotations

from pathlib import Path

from stages.base import Stage

STAGE_ORDER: tuple[str, ...] = ("fetch", "script", "audio", "slides", "video")

# The original worker's ranges: fetch 0–5, script 5–20, audio 20–55, slides 55–80, video 80–100.
PERCENT_RANGES: dict[str, tuple[float, float]] = {
    "fetch": (0.0, 5.0),
    "script": (5.0, 20.0),
    "audio": (20.0, 55.0),
    "slides": (55.0, 80.0),
    "video": (80.0, 100.0),
}

INPUT_KINDS: dict[str, str] = {
    ".url": "url",
    ".txt": "url",
    ".md": "article",
    ".markdown": "article",
    ".html": "article",
    ".htm": "article",
    ".yaml": "script",
    ".yml": "script",
    ".json": "script",
}

# A script file skips fetching and writing: its script stage only validates and adopts it.
KIND_STAGES: dict[str, tuple[str, ...]] = {
    "url": STAGE_ORDER,
    "article": STAGE_ORDER,
    "script": ("script", "audio", "slides", "video"),
}


def input_kind(path: Path | str) -> str | None:
    """The input kind for a file name (``url``, ``article``, ``script``), or None if unknown."""
    return INPUT_KINDS.get(Path(path).suffix.lower())


def stages_for(kind: str) -> tuple[str, ...]:
    """The stage names a job of this input kind visits, in order."""
    return KIND_STAGES[kind]


def overall_percent(stage: str, current: int, total: int) -> float:
    """Map a stage's ``current/total`` onto the job's overall percent."""
    lo, hi = PERCENT_RANGES[stage]
    frac = 0.0 if total <= 0 else min(max(current / total, 0.0), 1.0)
    return round(lo + (hi - lo) * frac, 2)


def default_stages() -> dict[str, Stage]:
    """The real stages, by name. Imported lazily: the daemon's tests run without them."""
    from stages.audio import AudioStage
    from stages.fetch import FetchStage
    from stages.jtalk import pyopenjtalk
    from stages.script import ScriptStage
    from stages.slides import SlidesStage
    from stages.video import VideoStage

    pyopenjtalk()  # the slow import happens here, not in the first job's worker thread

    return {
        "fetch": FetchStage(),
        "script": ScriptStage(),
        "audio": AudioStage(),
        "slides": SlidesStage(),
        "video": VideoStage(),
    }
