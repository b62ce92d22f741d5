"""The inbox: which files to take, when they are complete, and how they become jobs.

Rules (DESIGN.md, "Inbox and outbox"):

- Accepted: ``stages.pipeline.INPUT_KINDS``. Ignored and left alone: hidden files, ``*.part``,
  ``*.tmp``, ``*.crdownload``, directories, symlinks and anything else that is not a regular file.
- A file is taken once it is *settled*: its size and mtime have not changed for
  ``daemon.settle_seconds``. Watchdog events (close-after-write, move-in) only wake the loop early;
  a periodic rescan and a scan at start-up catch what events miss.
- Claiming is one atomic ``os.rename`` into ``state/jobs/<job_id>/source.<ext>``; from then on the
  file is ours and every check reads that copy, so nothing can change under us.
- Cheap checks fail fast into ``failed/``: unknown type, empty, over ``daemon.max_input_bytes``,
  text that is not UTF-8. Deeper checks (YAML syntax, a missing or unsupported URL) are the stages'.
- A ``.url``/``.txt`` with several URLs becomes one job per URL; the list itself goes to ``done/``.
- Identical content already in flight is not started twice: the duplicate goes to ``done/`` with a
  ``<name>.duplicate.txt`` note naming the job that will deliver it (the user's request is served,
  nothing needs fixing, so it is not a failure).

Claims are crash-safe: ``claim.json`` is written into the job folder before the rename, so a job
folder holding a source but no ``job.submitted`` (the daemon died in between) is finished at the
next start by :meth:`Inbox.recover`.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from daemon.outbox import (
    CLAIM_FILE,
    DUPLICATE_SUFFIX,
    NOTE_SUFFIX,
    failure_note,
    find_source,
    move_no_clobber,
    read_json,
    unique_path,
)
from stages.base import atomic_write_text
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
    caller (the daemon's event loop).
    """

    def __init__(self, settings: "Settings", store: "EventStore", log: Any = None):
        self.settings = settings
        self.store = store
        self.log = log
        self._seen: dict[str, tuple[tuple[int, int, int], float]] = {}

    @property
    def folder(self) -> Path:
        return self.settings.inbox

    def poll(self) -> list[str]:
        """Scan the inbox once; claim every settled file; return the new job ids."""
        settle = self.settings.daemon.settle_seconds
        mono, wall = time.monotonic(), time.time()
        present: set[str] = set()
        submitted: list[str] = []
        for name, sig in self._candidates():
            present.add(name)
            first = self._seen.get(name)
            if first is None or first[0] != sig:
                self._seen[name] = (sig, mono)
                first = (sig, mono)
            mtime = sig[1] / 1e9
            if mono - first[1] >= settle or 0 <= wall - mtime >= settle:
                self._seen.pop(name, None)
                submitted += self._claim_safely(name)
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return submitted

    def next_due(self) -> float | None:
        """Seconds until the soonest pending file may be settled, or None when none is pending."""
        if not self._seen:
            return None
        settle = self.settings.daemon.settle_seconds
        mono, wall = time.monotonic(), time.time()
        waits = []
        for sig, first in self._seen.values():
            waits.append(min(first + settle - mono, sig[1] / 1e9 + settle - wall))
        return max(0.0, min(waits))

    def pending(self) -> int:
        """How many files are waiting to settle."""
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
        """Take ``inbox/<name>`` now (no settle check); return the job ids it became."""
        path = self.folder / name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return []
        if is_ignored(name) or not stat.S_ISREG(st.st_mode):
            return []
        kind = input_kind(name)
        if kind is None:
            accepted = ", ".join(sorted(INPUT_KINDS))
            self._reject_inbox_file(path, name, kind, f"unknown file type {Path(name).suffix or '(none)'!r}; "
                                    f"accepted: {accepted}")
            return []
        if st.st_size > self.settings.daemon.max_input_bytes:
            self._reject_inbox_file(path, name, kind, _too_big(st.st_size, self.settings.daemon.max_input_bytes))
            return []
        job_id = new_job_id()
        job_dir = self.settings.jobs_dir / job_id
        job_dir.mkdir(parents=True)
        claim = {"name": name, "kind": kind, "claimed_at": _now_iso()}
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
            self._log("inbox.claim_error", name=name, error=repr(exc), level="error")
            return []

    def _admit(self, job_id: str, job_dir: Path, source: Path, claim: dict) -> list[str]:
        """Check a claimed file, then submit it (or its URLs); reject it into failed/ if bad."""
        name, kind = claim["name"], claim["kind"]
        try:
            data = _read_regular(source, self.settings.daemon.max_input_bytes)
        except _NotRegular:
            os.rename(source, self.folder / name)  # swapped for a symlink mid-claim: put it back
            shutil.rmtree(job_dir, ignore_errors=True)
            return []
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
        claim.update(sha256=key, size=len(data))
        _write_claim(job_dir / CLAIM_FILE, claim)
        if self._is_duplicate(key, job_dir, source, name):
            return []
        self.store.submit(job_id, source=claim.get("url") or name, kind=kind, name=name, sha256=key,
                          size=len(data))
        self._log("inbox.claimed", job_id=job_id, name=name, kind=kind, size=len(data))
        return [job_id]

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
        atomic_write_text(
            target.with_name(target.name + DUPLICATE_SUFFIX),
            f"file:  {name}\nsame content as job {existing}, which is still in progress.\n"
            f"No second job was started; its video will appear in outbox/ when it is done.\n"
            f"Follow it with: moviegen events {existing} --follow\n",
        )
        shutil.rmtree(job_dir, ignore_errors=True)
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
        note = failure_note(job_id=None, stage="inbox", error=reason, name=target.name, retryable=False)
        atomic_write_text(target.with_name(target.name + NOTE_SUFFIX), note)
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
        found.sort()
        return found

    def _log(self, event: str, level: str = "info", **fields: Any) -> None:
        if self.log is not None:
            getattr(self.log, level)(event, **fields)


# --- watching ----------------------------------------------------------------------------------


class InboxWatcher:
    """A watchdog observer on the inbox that calls ``wake()`` on creates, closes and move-ins.

    The callback only says "look again"; :meth:`Inbox.poll` decides. ``wake`` is called from the
    observer's thread.
    """

    def __init__(self, folder: Path, wake: Callable[[], None]):
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if event.event_type in ("created", "closed", "moved"):
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
    part = inbox / f".{target.name}.{secrets.token_hex(3)}.part"
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


def _read_regular(path: Path, cap: int) -> bytes:
    """The file's bytes, opened without following symlinks; Rejected if empty or too big."""
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
            raise Rejected("the file is empty")
        if st.st_size > cap:
            raise Rejected(_too_big(st.st_size, cap))
        data = fh.read(cap + 1)
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


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

