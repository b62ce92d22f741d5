"""Where finished work goes: ``outbox/`` (videos), ``done/`` (consumed inputs), ``failed/`` (inputs
that failed, each with ``<name>.error.txt``).

Every write is atomic (temporary name in the same folder, then rename) and every move refuses to
overwrite (``os.link`` then unlink), so a watcher never sees half a file and no input is ever lost.
Delivery is idempotent: a job delivered again after a crash reuses the names it chose the first time
(recorded in ``<job_dir>/delivered.json``).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import re
import subprocess
import threading
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import yaml

from stages.base import NAME_MAX, atomic_copy, atomic_write_json, atomic_write_text, fit_name
from stages.pipeline import INPUT_KINDS

if TYPE_CHECKING:
    from stages.settings import Settings

CLAIM_FILE = "claim.json"  # written by the inbox: original name, kind, sha256, size
DELIVERED_FILE = "delivered.json"  # the outbox names a job was delivered under
FAILED_FILE = "failed.json"  # the failed/ name a job's input was copied to
NOTE_SUFFIX = ".error.txt"
DUPLICATE_SUFFIX = ".duplicate.txt"
DUPLICATES_FILE = "duplicates.json"  # copies of this job's input that went to done/ (or failed/) as duplicates
SLUG_MAX = 60
SLUG_MAX_BYTES = 150  # with the date, an id suffix, ".json" and a temp name, well under NAME_MAX
# The inbox (event loop) records duplicates while a delivery (worker thread) may settle them.
_DUPLICATES_LOCK = threading.RLock()


class Outbox:
    """Delivers finished jobs and records failed ones, for one home folder.

    ``deliver`` and ``fail`` are the runner's ``deliver`` and ``on_failed`` hooks.
    """

    def __init__(self, settings: "Settings", store: Any = None, log: Any = None):
        self.settings = settings
        self.store = store
        self.log = log

    # --- success ---------------------------------------------------------------------------

    def deliver(self, job_id: str) -> str:
        """Write ``outbox/<date>-<slug>.mp4``, ``.srt`` and ``.json``; copy the input to ``done/``.

        Returns the path of the delivered video. Safe to call again for the same job: the same
        names are reused and nothing is duplicated. The ``.mp4`` is written last, so when it
        appears its sidecars are already there.
        """
        job_dir = self.settings.jobs_dir / job_id
        video = job_dir / "video.mp4"
        if not video.is_file():
            raise FileNotFoundError(f"job {job_id} has no video.mp4 to deliver")
        claim = read_json(job_dir / CLAIM_FILE) or {}
        delivered = read_json(job_dir / DELIVERED_FILE) or {}
        meta = job_metadata(job_dir, job_id, claim)
        stem = delivered.get("stem") or self._choose_stem(job_id, meta["title"])
        if delivered.get("stem") != stem:
            delivered = {"stem": stem}
            atomic_write_json(job_dir / DELIVERED_FILE, delivered)

        outbox = self.settings.outbox
        outbox.mkdir(parents=True, exist_ok=True)
        files = {"video": f"{stem}.mp4"}
        srt = job_dir / "video.srt"
        if srt.is_file():
            atomic_copy(srt, outbox / f"{stem}.srt")
            files["subtitles"] = f"{stem}.srt"
        meta["files"] = files
        meta["delivered_at"] = _now_iso()
        atomic_write_text(outbox / f"{stem}.json", json.dumps(meta, ensure_ascii=False, indent=2) + "\n")
        target = atomic_copy(video, outbox / files["video"])

        if "done" not in delivered and not claim.get("parent"):
            # A job split from a URL list has no input of its own: the list went to done/ already.
            done_name = self._copy_source(job_dir, claim, self.settings.done)
            delivered["done"] = done_name
            atomic_write_json(job_dir / DELIVERED_FILE, delivered)
        self._clear_failed(job_dir)
        self._settle_duplicates(job_id, delivered_as=files["video"])
        return str(target)

    # --- failure ---------------------------------------------------------------------------

    def fail(self, job_id: str, stage: str | None, error: str, *, hint: str | None = None) -> Path | None:
        """Copy the job's input to ``failed/<name>`` and write ``<name>.error.txt`` beside it.

        The job folder keeps its copy, so ``moviegen retry`` still works. Called again for the
        same job (a second failure after a retry), it rewrites the note of the same entry.
        ``hint`` (what to do) defaults to the runner's advice recorded with ``job.failed``.
        """
        job_dir = self.settings.jobs_dir / job_id
        claim = read_json(job_dir / CLAIM_FILE) or {}
        marker = read_json(job_dir / FAILED_FILE) or {}
        failed = self.settings.failed
        failed.mkdir(parents=True, exist_ok=True)
        name = marker.get("name")
        if not name or not (failed / name).exists():
            name = self._copy_source(job_dir, claim, failed, companions=(NOTE_SUFFIX,))
            if name is None:
                return None
            atomic_write_json(job_dir / FAILED_FILE, {"name": name})
        error = readable_error(error, job_dir, claim.get("name") or name)
        note = failure_note(job_id=job_id, stage=stage, error=error, name=name, retryable=True,
                            hint=hint or self._hint(job_id))
        written = atomic_write_text(failed / f"{name}{NOTE_SUFFIX}", note)
        self._settle_duplicates(job_id, failed_with=(stage, error))
        return written

    def cancelled(self, job_id: str, stage: str | None) -> Path | None:
        """A cancelled job's input goes to ``failed/`` like a failed one's, with a note saying so.

        So every input ends somewhere a user looks (and its duplicates follow); a retry that
        delivers takes the entry out of ``failed/`` again.
        """
        return self.fail(job_id, stage, "the job was cancelled on request (moviegen cancel); the file is fine",
                         hint=f"to make the video after all, run: moviegen retry {job_id}")

    # --- duplicates ------------------------------------------------------------------------

    def _settle_duplicates(
        self, job_id: str, *, delivered_as: str | None = None, failed_with: tuple[str | None, str] | None = None
    ) -> None:
        """Keep every duplicate copy of this job's input where the job's outcome says.

        A duplicate waits in ``done/`` while the job runs. When the job fails, its copies move to
        ``failed/`` with an ``.error.txt`` (their promise no longer holds); when it is delivered
        (at once, or after a retry), they are in ``done/`` with a note naming the video.
        """
        with _DUPLICATES_LOCK:
            self._settle_duplicates_locked(job_id, delivered_as, failed_with)

    def _settle_duplicates_locked(
        self, job_id: str, delivered_as: str | None, failed_with: tuple[str | None, str] | None
    ) -> None:
        job_dir = self.settings.jobs_dir / job_id
        entries = read_duplicates(job_dir)
        if not entries:
            return
        for entry in entries:
            try:
                if failed_with is not None:
                    self._duplicate_to(entry, job_id, self.settings.failed, NOTE_SUFFIX,
                                       _duplicate_failed_note(entry["name"], job_id, *failed_with), "failed")
                else:
                    self._duplicate_to(entry, job_id, self.settings.done, DUPLICATE_SUFFIX,
                                       _duplicate_delivered_note(entry["name"], job_id, delivered_as), "done")
            except OSError as exc:  # one unmovable copy must not stop the others (or the delivery)
                if self.log is not None:
                    self.log.error("outbox.duplicate_unmoved", job_id=job_id, file=entry.get("file"), error=repr(exc))
        atomic_write_json(job_dir / DUPLICATES_FILE, entries)

    def _duplicate_to(self, entry: dict, job_id: str, folder: Path, suffix: str, note: str, where: str) -> None:
        here = self.settings.failed if entry.get("where") == "failed" else self.settings.done
        current = here / entry["file"]
        old_note = here / f"{entry['file']}{NOTE_SUFFIX if here == self.settings.failed else DUPLICATE_SUFFIX}"
        if here != folder:
            if not current.exists():
                return  # the user took it away: nothing of ours to move
            target = move_no_clobber(current, folder, entry["file"], companions=(suffix,))
            old_note.unlink(missing_ok=True)
            entry.update(file=target.name, where=where)
            if self.store is not None:
                self.store.append(None, "input.duplicate", name=entry["name"], duplicate_of=job_id,
                                  reason=f"job {job_id} {'did not finish' if where == 'failed' else 'was delivered'}",
                                  moved_to=f"{where}/{target.name}")
        if (folder / entry["file"]).exists():
            atomic_write_text(folder / f"{entry['file']}{suffix}", note)

    # --- helpers ---------------------------------------------------------------------------

    def _choose_stem(self, job_id: str, title: str) -> str:
        stem = f"{job_date(job_id)}-{slugify(title) or job_id}"
        taken_by = (read_json(self.settings.outbox / f"{stem}.json") or {}).get("job_id")
        if taken_by == job_id:
            return stem
        if taken_by or (self.settings.outbox / f"{stem}.mp4").exists():
            # Same day, same title, another job: keep both, told apart by the id's random part.
            stem = f"{stem}-{job_id.rsplit('-', 1)[-1]}"
        return stem

    def _copy_source(
        self, job_dir: Path, claim: dict, folder: Path, companions: Iterable[str] = ()
    ) -> str | None:
        source = find_source(job_dir)
        if source is None:
            return None
        name = claim.get("name") or source.name
        target = unique_path(folder, name, companions)
        atomic_copy(source, target)
        return target.name

    def _hint(self, job_id: str) -> str | None:
        if self.store is None:
            return None
        failures = self.store.events(job_id, kinds=["job.failed"])
        hint = (failures[-1].get("data") or {}).get("hint") if failures else None
        return hint.replace("JOB", job_id) if hint else None

    def _clear_failed(self, job_dir: Path) -> None:
        # A retried job that now succeeded no longer belongs in failed/.
        marker = read_json(job_dir / FAILED_FILE)
        if not marker:
            return
        for path in (self.settings.failed / marker["name"], self.settings.failed / f"{marker['name']}{NOTE_SUFFIX}"):
            path.unlink(missing_ok=True)
        (job_dir / FAILED_FILE).unlink(missing_ok=True)


def read_duplicates(job_dir: Path) -> list[dict]:
    """The duplicate copies recorded for a job: ``[{name, file, where}]`` (``where``: done|failed)."""
    try:
        data = json.loads((job_dir / DUPLICATES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [d for d in data if isinstance(d, dict) and d.get("file")] if isinstance(data, list) else []


def record_duplicate(job_dir: Path, name: str, file: str) -> None:
    """Remember that ``done/<file>`` (dropped as ``name``) is a copy of this job's input."""
    with _DUPLICATES_LOCK:
        entries = read_duplicates(job_dir)
        entries.append({"name": name, "file": file, "where": "done"})
        atomic_write_json(job_dir / DUPLICATES_FILE, entries)


def duplicate_note(name: str, job_id: str) -> str:
    """The ``.duplicate.txt`` of a copy whose job is still in flight."""
    return (f"file:  {name}\nsame content as job {job_id}, which is still in progress.\n"
            f"No second job was started; its video will appear in outbox/ when it is done.\n"
            f"Follow it with: moviegen events {job_id} --follow\n"
            f"If that job fails, this file moves to failed/ with a note.\n")


def _duplicate_delivered_note(name: str, job_id: str, video: str | None) -> str:
    return (f"file:  {name}\nsame content as job {job_id}, which delivered it as outbox/{video}.\n"
            f"No second job was started.\n")


def _duplicate_failed_note(name: str, job_id: str, stage: str | None, error: str) -> str:
    return failure_note(
        job_id=job_id, stage=stage, name=name, retryable=True,
        error=f"this file has the same content as job {job_id}'s input, and that job did not finish: {error}",
        hint=f"fix the cause and run `moviegen retry {job_id}` (this copy then returns to done/), "
             f"or fix the input and drop it into the inbox again",
    )


# --- metadata ----------------------------------------------------------------------------------


def job_metadata(job_dir: Path, job_id: str, claim: dict | None = None) -> dict[str, Any]:
    """The sidecar's content, from whatever the job folder holds (each file optional)."""
    claim = claim if claim is not None else read_json(job_dir / CLAIM_FILE) or {}
    timeline = read_json(job_dir / "timeline.json") or {}
    article = read_json(job_dir / "article.json") or {}
    audio = read_json(job_dir / "audio" / "index.json") or {}
    script = _read_yaml(job_dir / "script.yaml")
    title = (
        str(script.get("title") or "").strip()
        or str(article.get("title") or "").strip()
        or Path(claim.get("name") or job_id).stem
    )
    duration = timeline.get("duration")
    if duration is None:
        duration = probe_duration(job_dir / "video.mp4")
    chapters = timeline.get("chapters") or [
        {"title": s.get("title"), "start": s.get("start")} for s in timeline.get("sections") or []
    ]
    if not chapters and isinstance(script.get("sections"), list):
        chapters = [{"title": s.get("title"), "start": None} for s in script["sections"] if isinstance(s, dict)]
    credits = _credits(audio, timeline)
    return {
        "job_id": job_id,
        "title": title,
        "description": script.get("description") or article.get("description"),
        "language": script.get("language") or article.get("language"),
        "source": claim.get("url") or article.get("url") or claim.get("name"),
        "input_kind": claim.get("kind"),
        "duration": round(float(duration), 3) if duration is not None else None,
        "chapters": chapters,
        "credits": credits,
        # Per VOICEVOX-compatible speaker: the credit and its terms of use as the engine states them.
        "voice_terms": [t for t in audio.get("terms") or [] if isinstance(t, dict)],
        "created_at": claim.get("claimed_at"),
    }


def probe_duration(video: Path) -> float | None:
    """The container duration in seconds via ffprobe, or None if it cannot be read."""
    try:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(video)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        return float(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def _credits(audio: dict, timeline: dict) -> list[str]:
    found: list[str] = []
    for source in (audio.get("credits"), timeline.get("credits")):
        if isinstance(source, str):
            source = [source]
        for item in source or []:
            if item and str(item) not in found:
                found.append(str(item))
    return found


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


# --- names -------------------------------------------------------------------------------------


def slugify(title: str, limit: int = SLUG_MAX) -> str:
    """A file-name-safe slug that keeps CJK and other letters: ``"Hello, 世界!"`` → ``"hello-世界"``.

    A title longer than ``limit`` characters is cut at a word boundary (a CJK character is one).
    """
    text = unicodedata.normalize("NFKC", title).lower()
    slug = re.sub(r"[^\w]+", "-", text, flags=re.UNICODE).replace("_", "-")
    slug = re.sub(r"-{2,}", "-", slug).strip("-.")
    cut = fit_name(slug[:limit], SLUG_MAX_BYTES)
    if len(cut) < len(slug) and slug[len(cut)] != "-" and cut[-1:].isascii():
        # Cut inside a Latin word: end at the word before it, when that keeps at least half.
        boundary = cut.rfind("-")
        if boundary >= len(cut) // 2:
            cut = cut[:boundary]
    return cut.rstrip("-")


def job_date(job_id: str) -> str:
    """``YYYY-MM-DD`` (local time) of a job id ``YYYYmmdd-HHMMSS-xxxxxx`` (UTC)."""
    try:
        stamp = dt.datetime.strptime(job_id[:15], "%Y%m%d-%H%M%S").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return dt.date.today().isoformat()
    return stamp.astimezone().date().isoformat()


def unique_path(folder: Path, name: str, companions: Iterable[str] = ()) -> Path:
    """``folder/name``, or ``folder/<stem>-N<suffix>`` when it (or a companion file) is taken.

    The name is shortened (at a character boundary, suffix kept) so that it and every
    ``<name><companion>`` fit in NAME_MAX bytes: an 80-kanji input still gets its ``.error.txt``.
    """
    companions = tuple(companions)
    budget = NAME_MAX - max((len(os.fsencode(c)) for c in companions), default=0)
    name = fit_name(name, budget)
    stem, suffix = _split_name(name)
    candidate = name
    number = 0
    while True:
        if not (folder / candidate).exists() and not any((folder / f"{candidate}{c}").exists() for c in companions):
            return folder / candidate
        number += 1
        tail = f"-{number}{suffix}"
        candidate = fit_name(stem, budget - len(os.fsencode(tail))) + tail


def _split_name(name: str) -> tuple[str, str]:
    suffix = "".join(Path(name).suffixes[-1:])
    return (name[: -len(suffix)], suffix) if suffix else (name, "")


# --- files -------------------------------------------------------------------------------------


def move_no_clobber(source: Path, folder: Path, name: str, companions: Iterable[str] = ()) -> Path:
    """Move ``source`` into ``folder`` under ``name`` (or a numbered variant); never overwrite.

    Uses ``os.link`` + unlink so an existing file is never replaced; a crash in between leaves two
    names for the same bytes, never none. Falls back to copy + unlink across filesystems.
    """
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        target = unique_path(folder, name, companions)
        try:
            os.link(source, target, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
                raise
            atomic_copy(source, target)
        os.unlink(source)
        return target


def find_source(job_dir: Path) -> Path | None:
    """The job's claimed input ``source.<ext>``, or None."""
    for path in sorted(job_dir.glob("source.*")):
        if path.is_file() and not path.is_symlink():
            return path
    return None


def readable_error(error: str, job_dir: Path, name: str) -> str:
    """``error`` as the user should read it: the job's copy of the input called by the name the
    user dropped, other files of the job by their names within it (the job folder is internal)."""
    source = find_source(job_dir)
    for folder in {str(job_dir), str(Path(job_dir).resolve())}:
        if source is not None:
            error = error.replace(f"{folder}{os.sep}{source.name}", name)
        error = error.replace(folder + os.sep, "")
    if source is not None:  # a bare "source.md" in a message is the user's file too
        error = re.sub(rf"(?<![\w./-]){re.escape(source.name)}(?![\w.-])", lambda _m: name, error)
    return error


def read_json(path: Path) -> dict | None:
    """A JSON object from a file, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def failure_note(
    *, job_id: str | None, stage: str | None, error: str, name: str, retryable: bool, hint: str | None = None
) -> str:
    """The text of ``failed/<name>.error.txt``: what failed, where, and what to do.

    ``hint`` is the runner's advice for this kind of failure; without it the note gives both
    remedies (fix the file; or fix the cause and retry).
    """
    accepted = ", ".join(sorted(INPUT_KINDS))
    todo = [hint or "fix the input and drop it into the inbox again"]
    if retryable and job_id and not hint:
        todo.append(f"or, if the cause was outside the file (a service down, a network problem), "
                    f"fix that and run: moviegen retry {job_id}")
    lines = [
        f"file:  {name}",
        f"job:   {job_id or '(none: the file was rejected before a job started)'}",
        f"stage: {stage or 'inbox'}",
        f"error: {error}",
        f"when:  {_now_iso()}",
        f"what to do: {todo[0]}",
        *(f"            {line}" for line in todo[1:]),
        f"accepted inputs: {accepted}",
    ]
    return "\n".join(lines) + "\n"


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
