"""The script format (DESIGN.md, "Script format"): the contract between script, audio, slides, video.

A superset of the original movie-generator ``script.yaml``: narrations may be plain strings or
``{text, reading, persona_id}``.
"""

from __future__ import annotations

from typing import Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Narration(BaseModel):
    """One phrase: ``text`` is shown in subtitles, ``reading`` is what the voice speaks."""

    model_config = ConfigDict(extra="forbid")

    text: str
    reading: str | None = None
    persona_id: str | None = None

    @property
    def spoken(self) -> str:
        """What the voice engine should say."""
        return self.reading or self.text


class SlideContent(BaseModel):
    """Typeset slide content for a section (all optional)."""

    model_config = ConfigDict(extra="forbid")

    heading: str | None = None
    bullets: list[str] = Field(default_factory=list)
    image: str | None = Field(None, description="URL or path of an image for the slide")
    caption: str | None = None
    layout: Literal["title", "bullets", "image", "image_caption", "closing"] | None = None


class SectionBackground(BaseModel):
    """A per-section background override."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["image", "video", "color"]
    path: str | None = None
    value: str | None = None
    fit: Literal["cover", "contain"] = "cover"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    narrations: list[Narration] = Field(min_length=1)
    slide: SlideContent | None = None
    slide_prompt: str | None = None
    source_image_url: str | None = None
    background: SectionBackground | None = None

    @field_validator("narrations", mode="before")
    @classmethod
    def _strings_are_narrations(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"text": item} if isinstance(item, str) else item for item in value]
        return value


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1)
    description: str | None = None
    language: str | None = None
    sections: list[Section] = Field(min_length=1)

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
