"""A script's asset paths (section backgrounds) stay inside the job folder and the home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stages.assets import resolve_script_asset
from stages.base import InputError
from stages.settings import load_settings


@pytest.fixture()
def layout(tmp_path: Path):
    home = tmp_path / "home"
    job_dir = home / "state" / "jobs" / "j1"
    job_dir.mkdir(parents=True)
    (job_dir / "bg.png").write_bytes(b"x")
    (home / "backgrounds").mkdir()
    (home / "backgrounds" / "loop.mp4").write_bytes(b"x")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    return load_settings(home=home), job_dir, outside


def test_paths_inside_the_job_or_home_resolve(layout):
    """Relative paths start at the job folder; absolute ones inside the home are fine."""
    settings, job_dir, _ = layout
    assert resolve_script_asset("bg.png", settings, job_dir, "bg") == (job_dir / "bg.png").resolve()
    home_file = settings.home / "backgrounds" / "loop.mp4"
    assert resolve_script_asset(str(home_file), settings, job_dir, "bg") == home_file.resolve()


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink", "etc"])
def test_paths_escaping_are_refused(layout, kind):
    """Absolute paths elsewhere, ../ escapes and symlinks pointing out are InputErrors."""
    settings, job_dir, outside = layout
    if kind == "absolute":
        path = str(outside)
    elif kind == "dotdot":
        path = os.path.relpath(outside, job_dir)
    elif kind == "etc":
        path = "/etc/passwd"
    else:
        (job_dir / "link.png").symlink_to(outside)
        path = "link.png"
    with pytest.raises(InputError, match="outside the job folder"):
        resolve_script_asset(path, settings, job_dir, "section 1 background")


def test_missing_and_non_files_are_refused(layout):
    """A missing file or a folder is a clear InputError."""
    settings, job_dir, _ = layout
    with pytest.raises(InputError, match="does not exist"):
        resolve_script_asset("nope.png", settings, job_dir, "bg")
    with pytest.raises(InputError, match="not a file"):
        resolve_script_asset(".", settings, job_dir, "bg")
