"""The slides' PNG writer: ordinary PNG files that Pillow and ffmpeg decode to the same pixels."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from stages.slides.png import encode_png


def slide_like(mode: str, size: tuple[int, int] = (64, 36)) -> Image.Image:
    """Flat colour, antialiased shapes and a band of noise (every byte value, rows unlike each other)."""
    image = Image.new(mode, size, (250, 248, 240, 255)[: len(mode)])
    draw = ImageDraw.Draw(image)
    draw.ellipse((4, 4, 30, 30), fill=(20, 80, 200, 180)[: len(mode)])
    draw.text((34, 6), "Aあ", fill=(0, 0, 0, 255)[: len(mode)])
    noise = np.random.default_rng(7).integers(0, 256, (8, size[0], len(mode)), dtype=np.uint8)
    pixels = np.array(image)
    pixels[-8:] = noise
    return Image.fromarray(pixels, mode)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_pillow_reads_back_the_same_pixels(mode: str) -> None:
    """RGB and RGBA slides come back from the file pixel for pixel, in their own mode."""
    image = slide_like(mode)
    with Image.open(io.BytesIO(encode_png(image))) as back:
        assert back.format == "PNG" and back.mode == mode and back.size == image.size
        assert back.tobytes() == image.tobytes()


@pytest.mark.parametrize("mode, pix_fmt", [("RGB", "rgb24"), ("RGBA", "rgba")])
def test_ffmpeg_reads_back_the_same_pixels(tmp_path: Path, mode: str, pix_fmt: str) -> None:
    """The renderer's decoder (ffmpeg) agrees: the file is a valid PNG with the exact pixels."""
    image = slide_like(mode)
    path = tmp_path / "slide.png"
    path.write_bytes(encode_png(image))
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
                         capture_output=True, check=True).stdout
    assert raw == image.tobytes()


def test_other_modes_are_written_by_pillow() -> None:
    """A greyscale or palette picture is still a PNG of the same pixels (through Pillow's writer)."""
    for image in (slide_like("RGB").convert("L"), slide_like("RGB").convert("P")):
        with Image.open(io.BytesIO(encode_png(image))) as back:
            assert back.mode == image.mode and back.tobytes() == image.tobytes()
