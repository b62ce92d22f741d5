"""Files a script may name (a section's background image or video): only inside allowed folders.

A script comes from the inbox, so it is untrusted: a path in it may not reach outside the job's
folder or the moviegen home (``../../etc/passwd``, an absolute path, a symlink pointing out).
Paths from the settings (BGM, characters, the default background) are the operator's and trusted.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from stages.base import InputError

if TYPE_CHECKING:
    from stages.settings import Settings


def resolve_script_asset(path: str | Path, settings: "Settings", job_dir: Path, what: str) -> Path:
    """The real file a script's path names, relative paths from the job folder.

    Raises:
        InputError: the file does not exist, is not a regular file, or resolves (symlinks
            followed) outside the job folder and the moviegen home.
    """
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        candidate = job_dir / candidate
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        raise InputError(f"{what}: {str(path)!r} does not exist") from None
    allowed = [job_dir.resolve(), Path(settings.home).expanduser().resolve()]
    if not any(resolved.is_relative_to(root) for root in allowed):
        raise InputError(
            f"{what}: {str(path)!r} is outside the job folder and the moviegen home; "
            "put the file in the home folder and name it from there"
        )
    if not resolved.is_file():
        raise InputError(f"{what}: {str(path)!r} is not a file")
    return resolved
