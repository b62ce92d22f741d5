"""The end card: a few seconds of credits after the last phrase, part of the timeline.

VOICEVOX characters' terms ask for a credit such as 「VOICEVOX:ずんだもん」 with the video, and the
bundled Open JTalk voice is CC BY 3.0; a 解説動画 traditionally ends on a card that gives them, with
the characters' names. The card is one more :class:`~stages.video.timeline.SlideClip` (in the last
section, after ``timing.ending_pause``), so both renderers show it, the soundtrack, subtitles and
chapters simply run to the longer ``duration``, and the characters stay on screen beside it.

``video.end_card`` turns it on or off; unset, it is on when the video has characters or a
VOICEVOX-compatible voice (whose terms the audio index carries), the cases whose terms or custom call
for an on-screen credit. A plain narration with the offline voice keeps its credit in the sidecar only.
The picture is drawn once per text, size and theme and kept in the job folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages.video.timeline import NarrationClip, SlideClip, Transition

if TYPE_CHECKING:
    from stages.settings import Settings

HEADING = {"ja": "クレジット", "en": "Credits"}
_VOICE_PREFIX = re.compile(r"^(音声合成|音声|Voice)\s*[:：]\s*")
CAST = {"ja": "出演", "en": "Cast"}
VOICES = {"ja": "音声", "en": "Voices"}


@dataclass(frozen=True)
class EndCard:
    """The card's picture and how many frames it is shown."""

    image: Path
    frames: int

    def append_to(self, slides: list[SlideClip], speech_end: float, settings: "Settings") -> list[SlideClip]:
        """The slide track with the card from ``speech_end`` (a frame boundary) to the end.

        The clips that ran to the end now stop at ``speech_end``. With a fade transition configured,
        the last slide fades out to the background and the card fades in, each in half the time, so
        the two texts never show on top of each other.
        """
        fps = settings.video.fps
        end = (round(speech_end * fps) + self.frames) / fps
        track = [c.model_copy(update={"end": speech_end}) if c.end > speech_end else c for c in slides]
        section = track[-1].section if track else 0
        wanted = settings.video.transition
        frames = min(round(wanted.duration * fps), self.frames // 2)
        start, transition = speech_end, Transition()
        if wanted.type != "none" and frames >= 2:
            middle = (round(speech_end * fps) + frames // 2) / fps
            track.append(SlideClip(
                section=section, image=str(_clear_picture(self.image.parent, settings)), start=speech_end, end=middle,
                transition_in=Transition(type="fade", duration=(frames // 2) / fps),
            ))  # fmt: skip
            start, transition = middle, Transition(type="fade", duration=(frames - frames // 2) / fps)
        elif wanted.type != "none" and frames >= 1:
            transition = Transition(type=wanted.type, duration=frames / fps)
        track.append(SlideClip(section=section, image=str(self.image), start=start, end=end, transition_in=transition))
        return track


def wants_end_card(settings: "Settings", narration: list[NarrationClip], audio: dict[str, Any]) -> bool:
    """``video.end_card``, or when unset: the video has a character or a VOICEVOX-compatible voice."""
    if settings.video.end_card is not None:
        return settings.video.end_card
    return bool(_cast(settings, narration)) or bool(audio.get("terms"))


def plan_end_card(
    settings: "Settings", narration: list[NarrationClip], audio: dict[str, Any], language: str, base_dir: Path
) -> EndCard | None:
    """The end card for this video, drawn into ``base_dir``; None when there is to be none."""
    if not wants_end_card(settings, narration, audio):
        return None
    lang = "ja" if (language or "ja").startswith("ja") else "en"
    cast = _cast(settings, narration)
    credits = [str(c) for c in audio.get("credits") or [] if str(c).strip()]
    for term in audio.get("terms") or []:
        credit = term.get("credit") if isinstance(term, dict) else None
        if credit and credit not in credits:
            credits.append(str(credit))
    if not cast and not credits:
        return None
    frames = max(1, round(settings.video.end_card_seconds * settings.video.fps))
    return EndCard(image=draw_end_card(cast, credits, lang, settings, base_dir), frames=frames)


def end_card_lines(cast: list[str], credits: list[str], lang: str) -> list[tuple[str, str]]:
    """The card's lines as (kind, text): a heading, then the cast and the voice credits."""
    lines: list[tuple[str, str]] = [("heading", HEADING[lang])]
    if cast:
        lines.append(("label", CAST[lang]))
        lines.append(("body", " / ".join(cast)))
    if credits:
        lines.append(("label", VOICES[lang]))
        # under the 音声 label an engine's own 「音声: …」 prefix would say it twice
        lines.extend(("body", _VOICE_PREFIX.sub("", credit, count=1) or credit) for credit in credits)
    return lines


def draw_end_card(cast: list[str], credits: list[str], lang: str, settings: "Settings", base_dir: Path) -> Path:
    """Draw the card (the theme's background, text in the column between the characters' corners)."""
    from PIL import Image, ImageDraw, ImageFont

    from stages.base import atomic_temp_path, commit_temp
    from stages.fonts import find_font_face

    width, height = settings.video.width, settings.video.height
    theme, safe = settings.theme, settings.slides.safe_area
    lines = end_card_lines(cast, credits, lang)
    face = find_font_face(theme.font, lang=lang)
    bold = find_font_face(theme.font, lang=lang, bold=True)
    key = hashlib.sha256(json.dumps(
        [3, lines, width, height, theme.background, theme.accent, theme.text, str(face.path), str(bold.path),
         safe.model_dump(mode="json")], ensure_ascii=False,
    ).encode()).hexdigest()[:16]  # fmt: skip
    path = Path(base_dir).resolve() / f"end-card-{width}x{height}-{key}.png"
    if path.is_file():
        return path

    short = min(width, height)
    # the text column: between the lower corners the characters stand in, and inside the margins
    side = max(safe.margin, safe.corner_width) * width
    column = width - 2 * side
    sizes = {"heading": 0.075 * short, "label": 0.038 * short, "body": 0.045 * short}
    colours = {"heading": theme.accent, "label": theme.accent, "body": theme.text}
    image = Image.new("RGB", (width, height), theme.background)
    draw = ImageDraw.Draw(image)
    laid: list[tuple[Any, str, str, float]] = []  # (font, text, colour, line height)
    for kind, whole in lines:
        font_face = bold if kind != "body" else face
        # a credit splits at its dash (the licence, then the holder), each part keeping full size
        # when it fits, else shrinking (down to 70 %) and then wrapping at spaces
        for text in whole.split(" — ") if kind == "body" else [whole]:
            size = sizes[kind]
            font = ImageFont.truetype(str(font_face.path), round(size), index=font_face.index)
            if font.getlength(text) > column:
                size = max(size * 0.7, size * column / font.getlength(text))
                font = ImageFont.truetype(str(font_face.path), round(size), index=font_face.index)
            for part in _wrap(text, column, font.getlength):
                gap = 1.7 if kind == "heading" else (1.45 if kind == "label" else 1.35)
                laid.append((font, part, colours[kind], size * gap))
        if kind == "body":
            laid[-1] = (*laid[-1][:3], laid[-1][3] + size * 0.5)  # room before the next label
    total = sum(h for *_, h in laid)
    y = max(safe.margin * height, (height * (1 - safe.subtitle_band) - total) / 2)
    for font, text, colour, line_height in laid:
        draw.text((width / 2, y), text, font=font, fill=colour, anchor="ma")
        y += line_height
    tmp = atomic_temp_path(path)
    try:
        image.save(tmp, format="PNG")
        commit_temp(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _cast(settings: "Settings", narration: list[NarrationClip]) -> list[str]:
    """The names of the speaking personas that have a character, in order of appearance."""
    names: list[str] = []
    known = {p.id: p for p in settings.personas}
    for clip in narration:
        persona = known.get(clip.speaker)
        if persona is not None and persona.character is not None:
            name = persona.name or persona.id
            if name not in names:
                names.append(name)
    return names


def _wrap(text: str, width: float, measure) -> list[str]:
    """Lines no wider than ``width``: split at a dash (「… CC BY 3.0 — Nagoya Institute of Technology」
    keeps the licence and the holder whole), then greedily at spaces when there are any, else anywhere."""
    if measure(text) <= width:
        return [text]
    if " — " in text:
        head, tail = text.split(" — ", 1)
        return _wrap(head, width, measure) + _wrap(tail, width, measure)
    words = text.split(" ") if " " in text else list(text)
    joiner = " " if " " in text else ""
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current}{joiner}{word}" if current else word
        if current and measure(candidate) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def _clear_picture(folder: Path, settings: "Settings") -> Path:
    """A fully transparent frame-sized PNG (the background shows through while the card fades in)."""
    from PIL import Image

    from stages.base import atomic_temp_path, commit_temp

    width, height = settings.video.width, settings.video.height
    path = Path(folder) / f"end-card-clear-{width}x{height}.png"
    if not path.is_file():
        tmp = atomic_temp_path(path)
        try:
            Image.new("RGBA", (width, height), (0, 0, 0, 0)).save(tmp, format="PNG")
            commit_temp(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return path
