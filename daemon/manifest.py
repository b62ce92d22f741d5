"""Stage manifests: ``<job_dir>/stages/<stage>.json``, the proof that a stage's outputs are current.

A stage is skipped when its manifest's fingerprint equals the current one and every listed
output is present with the recorded size. The manifest is written atomically after a run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from stages.base import atomic_write_json, file_sha256

MANIFEST_FORMAT = 1


def manifest_path(job_dir: Path, stage: str) -> Path:
    """Where the manifest of ``stage`` lives."""
    return Path(job_dir) / "stages" / f"{stage}.json"


def write_manifest(
    job_dir: Path,
    stage: str,
    *,
    version: str,
    fingerprint: str,
    outputs: Iterable[Path],
    started_at: str,
    finished_at: str,
    seconds: float,
) -> Path:
    """Record a successful run: fingerprint, stage version, outputs (size, sha256), timings.

    Outputs are stored relative to ``job_dir`` when inside it, absolute otherwise (shared cache
    files). A folder stands for every file under it.

    Raises:
        FileNotFoundError: the stage reported an output that does not exist.
    """
    job_dir = Path(job_dir)
    entries = [_describe(job_dir, path) for path in _files(job_dir, outputs)]
    return atomic_write_json(
        manifest_path(job_dir, stage),
        {
            "format": MANIFEST_FORMAT,
            "stage": stage,
            "version": version,
            "fingerprint": fingerprint,
            "outputs": entries,
            "started_at": started_at,
            "finished_at": finished_at,
            "seconds": round(seconds, 6),
        },
    )


def read_manifest(job_dir: Path, stage: str) -> dict[str, Any] | None:
    """The stage's manifest, or None when missing or unreadable (a torn file counts as missing)."""
    try:
        data = json.loads(manifest_path(job_dir, stage).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_current(job_dir: Path, stage: str, fingerprint: str) -> bool:
    """True when the manifest matches ``fingerprint`` and every output has its recorded size."""
    manifest = read_manifest(job_dir, stage)
    if manifest is None or manifest.get("fingerprint") != fingerprint:
        return False
    outputs = manifest.get("outputs")
    if not isinstance(outputs, list):
        return False
    for entry in outputs:
        path = resolve(job_dir, entry.get("path", ""))
        try:
            if not path.is_file() or path.stat().st_size != entry.get("size"):
                return False
        except OSError:
            return False
    return True


def resolve(job_dir: Path, recorded: str) -> Path:
    """An output path as recorded in a manifest, made absolute."""
    path = Path(recorded)
    return path if path.is_absolute() else Path(job_dir) / path


def _files(job_dir: Path, outputs: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for output in outputs:
        path = resolve(job_dir, str(output))
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"the stage reported an output that does not exist: {path}")
    return files


def _describe(job_dir: Path, path: Path) -> dict[str, Any]:
    try:
        recorded = str(path.relative_to(job_dir))
    except ValueError:
        recorded = str(path)
    return {"path": recorded, "size": path.stat().st_size, "sha256": file_sha256(path)}
