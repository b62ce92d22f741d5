"""The inbox rules, in process: a real EventStore and real folders, no daemon."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from daemon.events import EventStore
from daemon.inbox import Inbox, is_ignored, new_job_id, parse_urls, submit_to_inbox
from stages.settings import load_settings


@pytest.fixture
def settings(tmp_path: Path):
    s = load_settings(home=tmp_path / "home", daemon={"settle_seconds": 3600, "max_input_bytes": 1000})
    for folder in (s.inbox, s.jobs_dir):
        folder.mkdir(parents=True)
    return s


@pytest.fixture
def store(settings):
    db = EventStore(settings.db_path)
    yield db
    db.close()


@pytest.fixture
def inbox(settings, store) -> Inbox:
    return Inbox(settings, store)


def put(settings, name: str, data: bytes | str, age: float = 7200) -> Path:
    """A file in the inbox whose mtime is ``age`` seconds old (old enough to be settled)."""
    path = settings.inbox / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def submitted(store: EventStore) -> list[dict]:
    return store.events(kinds=["job.submitted"])


@pytest.mark.parametrize(
    "text, urls",
    [
        ("https://example.com/a\n", ["https://example.com/a"]),
        ("[InternetShortcut]\r\nURL=https://example.com/win\r\nIconIndex=0\r\n", ["https://example.com/win"]),
        ("# my reading list\nhttps://a.example/1\n\nsee https://a.example/2.\nhttps://a.example/1\n",
         ["https://a.example/1", "https://a.example/2"]),
        ("ftp://files.example/x\n", ["ftp://files.example/x"]),
        ("no links here\n", []),
    ],
)
def test_parse_urls(text: str, urls: list[str]) -> None:
    """URLs one per line, shortcut form, comments, repeats dropped; any scheme is reported."""
    assert parse_urls(text) == urls


def test_job_ids_sort_by_time_and_are_unique() -> None:
    """Ids look like 20261126-022000-3fa2c1 and do not repeat."""
    ids = {new_job_id() for _ in range(500)}
    assert len(ids) == 500
    assert all(len(i) == 22 and i[8] == "-" and i[15] == "-" for i in ids)


@pytest.mark.parametrize("name, ignored", [(".hidden.md", True), ("a.md.part", True), ("b.tmp", True),
                                           ("c.crdownload", True), ("a.md", False), ("notes.PDF", False)])
def test_ignored_names(name: str, ignored: bool) -> None:
    """Hidden files and partial downloads are never looked at."""
    assert is_ignored(name) is ignored


def test_claim_renames_into_the_job_folder(settings, store, inbox) -> None:
    """A settled file is renamed to state/jobs/<id>/source.<ext> and submitted with its hash."""
    put(settings, "Article.MD", "# Title\n\nBody\n")
    [job_id] = inbox.poll()
    assert not (settings.inbox / "Article.MD").exists()
    job_dir = settings.jobs_dir / job_id
    assert (job_dir / "source.md").read_text() == "# Title\n\nBody\n"
    claim = json.loads((job_dir / "claim.json").read_text())
    assert claim["name"] == "Article.MD" and claim["kind"] == "article" and len(claim["sha256"]) == 64
    [event] = submitted(store)
    assert event["job_id"] == job_id
    assert event["data"]["kind"] == "article" and event["data"]["sha256"] == claim["sha256"]
    assert store.job(job_id)["state"] == "queued"


def test_a_fresh_file_waits_for_the_settle_window(settings, store, inbox) -> None:
    """A file modified just now is not taken; once its mtime is old enough it is."""
    put(settings, "fresh.md", "# Fresh\n", age=0)
    assert inbox.poll() == []
    assert inbox.pending() == 1
    assert 0 < inbox.next_due() <= 3600
    put(settings, "fresh.md", "# Fresh\n", age=7200)
    assert len(inbox.poll()) == 1
    assert inbox.pending() == 0


def test_a_file_that_keeps_changing_is_not_taken(settings, store) -> None:
    """With a short settle window, a file growing between polls is held until it stops."""
    settings.daemon.settle_seconds = 0.3
    inbox = Inbox(settings, store)
    path = settings.inbox / "growing.md"
    with open(path, "w") as fh:
        for _ in range(6):
            fh.write("line\n")
            fh.flush()
            assert inbox.poll() == []
            time.sleep(0.1)
    deadline = time.monotonic() + 10
    while not (jobs := inbox.poll()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(jobs) == 1
    assert (settings.jobs_dir / jobs[0] / "source.md").read_text() == "line\n" * 6


def test_symlinks_and_directories_are_left_alone(settings, store, inbox) -> None:
    """A symlink (even to a real file) and a directory stay where they are; nothing is followed."""
    os.symlink("/etc/passwd", settings.inbox / "passwd.md")
    (settings.inbox / "folder.md").mkdir()
    os.symlink(settings.inbox / "folder.md", settings.inbox / "link.yaml")
    assert inbox.poll() == []
    assert (settings.inbox / "passwd.md").is_symlink()
    assert (settings.inbox / "folder.md").is_dir()
    assert submitted(store) == []
    assert not settings.failed.exists() or list(settings.failed.iterdir()) == []


def test_ignored_files_stay(settings, store, inbox) -> None:
    """Hidden and partial files are not claimed, however old."""
    for name in (".secret.md", "big.md.part", "x.tmp", "y.crdownload"):
        put(settings, name, "# x\n")
    assert inbox.poll() == []
    assert sorted(p.name for p in settings.inbox.iterdir()) == [".secret.md", "big.md.part", "x.tmp", "y.crdownload"]


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("empty.md", b"", "empty"),
        ("notes.pdf", b"%PDF-1.4", "unknown file type '.pdf'"),
        ("huge.md", b"x" * 1001, "over the limit"),
        ("latin1.txt", "café https://example.com".encode("latin-1"), "not valid UTF-8"),
        ("random.yaml", bytes(range(256)) * 3, "not valid UTF-8"),
    ],
)
def test_cheap_checks_fail_fast_into_failed(settings, store, inbox, name, data, reason) -> None:
    """Rejected files go to failed/ byte for byte with a note; no job is started."""
    put(settings, name, data)
    assert inbox.poll() == []
    assert (settings.failed / name).read_bytes() == data
    note = (settings.failed / f"{name}.error.txt").read_text()
    assert reason in note and "stage: inbox" in note and "what to do" in note
    assert submitted(store) == []
    assert list(settings.jobs_dir.iterdir()) == []


def test_failed_names_never_collide(settings, store, inbox) -> None:
    """The same bad name twice gives notes.pdf and notes-1.pdf, each with its note."""
    put(settings, "notes.pdf", b"one")
    inbox.poll()
    put(settings, "notes.pdf", b"two")
    inbox.poll()
    assert (settings.failed / "notes.pdf").read_bytes() == b"one"
    assert (settings.failed / "notes-1.pdf").read_bytes() == b"two"
    assert (settings.failed / "notes-1.pdf.error.txt").exists()


def test_a_url_list_becomes_one_job_per_url(settings, store, inbox) -> None:
    """Three URLs make three jobs, each with a one-URL source.url; the list goes to done/."""
    put(settings, "reading.txt", "https://a.example/1\nhttps://a.example/2\n# skip\nhttps://a.example/3\n")
    jobs = inbox.poll()
    assert len(jobs) == 3
    for number, job_id in enumerate(jobs, start=1):
        assert (settings.jobs_dir / job_id / "source.url").read_text() == f"https://a.example/{number}\n"
        assert store.job(job_id)["source"] == f"https://a.example/{number}"
        assert store.job(job_id)["kind"] == "url"
    assert (settings.done / "reading.txt").exists()
    assert sorted(jobs) == jobs


def test_windows_shortcut_is_one_url_job(settings, store, inbox) -> None:
    """A .url in the [InternetShortcut] form is kept byte for byte; its URL is the job's source."""
    body = "[InternetShortcut]\r\nURL=https://example.com/post\r\n"
    put(settings, "post.url", body)
    [job_id] = inbox.poll()
    assert (settings.jobs_dir / job_id / "source.url").read_bytes() == body.encode()
    assert store.job(job_id)["source"] == "https://example.com/post"


def test_identical_content_in_flight_is_not_started_twice(settings, store, inbox) -> None:
    """The second copy goes to done/ with a note naming the job in flight; later, after that
    job ended, the same content starts a new job."""
    put(settings, "a.md", "# Same\n")
    [first] = inbox.poll()
    put(settings, "b.md", "# Same\n")
    assert inbox.poll() == []
    note = (settings.done / "b.md.duplicate.txt").read_text()
    assert first in note
    assert (settings.done / "b.md").read_text() == "# Same\n"
    store.append(first, "job.failed", error="gone")
    put(settings, "c.md", "# Same\n")
    assert len(inbox.poll()) == 1


def test_the_same_url_in_two_forms_is_a_duplicate(settings, store, inbox) -> None:
    """A bare URL and a shortcut to the same URL count as the same content."""
    put(settings, "one.url", "https://example.com/x\n")
    assert len(inbox.poll()) == 1
    put(settings, "two.url", "[InternetShortcut]\nURL=https://example.com/x\n")
    assert inbox.poll() == []


def test_recover_finishes_an_interrupted_claim(settings, store, inbox) -> None:
    """A job folder with claim.json and source but no job.submitted is submitted at start;
    one whose rename never happened is removed."""
    half = settings.jobs_dir / "20261126-000000-aaaaaa"
    half.mkdir()
    (half / "claim.json").write_text(json.dumps({"name": "x.md", "kind": "article", "claimed_at": "t"}))
    (half / "source.md").write_text("# Recovered\n")
    never = settings.jobs_dir / "20261126-000001-bbbbbb"
    never.mkdir()
    (never / "claim.json").write_text(json.dumps({"name": "y.md", "kind": "article", "claimed_at": "t"}))
    bare = settings.jobs_dir / "20261126-000002-cccccc"
    bare.mkdir()
    (bare / "source.yaml").write_text("title: t\n")  # its claim.json was lost (power cut)
    assert inbox.recover() == [half.name, bare.name]
    assert store.job(half.name)["state"] == "queued"
    assert store.job(bare.name)["kind"] == "script"
    assert not never.exists()
    assert inbox.recover() == []


def test_submit_to_inbox_writes_then_renames(tmp_path: Path) -> None:
    """A URL becomes a .url file, a file is copied; no temporary names are left; no overwrite."""
    inbox = tmp_path / "inbox"
    url_file = submit_to_inbox(inbox, "https://example.com/some/post")
    assert url_file.suffix == ".url" and url_file.read_text() == "https://example.com/some/post\n"
    article = tmp_path / "a.md"
    article.write_text("# A\n")
    assert submit_to_inbox(inbox, str(article)).name == "a.md"
    assert submit_to_inbox(inbox, str(article)).name == "a-1.md"
    assert not [p for p in inbox.iterdir() if p.name.startswith(".")]
    with pytest.raises(FileNotFoundError):
        submit_to_inbox(inbox, str(tmp_path / "missing.md"))
