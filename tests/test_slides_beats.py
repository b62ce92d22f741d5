"""Slides follow the narration: a picture per beat, the title card first, code and table pictures in a real video."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import yaml

from stages.script.model import Section
from stages.settings import load_settings
from stages.slides import generate_slides
from stages.slides.beats import HOLD_SECONDS, State, plan_beats
from stages.video import plan_timeline, render_timeline
from tests.test_video_fixtures import RATE, write_wav

CODE = "def find(parent, x):\n    # 根まで辿る\n    while parent[x] != x:\n        x = parent[x]\n    return x\n"
CODE_PANEL = np.array([0x0D, 0x11, 0x17])


def section(lines: list, **extra) -> Section:
    return Section.model_validate({"title": "節", "narrations": lines, **extra})


def test_first_section_opens_with_the_title_card_and_keeps_its_bullets():
    s = section(["今日はUnion-Findの話です。", "経路圧縮を使います。", "ほぼ定数時間になります。"])
    bullets, beats = plan_beats(s, first=True, layout="bullets", bullets=["経路圧縮を使う", "ほぼ定数時間"],
                                durations=[3, 3, 3], visual_pages=[], language="ja")
    assert beats[0] == (0, State("title"))
    assert [state.current for _, state in beats[1:]] == [0, 1]  # the bullet that is said is marked
    assert bullets == ["経路圧縮を使う", "ほぼ定数時間"]


def test_a_shown_visual_holds_then_the_bullets_come_back():
    s = section(["導入です。", {"text": "コードを見てみましょう。", "show": 0}, "続きの説明です。", "さらに説明です。"],
                visuals=[{"kind": "code", "text": "x = 1"}])
    _, beats = plan_beats(s, first=False, layout="bullets", bullets=["導入"], durations=[2, HOLD_SECONDS, 5, 5],
                          visual_pages=[1], language="ja")
    kinds = [(line, state.kind) for line, state in beats]
    assert kinds[1] == (1, "visual") and kinds[2][0] == 2 and kinds[2][1] == "bullets"



def test_bullet_marks_on_a_closing_or_image_slide_keep_that_slide():
    """A closing card (or an image slide) has no bullet list: a line marking a bullet keeps the
    section's own slide on screen instead of an empty bullet slide under the heading."""
    s = section(["まとめです。", {"text": "ポイントは三つです。", "bullet": 0}, {"text": "楽しんでください。", "bullet": 1}],
                slide={"heading": "まとめ", "bullets": ["苗を選ぶ", "収穫のコツ"], "layout": "closing"})
    for layout in ("closing", "image"):
        _, beats = plan_beats(s, first=False, layout=layout, bullets=[], durations=[3, 3, 3], visual_pages=[],
                              language="ja")
        assert beats == [(0, State("base"))], layout

def test_a_long_section_gets_more_bullets_so_no_picture_stays_long():
    topics = ["読み込み", "書き込み", "無効化", "整合性", "置き換え", "容量", "局所性", "階層", "共有", "競合", "計測", "調整"]
    lines = [f"{topic}の仕組みを説明します。" for topic in topics]
    s = section(lines)
    bullets, beats = plan_beats(s, first=False, layout="bullets", bullets=["キャッシュ"], durations=[5.0] * 12,
                                visual_pages=[], language="ja")
    assert len(bullets) > 1
    starts = [line for line, _ in beats] + [12]
    assert max((b - a) * 5.0 for a, b in zip(starts, starts[1:])) <= HOLD_SECONDS + 5.0


def _job(root: Path) -> tuple[Path, object]:
    job = root / "job"
    script = {
        "title": "Union-Find入門",
        "language": "ja",
        "sections": [
            {"title": "はじめに", "narrations": ["今日はUnion-Findの話です。", "親を辿って根を探します。"],
             "slide": {"bullets": ["根を探す"]}},
            {"title": "実装", "slide": {"bullets": ["親を付け替える"]},
             "visuals": [{"kind": "code", "language": "python", "text": CODE},
                         {"kind": "table", "header": ["操作", "計算量"], "rows": [["find", "O(α(n))"], ["union", "O(α(n))"]]}],
             "narrations": [{"text": "親を付け替えます。", "bullet": 0}, {"text": "コードを見てみましょう。", "show": 0},
                            {"text": "計算量の表です。", "show": 1}]},
        ],
    }
    job.mkdir(parents=True)
    (job / "script.yaml").write_text(yaml.safe_dump(script, allow_unicode=True), "utf-8")
    clips = {}
    for si, sec in enumerate(script["sections"]):
        for ni, _ in enumerate(sec["narrations"]):
            pid = f"{si:03d}-{ni:03d}"
            clips[pid] = {"path": str(write_wav(root / "clips" / f"{pid}.wav", 1.5)), "duration": 1.5,
                          "speaker": "narrator"}
    (job / "audio").mkdir()
    (job / "audio" / "index.json").write_text(json.dumps({"sample_rate": RATE, "clips": clips, "dropped": [],
                                                          "credits": []}), "utf-8")
    settings = load_settings(home=root / "home", video={"width": 640, "height": 360})
    return job, settings


def test_code_and_table_pictures_appear_in_the_rendered_video_when_their_line_starts(tmp_path):
    job, settings = _job(tmp_path)
    index = json.loads(generate_slides(job / "script.yaml", job, settings, cache_dir=tmp_path / "cache").read_text())
    kinds = [(p["section"], p["kind"]) for p in index["pictures"]]
    assert kinds == [(0, "title"), (0, "bullets"), (1, "bullets"), (1, "code"), (1, "table")]
    timeline = plan_timeline(job, settings)
    starts = {c.phrase_id: c.start for c in timeline.narration}
    code_clip = next(c for c in timeline.slides if "code-" in Path(c.image).name)
    assert code_clip.start == starts["001-001"]  # the picture changes as the line that shows it starts
    video = render_timeline(timeline, tmp_path / "out.mp4", settings)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    frames = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 360, 640, 3)
    fps = settings.video.fps

    def at(t: float) -> np.ndarray:
        return frames[min(len(frames) - 1, int(round(t * fps)))]

    bullets = at(starts["001-000"] + 0.7)
    code = at(starts["001-001"] + 0.7)
    table = at(starts["001-002"] + 0.7)
    title = at(starts["000-000"] + 0.7)
    upper = slice(90, 260)  # the slide's body, above the subtitles
    code_box = next(b for b in next(p for p in index["pictures"] if p["kind"] == "code")["boxes"] if b["kind"] == "code")
    x0, y0, x1, y1 = code_box["box"]
    panel = code[y0 + 3:y1 - 3, x0 + 3:x1 - 3].reshape(-1, 3).astype(int)
    assert (np.abs(panel - CODE_PANEL).max(axis=1) < 14).mean() > 0.5  # the dark code panel
    reddish = (panel[:, 0] > 150) & (panel[:, 0] > panel[:, 1] + 50)  # keywords (red after 4:2:0 chroma)
    assert reddish.sum() > 20
    assert np.abs(code[upper].astype(int) - bullets[upper].astype(int)).mean() > 5
    table_box = next(b for b in next(p for p in index["pictures"] if p["kind"] == "table")["boxes"] if b["kind"] == "table")
    tx0, ty0, tx1, _ = table_box["box"]
    h0, h1 = table_box["header"]
    band = table[h0 + 2:h1 - 2, tx0 + 2:tx1 - 2].reshape(-1, 3).astype(int)
    assert np.median(band[:, 1]) > np.median(band[:, 0]) + 20  # the header band's accent green
    assert np.abs(table[upper].astype(int) - code[upper].astype(int)).mean() > 5
    assert np.abs(title[upper].astype(int) - at(starts["000-001"] + 0.7)[upper].astype(int)).mean() > 2


def test_marked_bullets_are_kept_and_a_long_run_after_the_last_one_gets_more():
    tail = ["可視変数は見える量です。", "隠れ変数は見えない量です。", "バイアスはなりやすさです。", "重みはつながりの強さです。",
            "制限ボルツマンマシンと呼びます。", "生成モデルになっています。"]
    s = section([{"text": "状態を数えます。", "bullet": 0}, {"text": "エネルギーを定義します。", "bullet": 1}, *tail],
                slide={"bullets": ["状態", "エネルギー"]})
    bullets, beats = plan_beats(s, first=False, layout="bullets", bullets=["状態", "エネルギー"], durations=[5.0] * 8,
                                visual_pages=[], language="ja")
    assert bullets[:2] == ["状態", "エネルギー"] and len(bullets) > 2
    assert [state.current for _, state in beats][:2] == [0, 1]
    starts = [line for line, _ in beats] + [8]
    assert max((b - a) * 5.0 for a, b in zip(starts, starts[1:])) <= HOLD_SECONDS


def _sample_sentences() -> list[str]:
    """Real prose: the paragraphs of the Japanese sample article, split into sentences."""
    from stages.script.text import split_sentences

    text = (Path(__file__).parent.parent / "samples" / "ja-article.md").read_text("utf-8")
    body = text.split("---", 2)[-1] if text.startswith("---") else text
    paragraphs = [p.strip() for p in body.split("\n\n") if p.strip() and p.strip()[0] not in "#-*>`|!:["]
    return [s for p in paragraphs for s in split_sentences(" ".join(p.split()), "ja")]


def test_bullets_made_from_narration_are_key_phrases_without_an_ellipsis():
    """A section whose script gives no bullets gets them from its narration: short key phrases
    that never end on a particle, never a sentence cut with 「…」 (issue 11 item 6)."""
    from stages.script.model import Script
    from stages.script.text import bullet_ends_cleanly
    from stages.slides.layout import BULLET_CHARS, build_specs

    sentences = [s for s in _sample_sentences() if len(s) > BULLET_CHARS]
    assert len(sentences) >= 6
    script = Script.model_validate({"title": "記事", "language": "ja", "sections": [
        {"title": "はじめに", "narrations": ["始めます。"]},
        {"title": "本題", "narrations": sentences[:3]}, {"title": "続き", "narrations": sentences[3:6]},
        {"title": "おわりに", "narrations": ["終わります。"]}]})
    specs = build_specs(script, None)
    bullets = [b for spec in specs[1:3] for b in spec.bullets]
    assert len(bullets) >= 4
    for bullet in bullets:
        assert "…" not in bullet and "..." not in bullet, bullet
        assert bullet_ends_cleanly(bullet, "ja") and len(bullet) <= BULLET_CHARS, bullet


RECAP = ["Union-Findの基本", "経路圧縮", "ランクによる併合", "計算量の解析", "物理への応用", "パーコレーション", "実装のコツ"]


def test_the_recap_lists_every_item_in_pages_and_marks_the_one_being_said(tmp_path):
    """An article with 7 parts: the closing card names all 7 (two pages, 1/2 and 2/2), each page
    turning as its first item is said, and the item being said is marked, so the card changes
    with the narration instead of standing still (issue 11 items 3 and 4)."""
    from stages.slides.layout import build_specs, page_of
    from stages.script.loader import load_script

    job, settings = _job(tmp_path)
    script = yaml.safe_load((job / "script.yaml").read_text("utf-8"))
    script["sections"].append({"title": "まとめ", "slide": {"layout": "closing", "bullets": RECAP},
                               "narrations": ["最後に振り返ります。", *[f"{item}を見ました。" for item in RECAP]]})
    (job / "script.yaml").write_text(yaml.safe_dump(script, allow_unicode=True), "utf-8")
    index = json.loads((job / "audio" / "index.json").read_text("utf-8"))
    wav = next(iter(index["clips"].values()))["path"]
    for n in range(len(RECAP) + 1):
        index["clips"][f"002-{n:03d}"] = {"path": wav, "duration": 1.5, "speaker": "narrator"}
    (job / "audio" / "index.json").write_text(json.dumps(index), "utf-8")

    spec = build_specs(load_script(job / "script.yaml"), None)[2]
    assert spec.bullets == tuple(RECAP)  # none dropped
    pages = [page_of(spec, p) for p in range(2)]
    assert [p.heading for p in pages] == ["まとめ 1/2", "まとめ 2/2"]
    assert pages[0].bullets + pages[1].bullets == tuple(RECAP)

    out = json.loads(generate_slides(job / "script.yaml", job, settings, cache_dir=tmp_path / "cache").read_text())
    closing = [p for p in out["pictures"] if p["section"] == 2]
    assert all(p["kind"] == "closing" for p in closing)
    assert [p["from"] for p in closing] == [0, *range(1, len(RECAP) + 1)]  # unmarked, then each item as said
    assert len({p["sha256"] for p in closing}) == len(closing)  # every step looks different
    timeline = plan_timeline(job, settings)
    shown = [c for c in timeline.slides if c.section == 2]
    assert len(shown) == len(closing) and max(c.end - c.start for c in shown) < 2 * 1.5 + 0.5


def _longest_hold(beats, durations) -> float:
    starts = [line for line, _ in beats] + [len(durations)]
    return max(sum(durations[a:b]) for a, b in zip(starts, starts[1:]))


def test_an_image_section_holds_its_image_then_shows_key_phrases():
    """A section whose slide is an article image: the image first, then (after at most
    HOLD_SECONDS) its bullets with the one being said marked, so the image is not static for the
    whole section; an image section with no bullets gets key phrases from its lines."""
    lines = _sample_sentences()[:8]
    s = section(lines)
    for given in (["苗を選ぶ", "水やりのコツ"], []):
        bullets, beats = plan_beats(s, first=False, layout="image_caption", bullets=given, durations=[6.0] * 8,
                                    visual_pages=[], language="ja")
        assert beats[0] == (0, State("base"))
        assert any(state.kind == "bullets" for _, state in beats) and bullets
        assert _longest_hold(beats, [6.0] * 8) <= HOLD_SECONDS + 6.0


def test_a_visual_shown_again_on_every_line_still_gives_way_to_the_bullets():
    """Lines that each say ``show: 0`` do not restart the visual's time: after HOLD_SECONDS the
    bullets come back for a while."""
    s = section([{"text": t, "show": 0} for t in _sample_sentences()[:8]], visuals=[{"kind": "code", "text": "x = 1"}])
    bullets, beats = plan_beats(s, first=False, layout="bullets", bullets=["コード"], durations=[6.0] * 8,
                                visual_pages=[1], language="ja")
    assert [state.kind for _, state in beats][:2] == ["visual", "bullets"]


def test_a_closing_that_opens_with_prose_shows_key_phrases_until_the_recap_is_named(tmp_path):
    """The article's own まとめ merged into the closing: ten lines of prose (~4 s each) that name no
    recap item, then the line naming the parts. The prose gets key-phrase bullets, changing so
    that none stands over HOLD_SECONDS, and the recap card comes when its first item is said
    (issue 11 item 3: it stood unmarked for 38 s)."""
    prose = _sample_sentences()[:10]
    recap = RECAP[:3]
    lines = [*prose, f"今回は、{'、'.join(recap)}について紹介しました。", "ご視聴ありがとうございました。"]
    durations = [4.0] * len(lines)
    s = section(lines, slide={"heading": "まとめ", "layout": "closing", "bullets": recap})
    bullets, beats = plan_beats(s, first=False, layout="closing", bullets=list(recap), durations=durations,
                                visual_pages=[], language="ja")
    assert bullets == recap  # the recap's list is its own: nothing added to it
    before = [(line, state) for line, state in beats if line < 10]
    assert len(before) > 1 and all(state.kind == "points" for _, state in before)
    assert before[0][1].points and all(state.points == before[0][1].points for _, state in before)
    assert [state.current for _, state in before] == list(range(len(before)))  # each phrase marked in turn
    assert next(state for line, state in beats if line == 10).kind == "bullets"  # the recap card, item marked
    assert _longest_hold(beats, durations) <= HOLD_SECONDS

    # A short opening (under HOLD_SECONDS) keeps the unmarked recap card, as before.
    short = section([*prose[:3], *lines[10:]], slide={"heading": "まとめ", "layout": "closing", "bullets": recap})
    _, beats = plan_beats(short, first=False, layout="closing", bullets=list(recap), durations=[4.0] * 5,
                          visual_pages=[], language="ja")
    assert beats[0] == (0, State("bullets"))

    # In the slides stage: the prose's pictures are bullet slides under the closing's heading, then the card.
    job, settings = _job(tmp_path)
    script = yaml.safe_load((job / "script.yaml").read_text("utf-8"))
    script["sections"].append({"title": "まとめ", "slide": {"layout": "closing", "bullets": recap}, "narrations": lines})
    (job / "script.yaml").write_text(yaml.safe_dump(script, allow_unicode=True), "utf-8")
    index = json.loads((job / "audio" / "index.json").read_text("utf-8"))
    wav = next(iter(index["clips"].values()))["path"]
    for n in range(len(lines)):
        index["clips"][f"002-{n:03d}"] = {"path": wav, "duration": 4.0, "speaker": "narrator"}
    (job / "audio" / "index.json").write_text(json.dumps(index), "utf-8")
    out = json.loads(generate_slides(job / "script.yaml", job, settings, cache_dir=tmp_path / "cache").read_text())
    closing = [p for p in out["pictures"] if p["section"] == 2]
    kinds = [p["kind"] for p in closing if p["from"] < 10]
    assert len(kinds) > 1 and set(kinds) == {"bullets"}
    assert next(p for p in closing if p["from"] == 10)["kind"] == "closing"
    assert len({p["sha256"] for p in closing}) == len(closing)


def test_an_image_that_cannot_be_loaded_leaves_the_bullets_on_screen(tmp_path):
    """A figure whose address is dead gets no picture: its line keeps the bullets (with the one being
    said marked), never an empty slide under the heading that two such figures would hold for long
    (rebase_of_git's figures without a network stood 39 s)."""
    job, settings = _job(tmp_path)
    script = yaml.safe_load((job / "script.yaml").read_text("utf-8"))
    dead = "http://127.0.0.1:9/beforemerge.png"
    script["sections"][1]["visuals"] = [{"kind": "image", "src": dead, "caption": "マージ前"},
                                        {"kind": "image", "src": dead.replace("before", "after"), "caption": "マージ後"}]
    script["sections"][1]["narrations"] = [{"text": "親を付け替えます。", "bullet": 0}, {"text": "図で見てみましょう。", "show": 0},
                                           {"text": "マージした後はこうなります。", "show": 1}]
    (job / "script.yaml").write_text(yaml.safe_dump(script, allow_unicode=True), "utf-8")
    out = json.loads(generate_slides(job / "script.yaml", job, settings, cache_dir=tmp_path / "cache").read_text())
    pictures = [p for p in out["pictures"] if p["section"] == 1]
    assert pictures and all(p["kind"] == "bullets" for p in pictures)
    assert all(any(b["kind"] == "current" for b in p["boxes"]) for p in pictures)  # the bullet said is marked
    s = section(script["sections"][1]["narrations"], visuals=script["sections"][1]["visuals"],
                slide={"bullets": ["親を付け替える"]})
    _, beats = plan_beats(s, first=False, layout="bullets", bullets=["親を付け替える"], durations=[3, 3, 3],
                          visual_pages=[0, 0], language="ja")
    assert [state.kind for _, state in beats] == ["bullets"]


def test_a_recap_line_naming_several_parts_marks_each_of_them(tmp_path):
    """「A、B、Cについて見てきました」 names three parts in one line: all three are marked on the
    closing card from that line (not only C, the last one named), and the card drawn shows three
    marked items (accent colour), the others muted."""
    from stages.slides.layout import SafeArea, SlideSpec
    from stages.slides.deck import _theme
    from stages.slides.typeset import draw_slide
    from stages.settings import Settings

    items = ["リベースの仕組み", "マージとの違い", "対話的リベース", "コンフリクトの解き方"]
    s = section(["最後に振り返ります。", "今回は、リベースの仕組み、マージとの違い、対話的リベースについて見てきました。",
                 "コンフリクトの解き方も紹介しました。"])
    _, beats = plan_beats(s, first=False, layout="closing", bullets=items, durations=[2, 4, 3], visual_pages=[],
                          language="ja")
    states = dict(beats)
    assert states[1].kind == "bullets" and {states[1].current, *states[1].also} == {0, 1, 2}
    assert states[2].current == 3 and states[2].also == ()

    settings = Settings()
    settings.video.width, settings.video.height = 1280, 720
    area, theme = SafeArea.of(settings), _theme(settings, "ja")
    spec = SlideSpec(layout="closing", heading="まとめ", bullets=tuple(items), current=states[1].current,
                     also=states[1].also)
    drawn = draw_slide(spec, theme, area, None, None)
    assert [b["lines"][0] for b in drawn.boxes if b["kind"] == "current"] == items[:3]
    assert [b["lines"][0] for b in drawn.boxes if b["kind"] == "bullets"] == items[3:]
    assert spec.as_key() != SlideSpec(layout="closing", heading="まとめ", bullets=tuple(items),
                                      current=states[1].current).as_key()  # a different picture, a different key


def test_a_visual_gives_way_before_the_line_that_would_hold_it_past_its_time():
    """Pictures change only as a line starts: the bullets come back at the start of the line that
    would take the visual past HOLD_SECONDS, not at the first start after it (boltzmann_machine4's
    formula stood 23.9 s)."""
    s = section([{"text": "式を見てみましょう。", "show": 0}, "一つ目の説明です。", "二つ目の説明です。", "三つ目の説明です。",
                 "四つ目の説明です。"], visuals=[{"kind": "math", "text": "E = mc^2"}])
    durations = [5.0, 6.0, 6.0, 6.0, 6.0]
    _, beats = plan_beats(s, first=False, layout="bullets", bullets=["説明"], durations=durations,
                          visual_pages=[1], language="ja")
    visual = [(line, state) for line, state in beats if state.kind == "visual"]
    assert visual == [(0, State("visual", visual=0))]
    after = next(line for line, state in beats if line > 0)
    assert sum(durations[:after]) <= HOLD_SECONDS
    assert sum(durations[:after]) >= HOLD_SECONDS / 2


def test_one_long_sentence_over_many_lines_still_gets_bullets_so_nothing_stands_long():
    """A tour-date list read as one sentence spans many lines: the sentence's key phrase is used once,
    then each line's own key phrase, so the bullet slide changes at least every 20 s (a real page,
    ../shared/eval/articles 9cb8224b660f, stood 57 s when every line asked for the sentence's)."""
    lines = ["The Doobie Brothers 50th Anniversary Tour 2020 dates: June 9 -- Coral Sky Amphitheatre,",
             "West Palm Beach, FL June 10 -- MIDFLORIDA Credit Union Amphitheatre, Tampa,",
             "FL June 14 -- Ameris Bank Amphitheatre (Formerly Verizon Amphitheatre), Alpharetta,",
             "GA June 17 -- Bridgestone Arena, Nashville, TN June 19 -- PNC Music Pavilion,",
             "Charlotte, NC June 20 -- Coastal Credit Union Music Park at Walnut Creek, Raleigh,",
             "NC June 23 -- Veterans United Home Loans Amphitheater at Virginia Beach, Virginia Beach,",
             "VA June 24 -- Jiffy Lube Live, Bristow, VA June 26 -- PPL Center,",
             "Allentown, PA June 27 -- BB&T Pavilion, Camden, NJ June 29 -- PNC Bank Arts Center, Holmdel."]
    durations = [5.0] * len(lines)
    bullets, beats = plan_beats(section(lines), first=False, layout="bullets", bullets=["The tour dates"],
                                durations=durations, visual_pages=[], language="en")
    assert len(bullets) >= 2
    starts = [line for line, _ in beats] + [len(lines)]
    assert max(sum(durations[a:b]) for a, b in zip(starts, starts[1:])) <= HOLD_SECONDS


def test_a_bullet_marked_again_and_again_still_gets_company_when_it_stays_long():
    """Lines that mark the bullet already marked (a shop page's 「See it now: Amazon」 after every
    gadget) leave the same picture: the stretch counts as one, and new key phrases split it
    (ZDNet's gadget list stood 65.8 s on one bullet)."""
    gadgets = ["The Mavic Mini is the ideal combination of a capable drone in a small package.",
               "With a range of up to 4km and battery life of 30 minutes, it is hard to believe the price.",
               "The Fossil Hybrid HR is billed as a smartwatch but could easily pass as a normal watch.",
               "Underneath the physical watch hands is an energy-efficient display that sips on battery.",
               "Know when a window or door opens with the Wyze Sense starter kit in the hallway.",
               "The new Echo Dot with a clock eliminates that by adding a small digital clock to the side."]
    lines = [{"text": "See it now: Amazon.", "bullet": 1}]
    for text in gadgets:
        lines += [text, {"text": "See it now: Amazon.", "bullet": 1}]
    s = section(lines, slide={"bullets": ["Apple AirPods Pro", "See it now: Amazon"]})
    durations = [2.0 if isinstance(line, dict) else 6.0 for line in lines]
    bullets, beats = plan_beats(s, first=False, layout="bullets", bullets=["Apple AirPods Pro", "See it now: Amazon"],
                                durations=durations, visual_pages=[], language="en")
    assert len(bullets) > 2
    assert _longest_hold(beats, durations) <= HOLD_SECONDS


def test_a_section_whose_own_image_cannot_be_loaded_is_planned_as_its_bullets(tmp_path):
    """The section's slide image is dead: its slide is drawn as its bullets, and the beats mark them
    as said instead of holding an unmarked copy that "gives way" to the same picture (a Fox News
    page stood 26 s on two identical pictures)."""
    job, settings = _job(tmp_path)
    script = yaml.safe_load((job / "script.yaml").read_text("utf-8"))
    script["sections"][1]["slide"] = {"bullets": ["親を付け替える", "根を探す"], "layout": "image",
                                      "image": "http://127.0.0.1:9/contentbroker.png", "caption": "図"}
    script["sections"][1]["visuals"] = []
    script["sections"][1]["narrations"] = ["まず親を付け替えます。", "次に根を探します。", "これで完成です。"]
    (job / "script.yaml").write_text(yaml.safe_dump(script, allow_unicode=True), "utf-8")
    out = json.loads(generate_slides(job / "script.yaml", job, settings, cache_dir=tmp_path / "cache").read_text())
    pictures = [p for p in out["pictures"] if p["section"] == 1]
    assert all(p["kind"] == "bullets" for p in pictures)
    shas = [p["sha256"] for p in pictures]
    assert all(a != b for a, b in zip(shas, shas[1:]))  # every change of beat changes the picture
    assert any(any(b["kind"] == "current" for b in p["boxes"]) for p in pictures)
