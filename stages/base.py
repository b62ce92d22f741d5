"""The stage contract: what the daemon runs, and what a stage may rely on.

A stage is a plain object with a ``name``, a ``version``, a ``fingerprint`` of its inputs and a
synchronous ``run``. The daemon calls ``run`` in a worker thread with a progress callback
``(current, total, message)``; a test, a notebook or the CLI can call it just the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol, runtime_checkable

if TYPE_CHECKING:
    from stages.settings import Settings

Progress = Callable[[int, int, str], None]
"""``progress(current, total, message)``: ``current`` of ``total`` units done."""

Note = Callable[..., None]
"""``note(message, **data)``: something worth an event (a truncated slide, a dropped phrase)."""


class StageError(Exception):
    """Base of the errors a stage raises on purpose."""


class InputError(StageError):
    """The user's input is wrong: fail now, and say what to fix."""


class ConfigError(InputError):
    """The configuration is wrong, not the user's file: fail now; the fix is in the settings.

    An :class:`InputError` (never retried by itself), but the failure note tells the user to fix
    the settings file and ``moviegen retry`` the job, not to drop the input again.
    """


class TransientError(StageError):
    """A passing failure (network, 429, 5xx, engine down): retry with backoff.

    ``retry_after`` (seconds), when the server said so, is honoured by the runner.
    """

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Cancelled(StageError):
    """The job's cancellation token was set; the stage stopped cleanly."""


class CancelToken(threading.Event):
    """A job's cancellation token: a ``threading.Event`` that also calls back when set.

    A loop can poll ``is_set()``, but a thread blocked in a socket read cannot; the callbacks let
    whoever set the token (the runner's cancel or timeout) cut such a wait at once, e.g. by
    shutting the socket down (:mod:`stages.netwait`).
    """

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._callbacks_lock = threading.Lock()
        self._next_key = 0

    def set(self) -> None:
        """Set the token and run (then forget) every registered callback, in this thread."""
        with self._callbacks_lock:
            super().set()
            callbacks = list(self._callbacks.values())
            self._callbacks.clear()
        for callback in callbacks:
            try:
                callback()
            except Exception:  # one failing hang-up must not keep the others from running
                pass

    def on_set(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` once when the token is set (now, if it already is).

        Returns a function that unregisters it; call it when the wait it guards is over.
        """
        with self._callbacks_lock:
            if not self.is_set():
                key = self._next_key
                self._next_key += 1
                self._callbacks[key] = callback
                return lambda: self._forget(key)
        callback()
        return lambda: None

    def _forget(self, key: int) -> None:
        with self._callbacks_lock:
            self._callbacks.pop(key, None)


def no_progress(current: int, total: int, message: str) -> None:
    """A progress callback that ignores everything."""


def no_note(message: str, **data: Any) -> None:
    """A note callback that ignores everything."""


@dataclass
class JobContext:
    """Everything a stage may know about the job it works on.

    Attributes:
        job_id: the job's id (also the name of its directory).
        job_dir: ``<state>/jobs/<job_id>``; inputs and outputs live here.
        settings: the resolved settings tree.
        cache_dir: the cache shared by all jobs (clips, slides, bundles).
        source: the claimed input file (``job_dir/source.<ext>``).
        kind: the input kind: ``url``, ``article`` or ``script``.
        cancel: set when the job is cancelled or timed out; long loops must check it.
        note: records a ``stage.note`` event with a message and data.
        source_name: the input's name as the user dropped it (for messages); None if unknown.
    """

    job_id: str
    job_dir: Path
    settings: "Settings"
    cache_dir: Path
    source: Path
    kind: str
    cancel: threading.Event = field(default_factory=CancelToken)
    note: Note = no_note
    source_name: str | None = None

    @property
    def display_name(self) -> str:
        """The name to show the user for the input: as dropped, else the job's copy."""
        return self.source_name or self.source.name

    def check_cancelled(self) -> None:
        """Raise :class:`Cancelled` if the job's token is set."""
        if self.cancel.is_set():
            raise Cancelled(f"job {self.job_id} was cancelled")


@dataclass
class StageResult:
    """What a run wrote. ``outputs`` may be job-relative or absolute (shared cache files)."""

    outputs: list[Path]
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of_index(cls, index: Path, files: Iterable[str | Path], **data: Any) -> "StageResult":
        """An index file and the shared-cache files it names (each once, in order), so a cached
        file that vanished makes the daemon run the stage again."""
        return cls(outputs=[Path(index), *dict.fromkeys(Path(f) for f in files)], data=data)


@runtime_checkable
class Stage(Protocol):
    """The contract the daemon runs; see DESIGN.md, "The stage contract"."""

    name: str
    version: str
    resource: str  # the slot it takes: "network", "tts", "render" or "cpu"

    def fingerprint(self, job: JobContext) -> str: ...

    def run(self, job: JobContext, progress: Progress) -> StageResult: ...

    # Optional: ``warm(settings) -> None`` loads ahead what a first run would (worker processes,
    # font hashes); the daemon calls it once at start in a background thread (Runner.warm_up).


# --- fingerprints -----------------------------------------------------------------------------


def fingerprint_of(*parts: Any) -> str:
    """The sha256 of the canonical JSON of ``parts`` (dicts sorted, paths as strings)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_hash_or_none(path: Path) -> str | None:
    """The sha256 of a file, or None when it does not exist (a missing upstream artifact)."""
    try:
        return file_sha256(path)
    except FileNotFoundError:
        return None


# --- atomic writes ----------------------------------------------------------------------------

NAME_MAX = 255
"""Bytes in one file name on Linux file systems (ext4, xfs, btrfs, tmpfs)."""

TEMP_STEM_MAX = 200
"""Bytes of a target's name kept in its temporary sibling's name (the rest is ``.XXXXXXXX.part.ext``)."""


def fit_name(name: str, max_bytes: int = NAME_MAX) -> str:
    """``name`` cut to at most ``max_bytes`` bytes at a character boundary, keeping its suffix.

    Bytes are counted as the file system sees them (``os.fsencode``). The stem is shortened first,
    so ``<80 kanji>.md`` stays a ``.md``; a suffix too long to keep is cut with the rest.
    """
    if len(os.fsencode(name)) <= max_bytes:
        return name
    dot = name.rfind(".")
    suffix = name[dot:] if dot > 0 else ""
    if len(os.fsencode(suffix)) > max_bytes // 4:
        suffix = ""
    stem, budget = name[: len(name) - len(suffix)], max_bytes - len(os.fsencode(suffix))
    kept = 0
    for index, char in enumerate(stem):
        kept += len(os.fsencode(char))
        if kept > budget:
            stem = stem[:index]
            break
    return stem + suffix


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temp name in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{fit_name(path.name, TEMP_STEM_MAX)}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> Path:
    """Write JSON (UTF-8, indented, non-ASCII kept) atomically."""
    return atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")


def atomic_temp_path(path: Path) -> Path:
    """A temporary sibling of ``path`` for tools that write files themselves (ffmpeg).

    Pair with :func:`commit_temp`: ``os.replace`` of the finished temp onto ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if len(os.fsencode(path.suffix)) <= 16 else ""
    fd, tmp = tempfile.mkstemp(prefix=f".{fit_name(path.stem, TEMP_STEM_MAX)}.", suffix=f".part{suffix}",
                               dir=path.parent)
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    return Path(tmp)


def commit_temp(tmp: Path, path: Path) -> Path:
    """fsync ``tmp`` and rename it onto ``path``."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(Path(path).parent)
    return Path(path)


def public_mode() -> int:
    """``0o666`` minus this process's umask: the mode of an ordinary new file.

    Read from /proc (no ``umask()`` set-and-restore, which races with other threads).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


# mkstemp makes 0600 files; outputs (the outbox above all) get the usual mode under the umask.
_FILE_MODE = public_mode()


def atomic_copy(source: Path, target: Path) -> Path:
    """Copy ``source`` to ``target`` atomically (temp sibling, fsync, rename), with the usual mode."""
    tmp = atomic_temp_path(target)
    try:
        shutil.copyfile(source, tmp)
        commit_temp(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Path(target)


def fsync_dir(folder: Path) -> None:
    """fsync a folder so a rename into it survives a power cut (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
