"""Every on-screen bullet real articles become, and the weak ones.

Usage: ``python bench/bullets.py [--ja DIR] [--articles DIR] [--limit N] [--list] [--weak]``
(defaults ``../shared/eval/ja`` and ``../shared/eval/articles``, as ``bench/content.py``). Each
article goes through the fetch stage's extraction and the script stage's offline writer (one
narrator, ``script.max_minutes`` 30 so no part is trimmed away); then the slides stage's beat
planner (:func:`stages.slides.beats.plan_beats`, with line times estimated from the text, as the
slides stage does without audio) gives the bullets each section shows: the script's own, those
added where one would stay marked too long, and the key phrases of the closing's prose. The
closing card's recap items are the parts' titles (the author's headings), not key phrases: they
are not judged. No audio, slide or video is made.

A bullet is *weak* (:func:`weak_reasons`) when it is:

- ``lone_word``: a single word: one Latin word or number (「master」), or (Japanese) one morpheme;
- ``dangling``: it ends on what waits for more: (Japanese, by pyopenjtalk's analysis) a particle
  other than a sentence-final one, an auxiliary or verb in a continuative, conditional or
  attributive form (「…し」, 「…な」), a prefix, an adnominal or a conjunction; (other languages) a
  function word, a possessive or a comma (:func:`stages.script.text.bullet_ends_cleanly`);
- ``long``: more than one line in the bullet column of a 1920x1080 slide, at the bullet type's
  full size (measured with the slide font, as the slide is drawn);
- ``cut``: cut mid-phrase: an ellipsis, unbalanced brackets, or (Japanese) an end inside one of
  BudouX's phrases of the sentence it came from when that sentence holds the bullet.

Prints ``name=value`` lines: per article ``<name>.bullets``, ``<name>.weak`` and ``<name>.hold_s``
(the longest a picture stays on screen by the beat plan, line times estimated: fewer bullets must
not leave a slide standing), then totals ``bullets``, ``weak``, one ``weak.<reason>`` per reason,
``max_hold_s`` and ``holds_over_20s`` (articles whose longest hold exceeds 20 s). ``--list`` prints every bullet
(``bullet<TAB>article<TAB>reasons<TAB>the sentence it is cut from``), ``--weak`` only the weak ones.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.content import EVAL, _inputs  # noqa: E402
from stages.fetch import extract  # noqa: E402
from stages.script.extractive import write_extractive  # noqa: E402
from stages.script.text import bullet_ends_cleanly, estimate_seconds, is_japanese  # noqa: E402
from stages.settings import load_settings  # noqa: E402

REASONS = ("lone_word", "dangling", "long", "cut")
_LATIN_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+#_/'’-]*$")
_HANGUL_OR_CJK = re.compile(r"[\u1100-\u11ff\u3040-\u9fff\uac00-\ud7af]")
_PARTICLE_KANA = ("と", "が", "を", "に", "で", "は", "も", "や", "へ", "の")
_OPEN, _CLOSE = "「『（(【［[", "」』）)】］]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ja", type=Path, default=EVAL / "ja")
    parser.add_argument("--articles", type=Path, default=EVAL / "articles")
    parser.add_argument("--limit", type=int, default=0, help="at most N inputs of each set (0: all)")
    parser.add_argument("--list", action="store_true", help="print every bullet")
    parser.add_argument("--weak", action="store_true", help="print the weak bullets")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-bullets-") as tmp:
        home = Path(tmp)
        settings = load_settings(home=home / "home", script={"max_minutes": 30})
        fits = one_line_at_1080p(settings)
        totals = {"bullets": 0, "weak": 0, **{f"weak.{r}": 0 for r in REASONS}}
        holds: list[float] = []
        for name, path in _inputs(args.ja, args.articles, home, args.limit):
            article = extract(path, settings)
            script = write_extractive(article, settings)
            language = script.language or "en"
            found, hold = shown_bullets(script, language)
            weak = 0
            for bullet, source in found:
                reasons = weak_reasons(bullet, language, fits, source)
                weak += bool(reasons)
                for reason in reasons:
                    totals[f"weak.{reason}"] += 1
                if args.list or (args.weak and reasons):
                    print(f"{bullet}\t{name}\t{','.join(reasons)}\t{source}")
            print(f"{name}.bullets={len(found)}")
            print(f"{name}.weak={weak}")
            print(f"{name}.hold_s={hold:.1f}")
            holds.append(hold)
            totals["bullets"] += len(found)
            totals["weak"] += weak
        for key, value in totals.items():
            print(f"{key}={value}")
        print(f"max_hold_s={max(holds, default=0):.1f}")
        print(f"holds_over_20s={sum(h > 20 for h in holds)}")


def shown_bullets(script, language: str) -> tuple[list[tuple[str, str]], float]:
    """Every bullet some picture of the video shows, with the sentence it came from when known,
    and the longest time one picture stays (seconds).

    Runs the slides stage's beat planner over each section (layouts as the slides stage picks
    them, line times estimated); the closing card's recap list is left out (parts' titles).
    """
    from stages.slides.beats import plan_beats
    from stages.slides.layout import build_specs

    specs = build_specs(script, None)
    out: list[tuple[str, str]] = []
    hold = 0.0
    for i, (section, spec) in enumerate(zip(script.sections, specs)):
        durations = [estimate_seconds(n.text, n.reading, language) for n in section.narrations]
        bullets = list(spec.bullets)
        if spec.layout == "title":
            bullets = [b.strip() for b in (section.slide.bullets if section.slide else []) if b.strip()]
        bullets, beats = plan_beats(section, first=i == 0, layout=spec.layout, bullets=bullets, durations=durations,
                                    visual_pages=[1] * len(section.visuals), language=language)
        starts = [line for line, _state in beats] + [len(durations)]
        hold = max([hold] + [sum(durations[a:b]) for a, b in zip(starts, starts[1:])])
        texts = ("" if is_japanese(language) else " ").join(n.text for n in section.narrations)
        seen: list[str] = []
        if spec.layout not in ("closing", "title"):
            seen.extend(bullets)
        for _line, state in beats:
            seen.extend(p for p in state.points if p not in seen)
        out.extend((b, _source(b, texts)) for b in seen)
    return out, hold


def _source(bullet: str, texts: str) -> str:
    """The narration sentence holding ``bullet`` word for word (else "")."""
    at = texts.find(bullet)
    if at < 0:
        return ""
    start = max(texts.rfind(ch, 0, at) for ch in "。！？!?") + 1
    ends = [e for ch in "。！？!?" if (e := texts.find(ch, at + max(0, len(bullet) - 1))) >= 0]
    return texts[start:min(ends) + 1 if ends else len(texts)].strip()


def one_line_at_1080p(settings):
    """A test ``fits(text) -> bool``: does ``text`` fit one line of a 1920x1080 slide's bullet column
    at the bullet type's full size (the sizes :func:`stages.slides.typeset._bullets` starts from)?"""
    from stages.fonts import find_font_face
    from stages.slides.layout import SafeArea
    from stages.slides.typeset import measure_for

    big = settings.model_copy(update={"video": settings.video.model_copy(update={"width": 1920, "height": 1080})})
    area = SafeArea.of(big, None)
    column = area.column() if area.has_corners() else area
    size = round(min(1920, 1080) * 0.047)
    width = column.width - round(size * 1.05)  # the marker's indent
    measures = {}

    def fits(text: str) -> bool:
        lang = "ja" if re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text) else "en"
        if lang not in measures:
            measures[lang] = measure_for(find_font_face(settings.theme.font, lang=lang), size)
        return measures[lang](text) <= width

    return fits


def weak_reasons(bullet: str, language: str, fits, source: str = "") -> list[str]:
    """Why ``bullet`` is weak (the module docstring's reasons), or [] when it is a good key phrase."""
    text = bullet.strip()
    reasons = []
    japanese = is_japanese(language) or bool(re.search(r"[\u3040-\u30ff]", text))
    if _LATIN_WORD.match(text) or (japanese and _one_morpheme(text)) or (not japanese and " " not in text):
        reasons.append("lone_word")
    if (japanese and _dangles_ja(text)) or (not japanese and not bullet_ends_cleanly(text, language)):
        reasons.append("dangling")
    if not fits(text):
        reasons.append("long")
    if (text.endswith(("…", "...")) or not _balanced(text)
            or (japanese and source and not _ends_on_phrase(text, source))
            or (not japanese and not _HANGUL_OR_CJK.search(text) and source and not _ends_on_clause(text, source))):
        reasons.append("cut")
    return reasons


@lru_cache(maxsize=4096)
def _morphemes(text: str):
    from stages.jtalk import analyse

    return analyse(text)


def _one_morpheme(text: str) -> bool:
    words = [m for m in _morphemes(text) if m["pos"] != "記号"]
    return len(words) <= 1


def _dangles_ja(text: str) -> bool:
    words = [m for m in _morphemes(text) if m["pos"] != "記号" or m["string"] in "、，"]
    if not words:
        return True
    if words[0]["pos"] in ("助詞", "助動詞") or words[0]["string"] in _PARTICLE_KANA:
        # 「と解釈できます」: the start hangs on what came before (alone, と reads as a filler)
        return True
    last = words[-1]
    pos, group, form = last["pos"], last["pos_group1"], str(last.get("cform") or "")
    if last["string"] in "、，":
        return True
    if pos == "助詞":
        return "終助詞" not in group  # (か is 「副助詞／並立助詞／終助詞」)
    if pos in ("接頭詞", "連体詞", "接続詞"):
        return True
    if pos in ("動詞", "形容詞", "助動詞"):
        return form.startswith(("連用", "未然", "仮定", "連体")) and not form.startswith("連用タ")
    return False


def _ends_on_phrase(bullet: str, source: str) -> bool:
    """Whether the bullet, found in ``source``, ends where one of BudouX's phrases does, or inside
    one only before what follows a word (the rest of the phrase starts with a particle, an
    auxiliary or punctuation: 「動作確認」 of 「動作確認を」)."""
    from stages.linebreak import phrases

    at = source.find(bullet)
    if at < 0:
        return True
    end = at + len(bullet)
    if not source[end:].strip(" 。．.！？!?」』）)"):
        return True
    pos = 0
    for chunk in phrases(source):
        if pos < end < pos + len(chunk):
            if not chunk[end - pos:].strip(" 、，。．,.！？!?」』）)"):
                return True
            # inside the phrase: fine only before a particle, an auxiliary or punctuation, as the
            # whole sentence's analysis has it (alone, 「が、」 would read as a conjunction)
            from stages.script.text import _align

            morphemes = _morphemes(source)
            spans = _align(source, [m["string"] for m in morphemes]) or []
            following = next((morphemes[k] for start, _end, k in spans if start == end), None)
            return following is not None and following["pos"] in ("助詞", "助動詞", "記号")
        pos += len(chunk)
    return True


_EN_BOUNDARY_WORDS = {
    "and", "but", "or", "so", "because", "which", "that", "while", "when", "where", "although", "though",
    "whereas", "if", "unless", "since", "until", "who", "whose", "yet", "then", "to", "as",
    "of", "in", "on", "for", "with", "from", "by", "at", "into", "about", "over", "under", "after", "before",
    "between", "through", "during", "without", "within", "across", "against", "among", "amid", "than",
    # Portuguese, Spanish, Italian, French
    "de", "da", "do", "das", "dos", "del", "della", "di", "du", "des", "em", "en", "no", "na", "nel", "dans", "para",
    "per", "pour", "por", "pela", "pelo", "com", "con", "avec", "sem", "su", "sur", "que", "qui", "che", "e", "y",
    "et", "ou", "o", "ma", "mas", "pero", "mais", "como", "come", "comme", "quando", "porque",
}


def _ends_on_clause(bullet: str, source: str) -> bool:
    """Whether the bullet, found in ``source``, ends at the sentence's end, before punctuation, or
    before a word that opens a clause or a phrase (a conjunction, a relative word, a preposition)."""
    at = source.find(bullet)
    if at < 0 or re.search(r"[.!?][\"”’)]*$", bullet):  # a whole (quoted) sentence
        return True
    rest = source[at + len(bullet):]
    if not rest.strip() or rest[0] in ",;:.!?)”\"’—–" or rest.lstrip()[:1] in "(—–" or not rest[0].isspace():
        return not rest or not rest[0].isalnum()
    following = rest.split()[0].lower().strip("\"“‘(")
    return following in _EN_BOUNDARY_WORDS


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += (ch in _OPEN) - (ch in _CLOSE)
        if depth < 0:
            return False
    return depth == 0


if __name__ == "__main__":
    main()
