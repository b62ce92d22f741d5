"""Share of bad subtitle line breaks, judged by an independent Japanese tokenizer (janome).

Usage::

    .venv/bin/python -m pip install janome          # measuring only: not a runtime dependency
    .venv/bin/python bench/linebreaks.py [ARTICLE.md ...] [--size 1920x1080 --size 1080x1920]
    .venv/bin/python bench/linebreaks.py --srt video.srt [...]   # the breaks of rendered .srt files

Without ``--srt`` each article (default: every ``../shared/eval/ja/*.md``) goes through the real
fetch and script stages (offline: the extractive writer), and every phrase is laid out as the video
stage lays out its subtitles (:class:`stages.video.plan.CueFitter`, same font, safe width and
shrinking), at each ``--size``: no audio and no render are needed, the lines are the same.

A break is a place where the text goes on in the next line: between the lines of a cue, and
between the cues one long phrase was split into. It is *bad* when janome (IPADIC) says it falls
inside a word, or before a dependent word: a particle (助詞), an auxiliary (助動詞), a suffix
(接尾), a dependent verb or adjective (非自立: 「なって/いる」), or punctuation that kinsoku keeps
off a line start. Prints ``name=value`` lines, the last one ``bad_break_ratio=``; ``--show N``
lists up to N bad breaks as ``before|after``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval" / "ja"
DEPENDENT = ("助詞", "助動詞")
KINSOKU_START = "。、，．・：；？！ー～」』）］｝〕〉》】’”,.)]}!?:;%ぁぃぅぇぉっゃゅょァィゥェォッャュョ"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("articles", nargs="*", type=Path)
    parser.add_argument("--size", action="append", help="WxH, repeatable (default: 1920x1080 and 1080x1920)")
    parser.add_argument("--srt", action="append", type=Path, default=[], help="measure the breaks of these .srt files")
    parser.add_argument("--show", type=int, default=0, help="print up to N bad breaks")
    args = parser.parse_args()
    try:
        from janome.tokenizer import Tokenizer
    except ImportError:
        sys.exit("janome is needed for measuring: .venv/bin/python -m pip install janome")
    judge = Judge(Tokenizer())

    if args.srt:
        for path in args.srt:
            for lines in srt_cues(path):
                judge.cue(lines, path.name)
    else:
        articles = args.articles or sorted(p for p in EVAL.glob("*.md") if p.name != "README.md")
        sizes = args.size or ["1920x1080", "1080x1920"]
        for article in articles:
            phrases = script_phrases(article)
            for size in sizes:
                width, height = (int(v) for v in size.lower().split("x"))
                for text, parts in layout(phrases, width, height):
                    judge.phrase(text, parts, f"{article.stem}@{size}")
        print(f"articles={len(articles)}")
        print(f"sizes={','.join(sizes)}")
    print(f"cues={judge.cues}")
    print(f"split_phrases={judge.split_phrases}")
    print(f"breaks={judge.breaks}")
    print(f"inside_word={judge.inside}")
    print(f"before_dependent={judge.dependent}")
    for where, before, after in judge.examples[: args.show]:
        print(f"# {where}: {before}|{after}")
    ratio = (judge.inside + judge.dependent) / judge.breaks if judge.breaks else 0.0
    print(f"bad_break_ratio={ratio:.4f}")


def script_phrases(article: Path) -> list[str]:
    """The subtitle texts of the script the offline writer makes from ``article``."""
    from stages.fetch import fetch_article
    from stages.script import generate_script, load_script
    from stages.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = load_settings(home=folder / "home")
        fetch_article(article, folder, settings)
        generate_script(folder / "article.json", folder, settings)
        script = load_script(folder / "script.yaml", settings)
        return [item.text for _, _, item in script.phrases()]


def layout(phrases: list[str], width: int, height: int) -> list[tuple[str, list[list[str]]]]:
    """Each phrase's text and cues (each a list of lines), as the video stage lays them out at
    ``width``x``height``."""
    from stages.settings import load_settings
    from stages.video.plan import TRAILING_PUNCTUATION, CueFitter, _subtitle_style

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(home=Path(tmp), video={"width": width, "height": height})
    fitter = CueFitter(_subtitle_style(settings, has_characters=False), settings.video.subtitles.min_scale)
    out = []
    for text in phrases:
        text = text.strip().rstrip(TRAILING_PUNCTUATION).strip()
        out.append((text, [lines for lines, _ in fitter.fit_parts(text)]))
    return out


def srt_cues(path: Path) -> list[list[str]]:
    """The text lines of each cue of a SubRip file."""
    blocks = re.split(r"\n\s*\n", path.read_text(encoding="utf-8").strip())
    cues = []
    for block in blocks:
        lines = block.splitlines()
        if len(lines) >= 3 and "-->" in lines[1]:
            cues.append([line for line in lines[2:] if line.strip()])
    return cues


class Judge:
    """Counts breaks and bad breaks with janome's analysis of the whole text around them."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.cues = self.split_phrases = self.breaks = self.inside = self.dependent = 0
        self.examples: list[tuple[str, str, str]] = []

    def phrase(self, text: str, parts: list[list[str]], where: str) -> None:
        """One phrase ``text`` laid out as ``parts`` (cues of lines): every line end but the last is
        a break, found in the text itself (so a break at a space is judged with its space)."""
        self.cues += len(parts)
        self.split_phrases += len(parts) > 1
        lines = [line for lines in parts for line in lines]
        if len(lines) < 2:
            return
        breaks, at = [], 0
        for i, line in enumerate(lines):
            found = text.find(line, at)
            if found < 0:  # the layout changed the text: judge the lines as joined
                self._judge(lines, where)
                return
            if i:
                breaks.append(found)
            at = found + len(line)
        self._judge_at(text, breaks, where)

    def cue(self, lines: list[str], where: str) -> None:
        """One cue of an .srt file: the breaks between its lines."""
        self.cues += 1
        self._judge(lines, where)

    def _judge(self, lines: list[str], where: str) -> None:
        if len(lines) < 2:
            return
        text, breaks = join_lines(lines)
        self._judge_at(text, breaks, where)

    def _judge_at(self, text: str, breaks: list[int], where: str) -> None:
        starts: dict[int, object] = {}
        offset = 0
        for token in self.tokenizer.tokenize(text):
            starts[offset] = token
            offset += len(token.surface)
        for at in breaks:
            self.breaks += 1
            token = starts.get(at)
            if token is None:
                self.inside += 1
                bad = True
            else:
                bad = dependent(token)
                self.dependent += bad
            if bad:
                self.examples.append((where, text[max(0, at - 8) : at], text[at : at + 8]))


def join_lines(lines: list[str]) -> tuple[str, list[int]]:
    """The lines as one text (a space between two Latin line ends) and where each new line starts."""
    text = lines[0]
    breaks = []
    for line in lines[1:]:
        if text and line and text[-1].isascii() and text[-1].isalnum() and line[0].isascii() and line[0].isalnum():
            text += " "
        breaks.append(len(text))
        text += line
    return text, breaks


def dependent(token) -> bool:
    """True for a word that cannot start a phrase (文節): it leans on the word before it."""
    pos = token.part_of_speech.split(",")
    if pos[0] in DEPENDENT:
        return True
    if pos[0] in ("名詞", "動詞", "形容詞") and pos[1] == "接尾":
        return True
    if pos[0] in ("動詞", "形容詞") and pos[1] == "非自立":
        return True
    return token.surface[:1] in KINSOKU_START


if __name__ == "__main__":
    main()
