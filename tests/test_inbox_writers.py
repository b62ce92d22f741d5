"""Only closed files are claimed, and long names survive a live daemon: real processes, real files.

Writers are real subprocesses that hold their file open between pieces; the daemon is a real
``moviegen run`` with the fixture stages (``tests/fixtures_service.py``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pytest

from daemon.events import EventStore
from daemon.inbox import Inbox, open_for_writing, submit_to_inbox, writers_in_proc
from daemon.outbox import DUPLICATE_SUFFIX, NOTE_SUFFIX
from stages.settings import load_settings
from tests.fixtures_service import ServiceDaemon, drop, wait_for

# Writes argv[2] pieces of argv[3] bytes to argv[1], pausing argv[4] s between them, file held open;
# prints "open" once the file exists and waits for a line on stdin before closing if argv[5] == "hold".
WRITER = r"""
import sys, time
path, pieces, size, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
with open(path, "wb") as fh:
    print("open", flush=True)
    for number in range(pieces):
        fh.write(bytes([65 + number % 26]) * (size - 1) + b"\n")
        fh.flush()
        time.sleep(pause)
    if sys.argv[5:] == ["hold"]:
        sys.stdin.readline()
print("closed", time.time(), flush=True)
"""


def whole(pieces: int, size: int) -> bytes:
    return b"".join(bytes([65 + n % 26]) * (size - 1) + b"\n" for n in range(pieces))


def writer(path: Path, pieces: int, size: int, pause: float, hold: bool = False) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(pieces), str(size), str(pause),
                             *(["hold"] if hold else [])], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "open"
    return proc


@pytest.fixture
def settings(tmp_path: Path):
    s = load_settings(home=tmp_path / "home", daemon={"settle_seconds": 0, "max_input_bytes": 1 << 20})
    for folder in (s.inbox, s.jobs_dir):
        folder.mkdir(parents=True)
    return s


def test_open_for_writing_sees_another_process_writer(tmp_path: Path) -> None:
    """The lease check and the /proc scan both see a writer in another process, and its absence."""
    path = tmp_path / "a.md"
    proc = writer(path, 1, 10, 0, hold=True)
    try:
        assert open_for_writing(path) is True
        st = os.stat(path)
        assert writers_in_proc(st.st_dev, st.st_ino) is True
    finally:
        proc.communicate("close\n", timeout=10)
    assert open_for_writing(path) is False
    st = os.stat(path)
    assert writers_in_proc(st.st_dev, st.st_ino) is False
    with open(path, "rb"):  # a reader is no writer
        assert open_for_writing(path) is False


def test_a_file_held_open_is_not_claimed_however_old(settings) -> None:
    """A writer pausing with the file open (its mtime long settled) keeps it; after close it is taken whole."""
    store = EventStore(settings.db_path)
    inbox = Inbox(settings, store)
    path = settings.inbox / "slow.md"
    proc = writer(path, 2, 100, 0, hold=True)
    try:
        then = time.time() - 3600
        os.utime(path, (then, then))
        for _ in range(3):
            assert inbox.poll() == []
        assert path.exists() and inbox.pending() == 1 and inbox.next_due() > 0
    finally:
        proc.communicate("close\n", timeout=10)
    inbox.mark_complete("slow.md")  # what the watcher does on the close event
    [job_id] = inbox.poll()
    assert (settings.jobs_dir / job_id / "source.md").read_bytes() == whole(2, 100)
    assert store.job(job_id)["state"] == "queued"
    assert store.events(job_id, kinds=["job.submitted"])[0]["data"]["size"] == 200
    store.close()


def test_a_writer_that_opened_before_the_claim_gives_the_file_back(settings) -> None:
    """A claimed file still open for writing (opened before the rename) goes back to the inbox,
    and is taken whole once closed; the recorded size and hash are the whole file's."""
    store = EventStore(settings.db_path)
    inbox = Inbox(settings, store)
    proc = writer(settings.inbox / "early.md", 1, 50, 0, hold=True)
    job_dir = settings.jobs_dir / "20261126-000000-abcdef"  # a claim the daemon died in the middle of
    job_dir.mkdir()
    (job_dir / "claim.json").write_text('{"name": "early.md", "kind": "article", "claimed_at": "t"}')
    os.rename(settings.inbox / "early.md", job_dir / "source.md")
    try:
        assert inbox.recover() == []
        assert (settings.inbox / "early.md").exists() and not job_dir.exists()
        assert inbox.poll() == []
    finally:
        proc.stdin.write("x\n")
        proc.stdin.flush()
    proc.wait(timeout=10)
    inbox.mark_complete("early.md")
    [job_id] = inbox.poll()
    data = (settings.jobs_dir / job_id / "source.md").read_bytes()
    submitted = store.events(job_id, kinds=["job.submitted"])[0]["data"]
    assert data == whole(1, 50) and submitted["sha256"] == hashlib.sha256(data).hexdigest()
    store.close()


def test_many_slow_writers_against_a_live_daemon(tmp_path: Path) -> None:
    """Ten writers each write a file in pieces with pauses longer than the settle window, holding
    it open: every job is made from the whole file, and no partial file becomes a job."""
    daemon = ServiceDaemon(tmp_path / "home", settle=0.2, rescan=0.3).start()
    inbox = daemon.home / "inbox"
    try:
        procs = {f"slow-{n:02d}.md": writer(inbox / f"slow-{n:02d}.md", 4, 2000 + n, 0.8) for n in range(10)}
        closed = {}
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0
            closed[name] = float(out.split()[-1])
        wait_for(lambda: daemon.count("job.finished") == 10, 120, "ten jobs to finish", daemon)
        rows = daemon.query("SELECT job_id, json_extract(data, '$.name'), json_extract(data, '$.size'),"
                            " json_extract(data, '$.sha256'), at FROM events WHERE kind = 'job.submitted'")
        assert sorted(r[1] for r in rows) == sorted(procs)
        assert daemon.count("input.rejected") == 0
        for job_id, name, size, sha, at in rows:
            assert datetime.fromisoformat(at).timestamp() >= closed[name], f"{name} was claimed while open"
            n = int(name[5:7])
            body = whole(4, 2000 + n)
            assert size == len(body) and sha == hashlib.sha256(body).hexdigest(), name
            job_dir = daemon.home / "state" / "jobs" / job_id
            assert (job_dir / "article.out").read_bytes() == body  # what the fetch stage read
            assert (daemon.home / "done" / name).read_bytes() == body
        assert daemon.alive()
    finally:
        daemon.stop()


def test_an_80_kanji_name_through_a_live_daemon(tmp_path: Path) -> None:
    """An 80-kanji input is delivered and lands in done/; a 84-kanji copy of another input whose
    job fails moves from done/ to failed/ with a note that fits NAME_MAX."""
    daemon = ServiceDaemon(tmp_path / "home").start()
    home, gates = daemon.home, daemon.home / "gates"
    long_name = "漢" * 80 + ".md"
    try:
        article = "# " + "題" * 80 + "\n\n本文。\n"  # the title, and so the outbox slug, is long too
        (tmp_path / long_name).write_text(article)
        submit_to_inbox(home / "inbox", str(tmp_path / long_name))
        job_id = wait_for(lambda: daemon.job_of(long_name), 30, "the claim", daemon)
        wait_for(lambda: daemon.state(job_id) == "done", 60, "the delivery", daemon)
        assert (home / "done" / long_name).read_text() == article
        [video] = (home / "outbox").glob("*.mp4")
        assert "題" * 40 in video.name and (home / "outbox" / f"{video.stem}.json").exists()
        assert not (home / "failed").exists() or list((home / "failed").iterdir()) == []

        (gates / "hold-fetch").touch()
        drop(home / "inbox", "b.md", "# 失敗する記事\n")
        failing = wait_for(lambda: daemon.job_of("b.md"), 30, "the second claim", daemon)
        copy = "字" * 84 + ".md"  # 255 bytes: its notes cannot fit without shortening
        (tmp_path / copy).write_text("# 失敗する記事\n")
        assert submit_to_inbox(home / "inbox", str(tmp_path / copy)).name == copy  # its .part name fits too
        wait_for(lambda: daemon.count("input.duplicate") == 1, 30, "the duplicate", daemon)
        [kept] = [p for p in (home / "done").iterdir() if p.name.startswith("字")
                  and not p.name.endswith(DUPLICATE_SUFFIX)]
        assert (home / "done" / f"{kept.name}{DUPLICATE_SUFFIX}").exists()
        (gates / "fail-fetch").touch()
        (gates / "hold-fetch").unlink()
        wait_for(lambda: daemon.state(failing) == "failed", 30, "the failure", daemon)
        wait_for(lambda: (home / "failed" / f"{kept.name}{NOTE_SUFFIX}").exists(), 30, "the copy's note", daemon)
        assert not (home / "done" / kept.name).exists()
        assert f"file:  {copy}" in (home / "failed" / f"{kept.name}{NOTE_SUFFIX}").read_text()
        assert daemon.alive()
    finally:
        daemon.stop()


def test_the_close_event_takes_a_file_without_waiting_to_settle(tmp_path: Path) -> None:
    """With a 1-hour settle window, a file written in place is claimed once its writer closes it."""
    daemon = ServiceDaemon(tmp_path / "home", settle=3600, rescan=0.3).start()
    try:
        proc = writer(daemon.home / "inbox" / "in-place.md", 3, 100, 0.3)
        assert proc.wait(timeout=30) == 0
        job_id = wait_for(lambda: daemon.job_of("in-place.md"), 30, "the claim after close", daemon)
        assert daemon.query("SELECT json_extract(data, '$.size') FROM events WHERE job_id = ?"
                            " AND kind = 'job.submitted'", (job_id,)) == [(300,)]
    finally:
        daemon.stop()


LEASE_HOLDER = r"""
import os, subprocess, sys, time, fcntl
from daemon.inbox import take_read_lease
fd = os.open(sys.argv[1], os.O_RDONLY)
take_read_lease(fd)
writer = subprocess.Popen([sys.executable, "-c", f"open({sys.argv[1]!r}, 'a').write('more')"])
time.sleep(0.5)  # the writer is blocked in open() and the kernel has signalled us
fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
writer.wait(timeout=10)
print("alive")
"""


def test_a_writer_arriving_during_the_lease_check_does_not_kill_the_daemon(tmp_path: Path) -> None:
    """The lease break signal is one whose default is ignore (SIGIO's default would end the process)."""
    path = tmp_path / "a.md"
    path.write_text("x")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", LEASE_HOLDER, str(path)], capture_output=True, text=True,
                          cwd=root, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "alive", done.stderr
    assert path.read_text() == "xmore"


def test_an_event_takes_a_non_empty_file_at_once_but_never_an_empty_one(tmp_path: Path) -> None:
    """inotify names a file at its creation, before its writer has it open: an empty file named by
    an event waits to settle (then is rejected as empty), a non-empty closed one is taken at once."""
    settings = load_settings(home=tmp_path / "home", daemon={"settle_seconds": 3600})
    settings.inbox.mkdir(parents=True)
    store = EventStore(settings.db_path)
    inbox = Inbox(settings, store)
    (settings.inbox / "empty.md").write_bytes(b"")
    (settings.inbox / "full.md").write_text("# full\n")
    inbox.mark_complete("empty.md")
    inbox.mark_complete("full.md")
    [job_id] = inbox.poll()
    assert store.job(job_id)["source"] == "full.md"
    assert (settings.inbox / "empty.md").exists() and inbox.pending() == 1
    assert store.events(kinds=["input.rejected"]) == []
    store.close()


CHECK = "import sys; from pathlib import Path; from daemon.inbox import open_for_writing; print(open_for_writing(Path(sys.argv[1])))"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_cap_lease_alone_sees_another_users_writer() -> None:
    """The service keeps only CAP_LEASE: enough to see that another user's process still writes a
    file it dropped (without it the daemon cannot tell, and only the settle window counts)."""
    unit = (Path(__file__).resolve().parents[1] / "systemd" / "moviegen.service").read_text()
    assert "CapabilityBoundingSet=CAP_LEASE\n" in unit and "AmbientCapabilities=CAP_LEASE\n" in unit
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o777)
        path = Path(tmp) / "theirs.md"
        other = subprocess.Popen(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "sh", "-c",
                                  'exec 3>>"$0"; echo open; read x', str(path)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert other.stdout.readline().strip() == "open"

        def check(caps: str) -> str:
            done = subprocess.run(["setpriv", f"--bounding-set={caps}", "--inh-caps=-all", "--", sys.executable,
                                   "-c", CHECK, str(path)], capture_output=True, text=True, cwd=root, timeout=60)
            assert done.returncode == 0, done.stderr
            return done.stdout.strip()

        try:
            assert os.stat(path).st_uid == 65534
            assert check("-all,+lease") == "True"
            assert check("-all") == "None"
        finally:
            other.communicate("x\n", timeout=10)
        assert check("-all,+lease") == "False"


def test_an_empty_file_still_open_for_writing_is_given_back_not_rejected(settings) -> None:
    """A file its writer created but has not written yet, claimed in that instant, is not failed as
    empty: it goes back to the inbox and is taken whole once written and closed."""
    store = EventStore(settings.db_path)
    inbox = Inbox(settings, store)
    proc = writer(settings.inbox / "empty.md", 0, 50, 0, hold=True)  # opened, nothing written
    job_dir = settings.jobs_dir / "20261126-000000-abcdee"
    job_dir.mkdir()
    (job_dir / "claim.json").write_text('{"name": "empty.md", "kind": "article", "claimed_at": "t"}')
    os.rename(settings.inbox / "empty.md", job_dir / "source.md")
    try:
        assert inbox.recover() == []
        assert (settings.inbox / "empty.md").exists() and not job_dir.exists()
        assert not settings.failed.exists() or not any(settings.failed.iterdir())
    finally:
        proc.communicate("close\n", timeout=10)
    store.close()
