"""The systemd unit: systemd-analyze accepts it without a warning, and it has the directives we promise."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "moviegen.service"
ANALYZE = shutil.which("systemd-analyze")


def directives(text: str) -> dict[str, list[str]]:
    """``key -> [values]`` of a unit file (keys may repeat)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


def verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run systemd-analyze verify on a copy whose ExecStart points at an existing binary."""
    copy = tmp_path / "moviegen.service"
    copy.write_text(unit_text.replace("/usr/local/bin/moviegen", sys.executable), encoding="utf-8")
    return subprocess.run([ANALYZE, "verify", str(copy)], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_unit_verifies_without_warnings(tmp_path: Path) -> None:
    """systemd-analyze verify exits 0 and prints nothing about the unit."""
    result = verify(UNIT.read_text(encoding="utf-8"), tmp_path)
    assert result.returncode == 0, result.stderr
    complaints = [line for line in (result.stderr + result.stdout).splitlines() if "moviegen.service" in line]
    assert complaints == []


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt value is reported."""
    broken = UNIT.read_text(encoding="utf-8").replace("Type=notify", "Type=notifyy")
    result = verify(broken, tmp_path)
    assert "moviegen.service" in result.stderr


def test_unit_has_the_promised_directives() -> None:
    """Type=notify with a watchdog, restart on failure, state directory and the sandbox."""
    found = directives(UNIT.read_text(encoding="utf-8"))
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "30",
        "Restart": "on-failure",
        "StateDirectory": "moviegen",
        "Environment": "MOVIEGEN_HOME=/var/lib/moviegen",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "read-only",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "TimeoutStopSec": "15",
        "ReadWritePaths": "/var/lib/moviegen",
    }
    for key, value in expected.items():
        assert value in found.get(key, []), f"{key}={value} missing"
    assert found["ExecStart"] == ["/usr/local/bin/moviegen run --home /var/lib/moviegen"]


def test_unit_bounds_memory_and_does_not_restart_into_a_damaged_log() -> None:
    """MemoryHigh/MemoryMax with OOMPolicy=kill (an OOM kill is a daemon death, which the poison
    rule counts), and the damaged-log exit code stops systemd from restarting."""
    from daemon.app import EXIT_DAMAGED_LOG

    found = directives(UNIT.read_text(encoding="utf-8"))
    assert found.get("MemoryHigh") and found.get("MemoryMax")
    assert found["OOMPolicy"] == ["kill"]
    assert str(EXIT_DAMAGED_LOG) in found["RestartPreventExitStatus"][0].split()
