"""Article images: fetched safely, checked, cached by URL, and refused with a reason when unfit.

A URL is downloaded with the fetch stage's safe client (vetted addresses, byte cap, image types
only). A path must stay inside the job folder or the moviegen home. Every image is checked: size
on disk, a decompression-bomb guard, Pillow's ``verify`` and a full ``load``, and a minimum size.
Anything wrong raises :class:`ImageRejected`, and the slide falls back to its text layout.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from PIL import Image

from stages.base import Cancelled, StageError, atomic_write_bytes, atomic_write_json
from stages.cache import touch

if TYPE_CHECKING:
    from stages.settings import Settings

MAX_PIXELS = 40_000_000
"""Refuse images with more pixels than this before decoding them (decompression bombs)."""


class ImageRejected(Exception):
    """An image cannot be used; the message is the reason (for the ``image fallback`` note)."""


@dataclass(frozen=True)
class CheckedImage:
    """A usable image: its bytes' sha256 (for cache keys) and where its bytes are."""

    sha256: str
    path: Path
    width: int
    height: int

    def open(self) -> Image.Image:
        """Decode the image as RGB or RGBA (keeping transparency)."""
        with Image.open(self.path) as im:
            im.draft("RGB", (self.width, self.height))
            im.load()
            has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
            return im.convert("RGBA" if has_alpha else "RGB")


def load_image(source: str, settings: "Settings", *, job_dir: Path, cache_dir: Path,
               cancel: threading.Event | None = None) -> CheckedImage:
    """Fetch (or find) and check the image at ``source`` (an http(s) URL or a path).

    Raises:
        ImageRejected: the image is missing, unreachable, not an image, broken, too small or too big.
        Cancelled: ``cancel`` was set while downloading.
    """
    source = source.strip()
    scheme = urlsplit(source).scheme.lower()
    if scheme in ("http", "https"):
        data, _ = _download(source, settings, cache_dir, cancel)
    elif scheme == "file":
        data = _read_local(Path(unquote(urlsplit(source).path)), settings, job_dir)
    elif scheme and len(scheme) > 1:
        raise ImageRejected(f"unsupported image address {source!r} (use http(s) or a path)")
    else:
        data = _read_local(Path(source), settings, job_dir)
    return _checked(data, settings, cache_dir)


def local_image_path(source: str, settings: "Settings", job_dir: Path) -> Path | None:
    """The file a local image source (a path or ``file:`` URL) names, when it exists and is
    allowed (inside the job folder or the moviegen home); None for URLs and refused paths."""
    source = source.strip()
    scheme = urlsplit(source).scheme.lower()
    if scheme == "file":
        path = Path(unquote(urlsplit(source).path))
    elif scheme and len(scheme) > 1:
        return None
    else:
        path = Path(source)
    try:
        return _resolve_local(path, settings, job_dir)
    except ImageRejected:
        return None


def decode_checked(data: bytes, settings: "Settings", *, min_size: int | None = None) -> Image.Image:
    """Check image bytes (size, bomb guard, verify, load, minimum size) and return the decoded image."""
    limit = settings.slides.max_image_bytes
    if len(data) == 0:
        raise ImageRejected("the image is empty (0 bytes)")
    if len(data) > limit:
        raise ImageRejected(f"the image is {len(data)} bytes, over the limit of {limit}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                _guard_pixels(probe.size)
                probe.verify()
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                decoded = im.copy()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"the image is too large to decode safely: {exc}") from exc
    except Exception as exc:  # Pillow raises many types for broken files
        raise ImageRejected(f"not a readable image ({type(exc).__name__}: {exc})") from exc
    minimum = settings.slides.min_image_size if min_size is None else min_size
    if min(decoded.size) < minimum:
        raise ImageRejected(f"the image is {decoded.width}×{decoded.height}, smaller than {minimum} px")
    return decoded


# --- internals -----------------------------------------------------------------------------------


def _download(url: str, settings: "Settings", cache_dir: Path,
              cancel: threading.Event | None) -> tuple[bytes, Path]:
    folder = cache_dir / "images"
    cached = folder / f"{hashlib.sha256(url.encode('utf-8')).hexdigest()}.img"
    with _lock_for(str(cached)):  # two sections showing one image download it once
        touch(cached)  # a hit is a use: the LRU trim of the cache (slides.cache_max_gb) keeps it
        if cached.is_file() and cached.stat().st_size > 0:
            return cached.read_bytes(), cached
        data = _get(url, settings, cancel)
        atomic_write_bytes(cached, data)
    return data, cached


def _get(url: str, settings: "Settings", cancel: threading.Event | None) -> bytes:
    from stages.fetch.http import get_bytes

    try:
        body = get_bytes(url, settings, max_bytes=settings.slides.max_image_bytes,
                         accept=lambda ct: ct.startswith("image/"), cancel=cancel)
    except Cancelled:
        raise
    except StageError as exc:
        raise ImageRejected(str(exc)) from exc
    except Exception as exc:  # the network is outside our control: any failure is a fallback
        raise ImageRejected(f"could not download {url}: {type(exc).__name__}: {exc}") from exc
    return body.content


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _read_local(path: Path, settings: "Settings", job_dir: Path) -> bytes:
    resolved = _resolve_local(path, settings, job_dir)
    size = resolved.stat().st_size
    if size > settings.slides.max_image_bytes:
        raise ImageRejected(f"the image is {size} bytes, over the limit of {settings.slides.max_image_bytes}")
    return resolved.read_bytes()


def _resolve_local(path: Path, settings: "Settings", job_dir: Path) -> Path:
    candidate = path.expanduser()
    if not candidate.is_absolute():
        candidate = job_dir / candidate
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ImageRejected(f"image file {str(path)!r} does not exist") from None
    allowed = [job_dir.resolve(), Path(settings.home).expanduser().resolve()]
    if not any(resolved.is_relative_to(root) for root in allowed):
        raise ImageRejected(f"image path {str(path)!r} is outside the job folder and the moviegen home: refused")
    if not resolved.is_file():
        raise ImageRejected(f"image path {str(path)!r} is not a file")
    return resolved


def _checked(data: bytes, settings: "Settings", cache_dir: Path) -> CheckedImage:
    """Check once per content: a marker beside the stored bytes remembers a passed check."""
    sha = hashlib.sha256(data).hexdigest()
    store = cache_dir / "images" / f"{sha}.bin"
    marker = store.with_suffix(".json")
    touch(store)  # the slide opens it later: in use now, not the least recently used
    if marker.is_file() and store.is_file():
        try:
            meta = json.loads(marker.read_text("utf-8"))
            if min(meta["width"], meta["height"]) >= settings.slides.min_image_size and \
                    meta["bytes"] <= settings.slides.max_image_bytes:
                return CheckedImage(sha, store, meta["width"], meta["height"])
        except (ValueError, KeyError, TypeError):
            pass
    decoded = decode_checked(data, settings)
    if not store.is_file():
        atomic_write_bytes(store, data)
    atomic_write_json(marker, {"width": decoded.width, "height": decoded.height, "bytes": len(data)})
    return CheckedImage(sha, store, decoded.width, decoded.height)


def _guard_pixels(size: tuple[int, int]) -> None:
    if size[0] * size[1] > MAX_PIXELS:
        raise ImageRejected(f"the image is {size[0]}×{size[1]} pixels, over the limit of {MAX_PIXELS}")
