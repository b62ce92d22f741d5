"""OpenJTalk phrases in a pool of worker processes: same clips, clean cancel, crash and exit handling."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stages.audio import AudioStage, generate_audio
from stages.audio.jtalk_pool import shared_pool, shutdown_pool, warm_pool
from stages.base import Cancelled, JobContext, TransientError
from tests.test_audio_offline import Recorder, index_of, make_settings, write_script

ROOT = Path(__file__).resolve().parent.parent
LINES = [f"{i}番目の文を、ワーカーで読み上げます。" for i in range(1, 7)]
DICTIONARY = [{"surface": "moviegen", "reading": "ムービージェン", "accent": 3}]
PERSONAS = [{"id": "narrator"}, {"id": "quick", "speed": 1.3, "pitch": 0.03}]


def clip_bytes(index_path: Path) -> dict[str, bytes]:
    return {pid: Path(clip["path"]).read_bytes() for pid, clip in index_of(index_path)["clips"].items()}


def mixed_script(path: Path) -> Path:
    narrations = [{"text": "moviegenで作る動画です。"}, *LINES[:3], {"text": LINES[3], "persona_id": "quick"}]
    return write_script(path, narrations)


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")  # a zombie no longer runs


def wait_until(predicate, limit=30.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def own_workers() -> list[int]:
    """Pids of this process's live OpenJTalk worker children."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) if cmdline else 0
        except (OSError, ValueError, IndexError):
            continue
        if parent == os.getpid() and b"stages.audio.jtalk_worker" in cmdline and not gone(int(entry.name)):
            found.append(int(entry.name))
    return found


@pytest.fixture
def pool():
    """A running pool of two workers (shared by the process, as in the daemon)."""
    running = shared_pool(2)
    running.warm_up()
    return running


def test_pool_clips_are_the_in_process_clips_byte_for_byte(tmp_path, pool):
    """Workers load the same user dictionary and voice: every clip's bytes equal the in-process ones."""
    script = mixed_script(tmp_path / "s.yaml")
    alone = make_settings(tmp_path / "a", audio={"workers": 1}, pronunciation=DICTIONARY, personas=PERSONAS)
    pooled = make_settings(tmp_path / "b", audio={"workers": 2}, pronunciation=DICTIONARY, personas=PERSONAS)
    before = pool.phrases
    rec = Recorder()
    pooled_index = generate_audio(script, tmp_path / "job-b", pooled, rec, note=rec.note)
    assert pool.phrases - before == 5  # all went through the workers
    assert [c for c, _ in rec.progress] == sorted(c for c, _ in rec.progress)
    assert rec.progress[-1] == (5, 5)
    assert len(rec.named("clip synthesized")) == 5
    before = pool.phrases
    alone_index = generate_audio(script, tmp_path / "job-a", alone)
    assert pool.phrases == before  # workers=1 stays in this process
    assert clip_bytes(pooled_index) == clip_bytes(alone_index)
    # and the cache keys too: the pooled clips are hits for an in-process run on the same cache
    again = index_of(generate_audio(script, tmp_path / "job-c", make_settings(tmp_path / "b", audio={"workers": 1},
                                                                               pronunciation=DICTIONARY,
                                                                               personas=PERSONAS)))  # fmt: skip
    assert again["stats"] == {"synthesized": 0, "cached": 5}


def test_dictionary_is_applied_in_the_workers(tmp_path, pool):
    """A dictionary word changes the pooled clip as it does in-process (spelled out it is longer)."""
    script = write_script(tmp_path / "s.yaml", ["moviegenで作る", "別の文です。"])
    plain = index_of(generate_audio(script, tmp_path / "j1", make_settings(tmp_path / "p", audio={"workers": 2})))
    worded = make_settings(tmp_path / "w", audio={"workers": 2}, pronunciation=DICTIONARY)
    with_dict = index_of(generate_audio(script, tmp_path / "j2", worded))
    assert with_dict["clips"]["000-000"]["duration"] < plain["clips"]["000-000"]["duration"] - 0.3


def test_cancel_stops_submitting_and_withdraws_queued_phrases(tmp_path, pool):
    """Cancelled after the first clip: no more phrases go out, queued ones are withdrawn."""
    script = write_script(tmp_path / "s.yaml", [f"{line}もう少し長くしておきます。" for line in LINES * 2])
    cancel = threading.Event()
    seen = []

    def progress(current, total, message):
        seen.append(current)
        if current >= 1:
            cancel.set()

    settings = make_settings(tmp_path, audio={"workers": 2})
    with pytest.raises(Cancelled):
        generate_audio(script, tmp_path / "job", settings, progress, cancel=cancel, cache_dir=tmp_path / "cache")
    assert seen == sorted(seen) and max(seen) < len(LINES * 2)
    assert len(list((tmp_path / "cache" / "audio").rglob("*.wav"))) <= 1 + pool.size
    assert not (tmp_path / "job" / "audio" / "index.json").exists()
    # the pool is still fine for the next job
    index = generate_audio(write_script(tmp_path / "t.yaml", LINES[:2]), tmp_path / "next", settings)
    assert index_of(index)["stats"]["synthesized"] == 2
    assert not pool.broken


def test_a_dead_worker_is_a_clear_transient_error_and_the_next_run_has_a_new_pool(tmp_path, pool):
    """Killing the workers mid-job fails the job with TransientError; the retry starts new workers."""
    script = write_script(tmp_path / "s.yaml", [f"{line}続きがあります。" for line in LINES])
    settings = make_settings(tmp_path, audio={"workers": 2})
    victims = pool.pids()

    def progress(current, total, message):
        if current == 1:
            for pid in victims:
                os.kill(pid, signal.SIGKILL)

    with pytest.raises(TransientError, match="OpenJTalk worker process died"):
        generate_audio(script, tmp_path / "job", settings, progress)
    index = generate_audio(script, tmp_path / "retry", settings)
    assert index_of(index)["stats"]["synthesized"] >= 1
    fresh = shared_pool(2)
    assert fresh is not pool
    fresh.warm_up()
    assert len(fresh.pids()) == 2 and not set(fresh.pids()) & set(victims)


def test_workers_die_when_the_parent_is_killed(tmp_path):
    """SIGKILL of the process that owns the pool leaves no orphan worker behind."""
    code = (
        "import sys, time\n"
        "from stages.audio.jtalk_pool import shared_pool\n"
        "pool = shared_pool(2)\n"
        "pool.warm_up()\n"
        "print(*pool.pids(), flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and not any(gone(pid) for pid in pids)
    finally:
        parent.kill()
        parent.wait()
    assert wait_until(lambda: all(gone(pid) for pid in pids)), [p for p in pids if not gone(p)]


def test_a_few_phrases_do_not_start_a_cold_pool(tmp_path):
    """Below the start-up break-even, with no pool running, phrases stay in this process."""
    shutdown_pool()
    script = write_script(tmp_path / "s.yaml", ["短い文。", "もう一つ。"])
    generate_audio(script, tmp_path, make_settings(tmp_path, audio={"workers": 2}))
    assert not warm_pool(2)


def test_workers_setting_defaults_to_the_cores_and_leaves_the_fingerprint_alone(tmp_path):
    """audio.workers is min(2, cores) by default and does not change what the stage makes."""
    settings = make_settings(tmp_path)
    assert settings.audio.workers == min(2, os.cpu_count() or 1)
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    write_script(job_dir / "script.yaml", ["指紋のテスト。"])
    stage = AudioStage()
    job = JobContext("j", job_dir, settings, tmp_path / "cache", job_dir / "script.yaml", "script")
    before = stage.fingerprint(job)
    job.settings = make_settings(tmp_path, audio={"workers": 1})
    assert stage.fingerprint(job) == before


def test_warm_up_starts_the_workers_the_first_job_then_uses(tmp_path):
    """The daemon's warm-up starts the pool for OpenJTalk voices; a first job too short to start a
    cold pool then speaks in the warm workers."""
    shutdown_pool()
    settings = make_settings(tmp_path, audio={"workers": 2})
    AudioStage().warm(settings)
    assert wait_until(lambda: warm_pool(2))
    pool = shared_pool(2)
    assert sorted(own_workers()) == pool.pids()
    script = write_script(tmp_path / "s.yaml", ["短い文。", "もう一つ。"])
    generate_audio(script, tmp_path, settings)
    assert pool.phrases == 2


@pytest.mark.parametrize("overrides", [
    {"audio": {"workers": 1}},
    {"audio": {"workers": 2, "engine": "espeak"}},
    {"audio": {"workers": 2}, "script": {"language": "en"}},  # OpenJTalk reads only Japanese
])
def test_warm_up_starts_no_worker_that_no_job_would_use(tmp_path, overrides):
    """One worker means speaking in-process; espeak or a non-Japanese default needs no OpenJTalk."""
    shutdown_pool()
    AudioStage().warm(make_settings(tmp_path, **overrides))
    time.sleep(0.2)
    assert own_workers() == []
    assert not warm_pool(2) and not warm_pool(1)


def test_phrases_are_spoken_longest_first(tmp_path):
    """The longest uncached phrase goes first, so the last to finish is a short one."""
    shutdown_pool()
    lines = ["短い。", "これは、このスクリプトの中でいちばん長い文なので、最初に読まれます。", "中くらいの長さの文です。"]
    script = write_script(tmp_path / "s.yaml", lines)
    recorder = Recorder()
    generate_audio(script, tmp_path, make_settings(tmp_path, audio={"workers": 1}), recorder, note=recorder.note)
    assert [n["phrase"] for n in recorder.named("clip synthesized")] == ["000-001", "000-002", "000-000"]
