"""What goes on each slide: the layout, its texts, and where on the frame content may go.

A :class:`SlideSpec` is plain data (it is part of the slide's cache key); :class:`SafeArea` is the
frame's geometry from ``settings.slides.safe_area``: the lower subtitle band and the lower corners
(for characters) are kept free, everything else inside the margins may hold text and images.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from stages.linebreak import is_cjk

if TYPE_CHECKING:
    from stages.script.model import Script, Section
    from stages.settings import Settings

LAYOUTS = ("title", "bullets", "image", "image_caption", "closing")
IMAGE_LAYOUTS = ("image", "image_caption")
MAX_BULLETS = 5  # bullets on one page of a list slide (more go on further pages, see page_of)
BULLET_CHARS = 24  # a bullet made from narration: about one line of the bullet column at 1080p
BULLET_WORDS = 9


@dataclass(frozen=True)
class SlideSpec:
    """The content of one slide.

    Attributes:
        layout: one of :data:`LAYOUTS`.
        heading: the heading (the video title on a title slide).
        bullets: the body lines (bullets or summary points).
        caption: the caption under an image.
        kicker: small text above the title (the site).
        footer: small text under the title (the date).
        image: where the image comes from (URL or path), for image layouts.
        current: on a bullets slide, the bullet being spoken (drawn marked, the others muted); None: none.
        also: further bullets marked with ``current``: a line that names several recap items marks
            each of them.
    """

    layout: str
    heading: str
    bullets: tuple[str, ...] = ()
    caption: str = ""
    kicker: str = ""
    footer: str = ""
    image: str | None = None
    current: int | None = None
    also: tuple[int, ...] = ()

    def as_key(self) -> dict[str, Any]:
        """The spec as plain data for a cache key (the image source is keyed by its bytes)."""
        data = asdict(self)
        data.pop("image")
        if self.current is None:  # unmarked slides keep the keys they always had
            data.pop("current")
        if not self.also:  # (and slides with one item marked)
            data.pop("also")
        else:
            data["also"] = list(self.also)
        data["bullets"] = list(self.bullets)
        return data

    def as_text(self) -> "SlideSpec":
        """The same content as a text-only slide (the fallback when an image fails)."""
        layout = self.layout if self.layout not in IMAGE_LAYOUTS else "bullets"
        return SlideSpec(layout=layout, heading=self.heading, bullets=self.bullets, kicker=self.kicker, footer=self.footer)


@dataclass(frozen=True)
class SafeArea:
    """The frame's geometry in pixels.

    Content may occupy ``left..right`` × ``top..bottom``, except the lower corners
    (``y > corner_top`` and ``x < corner_left`` or ``x > corner_right``), and the logo's box.
    """

    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    subtitle_top: int
    corner_top: int
    corner_left: int
    corner_right: int
    gap: int
    logo: tuple[int, int, int, int] | None = field(default=None)

    @classmethod
    def of(cls, settings: "Settings", logo_size: tuple[int, int] | None = None) -> "SafeArea":
        """The geometry for ``settings.video`` size and ``settings.slides.safe_area``.

        The lower corners are kept free only when a persona has a character to stand there:
        without characters the text column spans the frame between the margins.
        """
        w, h = settings.video.width, settings.video.height
        safe = settings.slides.safe_area
        gap = max(1, round(h * 0.02))
        bands = FrameBands.of(settings)
        subtitle_top = bands.subtitle_top
        corner_w = bands.corner_width
        corner_top = bands.corner_top
        left, right = round(w * safe.margin), w - round(w * safe.margin)
        top = round(h * safe.margin)
        logo = None
        if logo_size is not None:
            lw, lh = logo_size
            logo = (right - lw, top, right, top + lh)
        return cls(
            width=w,
            height=h,
            left=left,
            top=top,
            right=right,
            bottom=min(subtitle_top, h - top) - gap,
            subtitle_top=subtitle_top,
            corner_top=corner_top,
            corner_left=corner_w,
            corner_right=w - corner_w,
            gap=gap,
            logo=logo,
        )

    def span(self, y0: float, y1: float) -> tuple[int, int] | None:
        """The horizontal extent free for content occupying rows ``y0..y1``; None below the bottom."""
        if y1 > self.bottom or y0 < self.top:
            return None
        x0, x1 = self.left, self.right
        if y1 > self.corner_top - self.gap:
            x0 = max(x0, self.corner_left + self.gap)
            x1 = min(x1, self.corner_right - self.gap)
        if self.logo is not None and y0 < self.logo[3] + self.gap:
            x1 = min(x1, self.logo[0] - self.gap)
        return (x0, x1) if x1 > x0 else None

    def has_corners(self) -> bool:
        """True when the lower corners reach above the bottom of the content area."""
        return self.corner_top - self.gap < self.bottom and self.corner_left > 0

    def above_corners(self) -> "SafeArea":
        """The full-width rectangle above the character corners."""
        return replace(self, bottom=min(self.bottom, self.corner_top - self.gap), corner_top=self.height)

    def column(self) -> "SafeArea":
        """The column between the character corners, down to the subtitle band."""
        return replace(self, left=max(self.left, self.corner_left + self.gap),
                       right=min(self.right, self.corner_right - self.gap), corner_top=self.height)

    def inset(self, dx: int, dy: int | None = None) -> "SafeArea":
        """The area shrunk by ``dx`` left and right and ``dy`` (default ``dx``) above and below, on
        every side and around the corners and the logo, so content laid out inside it can be framed
        by a panel that wide that still respects this area."""
        dy = dx if dy is None else dy
        if dx <= 0 and dy <= 0:
            return self
        logo = None
        if self.logo is not None:
            x0, y0, x1, y1 = self.logo
            logo = (x0 - dx, y0 - dy, x1 + dx, y1 + dy)
        return replace(
            self,
            left=self.left + dx,
            top=self.top + dy,
            right=self.right - dx,
            bottom=self.bottom - dy,
            corner_top=self.corner_top - dy if self.corner_top < self.height else self.corner_top,
            corner_left=self.corner_left + dx if self.corner_left > 0 else 0,
            corner_right=self.corner_right - dx if self.corner_right < self.width else self.width,
            logo=logo,
        )

    def allows(self, box: list[int] | tuple[int, int, int, int]) -> bool:
        """True when the rectangle ``[x0, y0, x1, y1]`` lies where content may go (the rule of :meth:`span`)."""
        x0, y0, x1, y1 = box
        if x0 < self.left or x1 > self.right or y0 < self.top or y1 > self.bottom:
            return False
        if y1 > self.corner_top - self.gap and (x0 < self.corner_left + self.gap or x1 > self.corner_right - self.gap):
            return False
        if self.logo is not None:
            lx0, ly0, lx1, ly1 = self.logo
            g = self.gap
            if x0 < lx1 + g and x1 > lx0 - g and y0 < ly1 + g and y1 > ly0 - g:
                return False
        return True

    def corners(self) -> list[list[int]]:
        """The lower corner boxes kept free for characters, ``[x0, y0, x1, y1]``."""
        if self.corner_top >= self.height:
            return []
        return [
            [0, self.corner_top, self.corner_left, self.height],
            [self.corner_right, self.corner_top, self.width, self.height],
        ]

    def index_entry(self) -> dict[str, Any]:
        """The ``safe_area`` object of ``slides/index.json``."""
        return {"subtitle_top": self.subtitle_top, "corners": self.corners()}


@dataclass(frozen=True)
class FrameBands:
    """Where the characters and the subtitles go on the frame, in pixels: one rule for the slides
    (what they keep free), the characters' placement and the subtitles' box.

    Landscape: each character stands in a lower corner (``corner_width`` of the width by
    ``corner_height`` of the height) beside the subtitle band at the bottom. Portrait (taller than
    wide) with characters: the corners join into a band across the bottom (each side owns half the
    width, ``corner_height`` of the short side tall, so the characters keep landscape's size) and
    the subtitle band (``subtitle_band`` of the short side) sits right above it, off their faces and
    clear of the bottom strip Shorts covers with its title; the slides' text spans the full width
    above both. Without characters the subtitle band is at the bottom and no corner is kept.
    """

    subtitle_top: int
    subtitle_bottom: int  # px from the frame's top to the bottom of the subtitle box
    subtitle_side: int  # px kept free left and right of the subtitle box
    corner_width: int  # 0: no corners kept
    corner_top: int  # the frame's height when no corners are kept

    @property
    def portrait(self) -> bool:
        return self.corner_width > 0 and self.subtitle_bottom <= self.corner_top

    @classmethod
    def of(cls, settings: "Settings") -> "FrameBands":
        """The bands for ``settings.video`` size, ``settings.slides.safe_area`` and whether a persona has a character."""
        w, h = settings.video.width, settings.video.height
        safe = settings.slides.safe_area
        short = min(w, h)
        characters = has_characters(settings)
        margin = round(w * safe.margin)
        if characters and h > w and safe.corner_height > 0:
            corner_top = h - round(short * safe.corner_height)
            bottom = corner_top - round(short * 0.02)
            return cls(subtitle_top=bottom - round(short * safe.subtitle_band), subtitle_bottom=bottom,
                       subtitle_side=margin, corner_width=w // 2, corner_top=corner_top)
        corner_w = round(w * safe.corner_width) if characters else 0
        corner_top = round(h * (1 - safe.corner_height)) if corner_w > 0 and safe.corner_height > 0 else h
        return cls(subtitle_top=round(h * (1 - safe.subtitle_band)),
                   subtitle_bottom=h - round(settings.video.subtitles.bottom_margin * h),
                   subtitle_side=max(margin, corner_w), corner_width=corner_w, corner_top=corner_top)


def has_characters(settings: "Settings") -> bool:
    """True when some persona has a character picture (which stands in a lower corner)."""
    return any(getattr(p, "character", None) is not None for p in settings.personas)


def build_specs(script: "Script", article: dict[str, Any] | None) -> list[SlideSpec]:
    """One spec per section, in order: layout picked from the content unless the script sets it."""
    count = len(script.sections)
    return [_spec_for(script, i, section, article, count) for i, section in enumerate(script.sections)]


def language_of(script: "Script", settings: "Settings") -> str:
    """The on-slide language: the script's, else the settings' default."""
    return (script.language or settings.script.language or "ja").lower()


def page_of(spec: SlideSpec, page: int, size: int = MAX_BULLETS) -> SlideSpec:
    """Page ``page`` (from 0) of a list slide: ``size`` of its bullets, the heading marked ``1/2``
    when there are several pages (the recap names every part, so a long list is paged, never cut).
    A list that fits one page comes back unchanged, so its cache key does not change."""
    pages = max(1, -(-len(spec.bullets) // size))
    if pages == 1:
        return spec
    page = max(0, min(page, pages - 1))
    return replace(spec, heading=f"{spec.heading} {page + 1}/{pages}",
                   bullets=spec.bullets[page * size:(page + 1) * size])


# --- internals -----------------------------------------------------------------------------------


def _spec_for(script: "Script", i: int, section: "Section", article: dict[str, Any] | None, count: int) -> SlideSpec:
    slide = section.slide
    heading = (slide.heading if slide and slide.heading else section.title).strip()
    image = (slide.image if slide and slide.image else None) or section.source_image_url
    caption = (slide.caption if slide and slide.caption else "").strip()
    layout = slide.layout if slide and slide.layout else _pick_layout(i, count, image, caption)
    bullets = tuple(b.strip() for b in (slide.bullets if slide else []) if b.strip()) or _narration_bullets(
        section, heading, script.language
    )
    if layout == "title":
        site, date = _site_and_date(article)
        subtitle = heading if heading and heading != script.title.strip() and slide and slide.heading else ""
        return SlideSpec(
            layout="title",
            heading=script.title.strip(),
            bullets=(subtitle,) if subtitle else (),
            kicker=site,
            footer=date,
        )
    if layout in IMAGE_LAYOUTS and not image:
        layout = "bullets"
    if layout == "image_caption" and not caption:
        caption = heading
    return SlideSpec(
        layout=layout,
        heading=heading,
        bullets=bullets,  # all of them: a list longer than a page is drawn in pages (page_of)
        caption=caption,
        image=image if layout in IMAGE_LAYOUTS else None,
    )


def _pick_layout(i: int, count: int, image: str | None, caption: str) -> str:
    if i == 0:
        return "title"
    if i == count - 1 and count > 2:
        return "closing"
    if image:
        return "image_caption" if caption else "image"
    return "bullets"


def _narration_bullets(section: "Section", heading: str, language: str | None) -> tuple[str, ...]:
    """Up to 4 bullets from the narration when the script gives none: each a key phrase of one
    sentence (the script writers' :func:`stages.script.text.bullet_of`: short, never ending on a
    particle or a dangling word, no ellipsis)."""
    from stages.script.text import split_sentences

    text = " ".join(n.text for n in section.narrations)
    if not language:
        language = "ja" if sum(1 for c in text if is_cjk(c)) > len(text) / 3 else "en"
    points: list[str] = []
    for narration in section.narrations:
        for sentence in split_sentences(narration.text, language):
            point = narration_bullet(sentence, language)
            if point and point != heading and point not in points:
                points.append(point)
    return tuple(points[:4])


def narration_bullet(sentence: str, language: str) -> str:
    """A slide bullet from one narration sentence: a short key phrase (about one line at 1080p)."""
    from stages.script.text import bullet_of, is_cjk_language

    return bullet_of(sentence, language, BULLET_CHARS if is_cjk_language(language) else BULLET_WORDS).strip()


_SENTENCE_END = re.compile(r"[。．！？!?]['\"”’」』)）]*$|(?<![A-Z])\.['\"”’)]*$")


def line_sentence(texts: list[str], k: int, language: str) -> str:
    """The sentence narration line ``k`` is part of, from the section's lines ``texts``.

    A line is one phrase, often a piece of a longer sentence (cut after 40 characters or 15 words,
    at a morpheme boundary but maybe inside a compound: 「さて、直接コミット」 + 「ハッシュを指定して…」):
    a bullet made from the piece would be cut mid-phrase, one made from the sentence is not.
    The lines before ``k`` up to the previous sentence end and those after it up to the next are
    joined; the sentence holding the start of line ``k`` is returned.
    """
    from stages.script.text import is_cjk_language, split_sentences

    start = k
    while start > 0 and not _SENTENCE_END.search(texts[start - 1].strip()):
        start -= 1
    end = k
    while end < len(texts) - 1 and not _SENTENCE_END.search(texts[end].strip()):
        end += 1
    glue = "" if is_cjk_language(language) else " "
    before = glue.join(t.strip() for t in texts[start:k])
    joined = glue.join(t.strip() for t in texts[start:end + 1])
    at = len(before) + (len(glue) if before else 0)
    pos = 0
    for sentence in split_sentences(joined, language):
        found = joined.find(sentence, pos)
        if found < 0:
            break
        pos = found + len(sentence)
        if pos > at:
            return sentence
    return texts[k]


def _site_and_date(article: dict[str, Any] | None) -> tuple[str, str]:
    if not article:
        return "", ""
    site = str(article.get("site") or article.get("site_name") or article.get("sitename") or "").strip()
    date = str(article.get("published") or article.get("date") or "").strip()
    match = re.match(r"(\d{4})-(\d{2})-(\d{2})", date)
    if match:
        date = f"{match.group(1)}.{match.group(2)}.{match.group(3)}"
    return site, date
