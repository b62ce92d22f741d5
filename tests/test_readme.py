"""The README opens with the two commands, and a fresh clone's Makefile provides both."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _opening_commands(readme: str) -> list[str]:
    block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", readme, re.S)
    assert block, "README has no code block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_readme_opens_with_the_two_commands():
    """The first code block of the README is `make demo` then `make test`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert _opening_commands(readme) == ["make demo", "make test"]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_fresh_clone_provides_the_commands(tmp_path: Path):
    """In a fresh clone, `make -n demo` and `make -n test` resolve, and CI calls `make test`."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    readme = (clone / "README.md").read_text(encoding="utf-8")
    for command in _opening_commands(readme):
        target = command.split()[1]
        dry = subprocess.run(["make", "-n", target], cwd=clone, capture_output=True, text=True)
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.strip(), f"make {target} does nothing"
    ci = (clone / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^make test$", ci, re.M), ".ci/run must call the README's test command"
    demo = subprocess.run(["make", "-n", "demo"], cwd=clone, capture_output=True, text=True).stdout
    assert "samples/" in demo and "demo-out" in demo
    assert (clone / "samples").is_dir() and any((clone / "samples").glob("*.md"))
