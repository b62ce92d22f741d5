"""An honest CLI (issue 14): the daemon's lock tells whether it runs, and the commands say so.

Real processes throughout: a real daemon (``ServiceDaemon``, the fixture stages), the installed
``.venv/bin/moviegen`` as a subprocess, real SQLite.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures_service import ROOT, ServiceDaemon, drop, wait_for

MOVIEGEN = ROOT / ".venv" / "bin" / "moviegen"
JOB_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")


def moviegen(*args: str, env: dict[str, str] | None = None, columns: int = 200,
             timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the installed console script (as a user would), with a fixed terminal width."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MOVIEGEN_", "NOTIFY_SOCKET", "WATCHDOG_"))}
    base.update({"COLUMNS": str(columns), **(env or {})})
    return subprocess.run([str(MOVIEGEN), *args], capture_output=True, text=True, env=base, cwd=ROOT,
                          timeout=timeout)


@pytest.fixture
def daemons():
    started: list[ServiceDaemon] = []
    yield started
    for daemon in started:
        if daemon.alive():
            daemon.kill9()


def job_events(daemon: ServiceDaemon, job_id: str, after: int = 0) -> list[tuple[str, str | None]]:
    return list(daemon.query("SELECT kind, stage FROM events WHERE job_id = ? AND seq > ? "
                             "AND kind != 'stage.progress' ORDER BY seq", (job_id, after)))


def max_seq(daemon: ServiceDaemon) -> int:
    return daemon.query("SELECT coalesce(max(seq), 0) FROM events")[0][0]


def test_a_second_run_names_the_running_pid(tmp_path: Path, daemons) -> None:
    """A second `moviegen run` on the same home prints a sentence with the first one's pid, exits 1."""
    daemon = ServiceDaemon(tmp_path / "home")
    daemons.append(daemon)
    daemon.start()
    second = moviegen("run", "--home", str(daemon.home))
    assert second.returncode == 1
    assert f"already running on {daemon.home} (pid {daemon.proc.pid})" in second.stderr
    assert daemon.alive()
    status = moviegen("status", "--home", str(daemon.home))
    assert f"daemon running (pid {daemon.proc.pid})" in status.stdout
    assert daemon.stop() == 0


def test_a_stopped_daemon_is_reported_and_a_cancel_waits_for_the_next_start(tmp_path: Path, daemons) -> None:
    """SIGTERM mid-slides: `events --follow` stops with a message (exit 3), `status` says since when
    the daemon is not running and shows the job interrupted, `cancel` says it waits; at the next
    start the job is recorded cancelled in slides, without running anything again."""
    daemon = ServiceDaemon(tmp_path / "home")
    daemons.append(daemon)
    home = str(daemon.home)
    (daemon.home / "gates" / "hold-slides").touch()
    daemon.start()
    drop(daemon.home / "inbox", "paused.md", "# Paused\n")
    job = wait_for(lambda: daemon.job_of("paused.md"), 20, "the claim", daemon)
    wait_for(lambda: daemon.state(job) == "slides", 20, "the slides stage", daemon)

    follower = subprocess.Popen([str(MOVIEGEN), "events", job, "--follow", "--home", home],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                env={**daemon.env, "COLUMNS": "200"})
    time.sleep(1.5)
    assert follower.poll() is None  # the daemon runs: it keeps following
    assert daemon.stop() == 0
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 3, (out, err)
    stopped_at = daemon.query("SELECT at FROM events WHERE kind = 'daemon.stopped'")[0][0]
    since = stopped_at[:19].replace("T", " ")
    assert f"daemon not running since {since} UTC" in err and f"job {job} stays slides" in err

    status = moviegen("status", "--home", home)
    assert status.returncode == 0
    assert f"daemon not running since {since} UTC" in status.stdout
    row = next(line for line in status.stdout.splitlines() if job in line)
    assert "interrupted" in row and "slides" in row
    again = moviegen("events", job, "--follow", "--home", home)
    assert again.returncode == 3 and "daemon not running since" in again.stderr  # not waiting forever
    history = moviegen("events", job, "--home", home)
    assert history.returncode == 0 and "continues when a daemon starts" in history.stderr

    cancel = moviegen("cancel", job, "--home", home)
    assert cancel.returncode == 0
    assert "cancel recorded" in cancel.stdout and "waits for the next start" in cancel.stdout
    before = max_seq(daemon)
    daemon.start()
    wait_for(lambda: daemon.state(job) == "cancelled", 20, "the cancel to apply", daemon)
    assert daemon.stop() == 0
    after = job_events(daemon, job, before)
    assert after == [("job.cancelled", "slides")]  # nothing resumed first, the right stage
    assert daemon.query("SELECT stage, state FROM jobs WHERE job_id = ?", (job,)) == [("slides", "cancelled")]
    runs = (daemon.home / "state" / "jobs" / job / "runs.log").read_text().split()
    assert runs == ["fetch", "script", "audio", "slides"]


def test_a_retry_without_a_daemon_waits_and_resumes_at_the_next_start(tmp_path: Path, daemons) -> None:
    """After kill -9, status reports the last event's time; a retry is recorded and applied at the start."""
    daemon = ServiceDaemon(tmp_path / "home")
    daemons.append(daemon)
    home = str(daemon.home)
    (daemon.home / "gates" / "fail-audio").touch()
    daemon.start()
    drop(daemon.home / "inbox", "flaky.md", "# Flaky\n")
    job = wait_for(lambda: daemon.job_of("flaky.md"), 20, "the claim", daemon)
    wait_for(lambda: daemon.state(job) == "failed", 20, "the failure", daemon)
    daemon.kill9()
    last_at = daemon.query("SELECT at FROM events ORDER BY seq DESC LIMIT 1")[0][0]
    status = moviegen("status", "--home", home)
    assert f"daemon not running since {last_at[:19].replace('T', ' ')} UTC" in status.stdout

    (daemon.home / "gates" / "fail-audio").unlink()
    retry = moviegen("retry", job, "--home", home)
    assert retry.returncode == 0 and "waits for the next start" in retry.stdout
    daemon.start()
    wait_for(lambda: daemon.state(job) == "done", 20, "the retried job to finish", daemon)
    assert daemon.stop() == 0


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["events", "20261126-010000-aaaaaa"],
                                     ["cancel", "20261126-010000-aaaaaa"], ["retry", "20261126-010000-aaaaaa"],
                                     ["rebuild"]])
def test_read_only_commands_on_a_missing_home_say_so_and_create_nothing(tmp_path: Path, command: list[str]) -> None:
    """A home that does not exist is an error naming the systemd home and MOVIEGEN_HOME; nothing is created."""
    missing = tmp_path / "typo"
    result = moviegen(*command, "--home", str(missing))
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert f"{missing} does not exist" in message
    assert "/var/lib/moviegen" in message and "MOVIEGEN_HOME" in message
    assert not missing.exists()
    via_env = moviegen(*command, env={"MOVIEGEN_HOME": str(missing)})
    assert via_env.returncode == 2 and "$MOVIEGEN_HOME" in via_env.stderr
    assert not missing.exists()


def test_status_on_a_home_where_no_daemon_ran_creates_no_database(tmp_path: Path) -> None:
    """An existing home without an event log: an empty answer, and still no database."""
    home = tmp_path / "home"
    home.mkdir()
    result = moviegen("status", "--home", str(home))
    assert result.returncode == 0 and "daemon not running (it has never run on this home)" in result.stdout
    assert json.loads(moviegen("status", "--json", "--home", str(home)).stdout) == []
    assert moviegen("cancel", "x", "--home", str(home)).returncode == 2
    assert not (home / "state").exists()


def test_doctor_on_a_missing_home_names_the_systemd_home(tmp_path: Path) -> None:
    """doctor still runs its checks, and says where the service's home is; it creates nothing."""
    missing = tmp_path / "nowhere"
    result = moviegen("doctor", "--home", str(missing))
    text = " ".join(result.stdout.split())
    assert "does not exist yet" in text and "/var/lib/moviegen" in text
    assert not missing.exists()


def test_status_never_wraps_job_ids_at_80_columns(tmp_path: Path, daemons) -> None:
    """At 80 columns, with long sources and errors, every job id stays whole on one line."""
    daemon = ServiceDaemon(tmp_path / "home")
    daemons.append(daemon)
    (daemon.home / "gates" / "fail-script").touch()
    daemon.start()
    names = [f"a-rather-long-article-name-about-tomatoes-{n}.md" for n in range(3)]
    for name in names:
        drop(daemon.home / "inbox", name, f"# {name}\n")
    jobs = [wait_for(lambda n=name: daemon.job_of(n), 20, "the claim", daemon) for name in names]
    wait_for(lambda: all(daemon.state(j) == "failed" for j in jobs), 30, "the failures", daemon)
    assert daemon.stop() == 0
    result = moviegen("status", "--home", str(daemon.home), columns=80)
    assert result.returncode == 0
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert set(JOB_ID.findall(result.stdout)) == set(jobs)


def test_an_unknown_state_is_refused_with_the_allowed_ones(tmp_path: Path) -> None:
    """`status --state bogus` is a usage error listing the states."""
    home = tmp_path / "home"
    home.mkdir()
    result = moviegen("status", "--state", "bogus", "--home", str(home))
    assert result.returncode == 2
    assert "'bogus' is not one of" in result.stderr and "'failed'" in result.stderr and "'slides'" in result.stderr


def test_config_errors_name_the_file_the_key_and_the_allowed_values(tmp_path: Path) -> None:
    """A typo, a bad value and an unknown section: one readable line each, no pydantic dump."""
    home = tmp_path / "home"
    home.mkdir()
    config = home / "moviegen.toml"
    config.write_text('[video]\nrenderer = "remotoin"\nwidht = 640\n[daemon]\nmax_jobs = 0\n[vidoe]\nfps = 30\n')
    result = moviegen("status", "--home", str(home))
    assert result.returncode == 2
    err = result.stderr
    assert f"invalid settings in {config} (4 problems)" in err
    assert "[video] renderer = 'remotoin': not allowed; allowed values: 'ffmpeg' or 'remotion'" in err
    assert "[video] widht: unknown key (did you mean width?); [video] accepts:" in err
    assert "[daemon] max_jobs = 0: Input should be greater than or equal to 1 (jobs running at once past their fetch (fetches wait on network slots))" in err
    assert "vidoe: unknown key (did you mean video?)" in err
    assert "errors.pydantic.dev" not in err and "extra_forbidden" not in err
    from_env = moviegen("status", "--home", str(tmp_path), env={"MOVIEGEN_VIDEO__RENDERER": "vlc"})
    assert from_env.returncode == 2 and "MOVIEGEN_VIDEO__RENDERER" in from_env.stderr
    config.write_text("[daemon]\nmax_jobs = 2\nmax_jobs = 3\n")
    broken = moviegen("status", "--home", str(home))
    assert broken.returncode == 2 and f"the settings file {config} is not valid TOML" in broken.stderr


def test_doctor_checks_remotion_only_when_it_is_the_renderer(tmp_path: Path) -> None:
    """With the default ffmpeg renderer doctor says nothing about Remotion; configured, it checks it."""
    home = tmp_path / "home"
    home.mkdir()
    plain = moviegen("doctor", "--home", str(home))
    assert "remotion:" not in plain.stdout
    chosen = moviegen("doctor", "--home", str(home), env={"MOVIEGEN_VIDEO__RENDERER": "remotion"})
    assert "remotion: chromium" in chosen.stdout and "remotion: node" in chosen.stdout


def test_setup_installs_chromium_for_the_remotion_opt_in() -> None:
    """scripts/setup.sh asks for Chromium and Node.js when MOVIEGEN_VIDEO__RENDERER=remotion, not otherwise."""
    script = (ROOT / "scripts" / "setup.sh").read_text()
    # The script's package checks alone (up to the install step), with no tool on PATH.
    checks = script.split('cd "$(dirname "$0")/.."')[1].split("\nif (( ${#missing[@]} )); then")[0]
    bash = shutil.which("bash")

    def missing(env: dict[str, str]) -> list[str]:
        probe = subprocess.run([bash, "-c", checks + '\necho "missing=${missing[*]:-}"'], capture_output=True,
                               text=True, env={"PATH": "/nonexistent", **env}, check=True)
        return probe.stdout.split("missing=")[-1].split()

    remotion = missing({"MOVIEGEN_VIDEO__RENDERER": "remotion"})
    assert "nodejs" in remotion
    assert ("chromium" in remotion) == (not Path("/usr/bin/chromium").exists())
    plain = missing({})
    assert "nodejs" not in plain and "chromium" not in plain


# --- failure notes point to the real fix ---------------------------------------------------------


def test_notes_name_the_dropped_file_and_send_persona_errors_to_the_configuration(tmp_path: Path, daemons) -> None:
    """With the real stages: a script naming an unconfigured persona fails with a note that says to
    fix the configuration (naming the file and [[personas]]); an article too short to use fails with
    a note that names the dropped file, not the job's internal copy."""
    from tests.e2e import DaemonProcess

    daemon = DaemonProcess(tmp_path / "home")
    daemons.append(daemon)
    daemon.start()
    inbox, failed = daemon.home / "inbox", daemon.home / "failed"
    drop(inbox, "ghost.yaml", "title: Ghost\nsections:\n  - title: One\n    narrations:\n"
                              "      - {text: こんにちは, persona_id: ghost}\n")
    drop(inbox, "tiny-note.md", "# Hi\n\nok\n")
    for name in ("ghost.yaml", "tiny-note.md"):
        wait_for((failed / f"{name}.error.txt").exists, 60, f"the note for {name}", daemon)
    assert daemon.stop() == 0

    ghost = (failed / "ghost.yaml.error.txt").read_text()
    config = daemon.home / "moviegen.toml"
    assert "names personas the configuration does not define" in ghost and "[[personas]]" in ghost
    assert f"what to do: fix the configuration ({config})" in ghost and "moviegen retry" in ghost
    assert "fix the input" not in ghost
    tiny = (failed / "tiny-note.md.error.txt").read_text()
    assert "no article text found in tiny-note.md" in tiny
    assert "state/jobs" not in tiny and "source.md" not in tiny


def test_the_audio_stage_calls_an_unknown_persona_a_configuration_error(tmp_path: Path) -> None:
    """A script that reaches audio with a persona the settings lack (e.g. removed since): ConfigError,
    naming the id, [[personas]] and the settings file."""
    from stages.audio import generate_audio
    from stages.base import ConfigError, InputError
    from stages.settings import load_settings

    config = tmp_path / "moviegen.toml"
    config.write_text('[[personas]]\nid = "zundamon"\nname = "ずんだもん"\n')
    settings = load_settings(config=config, home=tmp_path)
    script = tmp_path / "script.yaml"
    script.write_text("title: T\nsections:\n  - title: One\n    narrations:\n      - {text: はい, persona_id: metan}\n")
    with pytest.raises(ConfigError) as caught:
        generate_audio(script, tmp_path / "out", settings)
    assert isinstance(caught.value, InputError)  # still never retried by itself
    message = str(caught.value)
    assert "'metan'" in message and '[[personas]] entry with id = "metan"' in message and str(config) in message


# --- the lock itself ------------------------------------------------------------------------------


def test_a_status_probe_never_stops_a_daemon_from_starting(tmp_path: Path) -> None:
    """A CLI probe holds the lock shared for an instant; a daemon starting then waits for it rather
    than refusing to start. A real holder is reported with its pid; a released lock means no daemon."""
    import fcntl
    import threading

    from daemon.lock import AlreadyRunning, daemon_pid, hold_home_lock, lock_path

    state = tmp_path / "state"
    assert daemon_pid(state) is None and not state.exists()  # probing creates nothing
    first = hold_home_lock(state)
    first.close()
    assert daemon_pid(state) is None  # the file stays, with a stale pid: the lock is what counts
    probe = open(lock_path(state))
    fcntl.flock(probe.fileno(), fcntl.LOCK_SH)
    threading.Timer(0.3, probe.close).start()
    held = hold_home_lock(state)  # waits out the probe
    assert daemon_pid(state) == os.getpid()
    with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
        hold_home_lock(state, tmp_path)
    held.close()
    assert daemon_pid(state) is None
