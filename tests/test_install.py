"""`make install`: a virtualenv of its own under PREFIX that keeps working after the clone moves,
and a systemd unit rendered for that prefix that systemd-analyze accepts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.test_systemd import ANALYZE, directives

ROOT = Path(__file__).resolve().parents[1]


def copy_checkout(target: Path) -> None:
    """The working tree as git sees it (tracked and new files, nothing ignored): a clone with the
    current edits, and without .venv or build leftovers."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() or source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name, follow_symlinks=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``make install PREFIX=…`` from a copy of the checkout, then the copy moved away.

    The dependencies come from this test run's own environment (a .pth file in the new venv, and
    pip told not to fetch them), so the test needs no network beyond the build backend pip may
    fetch once; moviegen itself is built and installed for real, not editable.
    """
    base = tmp_path_factory.mktemp("install")
    clone, prefix = base / "clone", base / "opt" / "moviegen"
    copy_checkout(clone)
    python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([python, "-m", "venv", str(prefix / "venv")], check=True, timeout=120)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(prefix / "venv")}))
    (purelib / "moviegen-test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEGEN_")}
    env.update(PYTHON=python, PIP_NO_DEPS="1")
    done = subprocess.run(["make", "install", f"PREFIX={prefix}"], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    moved = base / "moved-away"
    clone.rename(moved)
    return prefix, moved, done.stdout, env


def test_the_installed_command_runs_after_the_clone_moved(installed) -> None:
    """`moviegen --version` works from PREFIX, and its code is the copy in PREFIX, not the clone."""
    prefix, moved, output, env = installed
    version = subprocess.run([str(prefix / "venv" / "bin" / "moviegen"), "--version"], capture_output=True,
                             text=True, env=env, cwd="/", timeout=60)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == "moviegen, version 0.1.0"
    where = subprocess.run(
        [str(prefix / "venv" / "bin" / "python"), "-c",
         "import daemon.cli, stages.script.readings as r; print(daemon.cli.__file__); print(r.__file__)"],
        capture_output=True, text=True, env=env, cwd="/", timeout=60)
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert line.startswith(str(prefix / "venv")), line
    for script in (prefix / "venv" / "bin").iterdir():
        first = script.read_bytes().split(b"\n", 1)[0] if not script.is_symlink() else b""
        if first.startswith(b"#!"):
            assert first.startswith(f"#!{prefix}/venv/bin/".encode()), (script, first)
    assert not moved.with_name("clone").exists()
    assert "systemctl enable --now moviegen" in output


def test_the_installed_package_has_its_data_files(installed) -> None:
    """Files the stages read at run time (the loanword list) are inside the install."""
    prefix, _, _, env = installed
    check = subprocess.run(
        [str(prefix / "venv" / "bin" / "python"), "-c",
         "from stages.script.readings import loanwords; print(len(loanwords()))"],
        capture_output=True, text=True, env=env, cwd="/", timeout=120)
    assert check.returncode == 0, check.stderr
    assert int(check.stdout.strip()) > 10


def test_the_rendered_unit_runs_the_installed_command(installed) -> None:
    """ExecStart= names PREFIX/venv/bin/moviegen; the rest of the unit is the repository's."""
    prefix, _, _, _ = installed
    unit = prefix / "moviegen.service"
    found = directives(unit.read_text(encoding="utf-8"))
    assert found["ExecStart"] == [f"{prefix}/venv/bin/moviegen run --home /var/lib/moviegen"]
    original = directives((ROOT / "systemd" / "moviegen.service").read_text(encoding="utf-8"))
    assert {k: v for k, v in found.items() if k != "ExecStart"} == {k: v for k, v in original.items() if k != "ExecStart"}


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_accepts_the_rendered_unit(installed) -> None:
    """systemd-analyze verify exits 0 with nothing to say about the unit, as it is on disk."""
    prefix, _, _, _ = installed
    result = subprocess.run([ANALYZE, "verify", str(prefix / "moviegen.service")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert [line for line in (result.stdout + result.stderr).splitlines() if "moviegen.service" in line] == []


def test_a_prefix_with_odd_characters_is_refused(tmp_path: Path) -> None:
    """A relative path or one with spaces never reaches a unit file or a shebang."""
    for prefix in ("relative/dir", str(tmp_path / "with space")):
        done = subprocess.run(["bash", str(ROOT / "scripts" / "install.sh"), "--prefix", prefix],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "PREFIX must be an absolute path" in done.stderr
        assert not (tmp_path / "with space").exists()
