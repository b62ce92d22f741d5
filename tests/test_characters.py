"""Characters: the three sources, expressions per line, mouth/eyes/breath, slots, and the rendered frames.

The art is drawn here with Pillow: bodies of one flat colour per expression, a magenta mouth
(small when half open, big when open), so decoded frames can be read by colour.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from stages.characters import character_pictures
from stages.characters.psd import LayerNotFound, compose, open_psd
from stages.script.loader import validate_script_file
from stages.settings import CharacterSettings, load_settings
from stages.video.cast import place
from stages.video import render_timeline
from stages.video.plan import plan_timeline, read_wav_mono
from tests.test_video_fixtures import RATE, write_slide, write_wav

SIZE = (80, 120)
MAGENTA = (255, 0, 255)
MINT = {"normal": (40, 200, 40), "happy": (250, 150, 20)}  # body colour per expression
KOHAKU = (40, 60, 230)
BLUSH = (255, 120, 200)


def _layer(draw_fn) -> Image.Image:
    image = Image.new("RGBA", SIZE, (0, 0, 0, 0))
    draw_fn(ImageDraw.Draw(image))
    return image


def _body(colour):
    return _layer(lambda d: d.ellipse([4, 4, 76, 116], fill=colour + (255,)))


def _mouth(state: str) -> Image.Image:
    if state == "closed":
        return _layer(lambda d: d.line([28, 80, 52, 80], fill=(0, 0, 0, 255), width=2))
    if state == "half":
        return _layer(lambda d: d.rectangle([32, 74, 48, 84], fill=MAGENTA + (255,)))
    return _layer(lambda d: d.rectangle([20, 64, 60, 104], fill=MAGENTA + (255,)))


def _eyes(state: str, colour) -> Image.Image:
    if state == "open":
        return _layer(lambda d: (d.rectangle([22, 35, 30, 45], fill=(0, 0, 0, 255)), d.rectangle([50, 35, 58, 45], fill=(0, 0, 0, 255))))
    return _layer(lambda d: (d.line([22, 42, 30, 42], fill=(0, 0, 0, 255)), d.line([50, 42, 58, 42], fill=(0, 0, 0, 255))))


def write_folder_character(root: Path, *, half: bool = True) -> Path:
    """``<root>/<expr>/base.png`` with mouth/ and eyes/ overlays, two expressions."""
    for expression, colour in MINT.items():
        folder = root / expression
        (folder / "mouth").mkdir(parents=True)
        (folder / "eyes").mkdir()
        _body(colour).save(folder / "base.png")
        for state in ("closed", "half", "open"):
            if state != "half" or half:
                _mouth(state).save(folder / "mouth" / f"{state}.png")
        for state in ("open", "closed"):
            _eyes(state, colour).save(folder / "eyes" / f"{state}.png")
    return root


def write_psd_character(path: Path) -> Path:
    """A layered PSD with PSDToolKit names: ``!`` always shown, ``*`` radio groups, a ``:flipx`` twin."""
    from psd_tools import PSDImage

    psd = PSDImage.new("RGBA", SIZE)

    def add(parent, image, name, visible=True):
        layer = parent.create_pixel_layer(image, name=name)
        layer.name = name  # sets the Unicode name record too
        layer.visible = visible
        return layer

    add(psd, _body(KOHAKU), "!体")
    add(psd, _layer(lambda d: d.rectangle([2, 2, 12, 12], fill=(255, 255, 255, 255))), "!リボン")
    add(psd, _layer(lambda d: d.rectangle([2, 2, 12, 12], fill=(255, 255, 0, 255))), "!リボン:flipx")
    cheeks = psd.create_group(name="*頬")
    cheeks.name = "*頬"
    add(cheeks, _layer(lambda d: None), "*なし")
    add(cheeks, _layer(lambda d: (d.ellipse([10, 55, 22, 65], fill=BLUSH + (255,)), d.ellipse([58, 55, 70, 65], fill=BLUSH + (255,)))), "*照れ", visible=False)
    cheeks.visible = True
    eyes = psd.create_group(name="!目")
    eyes.name = "!目"
    add(eyes, _eyes("open", KOHAKU), "*開き")
    add(eyes, _eyes("closed", KOHAKU), "*閉じ", visible=False)
    mouth = psd.create_group(name="!口")
    mouth.name = "!口"
    add(mouth, _mouth("closed"), "*ん")
    add(mouth, _mouth("half"), "*え", visible=False)
    add(mouth, _mouth("open"), "*あ", visible=False)
    psd.save(path)
    return path


PSD_SETTINGS = {
    "eyes": {"open": "!目/*開き", "closed": "!目/*閉じ"},
    "mouth": {"closed": "!口/*ん", "half": "!口/*え", "open": "!口/*あ"},
    "expressions": {"normal": {"layers": ["*頬/*なし"]}, "happy": {"layers": ["*頬/*照れ"]}},
}


def _count(box: np.ndarray, colour, tolerance: int = 90) -> int:
    return int((np.abs(box.astype(int) - np.array(colour)).sum(axis=-1) < tolerance).sum())


# --- sources ------------------------------------------------------------------------------------


def test_folder_source_composites_each_pose_once_into_the_cache(tmp_path):
    """Overlays land on the base; a second call finds every picture in the cache."""
    character = CharacterSettings(folder=write_folder_character(tmp_path / "mint", half=False))
    pictures = character_pictures(character, tmp_path / "cache")
    assert set(pictures) == {"happy", "normal"}
    opened = np.asarray(Image.open(pictures["normal"][("open", "open")]).convert("RGB"))
    assert _count(opened, MAGENTA) > 600 and _count(opened, MINT["normal"]) > 2000
    # no half.png: half falls back to the open mouth
    assert Image.open(pictures["normal"][("open", "half")]).tobytes() == Image.open(pictures["normal"][("open", "open")]).tobytes()
    files = sorted((tmp_path / "cache" / "characters").iterdir())
    stamps = [f.stat().st_mtime_ns for f in files]
    again = character_pictures(character, tmp_path / "cache")
    assert again == pictures and [f.stat().st_mtime_ns for f in files] == stamps



def test_the_video_stage_redoes_a_video_whose_character_folder_was_redrawn(tmp_path):
    """The video stage's fingerprint covers a folder character's pictures (and a PSD's file), so a job
    resumed after the pictures changed renders them again instead of keeping the old video."""
    from stages.base import JobContext
    from stages.settings import load_settings
    from stages.video import VideoStage

    folder = write_folder_character(tmp_path / "mint", half=False)
    psd = write_psd_character(tmp_path / "kohaku.psd")
    personas = [
        {"id": "mint", "character": {"folder": str(folder)}},
        {"id": "kohaku", "character": {"psd": {"path": str(psd), **PSD_SETTINGS}}},
    ]
    job_dir = tmp_path / "job"
    job_dir.mkdir()

    def fingerprint() -> str:
        settings = load_settings(home=tmp_path / "home", personas=personas, default_persona="mint")
        ctx = JobContext(job_id="j", job_dir=job_dir, settings=settings, cache_dir=tmp_path / "cache",
                         source=job_dir / "script.yaml", kind="script")
        return VideoStage().fingerprint(ctx)

    first = fingerprint()
    assert fingerprint() == first
    picture = folder / "normal" / "mouth" / "open.png"
    Image.open(picture).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(picture)
    second = fingerprint()
    assert second != first
    psd.write_bytes(psd.read_bytes() + b"\0")
    assert fingerprint() != second

def test_psd_radio_groups_always_visible_layers_and_flipx(tmp_path):
    """``*`` layers are exclusive in their group, ``!`` ones always shown, ``:flipx`` twins only when mirrored."""
    psd = open_psd(write_psd_character(tmp_path / "kohaku.psd"))
    plain = np.asarray(compose(psd, ["!口/*あ"]).convert("RGB"))
    assert _count(plain[64:104, 20:60], MAGENTA) > 1000  # the open mouth
    assert _count(plain[79:82, 28:52], (0, 0, 0)) < 10  # and not the closed one under it
    assert tuple(plain[5, 5]) == (255, 255, 255)  # the plain ribbon, top left
    mirrored = np.asarray(compose(psd, ["*頬/*照れ", "!目/*閉じ"], flipx=True).convert("RGB"))
    assert tuple(mirrored[5, SIZE[0] - 6]) == (255, 255, 0)  # the :flipx ribbon, mirrored to the right
    assert _count(mirrored, BLUSH) > 100
    assert _count(mirrored[35:46, 22:31], (0, 0, 0)) < 20  # eyes closed: lines, not squares
    with pytest.raises(LayerNotFound, match="口"):
        compose(psd, ["!口/*お"])
    # loose names: the prefix may be left out when that leaves one match
    assert np.array_equal(np.asarray(compose(psd, ["口/あ"])), np.asarray(compose(psd, ["!口/*あ"])))


def test_psd_pictures_name_the_bad_layer_path(tmp_path):
    """A layer path the PSD lacks is an InputError naming the setting and the path."""
    settings = dict(PSD_SETTINGS, path=write_psd_character(tmp_path / "k.psd"), mouth={"open": "!口/*お"})
    with pytest.raises(LayerNotFound, match=r"persona k: character\.psd .*\*お"):
        character_pictures(CharacterSettings(psd=settings), tmp_path / "cache", what="persona k: character")


# --- placement ------------------------------------------------------------------------------------


def test_slots_right_then_left_never_overlap_and_stay_in_the_corners():
    """Four characters without a position: two per lower corner, apart, inside the corner width."""
    settings = load_settings(video={"width": 1920, "height": 1080})
    characters = [(CharacterSettings(base=Path("/x.png")), 0.7) for _ in range(4)]
    boxes = place(characters, settings)
    assert [b[0] for b in boxes] == ["right", "left", "right", "left"]
    corner = settings.slides.safe_area.corner_width * 1920
    for i, (_, x, y, w, h) in enumerate(boxes):
        assert y + h == 1080
        assert x >= 0 and x + w <= 1920
        assert x + w <= corner or x >= 1920 - corner
        for _, x2, _, w2, _ in boxes[i + 1:]:
            assert x + w <= x2 or x2 + w2 <= x


# --- a rendered two-character video ---------------------------------------------------------------


def write_dialogue_job(root: Path, size: tuple[int, int], lines, *, speech=write_wav, video: dict | None = None):
    """A job folder and settings: one grey slide, ``lines`` of (persona, expression or None, seconds)
    spoken by mint (folder source) and kohaku (PSD); ``speech`` writes each clip, ``video`` adds settings."""
    job = root / "job"
    (job / "audio").mkdir(parents=True)
    (job / "slides").mkdir()
    clips, narrations = {}, []
    for i, (speaker, expression, seconds) in enumerate(lines):
        item = {"text": f"line {i}", "persona_id": speaker}
        if expression:
            item["expression"] = expression
        narrations.append(item)
        wav = speech(root / "clips" / f"{i}.wav", seconds, freq=300 + 40 * i)
        clips[f"000-{i:03d}"] = {"path": str(wav), "duration": seconds, "speaker": speaker}
    (job / "script.yaml").write_text(yaml.safe_dump({"title": "t", "sections": [{"title": "s", "narrations": narrations}]}), encoding="utf-8")
    (job / "audio" / "index.json").write_text(json.dumps({"sample_rate": RATE, "clips": clips, "dropped": [], "credits": []}))
    slide = write_slide(root / "slide.png", size, (128, 128, 128), "S")
    (job / "slides" / "index.json").write_text(
        json.dumps({"width": size[0], "height": size[1], "slides": [{"section": 0, "path": str(slide)}], "safe_area": {}})
    )
    personas = [
        {"id": "mint", "character": {"folder": str(write_folder_character(root / "mint")), "height": 0.45}},
        {"id": "kohaku", "character": {"psd": dict(PSD_SETTINGS, path=str(write_psd_character(root / "kohaku.psd"))), "height": 0.45}},
    ]
    settings = load_settings(home=root / "home", personas=personas, default_persona="mint",
                             video={"width": size[0], "height": size[1], "fps": 30, "preset": "ultrafast", **(video or {})})
    return job, settings


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory):
    """A 320x180 dialogue: mint (folder source) and kohaku (PSD), each changing expression once."""
    root = tmp_path_factory.mktemp("dialogue")
    lines = [("mint", None, 1.2), ("kohaku", None, 1.2), ("mint", "happy", 1.2), ("kohaku", "happy", 1.2)]
    job, settings = write_dialogue_job(root, (320, 180), lines)
    timeline = plan_timeline(job, settings)
    out = render_timeline(timeline, root / "out.mp4", settings, lambda c, t, m: None)
    from tests.test_video_render import decode_frames

    return timeline, decode_frames(out, 320, 180)


def _box(timeline, persona: str, frames: np.ndarray) -> np.ndarray:
    track = next(t for t in timeline.characters if t.persona_id == persona)
    x, y = int(track.x), int(track.y) - 2
    return frames[:, max(0, y) : int(track.y + track.height), x : x + int(track.width)]


def test_both_characters_visible_and_apart(dialogue):
    """Each character stands in its own lower corner, drawn in every frame."""
    timeline, frames = dialogue
    mint, kohaku = (next(t for t in timeline.characters if t.persona_id == p) for p in ("mint", "kohaku"))
    assert {mint.position, kohaku.position} == {"left", "right"}
    assert mint.x + mint.width <= kohaku.x or kohaku.x + kohaku.width <= mint.x
    body = {"mint": MINT["normal"], "kohaku": KOHAKU}
    for persona, colour in body.items():
        seen = np.array([_count(f, colour, 60) for f in _box(timeline, persona, frames[:25])])
        assert (seen > 300).all(), persona  # before anyone speaks: normal colours, undimmed
    assert _count(frames[10][:, 100:220], KOHAKU, 60) == 0 and _count(frames[10][:, 100:220], MINT["normal"], 60) == 0


def test_the_speakers_mouth_opens_on_loud_frames_and_closes_in_pauses(dialogue):
    """Open (big magenta) where the clip is loudest; shut before the first line and between lines."""
    timeline, frames = dialogue
    fps = timeline.fps
    for clip in timeline.narration:
        samples, rate = read_wav_mono(Path(clip.audio))
        window = rate // fps
        rms = np.sqrt(np.mean(samples[: len(samples) // window * window].reshape(-1, window) ** 2, axis=1))
        box = _box(timeline, clip.speaker, frames)
        first = round(clip.start * fps)
        loud = np.flatnonzero(rms >= 0.9 * rms.max())
        assert len(loud) >= 3
        for k in loud:
            assert _count(box[first + k], MAGENTA) > 250, (clip.speaker, k)
    pauses = [0, round(timeline.narration[0].start * fps) - 1]
    for a, b in zip(timeline.narration, timeline.narration[1:]):
        pauses.append(round((a.start + a.duration + b.start) / 2 * fps))  # between two lines: the padding's silence
    for f in pauses:
        for persona in ("mint", "kohaku"):
            assert _count(_box(timeline, persona, frames)[f], MAGENTA, 150) == 0, (persona, f)


def test_expression_changes_where_the_script_asks(dialogue):
    """mint turns happy (orange) from its third line on; kohaku blushes from its fourth."""
    timeline, frames = dialogue
    fps = timeline.fps
    starts = [round(c.start * fps) for c in timeline.narration]
    mint = _box(timeline, "mint", frames)
    assert _count(mint[starts[2] - 3], MINT["happy"], 60) == 0
    assert _count(mint[starts[2] + 3], MINT["happy"], 60) > 300
    kohaku = _box(timeline, "kohaku", frames)
    assert _count(kohaku[starts[3] - 3], BLUSH, 60) == 0
    assert _count(kohaku[starts[3] + 3], BLUSH, 60) > 20


def test_the_listener_is_dimmed(dialogue):
    """While mint speaks, kohaku's body is darker than before anyone spoke, and brighter again when it speaks."""
    timeline, frames = dialogue
    fps = timeline.fps
    starts = [round(c.start * fps) for c in timeline.narration]
    kohaku = _box(timeline, "kohaku", frames)
    assert _count(kohaku[5], KOHAKU, 30) > 300
    assert _count(kohaku[starts[0] + 5], KOHAKU, 30) < 50  # dimmed
    assert _count(kohaku[starts[1] + 5], KOHAKU, 30) > 300


def test_breath_moves_a_character_by_a_pixel_or_two(dialogue):
    """Over a breath the top of a character's outline moves, by at most the breath's amplitude."""
    timeline, frames = dialogue
    track = next(t for t in timeline.characters if t.persona_id == "mint")
    lifts = {track.breath.lift(f / timeline.fps) for f in range(timeline.frames)}
    assert lifts == set(range(0, int(track.breath.amplitude) + 1))


# --- validate -------------------------------------------------------------------------------------


def test_validate_reports_an_unknown_expression_with_its_line(tmp_path):
    """`moviegen validate`'s checker names the line, the persona and the configured expressions."""
    settings = load_settings(home=tmp_path / "home", default_persona="mint",
                             personas=[{"id": "mint", "character": {"folder": str(write_folder_character(tmp_path / "mint"))}}])
    script = tmp_path / "s.yaml"
    script.write_text(
        "title: t\nsections:\n  - title: a\n    narrations:\n      - text: いい\n        expression: happy\n"
        "      - text: だめ\n        expression: angry\n", encoding="utf-8")
    issues = validate_script_file(script, settings)
    assert len(issues) == 1
    assert issues[0].line == 8 and "angry" in issues[0].message and "happy, normal" in issues[0].message
