"""Portrait (9:16, Shorts) videos: the named format, and a real two-character render's frames."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from stages.settings import InvalidSettings, load_settings
from stages.video import plan_timeline, render_timeline, verify_video
from stages.video.cast import DIM
from tests.test_video_fixtures import Phrase, make_job

W, H = 540, 960
BODIES = {"kohaku": (0, 170, 0), "mint": (30, 30, 220)}
LONG = "縦長の動画でも字幕は途中で切れずに最後まで画面に表示されるはずなので確かめてみましょう"


def test_format_shorts_is_1080x1920_and_clashes_are_errors():
    """video.format names the frame: shorts is 1080x1920, landscape 1920x1080; a width or height that
    disagrees with it is an error naming both."""
    assert (load_settings(video={"format": "shorts"}).video.width, load_settings(video={"format": "shorts"}).video.height) == (1080, 1920)
    landscape = load_settings(video={"format": "landscape"}).video
    assert (landscape.width, landscape.height) == (1920, 1080)
    with pytest.raises(InvalidSettings, match="format = 'shorts' is 1080x1920, but height = 1080"):
        load_settings(video={"format": "shorts", "height": 1080})


def _decode(path: Path) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, H, W, 3).astype(int)


def test_a_portrait_dialogue_keeps_characters_apart_and_subtitles_off_their_faces(tmp_path):
    """A 540x960 dialogue of two characters: both stand inside the frame in the lower corners, apart and
    visible; every cue's text (white or yellow) is inside the frame, above the bottom edge, and never
    on a character's face (the top 40 % of its box), including a line too long for one cue."""
    job = make_job(
        tmp_path,
        [[Phrase("こんにちは", "kohaku", 1.0), Phrase(LONG, "mint", 3.0)], [Phrase("なるほど", "kohaku", 1.0)]],
        size=(W, H), characters=BODIES, video={"preset": "ultrafast"},
    )
    timeline = plan_timeline(job.dir, job.settings)
    out = render_timeline(timeline, tmp_path / "portrait.mp4", job.settings)
    verify_video(out, timeline)
    frames = _decode(out)
    assert frames.shape[1:3] == (H, W)
    tracks = {t.persona_id: t for t in timeline.characters}
    assert set(tracks) == set(BODIES)
    # a character may reach a pixel or two below the bottom edge (its breath lifts it from there)
    boxes = {k: (round(t.x), round(t.y), round(t.x + t.width), min(H, round(t.y + t.height))) for k, t in tracks.items()}
    assert all(t.y + t.height <= H + 2 for t in tracks.values())
    (ax0, _, ax1, _), (bx0, _, bx1, _) = sorted(boxes.values())
    assert ax1 <= bx0, f"the characters overlap: {boxes}"
    for x0, y0, x1, y1 in boxes.values():
        assert 0 <= x0 < x1 <= W and H // 2 <= y0 < y1 <= H, boxes
    assert len(timeline.subtitles) >= 4  # the long line became more than one cue, nothing cut
    for cue in timeline.subtitles:
        frame = frames[timeline.frame((cue.start + cue.end) / 2)]
        for name, (x0, y0, x1, y1) in boxes.items():
            colour = np.array(BODIES[name])  # or dimmed, while the other one speaks
            box = frame[y0:y1, x0:x1]
            body = np.minimum(np.abs(box - colour).sum(axis=2), np.abs(box - colour * DIM).sum(axis=2)) < 60
            assert body.sum() > 0.2 * (x1 - x0) * (y1 - y0), f"{name} not visible during {cue.text!r}"
        text = (frame[..., 0] > 200) & (frame[..., 1] > 200)  # white and yellow cue text
        text[: H // 2] = False  # the slide's own white box is in the upper half
        ys, xs = np.nonzero(text)
        assert len(ys) > 100, f"no subtitle drawn for {cue.text!r}"
        assert xs.min() > 0 and xs.max() < W - 1 and ys.max() < H - 1, cue.text
        for name, (x0, y0, x1, y1) in boxes.items():
            face = text[y0 : y0 + (y1 - y0) * 2 // 5, x0:x1]
            assert face.sum() == 0, f"{cue.text!r} is drawn over {name}'s face"


BULLETS = "縦長の画面でも箇条書きの文字は左右いっぱいに並ぶので一行に多くの言葉が入ります。キャラクターは下の帯に立ち、字幕はその上に出ます。"


def test_a_portrait_bullets_slide_spans_the_width_above_the_characters_band(tmp_path):
    """Real slides of a 540x960 two-character dialogue: the characters stand in a band across the
    bottom, as large as in landscape (by the frame's short side), apart; the bullets column above
    them spans at least 75 % of the width (laid out and in the decoded frame: text in the left and
    right thirds); subtitles sit between the column and the characters' heads."""
    from stages.slides import generate_slides

    job = make_job(
        tmp_path,
        [[Phrase("こんにちは", "kohaku", 1.0), Phrase("縦長の動画を作ります", "mint", 1.5)], [Phrase(BULLETS, "kohaku", 3.0)]],
        size=(W, H), characters=BODIES, video={"preset": "ultrafast"},
    )
    index = json.loads(generate_slides(job.dir / "script.yaml", job.dir, job.settings, cache_dir=tmp_path / "cache").read_text())
    timeline = plan_timeline(job.dir, job.settings)
    tracks = sorted(timeline.characters, key=lambda t: t.x)
    assert len(tracks) == 2
    (a, b) = [(round(t.x), round(t.y), round(t.x + t.width), min(H, round(t.y + t.height))) for t in tracks]
    assert a[2] <= b[0], f"the characters overlap: {a} {b}"
    for t in tracks:  # landscape's size: a fraction of the short side, not squeezed into a narrow corner
        assert t.height >= 0.9 * 0.5 * W and t.y + t.height <= H + 2, t
    band_top = min(round(t.y) for t in tracks)

    bullets = [s for s in index["slides"] if s["layout"] == "bullets"]
    assert bullets, index["slides"]
    column = next(box for box in bullets[0]["boxes"] if box["kind"] == "bullets")["box"]
    assert column[3] < band_top, (column, band_top)  # never beside or over a character
    cards = [box["box"] for box in bullets[0]["boxes"]]
    left, right = min(c[0] for c in cards), max(c[2] for c in cards)
    assert right - left >= 0.75 * W, cards

    style = timeline.subtitle_style
    assert column[3] <= style.safe_box.y and style.safe_box.y + style.safe_box.height <= band_top
    assert style.safe_box.width >= 0.75 * W

    out = render_timeline(timeline, tmp_path / "portrait.mp4", job.settings)
    verify_video(out, timeline)
    frames = _decode(out)
    cue = next(c for c in timeline.subtitles if c.section == 1)
    frame = frames[timeline.frame((cue.start + cue.end) / 2)]
    background = frame[5, W // 2]  # the slide's background just under the accent bar
    ink = np.abs(frame - background).sum(axis=2) > 120
    text = ink[column[1] : column[3]]
    third = W // 3
    assert text[:, :third].sum() > 200 and text[:, 2 * third :].sum() > 200, "the column does not reach both sides"
    for x0, y0, x1, y1 in (a, b):
        body = frame[y0:y1, x0:x1]
        colour = np.array(BODIES[next(t.persona_id for t in tracks if round(t.x) == x0)])
        seen = np.minimum(np.abs(body - colour).sum(axis=2), np.abs(body - colour * DIM).sum(axis=2)) < 60
        assert seen.sum() > 0.2 * (x1 - x0) * (y1 - y0), "a character is not visible"
    subs = (frame[..., 0] > 200) & (frame[..., 1] > 200)
    subs[: round(style.safe_box.y)] = False
    ys, _ = np.nonzero(subs)
    assert len(ys) > 100 and ys.max() < band_top, "the subtitle is not between the column and the characters"
