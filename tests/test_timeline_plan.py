"""Timeline planning: pauses, cues, slides, transitions, characters, side files, schema."""

from __future__ import annotations

import json
import re

import pytest

from stages.base import InputError
from stages.video.ass import ass_text, escape_ass_text
from stages.video.plan import blink_schedule, plan_timeline
from stages.video.srt import chapters_text, srt_text
from stages.video.timeline import SCHEMA_PATH, Timeline, schema_text
from tests.test_video_fixtures import Phrase, make_job


@pytest.fixture
def two_speakers(tmp_path):
    return make_job(
        tmp_path,
        [
            [Phrase("一つ目。", "narrator", 1.0), Phrase("二つ目、", "zundamon", 1.2), Phrase("三つ目", "zundamon", 0.8)],
            [Phrase("四つ目", "narrator", 1.0, reading="ヨッツメ")],
            [Phrase("五つ目", "narrator", 0.6)],
        ],
        characters={"zundamon": (80, 200, 80)},
    )


def test_pauses_follow_the_timing_settings(two_speakers):
    """Initial 1.0 s, speaker change 0.5 s, same speaker 0 s, section 1.0 s, ending 1.0 s."""
    tl = plan_timeline(two_speakers.dir, two_speakers.settings)
    starts = [round(c.start, 3) for c in tl.narration]
    assert starts == [1.0, 2.5, 3.7, 5.5, 7.5]
    assert tl.duration == pytest.approx(7.5 + 0.6 + 1.0, abs=1 / tl.fps)
    assert tl.frames == round(tl.duration * tl.fps)


def test_timing_settings_are_honoured(tmp_path):
    """Changing the pauses in settings moves the phrases."""
    job = make_job(
        tmp_path,
        [[Phrase("a", "narrator"), Phrase("b", "other")], [Phrase("c", "other")]],
        video={"timing": {"initial_pause": 2.0, "section_pause": 1.5, "speaker_change_pause": 0.3, "ending_pause": 0.5}},
    )
    tl = plan_timeline(job.dir, job.settings)
    assert [round(c.start, 3) for c in tl.narration] == [2.0, 3.3, 5.8]
    assert tl.duration == pytest.approx(7.3, abs=1 / 30)


def test_cues_match_clips_and_never_overlap(two_speakers):
    """One cue per phrase, exactly its clip interval, text not reading, trailing 。、 trimmed."""
    tl = plan_timeline(two_speakers.dir, two_speakers.settings)
    assert [c.phrase_id for c in tl.subtitles] == [n.phrase_id for n in tl.narration]
    for cue, clip in zip(tl.subtitles, tl.narration):
        assert cue.start == clip.start and cue.end == pytest.approx(clip.start + clip.duration)
    for a, b in zip(tl.subtitles, tl.subtitles[1:]):
        assert a.end <= b.start
    assert [c.text for c in tl.subtitles] == ["一つ目", "二つ目", "三つ目", "四つ目", "五つ目"]
    assert tl.subtitles[0].color != tl.subtitles[1].color  # each speaker its persona colour


def test_slides_start_at_sections_and_cover_the_video(two_speakers):
    """Slide k runs from its section's start to the next; the first from 0, the last to the end."""
    tl = plan_timeline(two_speakers.dir, two_speakers.settings)
    assert [s.start for s in tl.slides] == [s.start for s in tl.sections]
    assert tl.slides[0].start == 0.0 and tl.slides[-1].end == tl.duration
    for a, b in zip(tl.slides, tl.slides[1:]):
        assert a.end == b.start
    first_phrase = {}
    for clip in tl.narration:
        first_phrase.setdefault(clip.section, clip.start)
    for slide in tl.slides[1:]:
        assert slide.start < first_phrase[slide.section]  # the slide covers the pause before its narration
    assert [c.start for c in tl.chapters] == [s.start for s in tl.sections]


def test_transitions_never_shorten_narration(tmp_path):
    """A 3 s fade is clamped to the 1 s pause before the section's first phrase."""
    job = make_job(tmp_path, [[Phrase("a")], [Phrase("b")]], video={"transition": {"type": "wipe", "duration": 3.0}})
    tl = plan_timeline(job.dir, job.settings)
    slide = tl.slides[1]
    assert slide.transition_in.type == "wipe"
    assert slide.transition_in.duration == pytest.approx(1.0)
    assert slide.start + slide.transition_in.duration <= tl.narration[1].start + 1e-9
    assert tl.slides[0].transition_in.type == "none"


def test_dropped_phrases_are_skipped(tmp_path):
    """A phrase missing from audio/index.json gets no clip and no cue, and leaves no gap."""
    job = make_job(tmp_path, [[Phrase("a"), Phrase("b"), Phrase("c")]], drop=("000-001",))
    tl = plan_timeline(job.dir, job.settings)
    assert [c.phrase_id for c in tl.narration] == ["000-000", "000-002"]
    assert tl.narration[1].start == pytest.approx(2.0)


def test_long_cue_is_wrapped_to_two_lines(tmp_path):
    """A long line wraps within the safe width, at most two lines, ending in an ellipsis if need be."""
    long = "これはとても長い字幕の文章で、画面の幅には到底収まらないので折り返しが必要になります。" * 3
    job = make_job(tmp_path, [[Phrase("短い"), Phrase(long)]])
    tl = plan_timeline(job.dir, job.settings)
    cue = tl.subtitles[1]
    assert 1 < len(cue.lines) <= 2
    assert cue.lines[-1].endswith("…")
    assert cue.font_size < tl.subtitle_style.size
    assert cue.text == "\n".join(cue.lines)
    assert not any(line.startswith(("、", "。")) for line in cue.lines)


def test_only_speaking_personas_get_characters(tmp_path):
    """A persona with a character who never speaks is not shown; mouths open only while speaking."""
    job = make_job(tmp_path, [[Phrase("a", "zundamon", 1.5), Phrase("b", "narrator", 1.0)]], characters={"zundamon": (0, 200, 0), "metan": (200, 0, 200)})
    tl = plan_timeline(job.dir, job.settings)
    assert [c.persona_id for c in tl.characters] == ["zundamon"]
    track = tl.characters[0]
    assert track.mouth_open_intervals
    for a, b in track.mouth_open_intervals:
        assert any(s - 1e-9 <= a and b <= e + 1e-9 for s, e in track.speaking)
    # lip-sync follows loudness: several separate openings, not one block
    assert len(track.mouth_open_intervals) >= 2


def test_blinks_are_stable_and_every_two_to_five_seconds():
    """The same persona blinks at the same times on every run; gaps are 2–5 s."""
    a = blink_schedule("zundamon", 60.0, 30)
    assert a == blink_schedule("zundamon", 60.0, 30)
    assert a != blink_schedule("metan", 60.0, 30)
    gaps = [b[0] - a_[0] for a_, b in zip(a, a[1:])]
    assert all(1.9 <= g <= 5.1 for g in gaps)


def test_section_background_override(tmp_path):
    """A section's background becomes an override interval over exactly that section."""
    job = make_job(tmp_path, [[Phrase("a")], [Phrase("b")]], section_backgrounds={1: {"type": "color", "value": "#123456"}})
    tl = plan_timeline(job.dir, job.settings)
    assert len(tl.background.overrides) == 1
    override = tl.background.overrides[0]
    assert (override.start, override.end) == (tl.sections[1].start, tl.sections[1].end)
    assert tl.background.at(tl.sections[1].start + 0.1).value == "#123456"
    assert tl.background.at(0.1).value == "#000000"


def test_missing_slide_is_an_input_error(tmp_path):
    job = make_job(tmp_path, [[Phrase("a")], [Phrase("b")]])
    index = json.loads((job.dir / "slides" / "index.json").read_text())
    index["slides"] = index["slides"][:1]
    (job.dir / "slides" / "index.json").write_text(json.dumps(index))
    with pytest.raises(InputError, match="section 1"):
        plan_timeline(job.dir, job.settings)


def test_timeline_round_trips_through_json(two_speakers, tmp_path):
    tl = plan_timeline(two_speakers.dir, two_speakers.settings)
    path = tl.save(tmp_path / "timeline.json")
    assert Timeline.load(path) == tl


def test_schema_file_is_up_to_date():
    """timeline.schema.json equals the model's schema (regenerate: python -m stages.video.timeline)."""
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text()


def test_srt_and_chapters_format(two_speakers):
    tl = plan_timeline(two_speakers.dir, two_speakers.settings)
    srt = srt_text(tl.subtitles)
    blocks = srt.strip().split("\n\n")
    assert len(blocks) == len(tl.subtitles)
    assert blocks[0].splitlines()[0] == "1"
    assert blocks[0].splitlines()[1] == "00:00:01,000 --> 00:00:02,000"
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d,\d\d\d --> \d\d:\d\d:\d\d,\d\d\d", b.splitlines()[1]) for b in blocks)
    chapters = chapters_text(tl.chapters).splitlines()
    assert chapters[0] == "0:00 Section 1"
    assert all(re.fullmatch(r"\d+:\d\d .+", line) for line in chapters)


def test_ass_escapes_user_text(two_speakers):
    """Braces and backslashes in subtitles cannot become libass override tags."""
    assert escape_ass_text(r"a{\b1}b\Nc") == "a\\{\\\u2060b1\\}b\\\u2060Nc"
    tl = plan_timeline(two_speakers.dir, two_speakers.settings)
    text = ass_text(tl)
    assert text.count("Dialogue:") == len(tl.subtitles)
    assert "Style: s0," in text and "Style: s1," in text


def test_two_line_cue_is_balanced(tmp_path):
    """A cue a little too long for one line splits near the middle, not into a full line and an orphan."""
    job = make_job(tmp_path, [[Phrase("短い")]])
    tl = plan_timeline(job.dir, job.settings)
    style = tl.subtitle_style
    from PIL import ImageFont

    font = ImageFont.truetype(style.font_file, size=round(style.size))
    width = style.safe_box.width - 2 * style.outline
    text = "あ"
    while font.getlength(text + "う") <= width:
        text += "あいうえお"[len(text) % 5]
    text += "う"  # one character past a full line
    job = make_job(tmp_path / "b", [[Phrase(text)]])
    cue = plan_timeline(job.dir, job.settings).subtitles[0]
    assert len(cue.lines) == 2 and "".join(cue.lines) == text
    assert abs(len(cue.lines[0]) - len(cue.lines[1])) <= 2
