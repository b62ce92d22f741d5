"""The end card: credits after the last phrase, in the timeline, so both renderers and the side files agree."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from stages.video import plan_timeline, render_timeline, write_side_files
from stages.video.probe import probe
from tests.test_video_fixtures import SLIDE_COLORS, Phrase, make_job
from tests.test_video_render import decode_frames

VOICEVOX_CREDIT = "VOICEVOX:ずんだもん"
MEI = '音声: HTS Voice "Mei" (MMDAgent) CC BY 3.0 — Nagoya Institute of Technology'


def _job(tmp_path, *, end_card, characters=True, terms=False, size=(320, 180)):
    job = make_job(
        tmp_path,
        [[Phrase("はじめ", "narrator", 1.0), Phrase("なのだ", "zundamon", 1.0)], [Phrase("おわり", "zundamon", 0.8)]],
        characters={"zundamon": (60, 60, 220)} if characters else None,
        size=size,
        video={"end_card": end_card, "end_card_seconds": 2.0},
    )
    index = job.dir / "audio" / "index.json"
    audio = json.loads(index.read_text())
    audio["credits"] = [MEI, VOICEVOX_CREDIT] if terms else [MEI]
    if terms:
        audio["terms"] = [{"engine": "VOICEVOX", "speaker": "ずんだもん", "credit": VOICEVOX_CREDIT, "policy": "…"}]
    index.write_text(json.dumps(audio))
    return job


def test_the_card_follows_the_ending_pause_and_the_video_is_that_much_longer(tmp_path):
    """video.end_card = true: the card's slide runs from the end of the ending pause to the new end; the
    slide before it stops there (fading out through the background), the characters stay to the end,
    and the cues and chapters do not change."""
    without = plan_timeline(_job(tmp_path / "off", end_card=False).dir, _job(tmp_path / "off", end_card=False).settings)
    job = _job(tmp_path / "on", end_card=True)
    tl = plan_timeline(job.dir, job.settings)
    assert tl.frames == without.frames + 2 * tl.fps
    assert tl.duration == pytest.approx(without.duration + 2.0)
    card = tl.slides[-1]
    assert "end-card" in card.image and card.end == tl.duration
    assert tl.slides[-2].image.endswith(".png") and "clear" in tl.slides[-2].image  # the fade goes through the background
    assert tl.slides[-2].start == pytest.approx(without.duration)
    assert all(s.end <= without.duration + 1e-9 for s in tl.slides[:-2])
    for a, b in zip(tl.slides, tl.slides[1:]):
        assert a.end == pytest.approx(b.start)
    assert [c.model_dump() for c in tl.subtitles] == [c.model_dump() for c in without.subtitles]
    assert [c.model_dump() for c in tl.chapters] == [c.model_dump() for c in without.chapters]
    assert tl.sections[-1].end == tl.duration
    (track,) = tl.characters
    assert track.visible[-1][1] == pytest.approx(tl.duration)


def test_the_default_shows_a_card_only_with_characters_or_a_voicevox_voice(tmp_path):
    """Unset, video.end_card is on for a video with characters or a VOICEVOX-compatible voice (its terms
    ask for the credit) and off for a plain narration with the offline voice; false turns it off."""
    def has_card(job):
        return "end-card" in plan_timeline(job.dir, job.settings).slides[-1].image

    assert has_card(_job(tmp_path / "a", end_card=None))
    assert has_card(_job(tmp_path / "b", end_card=None, characters=False, terms=True))
    assert not has_card(_job(tmp_path / "c", end_card=None, characters=False))
    assert not has_card(_job(tmp_path / "d", end_card=False, terms=True))


def test_the_card_lists_the_cast_and_the_voice_credits(tmp_path):
    """The picture holds text (the heading, the persona with a character, each credit) in the column
    between the characters' corners; a longer list of credits draws more text."""
    short = plan_timeline(*_args(_job(tmp_path / "a", end_card=True, size=(1280, 720))))
    longer = plan_timeline(*_args(_job(tmp_path / "b", end_card=True, terms=True, size=(1280, 720))))
    ink = {}
    for name, tl in (("short", short), ("longer", longer)):
        picture = np.asarray(Image.open(tl.slides[-1].image).convert("RGB")).astype(int)
        background = picture[2, 2]
        drawn = np.abs(picture - background).sum(axis=2) > 60
        ys, xs = np.nonzero(drawn)
        assert xs.min() >= 0.2 * 1280 and xs.max() <= 0.8 * 1280  # clear of the characters' corners
        ink[name] = (drawn.sum(), ys.max())
    assert ink["longer"][0] > ink["short"][0] and ink["longer"][1] > ink["short"][1]
    from stages.video.endcard import end_card_lines

    lines = [text for _, text in end_card_lines(["ずんだもん"], [MEI, VOICEVOX_CREDIT], "ja")]
    # the engine's 「音声: 」 prefix is not repeated under the 音声 label
    assert lines == ["クレジット", "出演", "ずんだもん", "音声", MEI.removeprefix("音声: "), VOICEVOX_CREDIT]
    from stages.video.endcard import _wrap

    assert _wrap(MEI, 30, len) == ['音声: HTS Voice "Mei" (MMDAgent)', "CC BY 3.0", "Nagoya Institute of Technology"]
    assert _wrap(MEI, 40, len) == ['音声: HTS Voice "Mei" (MMDAgent) CC BY 3.0', "Nagoya Institute of Technology"]


def _args(job):
    return job.dir, job.settings


def test_a_render_ends_on_the_card_and_its_side_files_agree(tmp_path):
    """Decoded, the last frames show the card (unlike the last slide before it); the MP4, the SRT, the
    chapters and the timeline agree on the longer duration."""
    job = _job(tmp_path, end_card=True)
    tl = plan_timeline(job.dir, job.settings)
    out = render_timeline(tl, tmp_path / "v.mp4", job.settings)
    assert float(probe(out)["format"]["duration"]) == pytest.approx(tl.duration, abs=0.05)
    frames = decode_frames(out, 320, 180)
    assert len(frames) == tl.frames
    card = np.asarray(Image.open(tl.slides[-1].image).convert("RGB")).astype(int)
    last_slide = np.array(SLIDE_COLORS[1])
    speech_end = tl.slides[-2].start
    before = frames[round(speech_end * tl.fps) - 2].astype(int)
    final = frames[-1].astype(int)
    region = (slice(0, 90), slice(80, 240))  # upper middle: the card's text, no character, no subtitle
    assert np.abs(before[region] - last_slide).mean() < 25  # the section's slide until the speech ended
    assert np.abs(final[region] - card[region]).mean() < 12  # the card at the end
    assert np.abs(final[region] - last_slide).mean() > 30
    srt, chapters = write_side_files(tl, job.dir)
    ends = [line.split(" --> ")[1] for line in srt.read_text(encoding="utf-8").splitlines() if " --> " in line]
    assert _seconds(ends[-1]) <= speech_end
    ffmeta = subprocess.run(
        ["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(out)], capture_output=True, text=True, check=True
    ).stdout
    listed = json.loads(ffmeta).get("chapters") or []
    if listed:  # embedded by the render: the last chapter runs to the new end
        assert float(listed[-1]["end_time"]) == pytest.approx(tl.duration, abs=0.05)
    assert chapters.read_text(encoding="utf-8").strip()


def _seconds(stamp: str) -> float:
    h, m, rest = stamp.strip().split(":")
    s, ms = rest.split(",")
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000
