"""The extractive writer: a script made from the article's own sentences, offline and deterministic.

Sections:
    The article's headings at the shallowest level used (a heading repeating the title is
    ignored) each start a section; deeper headings stay inside it and become bullet candidates.
    Text before the first such heading becomes an introduction section. An article without
    headings is cut where its topic shifts (:mod:`stages.script.topics`) into parts of about
    :data:`GROUP_CHARS` characters (CJK) or :data:`GROUP_WORDS` words, labelled 「その1」 / "Part 1"
    (never a sentence fragment). The opening, the recap and the labels are in the article's
    language: Japanese, English, Korean, Chinese, Spanish, French, German, Italian, Portuguese
    and Russian (others get English ones). A section with nothing to say (only code, say) is left out. An
    article's own closing part (「まとめ」, "Summary"…) is not a body section: it opens the closing.
    A part of references (「参考文献」, "References"…) holds citations, not prose: it is left out.

Narration:
    Paragraphs, quotes, admonitions (not a collapsed :::details) and list items (each item one
    sentence) are narrated, as :func:`stages.script.visuals.speakable` allows: never a URL, handle,
    code, table cell, markup or math source. Sentences and phrases follow :mod:`stages.script.text`.
    The title card is a section of its own; it names the title and, when the parts have real
    titles, what the video covers. The closing recalls every part (or only the title when the
    parts are labels). Japanese phrases get a katakana ``reading`` from pyopenjtalk's g2p (with the
    pronunciation dictionary applied).

Visuals (the section's beats, see :mod:`stages.script.model`):
    Every code block, table, display formula and image of a section is one of its ``visuals``.
    The sentence right before it in the article shows it (the article's own 「こんな感じです。」);
    else a sentence from :func:`stages.script.visuals.introduction` does (caption, header row).
    It stays on screen through the paragraph after it; then the next sentence marks a bullet
    again. Sentences that speak a bullet's point mark it (``bullet: N``). Trimming never drops a
    sentence that shows a visual.

Slides:
    Each section's slide has its heading, up to :data:`MAX_BULLETS` bullets (subheadings and list
    items first, then one per sentence in order) and the section's first article image, which is
    also its ``source_image_url``. A bullet is a complete, short point made by
    :func:`stages.script.text.bullet_of` from one sentence, at most :data:`BULLET_CHARS` (30)
    characters or :data:`BULLET_WORDS` (10) words (about two lines of the bullet column at 1080p):

    - a sentence that fits is used whole, its trailing 。/. dropped;
    - else the best clause span that ends cleanly: on the sentence's own ending, on a terminal form
      whose conjunctive particle is dropped (「小さくなるので、」 -> 「小さくなる」), on a nominalised こと, or
      (weaker) on a noun before が/は/も; a span may drop leading clauses and then keeps the
      sentence's topic (「良い苗は、…、葉の色が濃い緑色をしています」 -> 「良い苗は、葉の色が濃い緑色を
      しています」). Clause breaks are commas after anything but a noun (a comma between nouns lists
      them); in English, commas and conjunctions. Spans keeping the start or the end win ties;
      (a span ending on a noun must be a noun phrase, not a clause cut before its verb);
    - as a last resort the longest noun phrase (Japanese) or the longest start ending before a
      preposition or conjunction (other languages) — never a dangling clause;
    - none of these, or a lone word (a list item 「master」, "However"): no bullet from that
      sentence (:func:`stages.script.text.is_key_phrase`); the next one gives it.

    So no bullet ends on a conjunctive or case particle or a comma (Japanese:
    :data:`stages.script.text.BULLET_FORBIDDEN_JA`, e.g. て, で, と, が, ば, は, を, に, ので, 、)
    or on a function word (English: ``and``, ``but``, ``the``, ``of``…; no trailing comma). A
    bullet equal to the heading, or already on the slide, is skipped. Deterministic: the same
    sentence always gives the same bullet.

Length (``script.max_minutes``):
    Spoken time is estimated by :func:`stages.script.text.estimate_seconds` plus one second per
    section pause. When over budget, the opening and closing are kept whole; then (1) only as many
    body sections are kept, from the start, as leave each at least :data:`MIN_SECTION_SECONDS`
    (so a long article gives fewer full sections, not many one-line ones); (2) every body section
    is cut to the same fraction of its length by dropping trailing sentences (its first sentence
    is always kept); (3) if that is still too long, body sections are dropped from the end (the
    first is always kept).

Spoken text:
    A sentence holding a URL is a reference, not something to say: it is left out. Markup the
    extraction left in the text (``*``, backquotes, ``#``, ``|``, a ``_`` that is not inside a
    word) is dropped before phrasing.

Personas:
    ``script.style = narration``: every phrase is the default persona's. ``dialogue`` with two or
    more personas: a conversation (:mod:`stages.script.dialogue`): the default persona hosts, opens
    and asks about each part from its heading; the other of the first two explains from the
    article's sentences. Lines get an expression (happy, surprised, troubled) only when the
    persona's character has it. With one persona, ``dialogue`` is narration.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from stages.base import Cancelled, InputError, Progress, no_progress
from stages.characters import expression_names
from stages.script import dialogue
from stages.script.model import Narration, Script, Section, SlideContent, Visual
from stages.script.topics import topic_groups
from stages.script.visuals import introduction, speakable, visual_of
from stages.script.text import (
    article_language,
    bullet_of,
    estimate_seconds,
    is_cjk_language,
    is_japanese,
    split_sentences,
    spoken_phrases,
)

if TYPE_CHECKING:
    from stages.settings import Settings

GROUP_CHARS = 400
GROUP_WORDS = 120
BULLET_CHARS = 30
BULLET_WORDS = 10
MAX_BULLETS = 4
SECTION_PAUSE_SECONDS = 1.0
MIN_SECTION_SECONDS = 20.0
_LISTED_TITLES = 5
_REFERENCES = {"参考文献", "参考", "参考リンク", "参考資料", "参考記事", "関連記事", "リンク", "references", "reference",
               "links", "furtherreading", "seealso", "sources", "bibliography"}
_SUMMARIES = {"まとめ", "おわりに", "終わりに", "さいごに", "最後に", "結論", "結び", "summary", "conclusion", "conclusions",
              "wrappingup", "inconclusion", "finalthoughts"}

_WORDS = {
    "ja": {
        "intro": "はじめに",
        "summary": "まとめ",
        "open": "今回は「{title}」について解説します。",
        "covers": "この動画では、{topics}について見ていきます。",
        "recap": "最後に、今回の内容を振り返りましょう。",
        "recalled": "今回は、{topics}について紹介しました。",
        "recalled_title": "今回は、「{title}」について紹介しました。",
        "part": "その{n}",
        "thanks": "ご視聴ありがとうございました。",
        "join": "、",
        "untitled": "無題",
    },
    "en": {
        "intro": "Introduction",
        "summary": "Summary",
        "open": "In this video, we look at {title}.",
        "covers": "We cover {topics}.",
        "recap": "Let's recap what we covered.",
        "recalled": "We looked at {topics}.",
        "recalled_title": "We looked at {title}.",
        "part": "Part {n}",
        "thanks": "Thanks for watching.",
        "join": ", ",
        "and": " and ",
        "untitled": "Untitled",
    },
}
# The opening, the recap and the labels in the article's own language (a Korean page once opened
# with "In this video, we look at 엔터 미디어."); others fall back to English.
_WORDS.update({
    language: dict(zip(("intro", "summary", "open", "covers", "recap", "recalled", "recalled_title", "part", "thanks",
                        "join", "and", "untitled"), texts))
    for language, texts in {
        "ko": ("소개", "정리", "이번 영상에서는 “{title}”에 대해 알아봅니다.", "이 영상에서는 {topics}에 대해 살펴봅니다.",
               "마지막으로 내용을 정리해 봅시다.", "{topics}에 대해 알아보았습니다.", "“{title}”에 대해 알아보았습니다.",
               "파트 {n}", "시청해 주셔서 감사합니다.", ", ", ", ", "제목 없음"),
        "zh": ("简介", "总结", "本期视频我们来看看“{title}”。", "我们将介绍{topics}。", "最后，我们来回顾一下。",
               "我们介绍了{topics}。", "我们介绍了“{title}”。", "第{n}部分", "感谢观看。", "、", "和", "无标题"),
        "es": ("Introducción", "Resumen", "En este vídeo vemos {title}.", "Hablamos de {topics}.",
               "Repasemos lo que hemos visto.", "Hemos visto {topics}.", "Hemos visto {title}.", "Parte {n}",
               "Gracias por vernos.", ", ", " y ", "Sin título"),
        "fr": ("Introduction", "Résumé", "Dans cette vidéo, nous parlons de {title}.", "Nous abordons {topics}.",
               "Récapitulons ce que nous avons vu.", "Nous avons vu {topics}.", "Nous avons vu {title}.", "Partie {n}",
               "Merci d'avoir regardé.", ", ", " et ", "Sans titre"),
        "de": ("Einleitung", "Zusammenfassung", "In diesem Video geht es um {title}.", "Wir behandeln {topics}.",
               "Fassen wir zusammen.", "Wir haben uns {topics} angesehen.", "Wir haben uns {title} angesehen.", "Teil {n}",
               "Danke fürs Zuschauen.", ", ", " und ", "Ohne Titel"),
        "it": ("Introduzione", "Riepilogo", "In questo video parliamo di {title}.", "Vediamo {topics}.",
               "Ricapitoliamo quello che abbiamo visto.", "Abbiamo visto {topics}.", "Abbiamo visto {title}.", "Parte {n}",
               "Grazie per la visione.", ", ", " e ", "Senza titolo"),
        "pt": ("Introdução", "Resumo", "Neste vídeo, falamos sobre {title}.", "Vamos ver {topics}.",
               "Vamos recapitular o que vimos.", "Vimos {topics}.", "Vimos {title}.", "Parte {n}", "Obrigado por assistir.",
               ", ", " e ", "Sem título"),
        "ru": ("Введение", "Итоги", "В этом видео мы поговорим о теме «{title}».", "Мы рассмотрим: {topics}.",
               "Давайте подведём итоги.", "Мы рассмотрели: {topics}.", "Мы рассмотрели тему «{title}».", "Часть {n}",
               "Спасибо за просмотр.", ", ", " и ", "Без названия"),
    }.items()
})


@dataclass
class _Sentence:
    text: str
    phrases: list[tuple[str, str | None]] = field(default_factory=list)  # (text, reading)
    seconds: float = 0.0
    paragraph: int = 0  # the block it came from, within its section
    show: int | None = None  # the draft's visual shown from this sentence on
    shown_block: int = 0  # the block of that visual
    points: list[str] = field(default_factory=list)  # bullet candidates this sentence speaks
    listed: bool = False  # an item of a list (a dialogue reads a list without interrupting it)


@dataclass
class _Draft:
    title: str
    sentences: list[_Sentence] = field(default_factory=list)
    key_points: list[str] = field(default_factory=list)  # subheadings and list items
    sentence_points: list[str] = field(default_factory=list)
    image: dict[str, Any] | None = None
    is_intro: bool = False
    visuals: list[Visual] = field(default_factory=list)
    is_summary: bool = False  # the article's own まとめ: merged into the closing
    is_label: bool = False  # titled その1 / Part 1: not named in the opening or the recap

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.sentences)


@dataclass
class _RawSection:
    title: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    is_intro: bool = False
    is_label: bool = False  # a neutral label (その1), not a title from the article


def write_extractive(
    article: dict[str, Any],
    settings: "Settings",
    progress: Progress = no_progress,
    *,
    cancel: threading.Event | None = None,
) -> Script:
    """Write a script from an ``article.json`` dict (see the module docstring for every rule).

    Raises:
        InputError: the article has no narratable text.
        Cancelled: ``cancel`` was set between sections.
    """
    language = article_language(article, settings.script.language)
    words = _WORDS["ja"] if is_japanese(language) else _WORDS.get(language.split("-")[0].lower(), _WORDS["en"])
    title = _clean(article.get("title")) or _first_heading(article) or words["untitled"]
    pronunciation = [(e.surface, e.reading) for e in settings.pronunciation]
    writer = _Writer(language, pronunciation)

    raw_sections, lead_image = _group(article, title, language, words)
    drafts: list[_Draft] = []
    for index, raw in enumerate(raw_sections):
        _check(cancel)
        progress(index, len(raw_sections) + 2, f"section {index + 1}/{len(raw_sections)}: {raw.title}")
        draft = writer.draft(raw)
        if draft.sentences:
            drafts.append(draft)
    if not drafts:
        raise InputError("the article has no text to narrate (only code, images or nothing at all)")

    drafts = [d for d in drafts if _plain(d.title) not in _REFERENCES] or drafts  # citations are not said
    summary = drafts.pop() if len(drafts) > 1 and drafts[-1].is_summary else None
    opening = writer.draft_text(words["intro"], _opening_words(title, drafts, words))
    closing = _closing(writer, summary, title, drafts, words)
    drafts = _trim(drafts, opening.seconds + closing.seconds, settings.script.max_minutes * 60)
    opening = writer.draft_text(words["intro"], _opening_words(title, drafts, words))
    closing = _closing(writer, summary, title, drafts, words)
    _check(cancel)

    personas = _persona_cycle(settings)
    if len(personas) == 2:
        sections = _conversation(writer, title, drafts + ([summary] if summary else []), lead_image, words, personas,
                                 _expressions(settings, personas))
        progress(len(raw_sections) + 2, len(raw_sections) + 2, f"{len(sections)} sections written as a dialogue")
        return Script(title=title, description=_description(article, drafts, language), language=language,
                      sections=sections)
    sections: list[Section] = []
    topics = _recap_items(drafts, language)
    plan = [(opening, "title"), *[(d, None) for d in drafts], (closing, "closing")]
    for index, (draft, layout) in enumerate(plan):

        def narrate(marks: dict[int, dict[str, int]], draft: _Draft = draft) -> list[Narration]:
            return [Narration(text=t, reading=r, persona_id=personas[0], **(marks.get(i, {}) if p == 0 else {}))
                    for i, s in enumerate(draft.sentences) for p, (t, r) in enumerate(s.phrases)]  # fmt: skip

        if layout == "title":
            # The title card is a section of its own, so the first part of the article keeps its slide.
            slide = SlideContent(heading=title, bullets=topics, layout="title", image=_src(lead_image))
            section = Section(title=title, narrations=narrate({}), slide=slide, source_image_url=_src(lead_image))
        elif layout == "closing":
            slide = SlideContent(heading=draft.title, bullets=topics, layout="closing")
            section = Section(title=draft.title, narrations=narrate({}), slide=slide)
        else:
            section = _body_section(draft, narrate, language)
        sections.append(section)
    progress(len(raw_sections) + 2, len(raw_sections) + 2, f"{len(sections)} sections written")
    return Script(title=title, description=_description(article, drafts, language), language=language, sections=sections)


# --- grouping ---------------------------------------------------------------------------------


def _group(article: dict[str, Any], title: str, language: str, words: dict[str, str]) -> tuple[list[_RawSection], dict | None]:
    blocks = article.get("blocks")
    if not isinstance(blocks, list):
        raise InputError("article.json has no 'blocks' list")
    blocks = [b for b in blocks if isinstance(b, dict)]
    headings = [b for b in blocks if b.get("type") == "heading" and _clean(b.get("text")) and _clean(b.get("text")) != title]
    if not headings:
        return _group_paragraphs(blocks, language, words), None
    level = min(int(b.get("level") or 2) for b in headings)
    sections: list[_RawSection] = []
    lead = _RawSection(words["intro"], is_intro=True)
    current = lead
    for block in blocks:
        if block in headings and int(block.get("level") or 2) == level:
            current = _RawSection(_clean(block.get("text")))
            sections.append(current)
        elif block.get("type") == "heading" and _clean(block.get("text")) == title:
            continue
        else:
            current.blocks.append(block)
    lead_image = None
    if any(b.get("type") in ("paragraph", "list", "quote", "admonition", "code", "table", "math") for b in lead.blocks):
        sections.insert(0, lead)
    else:
        lead_image = next((b for b in lead.blocks if b.get("type") == "image" and b.get("src")), None)
    return sections, lead_image


def _group_paragraphs(blocks: list[dict[str, Any]], language: str, words: dict[str, str]) -> list[_RawSection]:
    """Sections of an article without headings: cut where the topic shifts, labelled その1, その2…"""
    limit = GROUP_CHARS if is_cjk_language(language) else GROUP_WORDS
    groups = topic_groups(blocks, _block_text, language, limit)
    sections = [_RawSection(words["part"].format(n=n), group, is_label=True) for n, group in enumerate(groups, 1)]
    return [raw for raw in sections if any(_block_text(b) for b in raw.blocks)]


def _block_text(block: dict[str, Any]) -> str:
    kind = block.get("type")
    if kind in ("paragraph", "quote", "admonition"):
        return _clean(block.get("text"))
    if kind == "list":
        return " ".join(_clean(item) for item in block.get("items") or [] if isinstance(item, str))
    return ""


# --- drafting ---------------------------------------------------------------------------------


class _Writer:
    """Turns blocks into sentences with phrases, readings and estimated lengths."""

    def __init__(self, language: str, pronunciation: list[tuple[str, str]]):
        self.language = language
        self.japanese = is_japanese(language)
        self.pronunciation = pronunciation

    def draft(self, raw: _RawSection) -> _Draft:
        draft = _Draft(raw.title, is_intro=raw.is_intro, is_summary=_is_summary(raw.title), is_label=raw.is_label)
        pending_points: list[str] = []  # subheadings waiting for the sentence that starts their part
        pending_show: int | None = None  # a visual waiting for a sentence to appear with
        last_block: dict[int, int] = {}  # block number -> index of its last sentence

        def add(text: str, number: int, points: list[str], listed: bool = False) -> None:
            nonlocal pending_show
            sentence = self.sentence(text, number)
            if not sentence.phrases:
                return
            sentence.listed = listed
            sentence.points = [*pending_points, *points]
            pending_points.clear()
            if pending_show is not None:
                sentence.show, sentence.shown_block, pending_show = pending_show, number, None
            draft.sentences.append(sentence)
            last_block[number] = len(draft.sentences) - 1

        for number, block in enumerate(raw.blocks):
            kind = block.get("type")
            if kind in ("paragraph", "quote") or (kind == "admonition" and block.get("kind") != "details"):
                for sentence in self._speakable(split_sentences(_clean(block.get("text")), self.language)):
                    add(sentence, number, [sentence])
                    draft.sentence_points.append(sentence)
            elif kind == "list":
                for item in block.get("items") or []:
                    if isinstance(item, str) and _clean(item):
                        sentences = self._speakable(split_sentences(self._as_sentence(_clean(item)), self.language))
                        point = speakable(_clean(item), self.japanese)
                        for i, sentence in enumerate(sentences):
                            add(sentence, number, [point] if i == 0 and point else [], listed=True)
                        if sentences and point:
                            draft.key_points.append(point)
            elif kind == "heading":
                if point := speakable(_clean(block.get("text")), self.japanese):
                    draft.key_points.append(point)
                    pending_points.append(point)
            elif kind in ("code", "table", "math", "image") and (visual := visual_of(block)) is not None:
                if kind == "image" and draft.image is None:
                    draft.image = block
                index = len(draft.visuals)
                draft.visuals.append(visual)
                before = last_block.get(number - 1)
                if before is not None and draft.sentences[before].show is None and kind != "image":
                    draft.sentences[before].show = index  # the article's own lead-in: 「こんな感じです。」
                    draft.sentences[before].shown_block = number
                    continue
                words = introduction(visual, self.japanese)
                if words:
                    pending_show = index
                    for sentence in split_sentences(words, self.language):
                        add(sentence, number, [])
                elif before is not None and draft.sentences[before].show is None:
                    draft.sentences[before].show = index
                    draft.sentences[before].shown_block = number
                else:
                    pending_show = index  # shown with the next sentence said
        return draft

    def draft_text(self, title: str, sentences: list[str]) -> _Draft:
        draft = _Draft(title)
        for text in sentences:
            for sentence in split_sentences(text, self.language):
                draft.sentences.append(self.sentence(sentence))
        return draft

    def sentence(self, text: str, paragraph: int = 0) -> _Sentence:
        sentence = _Sentence(text, paragraph=paragraph)
        for phrase, reading in spoken_phrases(text, self.language, self.pronunciation):
            if not any(ch.isalnum() for ch in phrase):
                continue
            if self.japanese and not reading:
                continue
            sentence.phrases.append((phrase, reading))
            sentence.seconds += estimate_seconds(phrase, reading, self.language)
        return sentence

    def _speakable(self, sentences: list[str]) -> list[str]:
        """The sentences worth saying, as they may be said (:func:`stages.script.visuals.speakable`)."""
        return [spoken for sentence in sentences if (spoken := speakable(sentence, self.japanese))]

    def _as_sentence(self, item: str) -> str:
        if item[-1] in "。！？!?.":
            return item
        return item + ("。" if is_cjk_language(self.language) else ".")


# --- trimming ---------------------------------------------------------------------------------


def _trim(drafts: list[_Draft], fixed_seconds: float, budget_seconds: float) -> list[_Draft]:
    """Fit the body into the budget (rule in the module docstring)."""

    def total(ds: list[_Draft]) -> float:
        return fixed_seconds + sum(d.seconds for d in ds) + SECTION_PAUSE_SECONDS * (len(ds) + 1)

    if total(drafts) <= budget_seconds:
        return drafts
    room = budget_seconds - fixed_seconds - SECTION_PAUSE_SECONDS * (len(drafts) + 1)
    drafts = drafts[: max(1, int(room // MIN_SECTION_SECONDS))]
    room = budget_seconds - fixed_seconds - SECTION_PAUSE_SECONDS * (len(drafts) + 1)
    body = sum(d.seconds for d in drafts)
    fraction = max(0.0, room / body) if body else 0.0
    trimmed: list[_Draft] = []
    for draft in drafts:
        allowed = fraction * draft.seconds
        kept: list[_Sentence] = []
        spent = 0.0
        for sentence in draft.sentences:
            if kept and spent + sentence.seconds > allowed:
                if sentence.show is None:
                    continue  # what shows code, a table or a figure is kept: the picture is the point
            kept.append(sentence)
            spent += sentence.seconds
        kept_texts = {s.text for s in kept}
        points = [p for p in draft.sentence_points if p in kept_texts]
        trimmed.append(_Draft(draft.title, kept, draft.key_points, points, draft.image, draft.is_intro,
                              draft.visuals, draft.is_summary, draft.is_label))
    while len(trimmed) > 1 and total(trimmed) > budget_seconds:
        trimmed.pop()
    return trimmed


# --- assembling -------------------------------------------------------------------------------


def _body_section(draft: _Draft, narrate: Callable[[dict[int, dict[str, int]]], list[Narration]], language: str) -> Section:
    """A body section: its bullets, its visuals, and the beats that say which is on screen when.

    ``narrate`` turns the beats (sentence index -> ``{"show": i}`` or ``{"bullet": i}``, put on the
    sentence's first phrase) into the section's narrations.
    """
    limit = BULLET_CHARS if is_cjk_language(language) else BULLET_WORDS
    bullets: list[str] = []
    bullet_for: dict[str, int] = {}
    heading = _plain(draft.title)
    for candidate in draft.key_points + draft.sentence_points:
        if len(bullets) == MAX_BULLETS:
            break
        bullet = bullet_of(candidate, language, limit)
        if bullet and _plain(bullet) != heading:
            if bullet not in bullets:
                bullets.append(bullet)
            bullet_for.setdefault(candidate, bullets.index(bullet))
    marks, visuals = _beats(draft, bullet_for)
    image = _src(draft.image)
    caption = _clean((draft.image or {}).get("caption")) or _clean((draft.image or {}).get("alt")) or None
    slide = SlideContent(
        heading=draft.title,
        bullets=bullets,
        image=image,
        caption=caption if image else None,
        layout="image" if image else "bullets",
    )
    return Section(title=draft.title, narrations=narrate(marks), visuals=visuals, slide=slide, source_image_url=image)


def _beats(draft: _Draft, bullet_for: dict[str, int]) -> tuple[dict[int, dict[str, int]], list[Visual]]:
    """Which sentence shows which visual or marks which bullet, and the visuals some sentence shows.

    A visual stays on screen through the rest of the paragraph after the one that introduced it;
    then the next sentence brings the bullets back (its own bullet, else the last one marked).
    """
    marks: dict[int, dict[str, int]] = {}
    visuals: list[Visual] = []
    renumber: dict[int, int] = {}
    marked: set[int] = set()
    last_bullet: int | None = None
    showing_since: int | None = None  # the block of the sentence that showed the current visual
    for i, sentence in enumerate(draft.sentences):
        if sentence.show is not None:
            if sentence.show not in renumber:
                renumber[sentence.show] = len(visuals)
                visuals.append(draft.visuals[sentence.show])
            marks[i] = {"show": renumber[sentence.show]}
            showing_since = sentence.shown_block
            continue
        own = next((bullet_for[p] for p in sentence.points if p in bullet_for and bullet_for[p] not in marked), None)
        if own is not None:
            marks[i] = {"bullet": own}
            marked.add(own)
            last_bullet, showing_since = own, None
        elif showing_since is not None and sentence.paragraph > showing_since + 1 and bullet_for:
            marks[i] = {"bullet": last_bullet if last_bullet is not None else min(bullet_for.values())}
            showing_since = None
    return marks, visuals


def _conversation(
    writer: _Writer, title: str, drafts: list[_Draft], lead_image: dict | None, words: dict[str, str],
    personas: list[str], expressions: dict[str, set[str]],
) -> list[Section]:
    """The sections of a two-persona dialogue (:mod:`stages.script.dialogue`): opening, one per draft, closing."""
    japanese = writer.japanese
    cast = {dialogue.HOST: personas[0], dialogue.GUEST: personas[1]}
    summary = drafts[-1] if len(drafts) > 1 and drafts[-1].is_summary else None
    topics = _recap_items([d for d in drafts if d is not summary], writer.language)

    def spoken(lines: list[dialogue.Line], known: dict[str, _Sentence],
               marks: dict[str, dict[str, int]] | None = None) -> list[Narration]:
        narrations = []
        marks = dict(marks or {})
        for line in lines:
            persona = cast[line.role]
            expression = line.expression if line.expression in expressions[persona] else None
            for text in split_sentences(line.text, writer.language):
                sentence = known.get(text) or writer.sentence(text)
                mark = marks.pop(text, {}) if line.role == dialogue.GUEST else {}
                narrations.extend(Narration(text=t, reading=r, persona_id=persona, expression=expression,
                                            **(mark if p == 0 else {}))
                                  for p, (t, r) in enumerate(sentence.phrases))  # fmt: skip
        return narrations

    image = _src(lead_image)
    said = _opening_words(title, [d for d in drafts if d is not summary], words)
    opening = dialogue.opening(title, said[1] if len(said) > 1 else "", japanese=japanese)
    sections = [Section(title=title, narrations=spoken(opening, {}), source_image_url=image,
                        slide=SlideContent(heading=title, bullets=topics, layout="title", image=image))]
    index = 0
    nods = dialogue.Nods(japanese=japanese)  # one set per video: no answer repeats before all are used
    lines: list[dialogue.Line] = []
    for draft in drafts:
        paragraphs: dict[int, list[str]] = {}
        listed: set[int] = set()
        for sentence in draft.sentences:
            paragraphs.setdefault(sentence.paragraph, []).append(sentence.text)
            if sentence.listed:
                listed.add(list(paragraphs).index(sentence.paragraph))
        heading = "" if draft.is_label else draft.title  # a label is not said
        lines = dialogue.part(heading, list(paragraphs.values()), index, is_intro=draft.is_intro, japanese=japanese,
                              lists=frozenset(listed), nods=nods)
        index += 0 if draft.is_intro else 1

        def narrate(marks: dict[int, dict[str, int]], draft: _Draft = draft, lines: list = lines) -> list[Narration]:
            by_text = {draft.sentences[i].text: mark for i, mark in marks.items()}
            return spoken(lines, {s.text: s for s in draft.sentences}, by_text)

        sections.append(_body_section(draft, narrate, writer.language))
    body = [d for d in drafts if d is not summary]
    closing = spoken(dialogue.closing(_recalled(title, body, words), japanese=japanese,
                                      summary=lines if summary is not None else None, nods=nods), {})
    if summary is not None:  # the article's own まとめ ends the video: one closing section, not two
        last = sections[-1]
        slide = SlideContent(heading=last.title, bullets=topics, layout="closing")
        # Its slide is the recap card listing the parts: the summary's own bullet marks would point
        # at bullets this slide does not have (an empty list under the heading).
        said = [n.model_copy(update={"bullet": None}) if n.bullet is not None else n for n in last.narrations]
        sections[-1] = last.model_copy(update={"narrations": said + closing, "slide": slide, "visuals": last.visuals})
    else:
        sections.append(Section(title=words["summary"], narrations=closing,
                                slide=SlideContent(heading=words["summary"], bullets=topics, layout="closing")))
    return sections


def _topics(drafts: list[_Draft]) -> list[str]:
    """The body sections' real titles: no introduction, no neutral labels (その1)."""
    return [d.title for d in drafts if not d.is_intro and not d.is_label]


def _recap_items(drafts: list[_Draft], language: str) -> list[str]:
    """Every item the title card and the recap list: the real titles, else each part's first point."""
    topics = _topics(drafts)
    if topics:
        return topics
    limit = BULLET_CHARS if is_cjk_language(language) else BULLET_WORDS
    items = []
    for draft in drafts:
        for candidate in draft.key_points + draft.sentence_points:
            if (bullet := bullet_of(candidate, language, limit)) and bullet not in items:
                items.append(bullet)
                break
    return items


def _opening_words(title: str, drafts: list[_Draft], words: dict[str, str]) -> list[str]:
    """What the opening says: the title, and the parts when they have real titles."""
    topics = _topics(drafts)
    said = [words["open"].format(title=_bare(title, words))]
    if topics:
        said.append(words["covers"].format(topics=_listing(topics, words)))
    return said


def _recalled(title: str, drafts: list[_Draft], words: dict[str, str]) -> str:
    topics = _topics(drafts)
    if topics:
        return words["recalled"].format(topics=_listing(topics, words))
    return words["recalled_title"].format(title=_bare(title, words))


def _bare(title: str, words: dict[str, str]) -> str:
    """The title inside a sentence: without the end mark the sentence adds ("Só quem se Ama...." no more)."""
    return title if words is _WORDS["ja"] else title.rstrip(".!?。！？…") or title


def _closing(writer: "_Writer", summary: _Draft | None, title: str, drafts: list[_Draft], words: dict[str, str]) -> _Draft:
    """The closing part: the article's own まとめ first when it has one, then the recap and thanks."""
    closing = writer.draft_text(words["summary"], [words["recap"], _recalled(title, drafts, words), words["thanks"]])
    if summary is None:
        return closing
    return _Draft(summary.title, summary.sentences + closing.sentences, is_summary=True)


def _is_summary(title: str) -> bool:
    return _plain(title) in _SUMMARIES


def _listing(titles: list[str], words: dict[str, str]) -> str:
    titles = [t.rstrip("。.!?！？") for t in titles]
    if words is _WORDS["ja"]:
        return "、".join(f"「{t}」" for t in titles)
    return titles[0] if len(titles) == 1 else words["join"].join(titles[:-1]) + words["and"] + titles[-1]


def _description(article: dict[str, Any], drafts: list[_Draft], language: str) -> str:
    joiner = "、" if is_cjk_language(language) else ", "
    source = _clean(article.get("url"))
    return joiner.join(_topics(drafts)[:_LISTED_TITLES]) + (f" ({source})" if source else "")


def _persona_cycle(settings: "Settings") -> list[str]:
    default = settings.persona(None).id
    if settings.script.style == "dialogue" and len(settings.personas) >= 2:
        first, second = settings.personas[0].id, settings.personas[1].id
        return [default, second if default == first else first] if default in (first, second) else [first, second]
    return [default]


def _expressions(settings: "Settings", persona_ids: list[str]) -> dict[str, set[str]]:
    """The expressions each persona's character can show (none without a character)."""
    out: dict[str, set[str]] = {}
    for persona_id in persona_ids:
        character = settings.persona(persona_id).character
        out[persona_id] = set(expression_names(character)) if character is not None else set()
    return out


def _first_heading(article: dict[str, Any]) -> str:
    for block in article.get("blocks") or []:
        if isinstance(block, dict) and block.get("type") == "heading" and _clean(block.get("text")):
            return _clean(block.get("text"))
    return ""


def _src(image: dict[str, Any] | None) -> str | None:
    return str(image["src"]) if image and image.get("src") else None


def _plain(text: str) -> str:
    """Text compared without case, spaces and trailing punctuation (to spot a bullet repeating the heading)."""
    return "".join(text.split()).rstrip("。.!?！？").casefold()


def _clean(value: object) -> str:
    return " ".join(str(value).split()) if isinstance(value, str) else ""


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("script writing was cancelled")
