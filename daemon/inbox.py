"""The inbox: which files to take, when they are complete, and how they become jobs.

Rules (DESIGN.md, "Inbox and outbox"):

- Accepted: ``stages.pipeline.INPUT_KINDS``. Ignored and left alone: hidden files, ``*.part``,
  ``*.tmp``, ``*.crdownload``, directories, symlinks and anything else that is not a regular file.
- A file is taken only when no process holds it open for writing (:func:`open_for_writing`: a
  read lease, which the kernel refuses while a writer is open; else a scan of ``/proc/*/fd``), and
  either an inotify event named it (create, move-in, close-after-write) or it is *settled*: its size
  and mtime have not changed for ``daemon.settle_seconds``. Where writers cannot be seen (another
  user's process, without root), only the settle window counts. A periodic rescan and a scan at
  start-up catch what events miss.
- Claiming is one atomic ``os.rename`` into ``state/jobs/<job_id>/source.<ext>``. The bytes are then
  read and hashed, and kept only if no writer has the file open afterwards and its size and mtime
  did not change during the read (a writer that opened it before the rename could still write);
  otherwise the file goes back to the inbox and is taken again once it is closed. So the recorded
  size and sha256 are those of the file the job starts from.
- Cheap checks fail fast into ``failed/``: unknown type, empty, over ``daemon.max_input_bytes``,
  text that is not UTF-8. Deeper checks (YAML syntax, a missing or unsupported URL) are the stages'.
- A ``.url``/``.txt`` with several URLs becomes one job per URL; the list itself goes to ``done/``.
- Identical content already in flight is not started twice: the duplicate goes to ``done/`` with a
  ``<name>.duplicate.txt`` note naming the job that will deliver it (the user's request is served,
  nothing needs fixing, so it is not a failure). If that job fails, the copy follows it to
  ``failed/`` with a note (``daemon.outbox``); if it is delivered later, the copy returns to ``done/``.
- Every input's fate is an event: ``job.submitted``, or ``input.rejected`` (into ``failed/``),
  ``input.duplicate`` (into ``done/``), ``input.ignored`` (symlinks, directories and other
  non-regular files, logged once per name and inode). Names of files the daemon writes are cut to
  fit NAME_MAX at a character boundary.

Claims are crash-safe: ``claim.json`` is written into the job folder before the rename, so a job
folder holding a source but no ``job.submitted`` (the daemon died in between) is finished at the
next start by :meth:`Inbox.recover`.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import stat
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from daemon.outbox import (
    CLAIM_FILE,
    DUPLICATE_SUFFIX,
    NOTE_SUFFIX,
    duplicate_note,
    failure_note,
    find_source,
    move_no_clobber,
    read_json,
    record_duplicate,
    unique_path,
)
from stages.base import TEMP_STEM_MAX, atomic_write_text, fit_name
from stages.pipeline import INPUT_KINDS, input_kind

if TYPE_CHECKING:
    from daemon.events import EventStore
    from stages.settings import Settings

IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload")
TEXT_SUFFIXES = {".url", ".txt", ".yaml", ".yml", ".json"}  # must be UTF-8; HTML/Markdown are decoded by fetch
URL_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s<>\"']+")


class Rejected(Exception):
    """An inbox file failed a cheap check; the message says why (it goes into the note)."""


# --- job ids and names -------------------------------------------------------------------------


def new_job_id(now: dt.datetime | None = None) -> str:
    """A sortable, unique job id: ``YYYYmmdd-HHMMSS-xxxxxx`` (UTC time, then 6 random hex digits)."""
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


def is_ignored(name: str) -> bool:
    """True for names the inbox never looks at: hidden files and partial downloads."""
    return name.startswith(".") or name.lower().endswith(IGNORED_SUFFIXES)


def parse_urls(text: str) -> list[str]:
    """The URLs in a ``.url``/``.txt`` file, in order, without repeats.

    One URL per line; ``# comments`` and blank lines are skipped; the Windows shortcut form
    (``[InternetShortcut]`` then ``URL=...``) works too. Any scheme is returned: refusing
    ``ftp://`` is the fetch stage's job, with a message the user sees.
    """
    urls: list[str] = []
    for raw in text.splitlines():
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, sep, value = line.partition("=")
        if sep and key.strip().upper() == "URL":
            line = value.strip()
        elif sep and re.fullmatch(r"[A-Za-z]+", key.strip()) and not URL_PATTERN.match(line):
            continue  # other [InternetShortcut] keys: IconFile=..., IDList=...
        for url in URL_PATTERN.findall(line):
            url = url.rstrip(".,;)")
            if url not in urls:
                urls.append(url)
    return urls


# --- the inbox ---------------------------------------------------------------------------------


class Inbox:
    """Turns settled inbox files into submitted jobs.

    Call :meth:`poll` whenever something may have changed (a watchdog event, a timer); it returns
    the ids of the jobs it submitted, which the daemon hands to the runner. Not thread-safe: one
    caller (the daemon's event loop), except :meth:`mark_complete`, which a watcher thread calls.
    """

    def __init__(self, settings: "Settings", store: "EventStore", log: Any = None):
        self.settings = settings
        self.store = store
        self.log = log
        self._seen: dict[str, tuple[tuple[int, int, int], float]] = {}
        self._busy: dict[str, float] = {}  # held open by a writer: name -> when to look again (monotonic)
        self._complete: set[str] = set()  # named by an inotify event (create, move-in, close-after-write)
        self._complete_lock = threading.Lock()
        self._ignored: set[tuple[str, int]] | None = None  # (name, inode) already logged as ignored

    @property
    def folder(self) -> Path:
        return self.settings.inbox

    def mark_complete(self, name: str) -> None:
        """A watcher saw ``name`` created, moved in or closed after writing: take it without
        waiting to settle, as soon as no process holds it open for writing.

        Thread-safe. Where writers cannot be seen (:func:`open_for_writing` is None), the file
        still waits to settle.
        """
        with self._complete_lock:
            self._complete.add(name)

    def poll(self) -> list[str]:
        """Scan the inbox once; claim every complete file; return the new job ids."""
        settle = self.settings.daemon.settle_seconds
        mono, wall = time.monotonic(), time.time()
        with self._complete_lock:
            complete, self._complete = self._complete, set()
        present: set[str] = set()
        submitted: list[str] = []
        for name, sig in self._candidates():
            present.add(name)
            first = self._seen.get(name)
            if first is None or first[0] != sig:
                self._seen[name] = (sig, mono)
                first = (sig, mono)
            # An empty file is never taken on an event: inotify reports a create before the
            # creating process has the file open, so no writer can be seen yet.
            named = name in complete and sig[0] > 0
            if not named and self._busy.get(name, 0.0) > mono:
                continue
            settled = mono - first[1] >= settle or 0 <= wall - sig[1] / 1e9 >= settle
            if not settled and not named:
                continue
            writers = open_for_writing(self.folder / name)
            if writers:
                self._hold(name)
                continue
            if writers is None and not settled:  # cannot see writers: only the settle window counts
                continue
            submitted += self._claim_safely(name)
            if name not in self._busy:
                self._seen.pop(name, None)
        for gone in set(self._seen) - present:
            del self._seen[gone]
        for gone in set(self._busy) - present:
            del self._busy[gone]
        return submitted

    def next_due(self) -> float | None:
        """Seconds until the soonest pending file may be taken, or None when none is pending.

        A file held open by a writer is looked at again after a short pause (its close event
        wakes the loop sooner).
        """
        if not self._seen:
            return None
        settle = self.settings.daemon.settle_seconds
        mono, wall = time.monotonic(), time.time()
        waits = []
        for name, (sig, first) in self._seen.items():
            wait = min(first + settle - mono, sig[1] / 1e9 + settle - wall)
            waits.append(max(wait, self._busy.get(name, 0.0) - mono))
        return max(0.0, min(waits))

    def pending(self) -> int:
        """How many files are waiting to settle (or for their writer to close them)."""
        return len(self._seen)

    def recover(self) -> list[str]:
        """Finish claims a crash interrupted; return the job ids submitted.

        A job folder with ``claim.json`` but no submitted job either holds the source (the rename
        happened: go on from there) or does not (it did not: the file is still in the inbox, so
        the folder is removed).
        """
        submitted: list[str] = []
        jobs_dir = self.settings.jobs_dir
        if not jobs_dir.is_dir():
            return submitted
        for job_dir in sorted(p for p in jobs_dir.iterdir() if p.is_dir()):
            claim = read_json(job_dir / CLAIM_FILE)
            if (claim or {}).get("parent") or self.store.job(job_dir.name) is not None:
                continue  # a URL-list child is redone by its parent's folder, if any
            source = find_source(job_dir)
            if source is None:
                if claim is not None:  # the rename never happened: the file is still in the inbox
                    shutil.rmtree(job_dir, ignore_errors=True)
                continue
            claim = claim or {}
            claim.setdefault("name", source.name)
            claim.setdefault("claimed_at", _now_iso())
            claim["kind"] = claim.get("kind") or input_kind(source)
            if claim["kind"] is None:
                continue
            self._log("inbox.recovered", job_id=job_dir.name, name=claim["name"])
            try:
                submitted += self._admit(job_dir.name, job_dir, source, claim)
            except Exception as exc:  # one broken folder must not stop recovery of the others
                self._log("inbox.recover_failed", job_id=job_dir.name, error=repr(exc), level="error")
        return submitted

    # --- claiming ------------------------------------------------------------------------------

    def claim(self, name: str) -> list[str]:
        """Take ``inbox/<name>`` now (no settle check); return the job ids it became.

        A file some process holds open for writing is not taken (``[]``; it is looked at again
        after a pause, or at once when its close event arrives).
        """
        path = self.folder / name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return []
        if is_ignored(name) or not stat.S_ISREG(st.st_mode):
            return []
        if open_for_writing(path):
            self._hold(name)
            return []
        self._busy.pop(name, None)
        shown = display_name(name)
        kind = input_kind(name)
        if kind is None:
            accepted = ", ".join(sorted(INPUT_KINDS))
            self._reject_inbox_file(path, shown, kind, f"unknown file type {Path(shown).suffix or '(none)'!r}; "
                                    f"accepted: {accepted}")
            return []
        if st.st_size > self.settings.daemon.max_input_bytes:
            self._reject_inbox_file(path, shown, kind, _too_big(st.st_size, self.settings.daemon.max_input_bytes))
            return []
        job_id = new_job_id()
        job_dir = self.settings.jobs_dir / job_id
        job_dir.mkdir(parents=True)
        claim = {"name": shown, "kind": kind, "claimed_at": _now_iso()}
        _write_claim(job_dir / CLAIM_FILE, claim)
        source = job_dir / f"source{Path(name).suffix.lower()}"
        try:
            os.rename(path, source)
        except FileNotFoundError:  # someone else took it between the scan and now
            shutil.rmtree(job_dir, ignore_errors=True)
            return []
        return self._admit(job_id, job_dir, source, claim)

    def _claim_safely(self, name: str) -> list[str]:
        try:
            return self.claim(name)
        except Exception as exc:  # bad input never stops the daemon
            from daemon.events import is_damage

            if is_damage(exc):  # but a damaged log does: each claim would vanish into state/jobs
                raise
            self._log("inbox.claim_error", name=display_name(name), error=repr(exc), level="error")
            return []

    def _hold(self, name: str) -> None:
        self._busy[name] = time.monotonic() + max(self.settings.daemon.settle_seconds, 0.5)

    def _admit(self, job_id: str, job_dir: Path, source: Path, claim: dict) -> list[str]:
        """Check a claimed file, then submit it (or its URLs); reject it into failed/ if bad."""
        name, kind = claim["name"], claim["kind"]
        try:
            data = _read_closed(source, self.settings.daemon.max_input_bytes)
        except _NotRegular:  # swapped for a symlink mid-claim: put it back, to be ignored there
            move_no_clobber(source, self.folder, name)
            shutil.rmtree(job_dir, ignore_errors=True)
            return []
        except _StillWritten:
            return self._give_back(job_dir, source, name)
        except Rejected as exc:
            self._reject_claimed(job_id, job_dir, source, claim, str(exc))
            return []
        try:
            text = _check_text(source.suffix, data)
        except Rejected as exc:
            self._reject_claimed(job_id, job_dir, source, claim, str(exc))
            return []
        if kind == "url":
            urls = parse_urls(text or "")
            if len(urls) > 1:
                return self._split(job_id, job_dir, source, claim, urls)
            key = _sha256((urls[0] + "\n").encode()) if urls else _sha256(data)
            claim.update(url=urls[0] if urls else None)
        else:
            key = _sha256(data)
        claim.update(sha256=key, size=len(data), file_sha256=_sha256(data))
        _write_claim(job_dir / CLAIM_FILE, claim)
        if _file_sha256(source) != claim["file_sha256"]:  # the job must start from the bytes recorded
            return self._give_back(job_dir, source, name)
        if self._is_duplicate(key, job_dir, source, name):
            return []
        self.store.submit(job_id, source=claim.get("url") or name, kind=kind, name=name, sha256=key,
                          size=len(data))
        self._log("inbox.claimed", job_id=job_id, name=name, kind=kind, size=len(data))
        return [job_id]

    def _give_back(self, job_dir: Path, source: Path, name: str) -> list[str]:
        """A writer that opened the file before the rename is still at work: put it back into the
        inbox, to be taken again once closed."""
        back = move_no_clobber(source, self.folder, name)
        shutil.rmtree(job_dir, ignore_errors=True)
        self._hold(back.name)
        self._log("inbox.still_written", name=name, level="warning")
        return []

    def _split(self, parent: str, parent_dir: Path, source: Path, claim: dict, urls: list[str]) -> list[str]:
        """One job per URL of a list; each job's source is a one-URL ``source.url``."""
        submitted: list[str] = []
        stem = Path(claim["name"]).stem
        for number, url in enumerate(urls, start=1):
            job_id = f"{parent}-{number:02d}"
            if self.store.job(job_id) is not None:  # recovery after a crash mid-split
                continue
            body = (url + "\n").encode()
            key = _sha256(body)
            existing = self.store.find_active_by_hash(key)
            if existing is not None:
                self.store.append(None, "input.duplicate", name=claim["name"], url=url, duplicate_of=existing,
                                  reason=f"the URL {url} is already in job {existing}, still in progress")
                self._log("inbox.duplicate", name=claim["name"], url=url, job_id=existing)
                continue
            job_dir = self.settings.jobs_dir / job_id
            job_dir.mkdir(parents=True, exist_ok=True)
            name = f"{stem}-{number:02d}.url"
            _write_claim(job_dir / CLAIM_FILE, {"name": name, "kind": "url", "url": url, "sha256": key,
                                                "size": len(body), "parent": parent,
                                                "claimed_at": claim["claimed_at"]})
            _write_quick(job_dir / "source.url", body)
            self.store.submit(job_id, source=url, kind="url", name=name, sha256=key, size=len(body),
                              parent=parent)
            submitted.append(job_id)
        move_no_clobber(source, self.settings.done, claim["name"])
        shutil.rmtree(parent_dir, ignore_errors=True)
        self._log("inbox.split", name=claim["name"], urls=len(urls), jobs=submitted)
        return submitted

    def _is_duplicate(self, key: str, job_dir: Path, source: Path, name: str) -> bool:
        existing = self.store.find_active_by_hash(key)
        if existing is None:
            return False
        target = move_no_clobber(source, self.settings.done, name, companions=(DUPLICATE_SUFFIX,))
        atomic_write_text(target.with_name(target.name + DUPLICATE_SUFFIX), duplicate_note(name, existing))
        record_duplicate(self.settings.jobs_dir / existing, name, target.name)
        shutil.rmtree(job_dir, ignore_errors=True)
        self.store.append(None, "input.duplicate", name=name, duplicate_of=existing, moved_to=f"done/{target.name}",
                          reason=f"same content as job {existing}, still in progress")
        self._log("inbox.duplicate", name=name, job_id=existing)
        return True

    # --- rejecting -----------------------------------------------------------------------------

    def _reject_inbox_file(self, path: Path, name: str, kind: str | None, reason: str) -> None:
        """Move an unacceptable file straight from the inbox to failed/ with its note."""
        try:
            target = move_no_clobber(path, self.settings.failed, name, companions=(NOTE_SUFFIX,))
        except FileNotFoundError:
            return
        self._record_rejection(target, name, kind, reason)

    def _reject_claimed(self, job_id: str, job_dir: Path, source: Path, claim: dict, reason: str) -> None:
        target = move_no_clobber(source, self.settings.failed, claim["name"], companions=(NOTE_SUFFIX,))
        shutil.rmtree(job_dir, ignore_errors=True)
        self._record_rejection(target, claim["name"], claim["kind"], reason)

    def _record_rejection(self, target: Path, name: str, kind: str | None, reason: str) -> None:
        note = failure_note(job_id=None, stage="inbox", error=reason, name=name, retryable=False)
        atomic_write_text(target.with_name(target.name + NOTE_SUFFIX), note)
        self.store.append(None, "input.rejected", name=name, kind=kind, reason=reason,
                          moved_to=f"failed/{target.name}")
        self._log("inbox.rejected", name=name, kind=kind, error=reason, failed=target.name, level="warning")

    # --- scanning ------------------------------------------------------------------------------

    def _candidates(self) -> list[tuple[str, tuple[int, int, int]]]:
        found = []
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return found
        for entry in entries:
            if is_ignored(entry.name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                found.append((entry.name, (st.st_size, st.st_mtime_ns, st.st_ino)))
            else:
                self._note_ignored(entry.name, st)
        found.sort()
        return found

    def _note_ignored(self, name: str, st: os.stat_result) -> None:
        """Log ``input.ignored`` for a symlink, folder or other non-file, once per name and inode."""
        shown = display_name(name)
        if self._ignored is None:  # once per process: what earlier runs logged already
            self._ignored = {(e["data"].get("name"), e["data"].get("inode"))
                             for e in self.store.events(kinds=["input.ignored"])}
        if (shown, st.st_ino) in self._ignored:
            return
        self._ignored.add((shown, st.st_ino))
        if stat.S_ISLNK(st.st_mode):
            reason = "a symbolic link: links are never followed; drop the file itself"
        elif stat.S_ISDIR(st.st_mode):
            reason = "a folder: only files are taken; drop the files inside it"
        else:
            reason = "not a regular file (a pipe, socket or device)"
        self.store.append(None, "input.ignored", name=shown, inode=st.st_ino, reason=reason)
        self._log("inbox.ignored", name=shown, reason=reason)

    def _log(self, event: str, level: str = "info", **fields: Any) -> None:
        if self.log is not None:
            getattr(self.log, level)(event, **fields)


# --- watching ----------------------------------------------------------------------------------


class InboxWatcher:
    """A watchdog observer on the inbox that calls ``wake()`` on creates, closes and move-ins.

    The callback only says "look again"; :meth:`Inbox.poll` decides. An event naming a file (create,
    move-in, close-after-write) also calls ``complete(name)`` (e.g. :meth:`Inbox.mark_complete`), so
    the file need not wait to settle once its writers are gone. Both are called from the observer's
    thread. (inotify reports a rename from outside the folder as a create.)
    """

    def __init__(self, folder: Path, wake: Callable[[], None], complete: Callable[[str], None] | None = None):
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if event.event_type not in ("created", "closed", "moved"):
                    return
                if complete is not None and not event.is_directory:
                    path = os.fsdecode(event.dest_path if event.event_type == "moved" else event.src_path)
                    complete(os.path.basename(path))
                wake()

        self._observer = Observer()
        self._observer.schedule(_Handler(), str(folder), recursive=False)

    def start(self) -> None:
        self._observer.daemon = True
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)


# --- submitting from outside -------------------------------------------------------------------


def submit_to_inbox(inbox: Path, item: str) -> Path:
    """Drop a URL or a file into the inbox safely: write ``.<name>.part``, then rename.

    A URL becomes ``<timestamp>-<host>.url``. Returns the final path in the inbox.

    Raises:
        FileNotFoundError: ``item`` is neither a URL nor an existing file.
    """
    inbox.mkdir(parents=True, exist_ok=True)
    if URL_PATTERN.fullmatch(item.strip()):
        host = re.sub(r"[^\w.-]+", "-", item.split("://", 1)[1].split("/", 1)[0]) or "link"
        name = f"{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{host}.url"
        data = (item.strip() + "\n").encode()
    else:
        path = Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"{item}: not a URL and not a file")
        name = path.name
        data = path.read_bytes()
    target = unique_path(inbox, name)
    part = inbox / f".{fit_name(target.name, TEMP_STEM_MAX)}.{secrets.token_hex(3)}.part"
    with open(part, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    while True:
        try:
            os.link(part, target)  # never overwrite a file someone dropped meanwhile
            break
        except FileExistsError:
            target = unique_path(inbox, name)
    part.unlink()
    return target


# --- open writers and names --------------------------------------------------------------------


def open_for_writing(path: Path) -> bool | None:
    """Whether some process holds ``path`` open for writing: True, False, or None (cannot tell).

    First a read lease (``F_SETLEASE F_RDLCK``): the kernel refuses it with EAGAIN while any
    process has the file open for writing. Leases need the caller to own the file (or
    CAP_LEASE); when refused for that, or unsupported, ``/proc/*/fd`` is scanned instead, which
    sees the processes this user may inspect (None if some could not be read).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        take_read_lease(fd)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EBUSY):
            return True
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return writers_in_proc(st.st_dev, st.st_ino)


def take_read_lease(fd: int) -> None:
    """Take a read lease on ``fd``; OSError(EAGAIN) while a process has the file open for writing.

    A writer opening the file while the lease is held makes the kernel signal this process, with
    SIGIO unless told otherwise, and SIGIO's default action ends the process. SIGURG is ignored by
    default, so a writer arriving in that instant only waits for the release.
    """
    fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)


def writers_in_proc(dev: int, ino: int) -> bool | None:
    """Whether a process has the file ``(dev, ino)`` open for writing, from ``/proc/*/fd``.

    True if one is found; False if none and every process could be inspected; None if none was
    found but some processes could not be (another user's, without root).
    """
    unreadable = False
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            unreadable = True
            continue
        except OSError:
            continue  # the process ended
        for fd in fds:
            try:
                st = os.stat(f"{fd_dir}/{fd}")
                if (st.st_dev, st.st_ino) != (dev, ino):
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as fh:
                    flags = next(int(line.split()[1], 8) for line in fh if line.startswith("flags:"))
            except (OSError, StopIteration, ValueError):
                continue
            if flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR) and int(pid) != me:
                return True
    return None if unreadable else False


def display_name(name: str) -> str:
    """An inbox name as valid text: bytes that are not UTF-8 become U+FFFD.

    The name goes into notes, JSON and the event log, and names the copies in ``done/`` and
    ``failed/``; the file's bytes are never changed.
    """
    return os.fsencode(name).decode("utf-8", "replace")


# --- private -----------------------------------------------------------------------------------


def _write_quick(path: Path, data: bytes) -> None:
    """Write through a temporary name and rename, without fsync.

    Enough for what the inbox writes beside a claim: a process crash (SIGKILL) never leaves half a
    file, and after a power loss recovery falls back to the source's own name. fsync per claim
    would cost more than the claim itself (500 files would take seconds).
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(3)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_claim(path: Path, claim: dict) -> None:
    _write_quick(path, (json.dumps(claim, ensure_ascii=False, indent=2) + "\n").encode())


class _NotRegular(Exception):
    pass


class _StillWritten(Exception):
    """A process still had the file open for writing, or it changed while it was read."""


def _read_closed(path: Path, cap: int) -> bytes:
    """The file's bytes, opened without following symlinks; Rejected if empty or too big.

    The bytes count only if no process holds the file open for writing after the read and its
    size and mtime did not change during it; else _StillWritten.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):
            raise _NotRegular(str(path)) from exc
        raise
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _NotRegular(str(path))
        if st.st_size == 0:
            if open_for_writing(path):  # created, not yet written: its writer opened it before the rename
                raise _StillWritten(str(path))
            raise Rejected("the file is empty")
        if st.st_size > cap:
            raise Rejected(_too_big(st.st_size, cap))
        data = fh.read(cap + 1)
        after = os.fstat(fh.fileno())
        if ((after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns) or len(data) != after.st_size
                or open_for_writing(path)):
            raise _StillWritten(str(path))
    if len(data) > cap:
        raise Rejected(_too_big(len(data), cap))
    if not data:
        raise Rejected("the file is empty")
    return data


def _check_text(suffix: str, data: bytes) -> str | None:
    """Text kinds must be UTF-8 (a BOM is fine); returns the text, or None for other kinds."""
    if suffix.lower() not in TEXT_SUFFIXES:
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Rejected(
            f"the file is not valid UTF-8 (bad byte at offset {exc.start}); save it as UTF-8"
        ) from None
    if not text.strip():
        raise Rejected("the file holds only whitespace")
    return text


def _too_big(size: int, cap: int) -> str:
    return (f"the file is {size:,} bytes, over the limit of {cap:,} bytes "
            f"(daemon.max_input_bytes)")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

