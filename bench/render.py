"""Render benchmark: a fixed 60 s timeline (6 slides, 12 cues, 2 speaking characters, fades, BGM).

Usage::

    .venv/bin/python bench/render.py [--renderer ffmpeg|remotion] [--mode segments|graph]
                                     [--size 1920x1080] [--seconds 60] [--case 60min]

``--case 60min`` is a long video instead: 60 minutes, 120 sections, 720 cues, the same characters
and BGM (the sizes that once could not render at all, and whose memory must stay flat).

Prints ``name=value`` lines and ends with ``realtime_factor=<video seconds per wall second>``.
``peak_rss_mb`` is the largest resident set of any child process (the render process, ffmpeg,
node), from ``getrusage(RUSAGE_CHILDREN)``; ``peak_tree_rss_mb`` the most that this process and all
its descendants held at once (sampled every 0.2 s). Assets are generated in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.settings import load_settings  # noqa: E402
from stages.video import plan_timeline, render_timeline  # noqa: E402

RATE = 48000
SLIDES = 6
CUES = 12
LINES = [
    "保存ボタンを押すと、一瞬固まるのだ！",
    "それはメインスレッドで重い処理をしているからですね。",
    "非同期にすれば解決するのだ？",
    "はい、ワーカーに処理を移すのが定石です。",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--renderer", default="ffmpeg", choices=["ffmpeg", "remotion"])
    parser.add_argument("--mode", default="segments", choices=["segments", "graph"], help="ffmpeg mode")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--case", choices=["60s", "60min"], default="60s",
                        help="60min: 60 minutes, 120 sections, 720 cues (overrides --seconds)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--cache", action="store_true",
                        help="render through the render cache (a miss), then again: plan_seconds, cache_hit_seconds")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    root = Path(tempfile.mkdtemp(prefix="bench-render-"))
    slides, cues, seconds = (120, 720, 3600.0) if args.case == "60min" else (SLIDES, CUES, args.seconds)
    settings, job_dir = build_job(root, width, height, seconds, args.mode, slides=slides, cues=cues)
    timeline = plan_timeline(job_dir, settings)
    out = root / "out.mp4"
    last = {"frame": 0}

    def progress(current: int, total: int, message: str) -> None:
        last["frame"] = current

    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    sampler = _TreeRss()
    started = time.perf_counter()
    cache_dir = root / "cache" if args.cache else None
    render_timeline(timeline, out, settings, progress, renderer=args.renderer, timeline_path=timeline.save(job_dir / "timeline.json"),
                    cache_dir=cache_dir)
    elapsed = time.perf_counter() - started
    peak_tree_kb = sampler.stop()
    hit: dict[str, float] = {}
    if args.cache:  # a second job with the same inputs: plan again, then the cache hit
        notes: list[dict] = []
        t0 = time.perf_counter()
        again = plan_timeline(job_dir, settings)
        t1 = time.perf_counter()
        render_timeline(again, root / "again.mp4", settings, progress, renderer=args.renderer, cache_dir=cache_dir,
                        timeline_path=again.save(job_dir / "timeline.json"), note=lambda m, **d: notes.append(d))
        t2 = time.perf_counter()
        assert notes and notes[-1].get("hit") is True, notes
        hit = {"plan_seconds": t1 - t0, "cache_hit_seconds": t2 - t1}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    peak_kb = children.ru_maxrss
    print(f"renderer={args.renderer}")
    if args.renderer == "ffmpeg":
        print(f"mode={args.mode}")
    print(f"size={width}x{height}")
    print(f"fps={timeline.fps}")
    print(f"crf={settings.video.crf}")
    print(f"preset={settings.video.preset}")
    print(f"case={args.case}")
    print(f"slides={len(timeline.slides)}")
    print(f"cues={len(timeline.subtitles)}")
    print(f"characters={len(timeline.characters)}")
    print(f"output_mb={out.stat().st_size / 1e6:.2f}")
    print(f"render_seconds={elapsed:.2f}")
    print(f"video_seconds={timeline.duration:.2f}")
    print(f"peak_rss_mb={peak_kb / 1024:.0f}")
    print(f"peak_tree_rss_mb={peak_tree_kb / 1024:.0f}")
    print(f"python_rss_mb={own.ru_maxrss / 1024:.0f}")
    # CPU seconds do not depend on what else the machine is doing: the fairest ratio on a busy box.
    print(f"cpu_seconds_python={own.ru_utime + own.ru_stime - cpu_before:.2f}")
    print(f"cpu_seconds_children={children.ru_utime + children.ru_stime:.2f}")
    for key, value in hit.items():
        print(f"{key}={value:.3f}")
    print(f"realtime_factor={timeline.duration / elapsed:.2f}")
    if args.keep:
        print(f"folder={root}", file=sys.stderr)
    else:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def build_job(root: Path, width: int, height: int, seconds: float, mode: str, *, slides: int = SLIDES, cues: int = CUES):
    """``slides`` sections of two speakers taking turns, ``cues`` phrases sized so the timeline lasts
    ``seconds``, and a BGM loop. Clips and slide images are drawn once and reused cyclically."""
    job = root / "job"
    (job / "audio").mkdir(parents=True)
    (job / "slides").mkdir(parents=True)
    per = cues // slides
    # Pauses: 1 s initial + 1 s between sections + 0.5 s per change of speaker + 1 s ending
    # (60 s: 1 + 5 + 6 x 0.5 + 1 = 10 s).
    pauses = 2.0 + (slides - 1) + 0.5 * slides * (per - 1)
    speech = max(seconds - pauses, cues * 0.5)
    clip_seconds = speech / (per * slides)
    chars = {name: draw_character(root / "chars", name, colour) for name, colour in (("zundamon", (90, 200, 90)), ("metan", (220, 120, 170)))}
    personas = [
        {"id": "narrator", "subtitle_color": "#ffffff"},
        {"id": "zundamon", "subtitle_color": "#b8f5a0", "character": {**chars["zundamon"], "position": "right", "height": 0.45}},
        {"id": "metan", "subtitle_color": "#ffc0e0", "character": {**chars["metan"], "position": "left", "height": 0.45}},
    ]
    script = {"title": "Benchmark", "sections": []}
    clips, slide_items = {}, []
    wavs: dict[tuple[int, int], Path] = {}
    pngs: dict[int, Path] = {}
    for s in range(slides):
        section = {"title": f"Section {s + 1}", "narrations": []}
        for n in range(per):
            speaker = "zundamon" if n % 2 == 0 else "metan"
            text = LINES[(2 * s + n) % len(LINES)]
            section["narrations"].append({"text": text, "persona_id": speaker})
            pid = f"{s:03d}-{n:03d}"
            key = (n, s % SLIDES)
            if key not in wavs:
                wavs[key] = speech_wav(root / "clips" / f"{key[0]}-{key[1]}.wav", clip_seconds, 180 + 40 * n + 10 * key[1])
            clips[pid] = {"path": str(wavs[key]), "duration": clip_seconds, "speaker": speaker}
        script["sections"].append(section)
        if s % SLIDES not in pngs:
            pngs[s % SLIDES] = draw_slide(root / "slides" / f"{s % SLIDES}.png", width, height, s % SLIDES)
        slide_items.append({"section": s, "path": str(pngs[s % SLIDES]), "layout": "bullets"})
    (job / "script.yaml").write_text(yaml.safe_dump(script, allow_unicode=True), encoding="utf-8")
    (job / "audio" / "index.json").write_text(json.dumps({"sample_rate": RATE, "clips": clips, "dropped": [], "credits": []}))
    (job / "slides" / "index.json").write_text(json.dumps({"width": width, "height": height, "slides": slide_items, "safe_area": {}}))
    bgm = music_wav(root / "bgm.wav", 20.0)
    settings = load_settings(
        home=root / "home",
        personas=personas,
        video={
            "width": width, "height": height, "fps": 30, "ffmpeg_mode": mode,
            "transition": {"type": "fade", "duration": 0.5},
            "bgm": {"path": str(bgm), "volume": 0.2, "loop": True, "duck": True},
        },
    )
    return settings, job


class _TreeRss:
    """Samples the resident set of this process and all its descendants in a thread; ``stop`` gives the peak (KiB)."""

    def __init__(self, interval: float = 0.2):
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak

    def _run(self, interval: float) -> None:
        while not self._done.wait(interval):
            self.peak = max(self.peak, _tree_rss_kb(os.getpid()))


def _tree_rss_kb(pid: int) -> int:
    """RSS of a process and all its descendants, in KiB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
        except (OSError, ValueError):
            continue
        children.setdefault(int(fields.get("PPid", "0").strip() or 0), []).append(int(entry.name))
        rss[int(entry.name)] = int(fields.get("VmRSS", "0 kB").split()[0] or 0)
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += rss.get(current, 0)
        stack.extend(children.get(current, []))
    return total


def speech_wav(path: Path, seconds: float, freq: float) -> Path:
    """Syllable-like bursts: loudness rises and falls ~5 times a second (drives the lip-sync)."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    envelope = np.clip(np.sin(np.pi * 5 * t + 0.3 * np.sin(7 * t)), 0, None) ** 1.5
    envelope[(t < 0.1) | (t > seconds - 0.15)] = 0
    tone = np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(2 * np.pi * 2.5 * freq * t)
    return _write(path, 0.35 * envelope * tone)


def music_wav(path: Path, seconds: float) -> Path:
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    notes = 220 * 2 ** (np.floor(t * 2) % 5 / 12)
    return _write(path, 0.3 * np.sin(2 * np.pi * notes * t))


def _write(path: Path, samples: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def draw_slide(path: Path, width: int, height: int, index: int) -> Path:
    """A typeset-looking slide: a heading bar, bullet blocks and a picture box."""
    image = Image.new("RGB", (width, height), (16, 35, 63))
    draw = ImageDraw.Draw(image)
    u = height / 1080
    draw.rectangle([0, 0, width, int(150 * u)], fill=(63, 182, 139))
    draw.text((int(80 * u), int(40 * u)), f"Slide {index + 1}", fill=(255, 255, 255), font_size=int(72 * u))
    for b in range(4):
        y = int((240 + b * 120) * u)
        draw.ellipse([int(100 * u), y, int(130 * u), y + int(30 * u)], fill=(245, 247, 250))
        draw.rectangle([int(170 * u), y, int((900 + 120 * ((b + index) % 3)) * u), y + int(40 * u)], fill=(120 + 20 * b, 140, 180))
    rng = np.random.default_rng(index)
    box = (rng.random((int(400 * u), int(600 * u), 3)) * 255).astype(np.uint8)
    image.paste(Image.fromarray(box), (int(1200 * u), int(260 * u)))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def draw_character(folder: Path, name: str, colour: tuple[int, int, int]) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for state in ("base", "mouth_open", "eyes_closed"):
        image = Image.new("RGBA", (400, 600), (0, 0, 0, 0))
        draw = ImageDraw.Draw(image)
        draw.ellipse([40, 40, 360, 580], fill=colour + (255,), outline=(0, 0, 0, 255), width=6)
        eye = (0, 0, 0, 255)
        if state == "eyes_closed":
            draw.line([110, 200, 170, 200], fill=eye, width=8)
            draw.line([230, 200, 290, 200], fill=eye, width=8)
        else:
            draw.ellipse([110, 170, 170, 230], fill=eye)
            draw.ellipse([230, 170, 290, 230], fill=eye)
        if state == "mouth_open":
            draw.ellipse([150, 320, 250, 420], fill=(120, 0, 30, 255))
        else:
            draw.line([150, 370, 250, 370], fill=eye, width=8)
        path = folder / f"{name}-{state}.png"
        image.save(path)
        paths[state] = str(path)
    return paths


if __name__ == "__main__":
    main()
