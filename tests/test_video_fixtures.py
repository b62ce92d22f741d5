"""Builders for the video tests: a small real job folder (WAVs, PNG slides, script, indexes).

Imported by ``tests/test_video*.py`` and ``tests/test_timeline*.py``; it holds no tests itself.
"""

from __future__ import annotations

import json
import shutil
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

from stages.settings import Settings, load_settings

SLIDE_COLORS = [(200, 40, 40), (40, 160, 60), (40, 60, 200), (200, 200, 40), (160, 40, 160), (40, 180, 180)]
MOUTH_COLOR = (255, 0, 255)
RATE = 48000


@dataclass
class Phrase:
    text: str
    speaker: str = "narrator"
    seconds: float = 1.0
    reading: str | None = None


@dataclass
class Job:
    dir: Path
    settings: Settings
    sections: list[list[Phrase]]
    dropped: list[str] = field(default_factory=list)


def write_wav(path: Path, seconds: float, *, freq: float = 440.0, syllables: float = 4.0, rate: int = RATE) -> Path:
    """A speech-like clip: a tone whose loudness rises and falls ``syllables`` times a second.

    The first and last 0.1 s are silent, like a real TTS clip's padding.
    """
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    envelope = np.clip(np.sin(np.pi * syllables * t), 0, None) ** 2
    envelope[(t < 0.1) | (t > seconds - 0.1)] = 0.0
    samples = (0.5 * envelope * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


def write_slide(path: Path, size: tuple[int, int], color: tuple[int, int, int], label: str) -> Path:
    image = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(image)
    draw.rectangle([size[0] // 10, size[1] // 10, size[0] // 3, size[1] // 3], fill=(255, 255, 255))
    draw.text((size[0] // 2, size[1] // 8), label, fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def write_character(folder: Path, name: str, body: tuple[int, int, int]) -> dict[str, str]:
    """Three 60x100 RGBA character images; the open mouth is a big magenta block."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for state in ("base", "mouth_open", "eyes_closed"):
        image = Image.new("RGBA", (60, 100), (0, 0, 0, 0))
        draw = ImageDraw.Draw(image)
        draw.ellipse([5, 5, 55, 95], fill=body + (255,))
        eye = (0, 0, 0, 255) if state != "eyes_closed" else body + (255,)
        draw.rectangle([15, 25, 22, 32], fill=eye)
        draw.rectangle([38, 25, 45, 32], fill=eye)
        if state == "mouth_open":
            draw.rectangle([12, 50, 48, 85], fill=MOUTH_COLOR + (255,))
        else:
            draw.line([20, 65, 40, 65], fill=(0, 0, 0, 255), width=2)
        path = folder / f"{name}-{state}.png"
        image.save(path)
        paths[state] = str(path)
    return paths


def make_job(
    root: Path,
    sections: list[list[Phrase]],
    *,
    size: tuple[int, int] = (320, 180),
    fps: int = 30,
    characters: dict[str, tuple[int, int, int]] | None = None,
    drop: tuple[str, ...] = (),
    video: dict | None = None,
    section_backgrounds: dict[int, dict] | None = None,
) -> Job:
    """Write a job folder with script.yaml, audio/index.json, slides/index.json and settings."""
    job_dir = root / "job"
    job_dir.mkdir(parents=True, exist_ok=True)
    speakers = sorted({p.speaker for s in sections for p in s} | {"narrator"})
    personas = []
    colors = ["#ffffff", "#ffff00", "#00ffff", "#ff8800"]
    for i, speaker in enumerate(speakers):
        persona = {"id": speaker, "subtitle_color": colors[i % len(colors)]}
        if characters and speaker in characters:
            images = write_character(root / "chars", speaker, characters[speaker])
            persona["character"] = {
                "base": images["base"],
                "mouth_open": images["mouth_open"],
                "eyes_closed": images["eyes_closed"],
                "position": "left" if i % 2 else "right",
                "height": 0.5,
            }
        personas.append(persona)
    script = {"title": "Test video", "sections": []}
    clips = {}
    slides = []
    for si, phrases in enumerate(sections):
        section = {"title": f"Section {si + 1}", "narrations": []}
        if section_backgrounds and si in section_backgrounds:
            background = dict(section_backgrounds[si])
            if background.get("path"):
                # A script may only name files inside its job folder or the home: put it there.
                source = Path(background["path"])
                (job_dir / "assets").mkdir(exist_ok=True)
                shutil.copyfile(source, job_dir / "assets" / source.name)
                background["path"] = f"assets/{source.name}"
            section["background"] = background
        for ni, phrase in enumerate(phrases):
            item = {"text": phrase.text, "persona_id": phrase.speaker}
            if phrase.reading:
                item["reading"] = phrase.reading
            section["narrations"].append(item)
            pid = f"{si:03d}-{ni:03d}"
            if pid in drop:
                continue
            wav = write_wav(root / "clips" / f"{pid}.wav", phrase.seconds, freq=300 + 50 * si + 20 * ni)
            clips[pid] = {"path": str(wav), "duration": phrase.seconds, "speaker": phrase.speaker}
        script["sections"].append(section)
        png = write_slide(root / "slides" / f"{si}.png", size, SLIDE_COLORS[si % len(SLIDE_COLORS)], f"S{si}")
        slides.append({"section": si, "path": str(png), "layout": "bullets"})
    (job_dir / "script.yaml").write_text(yaml.safe_dump(script, allow_unicode=True), encoding="utf-8")
    (job_dir / "audio").mkdir(exist_ok=True)
    (job_dir / "audio" / "index.json").write_text(
        json.dumps({"sample_rate": RATE, "clips": clips, "dropped": list(drop), "credits": []}), encoding="utf-8"
    )
    (job_dir / "slides").mkdir(exist_ok=True)
    (job_dir / "slides" / "index.json").write_text(
        json.dumps({"width": size[0], "height": size[1], "slides": slides, "safe_area": {}}), encoding="utf-8"
    )
    # no end card unless a test asks (video={"end_card": True}): the tests time the video to its last phrase
    video_settings = {"width": size[0], "height": size[1], "fps": fps, "preset": "ultrafast", "end_card": False}
    video_settings.update(video or {})
    settings = load_settings(home=root / "home", video=video_settings, personas=personas)
    return Job(dir=job_dir, settings=settings, sections=sections, dropped=list(drop))
