"""Which picture is on screen for each narration line of a section: the section's *beats*.

A line's ``show: N`` puts ``visuals[N]`` on screen from that line on; ``bullet: N`` puts the bullet
slide back with bullet N marked (see :mod:`stages.script.model`). Beyond what the script says:

- **Title card.** The first section opens with the video's title card, alone, for its first line;
  its own content follows from the second line (a one-line first section shows both in turn).
- **Bullets follow the words.** A line's ``bullet:`` is kept (in a section whose own slide is an
  image with no bullets, or a closing card with no list, it brings that slide back: there is no
  bullet list to show). In a section whose lines mark no bullet, bullet *j* is marked from
  the line that says it (the line sharing the most character pairs with it, in order), else from
  the line where the section's time reaches *j / n*; before the first one, no bullet is marked.
- **The recap follows the words too.** On a closing card the item being spoken is marked the same
  way (its list is the recap's, so no item is added); a line that names several items (「A、B、Cを
  見てきました」) marks all of them (``also``), not only the last one named; a list longer than :data:`PAGE_BULLETS` is
  paged, the page turning when its first item is said (:func:`stages.slides.layout.page_of`).
  Lines before the first item is said (the article's own まとめ merged into the closing often
  opens with a paragraph of prose) that last longer than :data:`HOLD_SECONDS` show key-phrase
  bullets made from those lines instead (a ``points`` picture, the one being said marked, added
  where one would stay marked too long), and the recap card comes when its first item is said.
- **A visual with no picture is not shown.** An image that could not be loaded (a dead link, no
  network) has no page: its line leaves the bullets on screen, never an empty slide under the heading.
- **Nothing static for long.** A visual stays for at most :data:`HOLD_SECONDS` per page (a line
  showing the visual already on screen does not restart its time; it gives way at the start of
  the line that would take it past that, once it has stood half of it), then the bullet slide comes
  back (a line showing it again after that brings it back: visual and bullets alternate); so
  does a section's own image (``base``), its bullets made from its lines if it has none. A bullet marked longer than :data:`HOLD_SECONDS` gets a new bullet made
  from the line halfway through its time (:func:`stages.script.text.bullet_of`: a short key phrase
  that never ends on a particle), inserted after it; bullets beyond :data:`PAGE_BULLETS` go on
  further bullet pictures. Line times come from the audio stage's clips when they exist (else an
  estimate from the text).

:func:`plan_beats` returns the bullets (with any added) and the beats: ``(line, state)`` pairs in
line order, a state holding from its line to the next beat's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stages.script.model import Section

HOLD_SECONDS = 20.0
PAGE_BULLETS = 5  # = stages.slides.layout.MAX_BULLETS


@dataclass(frozen=True)
class State:
    """What is on screen: ``kind`` is ``title``, ``bullets`` (``current`` marked, None: none),
    ``visual`` (``visual`` = index into the section's visuals), ``base`` (the section's own slide:
    an image, the closing card) or ``points`` (a bullet slide of ``points``, key phrases of the
    closing's prose before its recap, ``current`` marked)."""

    kind: str
    current: int | None = None
    visual: int | None = None
    points: tuple[str, ...] = ()
    also: tuple[int, ...] = ()  # further bullets marked with current: named in the same line


def plan_beats(section: "Section", *, first: bool, layout: str, bullets: list[str], durations: list[float],
               visual_pages: list[int], language: str) -> tuple[list[str], list[tuple[int, State]]]:
    """The section's bullets (with any added) and its beats (rules in the module docstring).

    Args:
        section: the script section.
        first: whether it is the video's first section (it opens with the title card).
        layout: the section's own slide layout (``bullets``, ``title``, ``image``, ``closing``…).
        bullets: the bullets its slide shows.
        durations: each narration line's length in seconds.
        visual_pages: how many pictures each of the section's visuals takes.
        language: the script's language (for added bullets).
    """
    lines = section.narrations
    n = len(lines)
    bullets = list(bullets)
    image = layout in ("image", "image_caption")
    own = "bullets" if layout in ("bullets", "title") or (image and bullets) else "list" if layout == "closing" else "base"
    explicit = any(line.bullet is not None for line in lines)
    states: list[State | None] = [None] * n
    current: State | None = State("base") if image else None  # an image section opens on its image
    held = 0.0
    for i, line in enumerate(lines):
        drawn = line.show is not None and (line.show >= len(visual_pages) or visual_pages[line.show] > 0)
        if drawn and current != State("visual", visual=line.show):
            current, held = State("visual", visual=line.show), 0.0  # (shown again while on screen: keeps its time)
        elif line.bullet is not None:
            current = State("bullets", current=line.bullet)
        elif current is not None and current.kind in ("visual", "base"):
            pages = visual_pages[current.visual] if current.kind == "visual" and current.visual < len(visual_pages) else 1
            limit = HOLD_SECONDS * max(1, pages)
            # back to the bullets when this line would take the visual past its time (pictures change
            # only as a line starts: waiting for the time to pass held it up to a line longer)
            if held >= limit or (held + durations[i] > limit and held >= limit / 2):
                current = None
        states[i] = current
        if current is not None and current.kind in ("visual", "base"):
            held += durations[i]
    back = next((i for i, s in enumerate(states) if s is None), None)
    if image and not bullets and back is not None and (point := _bullet(lines, back, language)):
        bullets, own = [point], "bullets"  # an image with no bullets: a key phrase once it has held
    if own == "bullets":
        bullets = _auto_bullets(lines, states, bullets, durations, language, explicit)
    elif own == "list" and bullets:
        bullets = _auto_bullets(lines, states, bullets, durations, language, explicit, add=False)
        _prose_points(lines, states, durations, language)
    else:
        # The section's own slide is an image or the closing card, with no bullet list of its own:
        # a line's bullet mark brings that slide back (a bullet slide would be a heading alone).
        for i in range(n):
            if states[i] is None or states[i].kind == "bullets":
                states[i] = State("base")
    if own == "bullets" and not bullets:
        states = [State("base") if s is not None and s.kind == "bullets" else s for s in states]
    if first:
        if n == 1:
            return bullets, [(0, State("title")), (0, states[0])]
        states[0] = State("title")
    beats: list[tuple[int, State]] = []
    for i, state in enumerate(states):
        if not beats or beats[-1][1] != state:
            beats.append((i, state))  # type: ignore[arg-type]
    return bullets, beats


def _auto_bullets(lines, states: list, bullets: list[str], durations: list[float], language: str,
                  explicit: bool, add: bool = True) -> list[str]:
    """Mark bullets on the lines that say them, or keep the script's marks, and (``add``) add bullets
    where one would stay marked too long (module docstring); fills ``states`` in place."""
    free = [i for i, s in enumerate(states) if s is None or s.kind == "bullets"]
    if not free:
        return bullets
    together: dict[int, list[int]] = {}
    if explicit:
        marks = {i: lines[i].bullet for i in free if lines[i].bullet is not None}
    else:
        starts = _match(bullets, [lines[i].text for i in free], [durations[i] for i in free])
        marks = {free[k]: j for j, k in enumerate(starts)}
        for j, k in enumerate(starts):  # several bullets starting at one line: all are said there
            together.setdefault(free[k], []).append(j)
    bullets = list(bullets)
    for _ in range(12 if add else 0):  # add bullets where one would stay marked too long
        long = _longest_run(free, marks, durations)
        if long is None:
            break
        run, seconds = long
        if seconds <= HOLD_SECONDS:
            break
        half, acc, middle = seconds / 2, 0.0, len(run) - 1
        for k in range(1, len(run)):
            acc += durations[run[k - 1]]
            if acc >= half:
                middle = k
                break
        order = [k for k in range(middle, len(run))] + [k for k in range(middle - 1, 0, -1)]
        found = next(((run[k], p) for k in order if (p := _bullet(lines, run[k], language, bullets)) and p not in bullets),
                     None)
        if found is None:
            break
        split, point = found
        after = marks.get(run[0], -1)
        bullets.insert(after + 1, point)
        marks = {i: (j + 1 if j > after else j) for i, j in marks.items()}
        together = {i: [j + 1 if j > after else j for j in js] for i, js in together.items() if i != split}
        marks[split] = after + 1
    current: int | None = None
    also: tuple[int, ...] = ()
    for i in free:
        if i in marks:
            current = marks[i]
            also = tuple(j for j in together.get(i, []) if j != current)
        states[i] = State("bullets", current=current, also=also)
    return bullets


def _prose_points(lines, states: list, durations: list[float], language: str) -> None:
    """On a closing card, each stretch of lines with no recap item marked yet that lasts longer than
    :data:`HOLD_SECONDS` gets key-phrase bullets of its own lines (``points`` states, filled in
    place), so the unmarked card does not stand through a paragraph of prose."""
    unmarked = State("bullets")
    i = 0
    while i < len(states):
        if states[i] != unmarked:
            i += 1
            continue
        end = i
        while end < len(states) and states[end] == unmarked:
            end += 1
        run = list(range(i, end))
        seed = next((p for k in run if (p := _bullet(lines, k, language))), None)
        if seed is not None and sum(durations[k] for k in run) > HOLD_SECONDS:
            sub: list = [None] * len(run)
            points = _auto_bullets([lines[k] for k in run], sub, [seed], [durations[k] for k in run], language,
                                   explicit=False)
            for k, state in zip(run, sub):
                states[k] = State("points", current=state.current, points=tuple(points), also=state.also)
        i = end


def _longest_run(free: list[int], marks: dict[int, int], durations: list[float]) -> tuple[list[int], float] | None:
    """The longest stretch of bullet lines with one bullet marked (a visual in between ends it; a
    line marking the bullet already marked does not: the picture stays the same)."""
    runs: list[list[int]] = []
    marked: int | None = None
    for i in free:
        if not runs or (i in marks and marks[i] != marked) or i != runs[-1][-1] + 1:
            runs.append([i])
        else:
            runs[-1].append(i)
        marked = marks.get(i, marked)
    runs = [r for r in runs if len(r) > 1]
    if not runs:
        return None
    best = max(runs, key=lambda r: sum(durations[i] for i in r))
    return best, sum(durations[i] for i in best)


def _match(bullets: list[str], texts: list[str], durations: list[float]) -> list[int]:
    """For each bullet the position of the line it starts at (non-decreasing)."""
    total = sum(durations) or 1.0
    cumulative = [0.0]
    for d in durations:
        cumulative.append(cumulative[-1] + d)
    starts: list[int] = []
    low = 0
    for j, bullet in enumerate(bullets):
        wanted = _pairs(bullet)
        best, score = None, 0.0
        for k in range(low, len(texts)):
            have = _pairs(texts[k])
            s = len(wanted & have) / max(1, len(wanted))
            if s > score + 1e-9:
                best, score = k, s
        if best is None or score < 0.5:
            target = total * j / max(1, len(bullets))
            best = max(low, min(len(texts) - 1, next((k for k in range(len(texts)) if cumulative[k + 1] > target),
                                                     len(texts) - 1)))
        starts.append(best)
        low = best
    return starts


def _pairs(text: str) -> set[str]:
    text = "".join(ch for ch in text.lower() if ch.isalnum())
    return {text[i:i + 2] for i in range(len(text) - 1)}


def _bullet(lines, k: int, language: str, used: list[str] | tuple = ()) -> str:
    """A key phrase of the sentence line ``k`` is part of (a line may be a piece of one); when that
    gives none, or one already in ``used``, a key phrase of the line itself (one long sentence
    spans many lines, each of which may need a bullet of its own)."""
    from stages.slides.layout import line_sentence, narration_bullet

    whole = narration_bullet(line_sentence([line.text for line in lines], k, language), language)
    if whole and whole not in used:
        return whole
    own = narration_bullet(lines[k].text, language)
    return own if own not in used else ""
