"""``generate_slides``: script.yaml in, ``slides/index.json`` out, one PNG per section in the cache.

Each slide is content-addressed in ``<cache>/slides`` by everything that shapes its pixels
(layout and texts, the image's bytes, the theme and fonts, the frame size and safe areas, the
renderer version), so an unchanged section is never redrawn. A sidecar JSON beside each PNG keeps
what the index needs (boxes, sha256) so a cache hit costs no decoding. Sections are drawn in a
small thread pool; results are gathered by section index, so the output does not depend on timing.

Backgrounds: the video stage draws a background (``settings.video.background``, or the section's
``background`` override in the script) under each slide, seen where the slide is transparent. A
section with an override, or any section when the default background is an image or a video, gets a
*transparent* slide (RGBA, clear canvas, text on translucent panels; ``"transparent": true`` in the
index); otherwise the slide is opaque RGB filled with ``theme.background``, exactly as before (its
cache key does not mention transparency). See :func:`wants_transparency`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from stages.base import Cancelled, Note, Progress, atomic_write_bytes, atomic_write_json, fingerprint_of, no_note, \
    no_progress
from stages.base import file_sha256
from stages.cache import touch
from stages.fonts import FontNotFound, find_font_face
from stages.linebreak import is_cjk
from stages.slides.image_api import ImageApiError, generate_image, prompt_for
from stages.slides.images import CheckedImage, ImageRejected, decode_checked, load_image, local_image_path
from stages.slides.layout import IMAGE_LAYOUTS, SafeArea, SlideSpec, build_specs, language_of, page_of
from stages.slides.png import encode_png
from stages.slides.typeset import Theme, draw_slide, fit_image, parse_colour

if TYPE_CHECKING:
    from stages.script.model import Script, Section
    from stages.settings import Settings

INDEX_VERSION = 1
RENDERER_VERSION = "5"  # 2: widow-free line breaks; 3: breaks at phrase boundaries (文節, BudouX); 4: portrait type sizes;
# 5: one grid (corners only with characters; every bullets slide in the same column). (Portrait's band
# across the bottom for characters needed no bump: its corners, part of the key, changed with it.)
PICTURES_VERSION = "3"  # code, table and math pictures (stages.slides.code/table/formula); 2: math by mathtext;
# 3: matrices cell by cell, display fractions
PNG_LEVEL = 1  # zlib's fastest: a 1080p slide encodes in ~25 ms of CPU instead of ~200 ms at the default level
_FONT_LANGS = {"ja": "ja", "zh": "zh-cn", "ko": "ko"}


def generate_slides(
    script: Path,
    out_dir: Path,
    settings: "Settings",
    progress: Progress = no_progress,
    *,
    cancel: threading.Event | None = None,
    cache_dir: Path | None = None,
    note: Note | None = None,
    article: Path | None = None,
) -> Path:
    """Draw (or reuse) one slide per section of ``script`` and write ``out_dir/slides/index.json``.

    Args:
        script: a ``script.yaml`` (the Script model).
        out_dir: the job folder; the index goes to ``out_dir/slides/index.json``; relative image
            paths are resolved against it.
        settings: the settings tree (``slides``, ``theme``, ``video`` size, ``fetch`` for downloads).
        progress: ``(done, total, message)``, one step per slide.
        cancel: checked between slides and while downloading; when set, :class:`Cancelled` is raised.
        cache_dir: the shared cache; slides go under ``cache_dir/slides``. Default ``settings.cache_dir``.
        note: ``note(message, **data)`` for "image fallback", "slide text truncated",
            "image generation failed" and the "slides drawn" summary.
        article: ``article.json`` from the fetch stage (site and date for the title slide).
            Default ``out_dir/article.json`` when it exists.

    Returns:
        The index path.

    Raises:
        InputError: a bad script; :class:`~stages.fonts.FontNotFound` when no font can draw it.
        Cancelled: ``cancel`` was set.
    """
    from stages.script.loader import load_script

    note = note or no_note
    cancel = cancel or threading.Event()
    out_dir = Path(out_dir)
    model = load_script(Path(script))
    article_path = Path(article) if article is not None else out_dir / "article.json"
    article_data = _read_article(article_path)
    cache = Path(cache_dir if cache_dir is not None else settings.cache_dir)
    deck = _Deck.prepare(model, settings, out_dir, cache, cancel)
    specs = build_specs(model, article_data)
    outcomes = _produce_all(deck, model, specs, progress, cancel)
    for outcome in outcomes:
        if wants_transparency(model.sections[outcome.section], settings) and not outcome.transparent:
            note("slide hides the background", section=outcome.section, layout=outcome.layout,
                 reason="a generated slide fills the frame")
    for outcome in outcomes:
        for message, data in outcome.notes:
            note(message, **data)
    for message, data in deck.notes:
        note(message, **data)
    pictures = _pictures(deck, model, specs, outcomes, article_data, out_dir, note)
    drawn = sum(1 for o in outcomes if o.drawn)
    note("slides drawn", drawn=drawn, cached=len(outcomes) - drawn)
    index = {
        "version": INDEX_VERSION,
        "width": settings.video.width,
        "height": settings.video.height,
        "slides": [
            {
                "section": o.section,
                "title": model.sections[o.section].title,
                "path": str(o.path),
                "layout": o.layout,
                "sha256": o.sha256,
                "transparent": o.transparent,
                "boxes": o.boxes,
            }
            for o in outcomes
        ],
        "pictures": pictures,
        "safe_area": deck.area.index_entry(),
        "stats": {"drawn": drawn, "cached": len(outcomes) - drawn},
    }
    return atomic_write_json(out_dir / "slides" / "index.json", index)


# --- the deck: what every slide of a run shares -----------------------------------------------


@dataclass
class _Deck:
    settings: "Settings"
    job_dir: Path
    slides_dir: Path
    cache_dir: Path
    theme: Theme
    area: SafeArea
    logo: Image.Image | None
    logo_sha: str | None
    language: str
    cancel: threading.Event
    notes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @classmethod
    def prepare(cls, model: "Script", settings: "Settings", job_dir: Path, cache: Path,
                cancel: threading.Event) -> "_Deck":
        language = language_of(model, settings)
        theme = _theme(settings, _font_language(model, language))
        notes: list[tuple[str, dict[str, Any]]] = []
        logo, logo_sha = _logo(settings, notes)
        area = SafeArea.of(settings, logo.size if logo is not None else None)
        return cls(settings, job_dir, cache / "slides", cache, theme, area, logo, logo_sha, language, cancel, notes)

    def key(self, spec: SlideSpec, image_sha: str | None, transparent: bool = False) -> str:
        s = self.settings
        parts: list[Any] = [
            "typeset", RENDERER_VERSION, spec.as_key(), image_sha, self.theme.key(), self.logo_sha,
            s.video.width, s.video.height, s.slides.safe_area.model_dump(mode="json"), s.slides.image_fit,
            self.area.corners(),  # kept free only when characters are configured
        ]
        if transparent:  # only then: opaque slides keep the keys they always had
            parts.append({"transparent": True, "panel": self.theme.panel})
        return fingerprint_of(*parts)


@dataclass
class _Outcome:
    section: int
    path: Path
    layout: str
    sha256: str
    boxes: list[dict[str, Any]]
    drawn: bool
    notes: list[tuple[str, dict[str, Any]]]
    transparent: bool = False


def _produce_all(deck: _Deck, model: "Script", specs: list[SlideSpec], progress: Progress,
                 cancel: threading.Event) -> list[_Outcome]:
    total = len(specs)
    progress(0, total, "slides")
    results: dict[int, _Outcome] = {}
    executor = ThreadPoolExecutor(max_workers=deck.settings.slides.workers, thread_name_prefix="slides")
    try:
        pending: dict[Future, int] = {
            executor.submit(_produce, deck, i, model.sections[i], spec): i for i, spec in enumerate(specs)
        }
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            if cancel.is_set():
                raise Cancelled("slides cancelled")
            for future in done:
                i = pending.pop(future)
                results[i] = future.result()
                verb = "drawn" if results[i].drawn else "cached"
                progress(len(results), total, f"slide {i + 1}/{total} {verb}")
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return [results[i] for i in range(total)]


def _produce(deck: _Deck, i: int, section: "Section", spec: SlideSpec) -> _Outcome:
    if deck.cancel.is_set():
        raise Cancelled("slides cancelled")
    notes: list[tuple[str, dict[str, Any]]] = []
    if deck.settings.slides.backend == "image-api" and section.slide_prompt:
        try:
            return _generated(deck, i, section.slide_prompt, notes)
        except (ImageApiError, ImageRejected) as exc:
            notes.append(("image generation failed", {"section": i, "reason": str(exc), "fallback": "typeset"}))
    checked: CheckedImage | None = None
    if spec.layout in IMAGE_LAYOUTS and spec.image:
        try:
            checked = load_image(spec.image, deck.settings, job_dir=deck.job_dir, cache_dir=deck.cache_dir,
                                 cancel=deck.cancel)
        except ImageRejected as exc:
            notes.append(("image fallback", {"section": i, "image": spec.image, "reason": str(exc),
                                             "layout": spec.layout}))
            spec = spec.as_text()
    if spec.layout in ("bullets", "closing"):
        spec = page_of(spec, 0)  # a long list's first page (the pictures show every page)
    return _typeset(deck, i, spec, checked, notes, wants_transparency(section, deck.settings))


def _typeset(deck: _Deck, i: int, spec: SlideSpec, checked: CheckedImage | None,
             notes: list[tuple[str, dict[str, Any]]], transparent: bool = False) -> _Outcome:
    key = deck.key(spec, checked.sha256 if checked else None, transparent)
    path = deck.slides_dir / f"{key}.png"
    meta = _read_meta(path)
    drawn = False
    if meta is None:
        picture = checked.open() if checked is not None else None
        result = draw_slide(spec, deck.theme, deck.area, picture, deck.logo, fit=deck.settings.slides.image_fit,
                            transparent=transparent)
        meta = _save(path, result.image, {"layout": spec.layout, "boxes": result.boxes,
                                          "truncated": result.truncated})
        drawn = True
    for element in meta.get("truncated", []):
        notes.append(("slide text truncated", {"section": i, "element": element, "layout": spec.layout}))
    return _Outcome(i, path, meta["layout"], meta["sha256"], meta["boxes"], drawn, notes, transparent)


def _generated(deck: _Deck, i: int, slide_prompt: str, notes: list[tuple[str, dict[str, Any]]]) -> _Outcome:
    s = deck.settings
    api = s.slides.image_api
    w, h = s.video.width, s.video.height
    prompt = prompt_for(slide_prompt, deck.language, w, h)
    key = fingerprint_of("image-api", RENDERER_VERSION, prompt, api.base_url, api.model, api.form, api.size, w, h)
    path = deck.slides_dir / f"gen-{key}.png"
    meta = _read_meta(path)
    drawn = False
    if meta is None:
        data = generate_image(prompt, api, cancel=deck.cancel)
        picture = decode_checked(data, s).convert("RGB")
        framed = _cover_exact(picture, (w, h))
        meta = _save(path, framed, {"layout": "generated", "boxes": [{"kind": "generated", "box": [0, 0, w, h]}],
                                    "truncated": []})
        drawn = True
    return _Outcome(i, path, meta["layout"], meta["sha256"], meta["boxes"], drawn, notes)


# --- pictures: one per beat (stages.slides.beats) -----------------------------------------------


def _pictures(deck: _Deck, model: "Script", specs: list[SlideSpec], outcomes: list[_Outcome],
              article: dict[str, Any] | None, job_dir: Path, note: Note) -> list[dict[str, Any]]:
    """Every picture of the video in order: ``{"section", "from", "group", "kind", "page", "pages",
    "path", "sha256", "transparent", "boxes"}``. A group's pictures share the time from narration
    line ``from`` of the section to the next group's (the first group from the section's start)."""
    durations = _line_durations(model, job_dir)
    rows: list[tuple[dict[str, Any] | tuple[Future[_Outcome], str], dict[str, Any]]] = []
    paint = _Painter(deck)
    try:
        _plan_pictures(deck, model, specs, outcomes, article, durations, note, paint, rows)
        return [{**paint.entry(item), **where} for item, where in rows]
    finally:
        paint.close()


def _plan_pictures(deck: _Deck, model: "Script", specs: list[SlideSpec], outcomes: list[_Outcome],
                   article: dict[str, Any] | None, durations: list[list[float]], note: Note, paint: "_Painter",
                   rows: list[tuple[Any, dict[str, Any]]]) -> None:
    """Each picture in order, as a row of (what to show, where): the typeset pictures are handed
    to ``paint``, which draws them on its threads meanwhile."""
    from stages.slides.beats import PAGE_BULLETS, plan_beats

    for i, (section, spec, outcome) in enumerate(zip(model.sections, specs, outcomes)):
        transparent = wants_transparency(section, deck.settings)
        visual_pictures = [_visual(deck, i, k, visual, spec.heading, transparent, note)
                           for k, visual in enumerate(section.visuals)]
        base_layout = spec.layout if outcome.layout != "generated" else "generated"
        if spec.layout in IMAGE_LAYOUTS and outcome.layout not in (*IMAGE_LAYOUTS, "generated"):
            base_layout = "bullets"  # its image could not be loaded: the section's slide is its bullets
        bullets = list(spec.bullets) if base_layout != "generated" else []  # image: shown once it has held
        if spec.layout == "title":
            bullets = [b.strip() for b in (section.slide.bullets if section.slide else []) if b.strip()]
        bullets, beats = plan_beats(section, first=i == 0, layout=base_layout, bullets=bullets,
                                    durations=durations[i], visual_pages=[len(v) for v in visual_pictures],
                                    language=deck.language)
        heading = spec.heading if spec.layout != "title" else model.title.strip()
        for group, (line, state) in enumerate(beats):
            if state.kind == "title":
                title = spec if spec.layout == "title" else _title_spec(model, article)
                items = [paint(i, title, transparent, "title")]
            elif state.kind == "visual":
                items = visual_pictures[state.visual]
            elif state.kind == "bullets":  # the list with the bullet being said marked (the recap: its card)
                page = (state.current or 0) // PAGE_BULLETS
                kind = "closing" if spec.layout == "closing" else "bullets"
                bullet_spec = page_of(SlideSpec(layout=kind, heading=heading, bullets=tuple(bullets)), page, PAGE_BULLETS)
                if state.current is not None:
                    bullet_spec = replace(bullet_spec, current=state.current - page * PAGE_BULLETS,
                                          also=_on_page(state.also, page))
                items = [paint(i, bullet_spec, transparent, kind)]
            elif state.kind == "points":  # key phrases of the closing's prose before its recap
                page = (state.current or 0) // PAGE_BULLETS
                points_spec = page_of(SlideSpec(layout="bullets", heading=heading, bullets=state.points), page,
                                      PAGE_BULLETS)
                if state.current is not None:
                    points_spec = replace(points_spec, current=state.current - page * PAGE_BULLETS,
                                          also=_on_page(state.also, page))
                items = [paint(i, points_spec, transparent, "bullets")]
            elif spec.layout == "title":  # a title section with nothing to list: its heading alone
                items = [paint(i, SlideSpec(layout="bullets", heading=heading), transparent, "bullets")]
            else:
                items = [_entry(outcome, outcome.layout)]
            for n, item in enumerate(items, 1):
                rows.append((item, {"section": i, "from": line, "group": group, "page": n, "pages": len(items)}))


class _Painter:
    """Draws a run's typeset pictures on ``slides.workers`` threads, each distinct picture once
    (their PNG encoding, most of a picture's time, lets the other threads run)."""

    def __init__(self, deck: _Deck):
        self.deck = deck
        self.pool = ThreadPoolExecutor(max_workers=deck.settings.slides.workers, thread_name_prefix="pictures")
        self.drawing: dict[str, Future[_Outcome]] = {}

    def __call__(self, i: int, spec: SlideSpec, transparent: bool, kind: str) -> tuple[Future[_Outcome], str]:
        """Start drawing (or taking from the cache) the typeset picture ``spec`` of section ``i``."""
        key = self.deck.key(spec, None, transparent)
        if key not in self.drawing:
            self.drawing[key] = self.pool.submit(_typeset, self.deck, i, spec, None, [], transparent)
        return self.drawing[key], kind

    def entry(self, item: dict[str, Any] | tuple[Future[_Outcome], str]) -> dict[str, Any]:
        """The index entry of a picture, once drawn."""
        if isinstance(item, dict):
            return item
        if self.deck.cancel.is_set():
            raise Cancelled("slides cancelled")
        future, kind = item
        return _entry(future.result(), kind)

    def close(self) -> None:
        """Stop drawing what nobody waits for any more (after an error or a cancel)."""
        self.pool.shutdown(wait=True, cancel_futures=True)


def _on_page(marked: tuple[int, ...], page: int) -> tuple[int, ...]:
    """The marked items on list page ``page``, numbered from that page's first."""
    from stages.slides.beats import PAGE_BULLETS

    return tuple(j - page * PAGE_BULLETS for j in marked if page * PAGE_BULLETS <= j < (page + 1) * PAGE_BULLETS)


def _entry(outcome: _Outcome, kind: str) -> dict[str, Any]:
    return {"kind": kind, "path": str(outcome.path), "sha256": outcome.sha256, "transparent": outcome.transparent,
            "boxes": outcome.boxes}


def _title_spec(model: "Script", article: dict[str, Any] | None) -> SlideSpec:
    from stages.slides.layout import _site_and_date

    site, date = _site_and_date(article)
    return SlideSpec(layout="title", heading=model.title.strip(), kicker=site, footer=date)


def _visual(deck: _Deck, i: int, k: int, visual: Any, heading: str, transparent: bool, note: Note) -> list[dict[str, Any]]:
    """The pictures of one visual (code/table/math pages, or the image with its caption)."""
    if visual.kind == "image":
        spec = SlideSpec(layout="image_caption" if visual.caption else "image", heading=heading,
                         caption=(visual.caption or "").strip(), image=visual.src)
        notes: list[tuple[str, dict[str, Any]]] = []
        try:
            checked = load_image(visual.src, deck.settings, job_dir=deck.job_dir, cache_dir=deck.cache_dir,
                                 cancel=deck.cancel)
        except ImageRejected as exc:  # no picture: its line keeps what is on screen (stages.slides.beats)
            note("image fallback", section=i, image=visual.src, reason=str(exc), layout=spec.layout)
            return []
        return [_entry(_typeset(deck, i, spec, checked, notes, transparent), "image")]
    lang = "ja" if deck.language.startswith("ja") else "en"
    s = deck.settings
    key = fingerprint_of("picture", PICTURES_VERSION, visual.model_dump(mode="json"), heading, deck.theme.key(),
                         deck.logo_sha, s.video.width, s.video.height, s.slides.safe_area.model_dump(mode="json"),
                         deck.area.corners(), transparent, lang)
    group = deck.slides_dir / f"{visual.kind}-{key}.json"
    try:
        pages = json.loads(group.read_text("utf-8"))
        metas = [(Path(p), _read_meta(Path(p))) for p in pages]
        if all(m is not None for _, m in metas):
            return [{**_entry(_Outcome(i, path, m["layout"], m["sha256"], m["boxes"], False, [], transparent),
                              visual.kind)} for path, m in metas]
    except (OSError, ValueError, TypeError):
        pass
    drawn = _draw_visual(deck, visual, heading, transparent, lang)
    entries = []
    paths = []
    for n, picture in enumerate(drawn, 1):
        path = deck.slides_dir / f"{visual.kind}-{key}-{n}.png"
        meta = _save(path, picture.image, {"layout": visual.kind, "boxes": picture.boxes, "truncated": picture.truncated})
        for element in picture.truncated:
            note("slide text truncated", section=i, element=element, layout=visual.kind)
        shown = picture.boxes[-1] if picture.boxes else {}
        if n == 1 and shown.get("kind") == "math" and shown.get("engine") == "text":
            note("math shown as text", section=i, reason=shown.get("reason", ""))
        entries.append(_entry(_Outcome(i, path, visual.kind, meta["sha256"], meta["boxes"], True, [], transparent),
                              visual.kind))
        paths.append(str(path))
    group.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(group, json.dumps(paths).encode("utf-8"))
    return entries


def _draw_visual(deck: _Deck, visual: Any, heading: str, transparent: bool, lang: str) -> list[Any]:
    from stages.slides.code import draw_code
    from stages.slides.formula import draw_math
    from stages.slides.table import draw_table

    if visual.kind == "code":
        return draw_code(visual.text or "", visual.language, visual.caption, heading, deck.theme, deck.area, deck.logo,
                         transparent=transparent, lang=lang)
    if visual.kind == "table":
        return draw_table(visual.header, visual.rows, visual.caption, heading, deck.theme, deck.area, deck.logo,
                          transparent=transparent)
    return draw_math(visual.text or "", visual.caption, heading, deck.theme, deck.area, deck.logo,
                     transparent=transparent, lang=lang, config_dir=deck.cache_dir / "matplotlib")


def _line_durations(model: "Script", job_dir: Path) -> list[list[float]]:
    """Each line's length: the audio stage's clip when there is one, else an estimate from the text."""
    from stages.script.model import phrase_id
    from stages.script.text import estimate_seconds

    try:
        clips = json.loads((job_dir / "audio" / "index.json").read_text("utf-8")).get("clips", {})
    except (OSError, ValueError, AttributeError):
        clips = {}
    out = []
    for si, section in enumerate(model.sections):
        row = []
        for ni, line in enumerate(section.narrations):
            clip = clips.get(phrase_id(si, ni)) if isinstance(clips, dict) else None
            try:
                row.append(float(clip["duration"]) if clip else estimate_seconds(line.text, line.reading, model.language))
            except (TypeError, ValueError, KeyError):
                row.append(estimate_seconds(line.text, line.reading, model.language))
        out.append(row)
    return out


# --- cache files -------------------------------------------------------------------------------


def _read_meta(path: Path) -> dict[str, Any] | None:
    """The sidecar of a cached slide, or None when the slide must be drawn."""
    sidecar = path.with_suffix(".json")
    touch(path)  # a hit is a use: the daemon's trim to slides.cache_max_gb drops the least recent slides
    try:
        meta = json.loads(sidecar.read_text("utf-8"))
        if path.stat().st_size != meta["bytes"]:
            return None
        return meta
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save(path: Path, picture: Image.Image, meta: dict[str, Any]) -> dict[str, Any]:
    """Encode and write a slide atomically, then its sidecar (which marks it complete)."""
    data = encode_png(picture, PNG_LEVEL)
    atomic_write_bytes(path, data)
    meta = {**meta, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    # The sidecar is renamed into place but not fsynced: after a crash it is either whole or
    # unreadable, and an unreadable sidecar only means the slide is drawn again.
    sidecar = path.with_suffix(".json")
    tmp = sidecar.with_name(f".{sidecar.name}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(meta, ensure_ascii=False), "utf-8")
    os.replace(tmp, sidecar)
    return meta


# --- backgrounds and the stage's inputs ---------------------------------------------------------


def wants_transparency(section: "Section", settings: "Settings") -> bool:
    """True when the video shows a background behind this section's slide: the section overrides
    the background, or the default background is an image or a video (not a plain colour)."""
    return section.background is not None or settings.video.background.type != "color"


def input_key(script: Path, job_dir: Path, settings: "Settings") -> dict[str, Any]:
    """What the slides depend on beyond the script and settings files: the bytes of the local
    images the script names, the font files fontconfig resolves for ``theme.font``, the sections'
    background overrides and the default background. For the stage's fingerprint; never raises
    for a bad script or a missing font (the run reports those)."""
    from stages.script.loader import load_script

    key: dict[str, Any] = {"background": settings.video.background.model_dump(mode="json")}
    try:
        model = load_script(Path(script))
    except Exception as exc:  # noqa: BLE001 - the run raises the real error
        key["script"] = f"unreadable: {type(exc).__name__}"
        return key
    key["sections"] = [s.background.model_dump(mode="json") if s.background else None for s in model.sections]
    images: dict[str, str | None] = {}
    for section in model.sections:
        for source in (section.slide.image if section.slide else None, section.source_image_url):
            if source and source not in images:
                path = local_image_path(source, settings, job_dir)
                images[source] = _stat_hash(path) if path is not None else None
    key["images"] = images
    font_lang = _font_language(model, language_of(model, settings))
    fonts: list[Any] = []
    for bold in (False, True):
        try:
            face = find_font_face(settings.theme.font, lang=font_lang, bold=bold)
            fonts.append([str(face.path), face.index, _stat_hash(Path(face.path))])
        except FontNotFound as exc:
            fonts.append(f"not found: {exc}")
    key["fonts"] = fonts
    return key


def warm(settings: "Settings") -> None:
    """Hash the theme's font files for the default language now (about 20 MB each), as
    :func:`input_key` would on a daemon's first job; a font that is not found is left to the run."""
    primary = (settings.script.language or "en").lower().split("-")[0]
    for bold in (False, True):
        try:
            face = find_font_face(settings.theme.font, lang=_FONT_LANGS.get(primary, primary), bold=bold)
        except FontNotFound:
            continue
        _stat_hash(Path(face.path))


_hashes: dict[tuple[str, int, int], str] = {}
_hashes_lock = threading.Lock()


def _stat_hash(path: Path) -> str | None:
    """sha256 of a file, remembered while its size and mtime stay the same (fonts are ~20 MB)."""
    try:
        st = path.stat()
    except OSError:
        return None
    stamp = (str(path), st.st_size, st.st_mtime_ns)
    with _hashes_lock:
        cached = _hashes.get(stamp)
    if cached is None:
        try:
            cached = file_sha256(path)
        except OSError:
            return None
        with _hashes_lock:
            _hashes[stamp] = cached
    return cached


# --- setup helpers -----------------------------------------------------------------------------


def _theme(settings: "Settings", font_lang: str) -> Theme:
    t = settings.theme
    return Theme(
        background=parse_colour(t.background),
        accent=parse_colour(t.accent),
        text=parse_colour(t.text),
        regular=find_font_face(t.font, lang=font_lang),
        bold=find_font_face(t.font, lang=font_lang, bold=True),
        logo=t.logo,
        panel=t.panel_opacity,
    )


def _font_language(model: "Script", language: str) -> str:
    primary = language.split("-")[0]
    if primary in _FONT_LANGS:
        return _FONT_LANGS[primary]
    texts = [model.title] + [s.title for s in model.sections] + [n.text for s in model.sections for n in s.narrations]
    return "ja" if any(is_cjk(c) for text in texts for c in text) else primary or "en"


def _logo(settings: "Settings", notes: list[tuple[str, dict[str, Any]]]) -> tuple[Image.Image | None, str | None]:
    path = settings.theme.logo
    if path is None:
        return None, None
    try:
        data = Path(path).expanduser().read_bytes()
        picture = decode_checked(data, settings, min_size=8)
    except (OSError, ImageRejected) as exc:
        notes.append(("logo unusable", {"logo": str(path), "reason": str(exc)}))
        return None, None
    w, h = settings.video.width, settings.video.height
    box = (max(1, round(w * 0.16)), max(1, round(h * 0.075)))
    fitted = fit_image(picture.convert("RGBA"), box, "contain")
    return fitted, hashlib.sha256(data).hexdigest()


def _cover_exact(picture: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale and centre-crop to exactly ``size`` (generated slides fill the frame)."""
    w, h = size
    scale = max(w / picture.width, h / picture.height)
    nw, nh = max(w, round(picture.width * scale)), max(h, round(picture.height * scale))
    resized = picture.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=2.0)
    left, top = (nw - w) // 2, (nh - h) // 2
    return resized.crop((left, top, left + w, top + h))


def _read_article(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
