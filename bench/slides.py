"""Milliseconds per 1080p slide (goal: under 100 ms), drawn from scratch and from the cache.

Prints ``name=value`` lines: ``ms_per_slide`` (one worker, so it is the cost of one slide),
``ms_per_slide_parallel`` (the default pool, wall time divided by slides), and
``ms_per_slide_cached`` (a rerun: every slide is a cache hit) and ``cpu_ms_per_slide`` (CPU time of
the one-worker run: steadier than wall time on a shared machine). ``ms_per_transparent_slide`` is
the one-worker cost when every slide is transparent (an image ``video.background``: RGBA, text on
panels, a bigger PNG).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import yaml
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stages.settings import load_settings  # noqa: E402
from stages.slides import generate_slides  # noqa: E402

SECTIONS = 24


def script(folder: Path) -> Path:
    picture = Image.new("RGB", (1600, 1000), (70, 130, 200))
    ImageDraw.Draw(picture).ellipse([500, 200, 1100, 800], fill=(255, 214, 90))
    picture.save(folder / "picture.jpg", quality=90)
    sections = []
    for i in range(SECTIONS):
        kind = i % 4
        section = {"title": f"セクション{i}：WALモードの仕組みと注意点",
                   "narrations": ["変更はまず別のファイルに追記されるのだ。読む人は古いページをそのまま読めるので、待たされません。"
                                  f"チェックポイントで本体に書き戻すのだ。（{i}）"]}
        if kind == 1:
            section["source_image_url"] = "picture.jpg"
        elif kind == 2:
            section["slide"] = {"bullets": [f"The write-ahead log grows until a checkpoint ({i})",
                                            "Readers never block writers, and writers never block readers",
                                            "読み込みが多いアプリには、WALモードがおすすめ"]}
        sections.append(section)
    path = folder / "script.yaml"
    path.write_text(yaml.safe_dump({"title": "ベンチマーク：SQLiteのWALモード", "sections": sections},
                                   allow_unicode=True), "utf-8")
    return path


def timed(path: Path, folder: Path, cache: Path, workers: int, *, transparent: bool = False) -> tuple[float, float]:
    """Wall and CPU milliseconds per slide (CPU time is steadier on a shared machine)."""
    video = {"background": {"type": "image", "path": str(folder / "picture.jpg")}} if transparent else {}
    settings = load_settings(home=folder / "home", slides={"workers": workers}, video=video)
    start, cpu = time.perf_counter(), time.process_time()
    generate_slides(path, folder, settings, cache_dir=cache)
    return (time.perf_counter() - start) * 1000 / SECTIONS, (time.process_time() - cpu) * 1000 / SECTIONS


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = script(folder)
        timed(path, folder, folder / "warm", 1)  # fonts found and loaded once, as in a long-running daemon
        serial, serial_cpu = timed(path, folder, folder / "c1", 1)
        parallel, _ = timed(path, folder, folder / "c2", 2)
        cached, _ = timed(path, folder, folder / "c2", 2)
        transparent, _ = timed(path, folder, folder / "c3", 1, transparent=True)
    print(f"slides={SECTIONS}")
    print("size=1920x1080")
    print(f"ms_per_slide_parallel={parallel:.1f}")
    print(f"ms_per_slide_cached={cached:.1f}")
    print(f"cpu_ms_per_slide={serial_cpu:.1f}")
    print(f"ms_per_transparent_slide={transparent:.1f}")
    print(f"ms_per_slide={serial:.1f}")


if __name__ == "__main__":
    main()
