"""The Remotion renderer draws characters as the ffmpeg renderer does: the same pose every frame.

A tiny two-character dialogue (mint from a folder, kohaku from a PSD, with the flat-coloured art
of tests/test_characters.py) with expression changes, three mouth states, blinks, the listener
dimmed, a breath and the end card, rendered by both renderers; the decoded frames are compared
frame by frame in each character's box, and at chosen moments for what they should show. A
portrait render checks the layout. Each render takes Remotion about 20-40 s on two cores.
"""

from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from stages.base import InputError
from stages.video.ffmpeg import render_with_ffmpeg
from stages.video.plan import plan_timeline
from stages.video.poses import character_states
from stages.video.remotion import DEFAULT_PROJECT_DIR, render_with_remotion
from stages.video.timeline import Breath, ExpressionSpan, MouthSpan, Timeline
from tests.test_characters import BLUSH, KOHAKU, MAGENTA, MINT, write_dialogue_job
from tests.test_remotion import all_frames
from tests.test_video_fixtures import RATE

pytestmark = pytest.mark.skipif(
    not (DEFAULT_PROJECT_DIR / "node_modules" / "@remotion" / "renderer").is_dir(),
    reason="remotion/node_modules missing: run `make setup-test` (npm ci in remotion/)",
)

LINES = [("mint", None, 0.8), ("kohaku", "happy", 0.8), ("mint", "happy", 0.7)]


def dialogue_job(root: Path, size: tuple[int, int], lines=LINES, *, end_card_seconds: float = 0.8):
    """A job folder and settings: one slide, ``lines`` of (persona, expression, seconds), an end card."""
    video = {
        "timing": {"initial_pause": 0.3, "speaker_change_pause": 0.3, "ending_pause": 0.3},
        "end_card": True, "end_card_seconds": end_card_seconds,
    }  # fmt: skip
    return write_dialogue_job(root, size, lines, speech=write_speech, video=video)


def write_speech(path: Path, seconds: float, *, freq: float) -> Path:
    """A clip that is silent, then quiet (a half-open mouth), then loud (open), then silent again."""
    t = np.arange(int(round(seconds * RATE))) / RATE
    level = np.where(t < 0.1, 0.0, np.where(t < 0.1 + (seconds - 0.2) / 2, 0.4, np.where(t < seconds - 0.2, 1.0, 0.0)))
    samples = (0.5 * level * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.tobytes())
    return path


def render_both(root: Path, size: tuple[int, int], lines=LINES) -> tuple[Timeline, np.ndarray, np.ndarray]:
    """The dialogue's timeline and every decoded frame of its Remotion and ffmpeg renders."""
    job, settings = dialogue_job(root, size, lines)
    timeline = plan_timeline(job, settings)
    timeline.save(job / "timeline.json")
    ours = render_with_remotion(job / "timeline.json", root / "remotion.mp4", settings)
    theirs = render_with_ffmpeg(timeline, root / "ffmpeg.mp4", settings)
    return timeline, all_frames(ours, timeline), all_frames(theirs, timeline)


# --- the pose of every frame, without a browser ------------------------------------------------------


def test_poses_ts_gives_every_frame_the_pose_poses_py_gives(tmp_path):
    """remotion/src/poses.ts and stages/video/poses.py agree on picture, dim and lift in every frame:
    a planned dialogue, overlapping and unknown spans, boundaries on half frames (Python rounds them
    to even), no dimming at dim = 1, a bigger breath, and an older timeline without expressions."""
    job, settings = dialogue_job(tmp_path, (640, 360))
    planned = plan_timeline(job, settings)
    mint, kohaku = planned.characters
    half = lambda k: (k + 0.5) / planned.fps  # noqa: E731 (a time on a half frame)
    names = list(mint.expressions)
    edgy = mint.model_copy(update={
        "expression_spans": [ExpressionSpan(start=half(3), end=half(40), expression=names[1]),
                             ExpressionSpan(start=half(10), end=half(20), expression=names[0]),
                             ExpressionSpan(start=half(50), end=half(60), expression="nobody")],
        "default_expression": "unknown",
        "mouth": [MouthSpan(start=half(4), end=half(9), state="open"), MouthSpan(start=half(7), end=half(12), state="half")],
        "blinks": [(half(5), half(8)), (half(11), half(13))],
        "dimmed": [(half(1), half(6))],
        "breath": Breath(period=1.3, amplitude=3.0, phase=0.9),
    })  # fmt: skip
    undimmed = kohaku.model_copy(update={"dim": 1.0, "dimmed": [(0.0, planned.duration)]})
    older = kohaku.model_copy(update={
        "expressions": {}, "persona_id": "older",
        "mouth_open_intervals": [(half(2), half(9))], "blinks": [(half(6), half(14))],
    })  # fmt: skip
    for timeline in (planned, planned.model_copy(update={"characters": [edgy, undimmed, older]})):
        timeline.save(tmp_path / "timeline.json")
        printed = subprocess.run(
            ["node", "print-poses.mjs", str(tmp_path / "timeline.json")],
            cwd=DEFAULT_PROJECT_DIR, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        theirs = json.loads(printed)
        states, poses = character_states(timeline)
        for c, track in enumerate(timeline.characters):
            expected = [[p.image, p.dimmed, p.lift] for p in (poses[c][s] for s in states[c])]
            assert len({tuple(p) for p in expected}) >= 4, track.persona_id  # the case moves
            wrong = [f for f in range(timeline.frames) if theirs[track.persona_id][f] != expected[f]]
            assert not wrong, f"{track.persona_id}: frame {wrong[0]} is {theirs[track.persona_id][wrong[0]]}, not {expected[wrong[0]]}"


# --- a landscape dialogue, both renderers ----------------------------------------------------------

# Mean absolute difference (0-255 per RGB channel) between the two renders of one frame. Both go
# through yuv420p and x264, Remotion through a JPEG screenshot too: measured at most 2.1 for
# the whole frame and 5 in a character's box (its coloured edges), where a wrong mouth or a
# missing dim costs tens in the box.
FRAME_MAD_LIMIT = 4.0
BOX_MAD_LIMIT = 8.0


@pytest.fixture(scope="module")
def landscape(tmp_path_factory):
    """The 640x360 dialogue (4.3 s: three lines, then the end card) rendered by both renderers."""
    return render_both(tmp_path_factory.mktemp("remotion-dialogue"), (640, 360))


def test_every_frame_shows_the_pose_the_ffmpeg_renderer_shows(landscape):
    """In every frame each character's box is nearest the ffmpeg render's box in the same pose
    (picture, dim and lift) of all the poses it takes on that slide, and close to it."""
    timeline, ours, theirs = landscape
    states, poses = character_states(timeline)
    ground = _settled_slide(timeline)
    for c, track in enumerate(timeline.characters):
        assert len(poses[c]) >= 6, "the dialogue should move each character through several poses"
        a, b = _boxes(ours, track), _boxes(theirs, track)
        for f in range(timeline.frames):
            same = _mad(a[f], b[f])
            assert same < BOX_MAD_LIMIT, f"{track.persona_id} frame {f}: the renderers differ by {same:.1f}"
            if ground[f] < 0:
                continue
            for other in set(states[c][ground == ground[f]]) - {states[c, f]}:
                g = min(np.flatnonzero((states[c] == other) & (ground == ground[f])), key=lambda g: abs(g - f))
                assert same < _mad(a[f], b[g]), (
                    f"{track.persona_id} frame {f} shows {poses[c][other]} (as the ffmpeg render's frame {g}), "
                    f"not {poses[c][states[c, f]]}"
                )


def test_whole_frames_agree_including_the_end_card(landscape):
    """Every frame, slides, subtitles, the end card and its fade included, is alike in both renders."""
    timeline, ours, theirs = landscape
    assert ours.shape == theirs.shape
    per_frame = np.abs(ours - theirs).mean(axis=(1, 2, 3))
    worst = int(per_frame.argmax())
    assert per_frame[worst] < FRAME_MAD_LIMIT, f"frame {worst} differs by {per_frame[worst]:.1f}"
    card = timeline.slides[-1]
    assert "end-card" in Path(card.image).name
    f = timeline.frame((card.start + card.end) / 2)
    column = (slice(0, timeline.height // 2), slice(timeline.width // 4, timeline.width * 3 // 4))
    assert ours[f][column].std() > 10, "the end card's text is not drawn"


def test_mouth_expression_and_dim_at_chosen_moments(landscape):
    """The speaker's mouth is shut before it speaks, half open on quiet frames and open on loud ones;
    kohaku blushes from its happy line; the listener is dimmed while the other speaks."""
    timeline, ours, _ = landscape
    mint, kohaku = (next(t for t in timeline.characters if t.persona_id == p) for p in ("mint", "kohaku"))
    spans = {s.state: timeline.frame((s.start + s.end) / 2) for s in mint.mouth[:2]}
    assert set(spans) == {"half", "open"}
    first = timeline.frame(timeline.narration[0].start)
    m = _boxes(ours, mint)
    shut, half, wide = (_count(m[f], MAGENTA) for f in (first - 2, spans["half"], spans["open"]))
    assert shut == 0 and 50 < half < wide / 3 and wide > 1500, (shut, half, wide)
    k = _boxes(ours, kohaku)
    starts = [timeline.frame(c.start) for c in timeline.narration]
    assert _count(k[starts[1] - 3], BLUSH, 60) == 0 and _count(k[starts[1] + 3], BLUSH, 60) > 100
    assert _count(m[starts[2] - 3], MINT["happy"], 60) == 0 and _count(m[starts[2] + 3], MINT["happy"], 60) > 5000
    body = k[:, k.shape[1] // 4, k.shape[2] // 2 - 20].astype(float)  # kohaku's forehead, above its eyes
    before, listening, speaking = body[first - 2], body[first + 5], body[starts[1] + 5]
    assert np.allclose(before, KOHAKU, atol=8) and np.allclose(speaking, KOHAKU, atol=8), (before, speaking)
    assert np.allclose(listening, np.array(KOHAKU) * kohaku.dim, atol=8), listening


def test_breath_lifts_by_the_same_pixels(landscape):
    """Each character sits at the same height in both renders in every frame: a one-pixel shift of
    the ffmpeg render's box matches worse than none, and the breath does lift it over the video."""
    timeline, ours, theirs = landscape
    for track in timeline.characters:
        lifts = {track.breath.lift(f / timeline.fps) for f in range(timeline.frames)}
        assert len(lifts) > 1, "the breath should move within the video"
        a, b = _boxes(ours, track, margin=3), _boxes(theirs, track, margin=3)
        for f in range(timeline.frames):
            shifts = {s: _mad(a[f, 3:-3], b[f, 3 + s : b.shape[1] - 3 + s]) for s in (-1, 0, 1)}
            assert min(shifts, key=shifts.get) == 0, f"{track.persona_id} frame {f}: {shifts}"


# --- portrait ----------------------------------------------------------------------------------------


def test_portrait_dialogue_matches_the_ffmpeg_render(tmp_path):
    """A 360x640 dialogue: the characters in the bottom band, subtitles above them, the end card; every
    frame alike in both renders."""
    lines = [("mint", None, 0.6), ("kohaku", "happy", 0.6)]
    timeline, ours, theirs = render_both(tmp_path, (360, 640), lines)
    assert ours.shape == theirs.shape == (timeline.frames, 640, 360, 3)
    per_frame = np.abs(ours - theirs).mean(axis=(1, 2, 3))
    worst = int(per_frame.argmax())
    assert per_frame[worst] < FRAME_MAD_LIMIT, f"frame {worst} differs by {per_frame[worst]:.1f}"
    for track in timeline.characters:
        a, b = _boxes(ours, track), _boxes(theirs, track)
        box = max(range(timeline.frames), key=lambda f: _mad(a[f], b[f]))
        assert _mad(a[box], b[box]) < BOX_MAD_LIMIT, f"{track.persona_id} frame {box}"
        assert track.y > timeline.height / 2, "portrait characters stand in the bottom band"
    cue = timeline.subtitles[0]
    f = timeline.frame((cue.start + cue.end) / 2)
    text = ours[f].min(axis=2) > 200  # white cue text
    text[: timeline.height // 2] = False
    for track in timeline.characters:  # (kohaku's white ribbon is not text)
        text[round(track.y) - 2 :, round(track.x) : round(track.x + track.width)] = False
    assert text.sum() > 50
    assert np.flatnonzero(text.any(axis=1)).max() < min(t.y for t in timeline.characters), "a subtitle over a character"


def test_a_missing_character_picture_is_an_input_error(tmp_path):
    """A timeline naming a character picture that is gone fails as InputError naming it, before any browser starts."""
    job, settings = dialogue_job(tmp_path, (320, 180), LINES[:1])
    timeline = plan_timeline(job, settings)
    pictures = timeline.characters[0].expressions["normal"].eyes_open
    gone = str(tmp_path / "gone.png")
    timeline.characters[0].expressions["normal"].eyes_open = pictures.model_copy(update={"half": gone})
    timeline.save(job / "timeline.json")
    with pytest.raises(InputError, match="gone.png"):
        render_with_remotion(job / "timeline.json", tmp_path / "out.mp4", settings)
    assert not (tmp_path / "out.mp4").exists()


# --- helpers -----------------------------------------------------------------------------------------


def _boxes(frames: np.ndarray, track, margin: int = 2) -> np.ndarray:
    """Every frame's pixels in the character's box (``margin`` rows above it, for the breath)."""
    x, y = round(track.x), round(track.y)
    return frames[:, max(0, y - margin) : y + round(track.height), x : x + round(track.width)]


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def _count(box: np.ndarray, colour, tolerance: int = 90) -> int:
    return int((np.abs(box.astype(int) - np.array(colour)).sum(axis=-1) < tolerance).sum())


def _settled_slide(timeline: Timeline) -> np.ndarray:
    """Per frame, the slide shown (-1 during a transition): frames on one slide share a background."""
    ground = np.full(timeline.frames, -1)
    for i, clip in enumerate(timeline.slides):
        ground[timeline.frame(clip.start + clip.transition_in.duration) : timeline.frame(clip.end)] = i
    return ground
