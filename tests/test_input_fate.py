"""Every dropped file ends in exactly one place, with an event saying why: real folders, real SQLite.

The fuzz test drives the inbox claim and the outbox's deliver/fail directly (no renders), over
hostile names: up to 255 bytes, newlines, emoji, kanji, shell characters, leading dashes, spaces
and dots. The live-daemon tests are in ``tests/test_inbox_writers.py``.
"""

from __future__ import annotations

import collections
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from daemon.events import EventStore
from daemon.inbox import Inbox, display_name, is_ignored
from daemon.outbox import DUPLICATE_SUFFIX, NOTE_SUFFIX, Outbox, slugify
from stages.base import NAME_MAX, atomic_copy, atomic_write_text, fit_name
from stages.settings import load_settings

NOTES = (NOTE_SUFFIX, DUPLICATE_SUFFIX)
ALPHABET = st.sampled_from(
    list("ab-_ .,~+=@%") + list("$;|&*?'\"`<>(){}[]!#\\\n\t\r") + ["漢", "字", "ト", "マ", "ー", "😀", "🍅", "é", "\u200b"]
    + ["\udcff", "\udce9"]  # bytes that are not UTF-8 (0xff, a Latin-1 é), as os.fsdecode gives them
)
SUFFIXES = st.sampled_from([".md", ".yaml", ".txt", ".html", ".pdf", "", ".MD", ".md.", ".tar.gz"])


@st.composite
def names(draw) -> str:
    """A file name (no '/' or NUL) of at most NAME_MAX bytes, often near the limit; not always UTF-8."""
    stem = draw(st.text(ALPHABET, min_size=1, max_size=90))
    if draw(st.booleans()):
        stem = draw(st.sampled_from(["-", "--", "-rf ", " ", "..", "$(", "漢" * 80])) + stem
    suffix = draw(SUFFIXES)
    name = fit_name(stem * draw(st.integers(1, 4)) + suffix, draw(st.sampled_from([NAME_MAX, NAME_MAX, 200, 60])))
    if name in ("", ".", "..") or name.startswith("."):
        name = "x" + name
    return fit_name(name, NAME_MAX)


def _home(root: Path):
    s = load_settings(home=root / "home", daemon={"settle_seconds": 0, "max_input_bytes": 4096})
    for folder in (s.inbox, s.jobs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    return s


def _content(name: str, token: int) -> bytes:
    suffix = Path(name).suffix.lower()
    if suffix == ".yaml":
        return f"title: t{token}\nsections: []\n".encode()
    if suffix == ".txt":
        return f"https://example.com/{token}\n".encode()
    return f"# title {token}\n\nbody\n".encode()


def _finish(settings, store: EventStore, outbox: Outbox, job_id: str, deliver: bool) -> None:
    """What the runner does at the end of a job: deliver (and record it) or record the failure."""
    job_dir = settings.jobs_dir / job_id
    store.append(job_id, "job.started", stage="fetch")
    if deliver:
        (job_dir / "video.mp4").write_bytes(b"mp4 of " + job_id.encode())
        (job_dir / "timeline.json").write_text('{"duration": 1.0}')
        output = outbox.deliver(job_id)
        store.append(job_id, "stage.finished", "video", next=None)
        store.append(job_id, "job.finished", output=output)
    else:
        store.append(job_id, "stage.failed", "fetch", error="the article could not be read")
        store.append(job_id, "job.failed", "fetch", stage="fetch", error="the article could not be read")
        outbox.fail(job_id, "fetch", "the article could not be read")


def _files(folder: Path) -> dict[str, bytes]:
    if not folder.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.endswith(NOTES)}


@hyp_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    drops=st.lists(st.tuples(names(), st.sampled_from(["new", "dup", "empty"]), st.booleans()),
                   min_size=1, max_size=6, unique_by=lambda d: d[0]),
    retry_then_deliver=st.booleans(),
)
def test_every_dropped_file_ends_in_exactly_one_place(drops, retry_then_deliver) -> None:
    """Each input ends once: delivered (done/), failed/ with a note, or a duplicate in done/ with an
    honest note (in failed/ if its job failed); every name fits NAME_MAX; every fate is an event."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = _home(Path(tmp))
        store = EventStore(settings.db_path)
        try:
            _run_example(settings, store, drops, retry_then_deliver)
        finally:
            store.close()


def _run_example(settings, store: EventStore, drops, retry_then_deliver: bool) -> None:
    inbox, outbox = Inbox(settings, store), Outbox(settings, store=store)
    expected: collections.Counter[bytes] = collections.Counter()
    ignored: dict[str, bytes] = {}
    deliver_by_content: dict[bytes, bool] = {}
    first_content: bytes | None = None
    for token, (name, what, deliver) in enumerate(drops):
        if what == "empty":
            body = b""
        elif what == "dup" and first_content is not None:
            body = first_content
        else:
            body = _content(name, token)
        first_content = first_content or (body or None)
        deliver_by_content.setdefault(body, deliver)
        (settings.inbox / name).write_bytes(body)
        if is_ignored(name):
            ignored[name] = body
        else:
            expected[body] += 1

    jobs = inbox.poll()
    assert sorted(p.name for p in settings.inbox.iterdir()) == sorted(ignored)
    for job_id in jobs:
        body = (settings.jobs_dir / job_id / "claim.json").read_text()
        source = next((settings.jobs_dir / job_id).glob("source.*")).read_bytes()
        _finish(settings, store, outbox, job_id, deliver_by_content.get(source, True))
        assert body  # the claim was written beside the source

    if retry_then_deliver:  # a failed job retried and delivered: its duplicates return to done/
        for job_id in jobs:
            if store.job(job_id)["state"] == "failed":
                store.append(job_id, "job.retry_scheduled", stage="fetch")
                _finish(settings, store, outbox, job_id, True)

    done, failed = _files(settings.done), _files(settings.failed)
    assert collections.Counter([*done.values(), *failed.values()]) == expected
    for name in failed:
        note = (settings.failed / f"{name}{NOTE_SUFFIX}").read_text()
        assert "what to do:" in note and "file:" in note
    for note in settings.done.glob(f"*{DUPLICATE_SUFFIX}") if settings.done.is_dir() else []:
        text = note.read_text()
        assert "still in progress" not in text, "every job has ended; no note may promise a video"
        assert "delivered it as outbox/" in text
        assert (settings.done / note.name[: -len(DUPLICATE_SUFFIX)]).exists()
    for folder, _, files in os.walk(settings.home):
        for file in files:
            assert len(os.fsencode(file)) <= NAME_MAX
            assert not file.endswith((".tmp", ".part")) and ".part." not in file, f"debris: {folder}/{file}"

    kinds = collections.Counter(e["kind"] for e in store.events())
    fresh_duplicates = [e for e in store.events(kinds=["input.duplicate"])
                        if "still in progress" in e["data"]["reason"]]
    assert kinds["job.submitted"] + kinds["input.rejected"] + len(fresh_duplicates) == sum(expected.values())
    names_logged = {e["data"]["name"] for e in store.events(kinds=["job.submitted", "input.rejected", "input.duplicate"])}
    assert names_logged == {display_name(n) for n, _, _ in drops if not is_ignored(n)}


def test_an_80_kanji_name_is_delivered_and_its_input_lands_in_done(tmp_path: Path) -> None:
    """243 bytes of name: the temp names of the copy into done/ and the notes all fit; a 255-byte
    duplicate of it is shortened so its ``.duplicate.txt`` / ``.error.txt`` fit."""
    settings = _home(tmp_path)
    store = EventStore(settings.db_path)
    name, copy = "漢" * 80 + ".md", "漢" * 84 + ".md"  # 243 and 255 bytes
    (settings.inbox / name).write_text("# 長い名前\n\n本文\n")
    [job_id] = Inbox(settings, store).poll()
    (settings.inbox / copy).write_text("# 長い名前\n\n本文\n")
    assert Inbox(settings, store).poll() == []
    [short] = [p.name for p in settings.done.iterdir() if p.name.endswith(".md")]
    assert len(os.fsencode(short + DUPLICATE_SUFFIX)) <= NAME_MAX and short.startswith("漢" * 70)

    outbox = Outbox(settings, store=store)
    _finish(settings, store, outbox, job_id, deliver=False)
    assert (settings.failed / f"{name}{NOTE_SUFFIX}").exists()
    assert (settings.failed / f"{short}{NOTE_SUFFIX}").exists()  # the duplicate followed its job
    assert f"file:  {copy}" in (settings.failed / f"{short}{NOTE_SUFFIX}").read_text()
    store.append(job_id, "job.retry_scheduled", stage="fetch")
    _finish(settings, store, outbox, job_id, deliver=True)
    assert (settings.done / name).read_text() == "# 長い名前\n\n本文\n"
    assert (settings.done / short).exists() and (settings.done / f"{short}{DUPLICATE_SUFFIX}").exists()
    assert list(settings.failed.iterdir()) == []
    store.close()


def test_a_name_failing_with_its_note_too_long_is_shortened_at_a_character_boundary(tmp_path: Path) -> None:
    """An unknown type with a 253-byte emoji name goes to failed/ under a shortened, valid UTF-8 name."""
    settings = _home(tmp_path)
    store = EventStore(settings.db_path)
    name = "🍅" * 62 + ".pdf"  # 252 bytes
    (settings.inbox / name).write_bytes(b"%PDF")
    assert Inbox(settings, store).poll() == []
    [kept] = [p for p in settings.failed.iterdir() if not p.name.endswith(NOTE_SUFFIX)]
    assert kept.name.endswith(".pdf") and set(kept.name[:-4]) == {"🍅"}
    assert len(os.fsencode(kept.name + NOTE_SUFFIX)) <= NAME_MAX
    assert f"file:  {name}" in (settings.failed / f"{kept.name}{NOTE_SUFFIX}").read_text()
    [event] = store.events(kinds=["input.rejected"])
    assert event["job_id"] is None and event["data"]["name"] == name
    assert event["data"]["moved_to"] == f"failed/{kept.name}"
    store.close()


def test_a_name_that_is_not_utf8_keeps_its_bytes_and_gets_a_readable_name(tmp_path: Path) -> None:
    """A Latin-1 file name is claimed; notes, claim and events carry U+FFFD; the content is untouched."""
    settings = _home(tmp_path)
    store = EventStore(settings.db_path)
    raw = os.fsencode(settings.inbox) + b"/caf\xe9.pdf"
    with open(raw, "wb") as fh:
        fh.write(b"%PDF")
    assert Inbox(settings, store).poll() == []
    assert (settings.failed / "caf\ufffd.pdf").read_bytes() == b"%PDF"
    assert store.events(kinds=["input.rejected"])[0]["data"]["name"] == "caf\ufffd.pdf"
    store.close()


@pytest.mark.parametrize("title", ["トマト😀" * 30, "漢" * 60, "a" * 300])
def test_outbox_slugs_fit_with_date_suffix_and_temp_names(title: str) -> None:
    """A slug is at most 150 bytes, so <date>-<slug>-<id>.json and its temp sibling fit."""
    slug = slugify(title)
    assert len(slug.encode()) <= 150
    assert slug and slug == slug.encode().decode()


def test_temp_names_of_atomic_writes_fit(tmp_path: Path) -> None:
    """A 255-byte target gets a temp sibling that fits; the write lands under the full name."""
    target = tmp_path / ("字" * 84 + ".txt")  # 256 - 4... 84*3 + 4 = 256: one too many
    target = tmp_path / fit_name(target.name)
    assert len(os.fsencode(target.name)) == 253
    atomic_write_text(target, "x")
    atomic_copy(target, tmp_path / ("ト" * 83 + ".mp4"))
    assert target.read_text() == "x" and (tmp_path / ("ト" * 83 + ".mp4")).read_text() == "x"


# --- fates in the event log ----------------------------------------------------------------------


def test_rejected_duplicate_and_ignored_files_are_events(tmp_path: Path) -> None:
    """Each fate is one event with the file's name and the reason; job_id is NULL."""
    settings = _home(tmp_path)
    store = EventStore(settings.db_path)
    inbox = Inbox(settings, store)
    (settings.inbox / "empty.md").write_bytes(b"")
    (settings.inbox / "notes.pdf").write_bytes(b"%PDF")
    (settings.inbox / "a.md").write_text("# same\n")
    [job_id] = inbox.poll()
    (settings.inbox / "b.md").write_text("# same\n")
    os.symlink("/etc/passwd", settings.inbox / "passwd.md")
    (settings.inbox / "folder.md").mkdir()
    os.mkfifo(settings.inbox / "pipe.md")
    assert inbox.poll() == []

    fates = {e["data"]["name"]: e for e in store.events(kinds=["input.rejected", "input.duplicate", "input.ignored"])}
    assert set(fates) == {"empty.md", "notes.pdf", "b.md", "passwd.md", "folder.md", "pipe.md"}
    assert all(e["job_id"] is None for e in fates.values())
    assert fates["empty.md"]["kind"] == "input.rejected" and "empty" in fates["empty.md"]["data"]["reason"]
    assert "unknown file type '.pdf'" in fates["notes.pdf"]["data"]["reason"]
    assert fates["notes.pdf"]["data"]["moved_to"] == "failed/notes.pdf"
    assert fates["b.md"]["kind"] == "input.duplicate" and fates["b.md"]["data"]["duplicate_of"] == job_id
    assert fates["b.md"]["data"]["moved_to"] == "done/b.md"
    assert "symbolic link" in fates["passwd.md"]["data"]["reason"]
    assert "folder" in fates["folder.md"]["data"]["reason"]
    assert "not a regular file" in fates["pipe.md"]["data"]["reason"]
    store.close()


def test_an_ignored_symlink_is_logged_once_per_name_and_inode(tmp_path: Path) -> None:
    """Rescans and a restarted daemon do not log it again; a new link under the same name is new."""
    settings = _home(tmp_path)
    store = EventStore(settings.db_path)
    link = settings.inbox / "link.md"
    os.symlink("/etc/hostname", link)
    inbox = Inbox(settings, store)
    for _ in range(5):
        inbox.poll()
    assert len(store.events(kinds=["input.ignored"])) == 1
    store.close()

    store = EventStore(settings.db_path)  # the daemon restarted
    Inbox(settings, store).poll()
    assert len(store.events(kinds=["input.ignored"])) == 1
    os.symlink("/etc/hosts", settings.inbox / ".new-link")  # made while the old one exists: a new inode
    os.replace(settings.inbox / ".new-link", link)
    inbox = Inbox(settings, store)
    inbox.poll()
    inbox.poll()
    assert len(store.events(kinds=["input.ignored"])) == 2
    assert link.is_symlink()
    store.close()


def test_duplicates_follow_their_job_to_failed_and_back(tmp_path: Path) -> None:
    """A duplicate's note never promises a video that will not come: it moves with the job's fate."""
    settings = _home(tmp_path)
    store = EventStore(settings.db_path)
    inbox, outbox = Inbox(settings, store), Outbox(settings, store=store)
    (settings.inbox / "a.md").write_text("# same\n")
    [job_id] = inbox.poll()
    (settings.inbox / "copy.md").write_text("# same\n")
    inbox.poll()
    assert "still in progress" in (settings.done / "copy.md.duplicate.txt").read_text()

    _finish(settings, store, outbox, job_id, deliver=False)
    assert not (settings.done / "copy.md").exists() and not (settings.done / "copy.md.duplicate.txt").exists()
    note = (settings.failed / "copy.md.error.txt").read_text()
    assert f"same content as job {job_id}" in note and f"moviegen retry {job_id}" in note
    assert (settings.failed / "copy.md").read_text() == "# same\n"
    moved = [e for e in store.events(kinds=["input.duplicate"]) if "moved_to" in e["data"]][-1]
    assert moved["data"]["moved_to"] == "failed/copy.md" and "did not finish" in moved["data"]["reason"]

    store.append(job_id, "job.retry_scheduled", stage="fetch")
    _finish(settings, store, outbox, job_id, deliver=True)
    assert sorted(p.name for p in settings.failed.iterdir()) == []
    assert (settings.done / "copy.md").read_text() == "# same\n"
    assert "delivered it as outbox/" in (settings.done / "copy.md.duplicate.txt").read_text()
    store.close()


def test_a_cancelled_jobs_input_and_its_duplicate_end_in_failed_with_a_note(tmp_path: Path) -> None:
    """Cancel through a live daemon: the input and its in-flight copy go to failed/, saying so."""
    from tests.fixtures_service import ServiceDaemon, drop, wait_for

    daemon = ServiceDaemon(tmp_path / "home").start()
    home = daemon.home
    try:
        (home / "gates" / "hold-fetch").touch()
        drop(home / "inbox", "a.md", "# cancel me\n")
        job_id = wait_for(lambda: daemon.job_of("a.md"), 30, "the claim", daemon)
        drop(home / "inbox", "copy.md", "# cancel me\n")
        wait_for(lambda: daemon.count("input.duplicate") == 1, 30, "the duplicate", daemon)
        assert daemon.cli("cancel", job_id).returncode == 0
        wait_for(lambda: daemon.state(job_id) == "cancelled", 30, "the cancel", daemon)
        wait_for(lambda: (home / "failed" / "copy.md.error.txt").exists(), 30, "the copy's note", daemon)
        note = (home / "failed" / "a.md.error.txt").read_text()
        assert "cancelled on request" in note and f"moviegen retry {job_id}" in note
        assert (home / "failed" / "a.md").read_text() == "# cancel me\n"
        assert "did not finish" in (home / "failed" / "copy.md.error.txt").read_text()
        assert not (home / "done").exists() or sorted(p.name for p in (home / "done").iterdir()) == []
        assert daemon.alive()
    finally:
        daemon.stop()
