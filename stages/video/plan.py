"""Planning: ``script.yaml`` + ``audio/index.json`` + ``slides/index.json`` + settings -> Timeline.

Timing (all from ``settings.video.timing``):

- the first phrase starts after ``initial_pause``;
- a section's first phrase starts ``section_pause`` after the previous section's last phrase;
- within a section, a change of speaker adds ``speaker_change_pause``, otherwise ``phrase_gap``;
- the video ends ``ending_pause`` after the last phrase.

A section (and its slide) starts where the previous section's narration ends, so the slide covers the
pause before its first phrase; the first section starts at 0 and the last one runs to the end. The
incoming transition overlaps that pause and is clamped to it, so it never shortens narration.
Every start is snapped to a frame boundary so both renderers agree: a phrase starts on the first
frame at or after its wanted time (never earlier, so it never overlaps the phrase before it).

Subtitles: a phrase's cue covers its clip. A phrase too long for ``subtitles.max_lines`` lines
(after shrinking to ``min_scale``) becomes several cues, split at phrase boundaries (文節) with
clause ends preferred, each on screen for a share of the clip proportional to its characters
(:func:`reading_weight`). No text is ever dropped or ellipsized, and a cue ends at or before the
next one starts.

Backgrounds: ``settings.video.background`` is the default; a section's ``background`` in the script
becomes an override for exactly that section's span (its slide's ``[start, end)``). Renderers draw it
under the slide, so it is seen where the slide is transparent or smaller than the frame (see
:mod:`stages.video.timeline` for the layering and how a video background loops).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from stages.assets import resolve_script_asset
from stages.base import InputError
from stages.script.model import Script
from stages.video.cast import blink_schedule, plan_characters  # noqa: F401 (blink_schedule re-exported)
from stages.video.endcard import plan_end_card
from stages.video.mix import read_wav_mono  # noqa: F401 (re-exported)
from stages.video.timeline import (
    Background,
    BackgroundInterval,
    BackgroundTrack,
    Bgm,
    Chapter,
    CharacterTrack,
    NarrationClip,
    SafeBox,
    SectionSpan,
    SlideClip,
    SubtitleCue,
    SubtitleStyle,
    Timeline,
    Transition,
)

if TYPE_CHECKING:
    from stages.settings import Settings

TRAILING_PUNCTUATION = "。、"
CLAUSE_ENDS = "、。！？!?，,；;：:」』）)"


def plan_timeline(job_dir: Path, settings: "Settings") -> Timeline:
    """Plan the video of the job in ``job_dir`` from its script, audio and slides.

    Raises:
        InputError: an upstream artifact is missing or inconsistent (no clips at all, a missing
            slide, a character image or BGM file that does not exist).
    """
    job_dir = Path(job_dir)
    script = _load_script(job_dir / "script.yaml")
    audio = _load_json(job_dir / "audio" / "index.json")
    slides = _load_json(job_dir / "slides" / "index.json")
    return build_timeline(script, audio, slides, settings, base_dir=job_dir)


def build_timeline(
    script: Script, audio: dict[str, Any], slides: dict[str, Any], settings: "Settings", *, base_dir: Path
) -> Timeline:
    """Plan from already-loaded inputs (``base_dir`` resolves relative paths in the script)."""
    video = settings.video
    fps = video.fps
    clips_index: dict[str, dict[str, Any]] = audio.get("clips", {})
    slide_paths = {int(item["section"]): item["path"] for item in slides.get("slides", [])}

    narration, section_spans = _place_phrases(script, clips_index, settings)
    if not narration:
        raise InputError("no narration clips to place: every phrase was dropped by the audio stage")
    last_end = narration[-1].start + narration[-1].duration
    frames = int(np.ceil((last_end + video.timing.ending_pause) * fps - 1e-6))
    card = plan_end_card(settings, narration, audio, script.language or settings.script.language, base_dir)
    speech_end = frames / fps
    frames += card.frames if card else 0  # the credits picture after the ending pause (stages/video/endcard.py)
    duration = frames / fps
    section_spans[-1] = section_spans[-1].model_copy(update={"end": duration})

    slide_track = _slides(section_spans, narration, slide_paths, settings, _pictures(slides))
    if card:
        slide_track = card.append_to(slide_track, speech_end, settings)
    characters = _characters(script, narration, settings, duration, fps)
    style = _subtitle_style(settings, has_characters=bool(characters))
    cues = _cues(script, narration, style, settings)
    return Timeline(
        fps=fps,
        width=video.width,
        height=video.height,
        duration=duration,
        frames=frames,
        sample_rate=int(audio.get("sample_rate", 48000)),
        slides=slide_track,
        narration=narration,
        subtitles=cues,
        subtitle_style=style,
        characters=characters,
        background=_background(script, section_spans, settings, base_dir),
        bgm=_bgm(settings),
        chapters=[Chapter(title=s.title, start=s.start) for s in section_spans],
        sections=section_spans,
    )


# --- timing -----------------------------------------------------------------------------------


def _place_phrases(
    script: Script, clips: dict[str, dict[str, Any]], settings: "Settings"
) -> tuple[list[NarrationClip], list[SectionSpan]]:
    timing = settings.video.timing
    fps = settings.video.fps
    # the first frame at or after t: rounding to the nearest frame could start a phrase up to half a
    # frame before the previous one ends (audio and cues overlapping by 5-17 ms)
    snap = lambda t: math.ceil(t * fps - 1e-6) / fps  # noqa: E731 - a one-line rounding rule
    narration: list[NarrationClip] = []
    spans: list[SectionSpan] = []
    cursor = 0.0  # end of the last placed phrase (or 0)
    previous_speaker: str | None = None
    by_section: dict[int, list[tuple[str, Any]]] = {}
    for phrase_id, section_index, item in script.phrases():
        by_section.setdefault(section_index, []).append((phrase_id, item))
    for index, section in enumerate(script.sections):
        section_start = 0.0 if index == 0 else cursor
        pause = timing.initial_pause if index == 0 else timing.section_pause
        first = True
        for phrase_id, item in by_section.get(index, []):
            clip = clips.get(phrase_id)
            if clip is None:
                continue  # dropped by the audio stage
            speaker = item.persona_id or clip.get("speaker") or settings.default_persona
            if first:
                gap = pause
            elif speaker != previous_speaker:
                gap = timing.speaker_change_pause
            else:
                gap = timing.phrase_gap
            start = snap(cursor + gap)
            duration = float(clip["duration"])
            narration.append(
                NarrationClip(
                    phrase_id=phrase_id,
                    section=index,
                    audio=str(Path(clip["path"]).resolve()),
                    start=start,
                    duration=duration,
                    speaker=speaker,
                )
            )
            cursor = start + duration
            previous_speaker = speaker
            first = False
        if first:  # every phrase of the section was dropped: show its slide for the pause alone
            cursor = snap(cursor + pause)
        spans.append(SectionSpan(index=index, title=section.title, start=snap(section_start), end=0.0))
    for i in range(len(spans) - 1):
        spans[i] = spans[i].model_copy(update={"end": spans[i + 1].start})
    return narration, spans


def _slides(
    spans: list[SectionSpan], narration: list[NarrationClip], paths: dict[int, str], settings: "Settings",
    pictures: dict[int, list[dict[str, Any]]] | None = None,
) -> list[SlideClip]:
    fps = settings.video.fps
    wanted = settings.video.transition
    first_phrase = {}
    for clip in narration:
        first_phrase.setdefault(clip.section, clip.start)
    track: list[SlideClip] = []
    for span in spans:
        if span.index not in paths:
            raise InputError(f"slides/index.json has no slide for section {span.index} ({span.title!r})")
        image = Path(paths[span.index]).resolve()
        transition = Transition()
        if span.index > 0 and wanted.type != "none" and wanted.duration > 0:
            room = first_phrase.get(span.index, span.end) - span.start
            length = int(min(wanted.duration, room) * fps + 1e-6) / fps
            if length > 0:
                transition = Transition(type=wanted.type, duration=length)
        if pictures and pictures.get(span.index):  # a picture per beat (slides/index.json "pictures")
            track.extend(_beat_clips(span, span.start, transition, pictures[span.index], narration, fps))
            continue
        track.append(
            SlideClip(section=span.index, image=str(image), start=span.start, end=span.end, transition_in=transition)
        )
    return track


def _pictures(slides: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    """``slides/index.json``'s pictures per beat, by section (empty for an index without them)."""
    out: dict[int, list[dict[str, Any]]] = {}
    for item in slides.get("pictures") or []:
        out.setdefault(int(item["section"]), []).append(item)
    return out


def _beat_clips(span: SectionSpan, start: float, transition: Transition, pictures: list[dict[str, Any]],
                narration: list[NarrationClip], fps: int) -> list[SlideClip]:
    """A section's pictures on the slide track: the picture changes (a cut) when the narration line
    of its beat starts (``from``: the line's index in the section); the pages of one beat (a long
    code block, a table, the title card and the content of a one-line first section) share its time
    evenly, on frame boundaries. The first beat starts with the section (and its transition)."""
    line_start = {int(c.phrase_id.split("-")[1]): c.start for c in narration if c.section == span.index}
    groups: list[tuple[float, list[dict[str, Any]]]] = []
    for item in pictures:
        line = int(item.get("from", 0))
        at = next((line_start[k] for k in sorted(line_start) if k >= line), span.end)  # lines dropped: no time
        if groups and item.get("group") == groups[-1][1][0].get("group"):
            groups[-1][1].append(item)
        else:
            groups.append((at, [item]))
    clips: list[SlideClip] = []
    for g, (at, items) in enumerate(groups):
        begin = start if g == 0 else min(span.end, max(start, math.ceil(at * fps - 1e-6) / fps))
        end = span.end if g + 1 == len(groups) else min(span.end, max(begin, math.ceil(groups[g + 1][0] * fps - 1e-6) / fps))
        first_frame, last_frame = round(begin * fps), round(end * fps)
        for n, item in enumerate(items):
            a = (first_frame + (last_frame - first_frame) * n // len(items)) / fps
            b = (first_frame + (last_frame - first_frame) * (n + 1) // len(items)) / fps
            if b <= a:
                continue
            clips.append(SlideClip(section=span.index, image=str(Path(item["path"]).resolve()), start=a, end=b,
                                   transition_in=transition if not clips else Transition()))
    return clips


# --- subtitles --------------------------------------------------------------------------------


def _subtitle_style(settings: "Settings", *, has_characters: bool) -> SubtitleStyle:
    from stages.fonts import find_font_face, font_family_name
    from stages.slides.layout import FrameBands

    width, height = settings.video.width, settings.video.height
    subs = settings.video.subtitles
    safe = settings.slides.safe_area
    face = find_font_face(subs.font or settings.theme.font)
    # sizes follow the frame's short side: a portrait (9:16) frame keeps landscape's type size
    # instead of growing it by the height, which left room for 9 characters a line
    short = min(width, height)
    size = round(subs.size * short, 1)
    side = max(safe.margin, safe.corner_width if has_characters else 0.0) * width
    bottom = round(subs.bottom_margin * height, 1)
    band = safe.subtitle_band * height
    bands = FrameBands.of(settings)
    if has_characters and bands.portrait:  # portrait: right above the characters' band, full width
        side, bottom, band = bands.subtitle_side, float(height - bands.subtitle_bottom), float(height - bands.subtitle_top)
    return SubtitleStyle(
        font_family=font_family_name(face.path),
        font_file=str(face.path),
        size=size,
        outline=round(max(subs.outline * short, 1.0), 1),
        bottom_margin=bottom,
        line_height=round(size * 1.25, 1),
        max_lines=subs.max_lines,
        safe_box=SafeBox(x=round(side, 1), y=round(height - band, 1), width=round(width - 2 * side, 1), height=round(band - bottom, 1)),
    )


def _cues(script: Script, narration: list[NarrationClip], style: SubtitleStyle, settings: "Settings") -> list[SubtitleCue]:
    texts = {pid: item.text for pid, _, item in script.phrases()}
    fitter = CueFitter(style, settings.video.subtitles.min_scale)
    fps = settings.video.fps
    cues = []
    for clip in narration:
        text = texts[clip.phrase_id].strip().rstrip(TRAILING_PUNCTUATION).strip()
        color = _hex6(settings.persona(clip.speaker).subtitle_color if _has_persona(settings, clip.speaker) else "#ffffff")
        end = clip.start + clip.duration
        parts = fitter.fit_parts(text)
        times = split_times(clip.start, end, [reading_weight("".join(lines)) for lines, _ in parts], fps)
        for (lines, size), (a, b) in zip(parts, times):
            cues.append(
                SubtitleCue(
                    phrase_id=clip.phrase_id,
                    section=clip.section,
                    start=a,
                    end=b,
                    text="\n".join(lines),
                    lines=lines,
                    speaker=clip.speaker,
                    color=color,
                    font_size=size,
                )
            )
    return cues


def reading_weight(text: str) -> float:
    """About how long ``text`` takes to say, in morae: what a split cue's share of its clip follows.

    Kana count one mora each (small ゃゅょぁ… none: they merge with the kana before), a kanji about
    two (most on'yomi are two morae), a digit about two, a Latin letter about half (「API」 is
    エーピーアイ, 5 morae for 3 letters; longer words run about a mora per two letters), and
    clause punctuation a short pause. Spaces count nothing.
    """
    weight = 0.0
    for char in text:
        if char.isspace():
            continue
        if char in "ぁぃぅぇぉゃゅょゎァィゥェォャュョヮ":
            continue
        if "\u3040" <= char <= "\u30ff":
            weight += 1.0
        elif "\u4e00" <= char <= "\u9fff" or char in "々〆":
            weight += 2.0
        elif char.isdigit():
            weight += 2.0
        elif char.isalpha():
            weight += 0.6
        elif char in CLAUSE_ENDS:
            weight += 0.5
        else:
            weight += 0.3
    return max(weight, 0.5)


def split_times(start: float, end: float, weights: list[float], fps: int) -> list[tuple[float, float]]:
    """Split ``[start, end)`` into consecutive intervals proportional to ``weights``.

    Inner boundaries fall on frame boundaries (both renderers show the same cue on every frame),
    each interval keeps at least one frame when there is room, and each one ends exactly where
    the next starts: consecutive cues never overlap.
    """
    if len(weights) <= 1:
        return [(start, end)]
    total = sum(weights)
    bounds = [start]
    acc = 0.0
    for i, w in enumerate(weights[:-1]):
        acc += w
        t = round((start + (end - start) * acc / total) * fps) / fps
        lowest = bounds[-1] + 1 / fps
        highest = end - (len(weights) - 1 - i) / fps
        t = min(max(t, lowest), highest) if lowest <= highest else (bounds[-1] + end) / 2
        bounds.append(max(bounds[-1], min(t, end)))
    bounds.append(end)
    return list(zip(bounds[:-1], bounds[1:]))


@dataclass
class CueFitter:
    """Lays a phrase's subtitle out in at most ``max_lines`` lines of the safe width.

    Too long at full size: the font shrinks in steps down to ``min_scale``; still too long: the
    text becomes several cues (:meth:`fit_parts`), never an ellipsis.
    """

    style: SubtitleStyle
    min_scale: float

    @property
    def width(self) -> float:
        """The widest a subtitle line may be, outline included."""
        return self.style.safe_box.width - 2 * self.style.outline

    def fit(self, text: str) -> tuple[list[str], float] | None:
        """One cue's lines and font size, shrinking down to ``min_scale``; None if it cannot fit."""
        from stages.linebreak import wrap_balanced

        scale = 1.0
        while True:
            size = round(self.style.size * scale, 1)
            lines = wrap_balanced(text, self.width, self._measure(size))  # two lines come out even
            if len(lines) <= self.style.max_lines:
                return lines, size
            if scale - 0.05 < self.min_scale - 1e-9:
                return None
            scale -= 0.05

    def fit_parts(self, text: str) -> list[tuple[list[str], float]]:
        """The cues ``text`` needs, in order: ``(lines, font_size)`` each; one unless it is too long.

        A text that does not fit ``max_lines`` lines even at ``min_scale`` is cut, at full size,
        into the fewest pieces that each fit, at phrase boundaries (文節) as near even as they
        can be, preferring the end of a clause (after 、 or 。). Every character is kept.
        """
        whole = self.fit(text)
        if whole is not None:
            return [whole]
        from stages.linebreak import wrap, wrap_balanced

        size = round(self.style.size, 1)
        measure = self._measure(size)
        max_lines = max(1, self.style.max_lines)
        greedy = wrap(text, self.width, measure)
        need = math.ceil(len(greedy) / max_lines)
        for count in range(need, need + 3):
            pieces = _even_pieces(text, count)
            parts = [wrap_balanced(piece, self.width, measure) for piece in pieces]
            if all(0 < len(lines) <= max_lines for lines in parts):
                return [(lines, size) for lines in parts]
        # the greedy lines, max_lines at a time, always fit (a phrase wider than a line is split)
        return [(greedy[i : i + max_lines], size) for i in range(0, len(greedy), max_lines)]

    def _measure(self, size: float):
        font = _font(self.style.font_file, size)
        return font.getlength


def _even_pieces(text: str, count: int) -> list[str]:
    """``text`` cut between line-break units (:func:`stages.linebreak.tokens`) into ``count``
    pieces of about the same length, a cut after a clause end (、。) preferred when it is near."""
    from stages.linebreak import tokens

    units = tokens(text)
    if count <= 1 or len(units) < 2:
        return [text]
    lengths = [len(u.strip()) for u in units]
    total = sum(lengths)
    cuts: list[int] = []
    position = 0
    cumulative = [0]
    for n in lengths:
        cumulative.append(cumulative[-1] + n)
    for k in range(1, count):
        target = total * k / count
        best, best_cost = None, math.inf
        for i in range(max(position + 1, 1), len(units)):
            if units[i - 1].isspace() and i - 1 > position:
                continue  # cut after the space's word instead: same place, no leading space
            cost = abs(cumulative[i] - target)
            if units[i - 1].rstrip()[-1:] in CLAUSE_ENDS:
                cost -= 0.25 * total / count  # a clause end is worth a little unevenness
            if cost < best_cost:
                best, best_cost = i, cost
        if best is None:
            break
        cuts.append(best)
        position = best
    bounds = [0, *cuts, len(units)]
    pieces = ["".join(units[a:b]).strip() for a, b in zip(bounds[:-1], bounds[1:])]
    return [p for p in pieces if p]


def _font(path: str | None, size: float):
    from PIL import ImageFont

    from stages.fonts import find_font_face

    if path is None:
        raise InputError("no subtitle font file")
    index = 0
    if path.lower().endswith((".ttc", ".otc")):
        index = find_font_face(path).index
    return ImageFont.truetype(path, size=max(1, round(size)), index=index)


# --- characters -------------------------------------------------------------------------------


def _characters(script: Script, narration: list[NarrationClip], settings: "Settings", duration: float, fps: int) -> list[CharacterTrack]:
    return plan_characters(script, narration, settings, duration, fps)


# --- background, BGM --------------------------------------------------------------------------


def _background(script: Script, spans: list[SectionSpan], settings: "Settings", base_dir: Path) -> BackgroundTrack:
    conf = settings.video.background
    default = Background(
        type=conf.type,
        value=_hex6(conf.value) if conf.type == "color" else None,
        path=str(_existing(conf.path, "video.background.path")) if conf.type != "color" else None,
        fit=conf.fit,
    )
    overrides = []
    for span, section in zip(spans, script.sections):
        wanted = section.background
        if wanted is None:
            continue
        if wanted.type == "color":
            background = Background(type="color", value=_hex6(wanted.value or "#000000"), fit=wanted.fit)
        else:
            if not wanted.path:
                raise InputError(f"section {span.index} ({span.title!r}): a {wanted.type} background needs a path")
            # The script is untrusted input: its paths stay inside the job folder and the home.
            path = resolve_script_asset(wanted.path, settings, base_dir, f"section {span.index} background")
            background = Background(type=wanted.type, path=str(path), fit=wanted.fit)
        overrides.append(BackgroundInterval(start=span.start, end=span.end, section=span.index, background=background))
    return BackgroundTrack(default=default, overrides=overrides)


def _bgm(settings: "Settings") -> Bgm | None:
    conf = settings.video.bgm
    if conf.path is None:
        return None
    return Bgm(
        path=str(_existing(conf.path, "video.bgm.path")),
        volume=conf.volume,
        fade_in=conf.fade_in,
        fade_out=conf.fade_out,
        loop=conf.loop,
        duck=conf.duck,
        duck_volume=conf.duck_volume,
    )


# --- small helpers ----------------------------------------------------------------------------


def _load_script(path: Path) -> Script:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{path} is missing: run the script stage first") from exc
    return Script.model_validate(data)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{path} is missing: run the stage that writes it first") from exc


def _existing(path: Path | str | None, what: str) -> Path:
    if path is None:
        raise InputError(f"{what} is not set")
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise InputError(f"{what}: {resolved} does not exist")
    return resolved


def _has_persona(settings: "Settings", persona_id: str) -> bool:
    return any(p.id == persona_id for p in settings.personas)


def _hex6(color: str) -> str:
    value = color.strip().lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    return "#" + value[:6].lower()
