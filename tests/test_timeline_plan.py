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


LONG = "これはとても長い字幕の文章で、画面の幅には到底収まらないので折り返しが必要になります。" * 3


@pytest.mark.parametrize("size", [(1920, 1080), (1080, 1920), (320, 180)])
def test_long_phrase_becomes_several_cues_and_loses_nothing(tmp_path, size):
    """A phrase too long for two lines is split into more cues: no ellipsis, every character kept,
    each cue at most two lines that fit the safe width, the pieces tiling the clip's interval."""
    job = make_job(tmp_path, [[Phrase("短い"), Phrase(LONG, seconds=9.0), Phrase("おわり")]], size=size)
    tl = plan_timeline(job.dir, job.settings)
    style = tl.subtitle_style
    clip = tl.narration[1]
    cues = [c for c in tl.subtitles if c.phrase_id == clip.phrase_id]
    assert len(cues) >= 2
    assert "".join("".join(c.lines) for c in cues) == LONG.rstrip("。")
    from PIL import ImageFont

    for cue in cues:
        assert 1 <= len(cue.lines) <= style.max_lines
        assert not any("…" in line or "..." in line for line in cue.lines)
        assert cue.text == "\n".join(cue.lines)
        font = ImageFont.truetype(style.font_file, size=round(cue.font_size))
        assert all(font.getlength(line) <= style.safe_box.width - 2 * style.outline for line in cue.lines)
        assert not any(line.startswith(("、", "。")) for line in cue.lines)
    assert cues[0].start == clip.start and cues[-1].end == pytest.approx(clip.start + clip.duration)
    for a, b in zip(cues, cues[1:]):
        assert a.end == b.start  # back to back: no gap, no overlap
        assert a.end * tl.fps == pytest.approx(round(a.end * tl.fps))  # on a frame boundary
    # time follows the text: a longer piece stays longer on screen
    lengths = [len("".join(c.lines)) for c in cues]
    spans = [c.end - c.start for c in cues]
    assert spans[lengths.index(max(lengths))] >= spans[lengths.index(min(lengths))]


def test_cues_never_overlap_with_zero_gap_and_odd_durations(tmp_path):
    """Phrases back to back (phrase_gap 0) whose clips end between frames: no two cues overlap,
    in the timeline or in the .srt (the old rounding to the nearest frame overlapped by 5-17 ms)."""
    seconds = [1.013, 0.987, 1.4449, 0.6161, 2.0179, 0.5051, 1.2323]
    job = make_job(tmp_path, [[Phrase(f"文{i}です", seconds=d) for i, d in enumerate(seconds)]])
    tl = plan_timeline(job.dir, job.settings)
    for a, b in zip(tl.subtitles, tl.subtitles[1:]):
        assert a.end <= b.start
    for a, b in zip(tl.narration, tl.narration[1:]):
        assert a.start + a.duration <= b.start + 1e-9
    times = re.findall(r"(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)", srt_text(tl.subtitles))
    ms = [(int(h) * 3600000 + int(m) * 60000 + int(s) * 1000 + int(f), int(h2) * 3600000 + int(m2) * 60000 + int(s2) * 1000 + int(f2))
          for h, m, s, f, h2, m2, s2, f2 in times]
    assert len(ms) == len(seconds)
    for (_, end), (start, _) in zip(ms, ms[1:]):
        assert end <= start


def test_split_times_tile_the_interval():
    """Pieces are proportional to their weights, frame-aligned inside, and never overlap."""
    from stages.video.plan import split_times

    times = split_times(1.0, 4.0, [1, 2], 30)
    assert times[0][0] == 1.0 and times[-1][1] == 4.0
    assert times[0][1] == pytest.approx(2.0) and times[0][1] == times[1][0]
    tiny = split_times(0.0, 0.05, [1, 1, 1, 1], 30)  # less than a frame each: still ordered, no overlap
    assert [a for a, _ in tiny][0] == 0.0 and tiny[-1][1] == 0.05
    assert all(a <= b for a, b in tiny) and all(x[1] == y[0] for x, y in zip(tiny, tiny[1:]))


def test_reading_weight_counts_kanji_more_than_kana():
    from stages.video.plan import reading_weight

    assert reading_weight("週間") > reading_weight("しゅう")
    assert reading_weight("きゃ") == reading_weight("か")
    assert reading_weight("a b") < reading_weight("あい")


def test_demo_subtitles_break_at_phrase_boundaries(tmp_path):
    """The breaks the issue found in the demo's subtitles are no longer made, in either orientation."""
    sentences = [
        "ミニトマトは、家庭菜園のなかでも特に育てやすい野菜です。日当たりのよいベランダがあれば、プランターひとつで夏の間ずっと収穫を楽しめます",
        "ひょろりと背の高い苗や、葉が黄色くなっている苗は避けましょう",
        "最初の実がふくらみ始めたら、二週間に一度を目安に追肥をします",
        "植え付けたらすぐに支柱を立て、茎を八の字に結んでゆるく固定します",
        "毎日少しずつ様子を見ながら、自分で育てたトマトの味をぜひ楽しんでください",
        "一番下の花房に、つぼみが付いているものを選ぶと、その後の生育が安定します",
        "わき芽をそのままにすると、栄養が分散して実が小さくなるので、小さいうちに手で摘み取りましょう",
    ]
    bad = ["プラン|ター", "黄|色く", "二|週間", "茎|を", "育|てた", "生|育", "小|さく", "避け|ましょう", "楽し|んで"]
    for size in [(1920, 1080), (1080, 1920), (1280, 720)]:
        job = make_job(tmp_path / f"{size[0]}x{size[1]}", [[Phrase(t, seconds=6.0) for t in sentences]], size=size)
        tl = plan_timeline(job.dir, job.settings)
        broken = "|".join("|".join(c.lines) for c in tl.subtitles)
        for pattern in bad:
            assert pattern not in broken, (size, pattern, broken)


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
    phrases = ["ベランダの", "プランターで", "ミニトマトを", "育てると", "毎日", "少しずつ", "実が", "赤く",
               "なって", "いくのが", "わかります", "収穫の", "時期は", "夏です"]
    text = ""
    for phrase in phrases * 3:
        text += phrase
        if font.getlength(text) > width:
            break  # one phrase past a full line
    job = make_job(tmp_path / "b", [[Phrase(text)]])
    cue = plan_timeline(job.dir, job.settings).subtitles[0]
    assert len(cue.lines) == 2 and "".join(cue.lines) == text
    assert abs(len(cue.lines[0]) - len(cue.lines[1])) <= max(len(p) for p in phrases)  # no orphan
    assert any(cue.lines[1].startswith(p) for p in phrases)  # at a phrase boundary
