"""The script format (DESIGN.md, "Script format"): the contract between script, audio, slides, video.

A superset of the original movie-generator ``script.yaml``. Besides the canonical form, a section
may say what is spoken in any of these ways (they are normalised to ``narrations`` on load):

``narrations:`` a list whose items are strings or ``{text, reading?, persona_id?, expression?}``; ``speaker``
    or ``persona`` are accepted as other names for ``persona_id``.
``narration: "<string>"`` the original single-narrator form: one string, split into phrases by
    :func:`stages.script.text.phrases_of` (sentence ends, then about 40 characters or 15 words).
    A list under ``narration:`` is read as ``narrations:``.
``dialogues:`` the original multi-speaker form: a list of ``{persona_id|speaker|persona,
    narration|text, reading?}``, one narration each, in order (the original writes the words under
    ``narration``; any narration item may).

Only one of the three may appear in a section. The script may also carry the original's
``role_assignments`` (kept, not used for rendering).

What is on screen while a line is spoken (the section's *beats*)::

    sections:
      - title: 計算量
        visuals:                                  # what the article shows here (optional)
          - {kind: code, language: python, text: "def find(x): ..."}
          - {kind: table, caption: 計算量, header: [操作, 計算量], rows: [[find, "O(α(n))"]]}
          - {kind: math, text: "E = mc^2"}
          - {kind: image, src: "https://…/fig.png", caption: 図1}
        slide: {heading: 計算量, bullets: [経路圧縮で速くなる, ほぼ定数時間]}
        narrations:
          - {text: 経路圧縮を使います。, bullet: 0}  # the slide's bullets, bullet 0 marked
          - {text: コードはこうなります。, show: 0}   # visuals[0] from this line on
          - 次の表が計算量です。                    # no show/bullet: the picture stays
          - {text: ほぼ定数時間です。, bullet: 1}

``Section.visuals`` holds the section's code blocks, tables, display math and images, in the
article's order (:class:`Visual`). A narration's ``show: N`` puts ``visuals[N]`` on screen from that
line on; ``bullet: N`` puts the section's bullet slide back, with ``slide.bullets[N]`` marked as the
one being spoken. A line with neither keeps the picture of the line before; a section's first line
without either shows the section's slide. Indexes are checked when the script is read. The writers
introduce every visual in words (its caption, the sentence before it, or its header row) on the
line that shows it: the voice never reads code, table cells, math source or URLs.
"""

from __future__ import annotations

from typing import Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_PERSONA_ALIASES = ("speaker", "persona")
_TEXT_ALIASES = ("narration",)


class Narration(BaseModel):
    """One phrase: ``text`` is shown in subtitles, ``reading`` is what the voice speaks."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    text: str
    reading: str | None = None
    persona_id: str | None = None
    expression: str | None = Field(None, description="the character's expression from this line on (None: its default)")
    show: int | None = Field(None, ge=0, description="index into the section's visuals: shown from this line on")
    bullet: int | None = Field(None, ge=0, description="index into slide.bullets: the bullet this line speaks")

    @field_validator("text")
    @classmethod
    def _has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a narration needs some text")
        return value

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, value: object) -> object:
        if isinstance(value, dict):
            for field, aliases in (("persona_id", _PERSONA_ALIASES), ("text", _TEXT_ALIASES)):
                present = [key for key in (field, *aliases) if key in value]
                if len(present) > 1:
                    raise ValueError(f"use only one of {', '.join(present)} (they name the same field)")
                if present and present[0] != field:
                    value = {(field if k == present[0] else k): v for k, v in value.items()}
        return value

    @property
    def spoken(self) -> str:
        """What the voice engine should say."""
        return self.reading or self.text


class SlideContent(BaseModel):
    """Typeset slide content for a section (all optional)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    heading: str | None = None
    bullets: list[str] = Field(default_factory=list)
    image: str | None = Field(None, description="URL or path of an image for the slide")
    caption: str | None = None
    layout: Literal["title", "bullets", "image", "image_caption", "closing"] | None = None


class Visual(BaseModel):
    """One thing the article shows rather than says: code, a table, display math or an image.

    Attributes:
        kind: ``code`` | ``table`` | ``math`` | ``image``.
        text: the code's source, or the math's TeX (without ``$$``).
        language: the code's language as the article named it (``python``, ``rust``…), if known.
        header: a table's header row (may be empty).
        rows: a table's body rows, each a list of cell texts (inline markup and links as plain text).
        src: an image's URL or path (checked like ``slide.image`` in a dropped script).
        caption: what the article calls it (a caption, an image's alt text, a table's title), if any.
    """

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    kind: Literal["code", "table", "math", "image"]
    text: str | None = None
    language: str | None = None
    header: list[str] = Field(default_factory=list)
    rows: list[list[str]] = Field(default_factory=list)
    src: str | None = None
    caption: str | None = None

    @model_validator(mode="after")
    def _has_content(self) -> "Visual":
        needs = {"code": self.text, "math": self.text, "image": self.src, "table": self.header or self.rows}
        if not needs[self.kind] or (self.kind in ("code", "math") and not str(self.text).strip()):
            what = {"code": "text", "math": "text", "image": "src", "table": "header or rows"}[self.kind]
            raise ValueError(f"a {self.kind} visual needs {what}")
        return self


class SectionBackground(BaseModel):
    """A per-section background override."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    type: Literal["image", "video", "color"]
    path: str | None = None
    value: str | None = None
    fit: Literal["cover", "contain"] = "cover"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    title: str
    narrations: list[Narration] = Field(min_length=1)
    visuals: list[Visual] = Field(default_factory=list)
    slide: SlideContent | None = None
    slide_prompt: str | None = None
    source_image_url: str | None = None
    background: SectionBackground | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_forms(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        present = [key for key in LEGACY_NARRATION_KEYS if key in value]
        if len(present) > 1:
            raise ValueError(f"use only one of {', '.join(present)} in a section")
        if not present or present[0] == "narrations":
            return value
        key = present[0]
        rest = {k: v for k, v in value.items() if k != key}
        legacy = value[key]
        if key == "narration" and isinstance(legacy, str):
            from stages.script.text import guess_language, phrases_of

            legacy = phrases_of(legacy, guess_language(legacy))
        rest["narrations"] = legacy
        return rest

    @model_validator(mode="after")
    def _beats_point_somewhere(self) -> "Section":
        bullets = len(self.slide.bullets) if self.slide is not None else 0
        for n, narration in enumerate(self.narrations):
            if narration.show is not None and narration.show >= len(self.visuals):
                raise ValueError(f"narration {n + 1}: show: {narration.show} but the section has {len(self.visuals)} visual(s)")
            if narration.bullet is not None and narration.bullet >= bullets:
                raise ValueError(f"narration {n + 1}: bullet: {narration.bullet} but the slide has {bullets} bullet(s)")
            if narration.show is not None and narration.bullet is not None:
                raise ValueError(f"narration {n + 1}: use show or bullet, not both")
        return self

    @field_validator("narrations", mode="before")
    @classmethod
    def _strings_are_narrations(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"text": str(item)} if _is_text_scalar(item) else item for item in value]
        return value


def _is_text_scalar(item: object) -> bool:
    return isinstance(item, (str, int, float)) and not isinstance(item, bool)


LEGACY_NARRATION_KEYS = ("narrations", "narration", "dialogues")
"""The keys a section may use for what is spoken; the last two are normalised to the first."""


class RoleAssignment(BaseModel):
    """The original's note of which persona plays which role in a dialogue."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    persona_id: str
    role: str
    description: str | None = None


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    title: str = Field(min_length=1)
    description: str | None = None
    language: str | None = None
    sections: list[Section] = Field(min_length=1)
    role_assignments: list[RoleAssignment] | None = None

    def phrases(self) -> Iterator[tuple[str, int, Narration]]:
        """Every phrase in order as ``(phrase_id, section_index, narration)``.

        Phrase ids are ``"<section:03d>-<narration:03d>"``: audio/index.json, the timeline and the
        subtitles all use them.
        """
        for si, section in enumerate(self.sections):
            for ni, narration in enumerate(section.narrations):
                yield phrase_id(si, ni), si, narration


def phrase_id(section_index: int, narration_index: int) -> str:
    """The stable id of a phrase by position."""
    return f"{section_index:03d}-{narration_index:03d}"
