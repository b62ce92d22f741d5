"""The offline dialogue: who says what when the extractive writer makes a conversation of an article.

Two roles. The **host** (the default persona) opens the video, introduces each part by its heading
and asks about it; the **guest** (the other of the first two personas) explains it with the
article's own sentences. The host answers briefly (「なるほど。」) only where the guest's turn would
otherwise run past :data:`SENTENCES_PER_TURN` sentences: between paragraphs when it can, inside a
long paragraph when it must, never inside a list (a list is read as one turn). These answers
(:class:`Nods`) are drawn in a fixed order over the whole video, so none repeats before all have
been used. The closing recalls the parts and thanks the viewer; after the article's own summary
(「まとめ」), which the host has already asked for, the guest goes straight on to the recall (one
wrap-up, not two).

Questions come from the headings: a heading that is a question already (ends in ？ or ?) is asked
as it is, an article's own summary (「まとめ」) is asked for as one; otherwise the host names it (「まずは「苗を選ぶ」について教えてください。」, then
「次は「…」です。」 with a question that varies from part to part). Every choice depends only on the
part's position, so the same article always gives the same conversation.

Lines may carry an expression (the host is happy to open and to thank, surprised at 「へえ」,
troubled asking what to watch out for); the writer keeps it only for a persona whose character
has that expression.

The texts here are plain sentences; :mod:`stages.script.extractive` splits them into phrases and
gives them readings like any other sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

HOST, GUEST = "host", "guest"
SENTENCES_PER_TURN = 3

_WORDS = {
    "ja": {
        "open": ["今回は「{title}」について教えてください。"],
        "open_reply": ["はい、よろしくお願いします。", "{covers}"],
        "intro_ask": "そもそも、どんなお話なんですか？",
        "summary_ask": "ここまでをまとめると、どうなりますか？",
        "first": "まずは「{heading}」について教えてください。",
        "next": "次は「{heading}」ですね。",
        "asks": ["どんなポイントがあるんですか？", "何に気をつければいいんですか？", "詳しく教えてください。"],
        # the host's short answers, in the order a video uses them (varied neighbours; then they cycle)
        "nods": ["なるほど。", "そうなんですね。", "へえ、知りませんでした。", "それは大事ですね。", "ふむふむ。",
                 "たしかに。", "覚えておきます。", "ほかにもありますか？", "わかりやすいですね。", "それで、それで？"],
        "recap": ["最後に、今回の内容を振り返りましょう。"],
        "recap_reply": ["{recalled}"],
        "thanks": ["とてもよくわかりました！", "ご視聴ありがとうございました。"],
    },
    "en": {
        "open": ["Today's topic is {title}. Can you walk me through it?"],
        "open_reply": ["Sure.", "{covers}"],
        "intro_ask": "So, what is this about?",
        "summary_ask": "So, what does it all come down to?",
        "first": "Let's start with {heading}. Tell me about it.",
        "next": "Next up: {heading}.",
        "asks": ["What matters here?", "What should I watch out for?", "Tell me more."],
        "nods": ["I see.", "Got it.", "Interesting.", "That makes sense.", "Good to know.", "Right.",
                 "Anything else?", "Go on."],
        "recap": ["Let's recap what we covered."],
        "recap_reply": ["{recalled}"],
        "thanks": ["That was really clear!", "Thanks for watching."],
    },
}


_MOODS = {  # the host's expression on some of its lines
    "へえ、知りませんでした。": "surprised", "Interesting.": "surprised",
    "何に気をつければいいんですか？": "troubled", "What should I watch out for?": "troubled",
}  # fmt: skip

# Headings of an article's own closing part: the host asks for the gist rather than about "まとめ".
_SUMMARIES = {"まとめ", "おわりに", "終わりに", "さいごに", "最後に", "結論", "summary", "conclusion", "wrapping up"}


@dataclass(frozen=True)
class Line:
    """One sentence of the conversation and who says it (:data:`HOST` or :data:`GUEST`)."""

    role: str
    text: str
    expression: str | None = None


class Nods:
    """The host's short answers over one video: drawn in a fixed order, so the same article always
    gets the same ones and none repeats before every one has been used."""

    def __init__(self, *, japanese: bool):
        self._texts = _words(japanese)["nods"]
        self._count = 0

    def next(self) -> Line:
        """The next answer, as the host's line."""
        text = self._texts[self._count % len(self._texts)]
        self._count += 1
        return Line(HOST, text, _MOODS.get(text))


def opening(title: str, covers: str, *, japanese: bool) -> list[Line]:
    """The host names the topic; the guest says what the video covers (``covers`` is that sentence)."""
    words = _words(japanese)
    return [
        *(Line(HOST, t.format(title=title), "happy") for t in words["open"]),
        *(Line(GUEST, t.format(covers=covers)) for t in words["open_reply"]),
    ]


def part(heading: str, paragraphs: list[list[str]], index: int, *, is_intro: bool, japanese: bool,
         lists: frozenset[int] = frozenset(), nods: Nods | None = None) -> list[Line]:
    """One part of the article: the host's question from ``heading``, then the guest's explanation.

    Args:
        heading: the part's heading (the section title).
        paragraphs: the guest's sentences, grouped by the paragraph (or list) they came from.
        index: the part's position among the body parts (0 = the first), which picks the wording.
        is_intro: the text before the article's first heading (no heading to ask about).
        japanese: Japanese wording, else English.
        lists: the positions in ``paragraphs`` that are lists (read whole, never interrupted).
        nods: the video's host answers (shared by its parts so none repeats); a fresh set if None.
    """
    words = _words(japanese)
    nods = nods or Nods(japanese=japanese)
    lines = [Line(HOST, t, _MOODS.get(t)) for t in _question(heading, index, is_intro, words)]
    turn = 0  # the guest's sentences since the host last spoke
    for p, sentences in enumerate(paragraphs):
        if not sentences:
            continue
        listed = p in lists
        ahead = len(sentences) if listed else min(len(sentences), SENTENCES_PER_TURN)
        if turn and turn + ahead > SENTENCES_PER_TURN:  # answer between paragraphs rather than inside one
            lines.append(nods.next())
            turn = 0
        for sentence in sentences:
            if turn >= SENTENCES_PER_TURN and not listed:
                lines.append(nods.next())
                turn = 0
            lines.append(Line(GUEST, sentence))
            turn += 1
    return lines


def closing(recalled: str, *, japanese: bool, summary: list[Line] | None = None, nods: Nods | None = None) -> list[Line]:
    """The host calls for a recap, the guest recalls the parts (``recalled``), and they thank the viewer.

    ``summary`` is the article's own summary part as said (:func:`part`, the host having asked for
    the gist): the closing then follows it without a second call for a recap, the guest going on
    to the recall (after a short answer from the host only if the guest's turn would run long).
    """
    words = _words(japanese)
    thanks = words["thanks"]
    if summary is None:
        ask = [Line(HOST, t) for t in words["recap"]]
    else:
        turn = 0
        for line in reversed(summary):
            if line.role != GUEST:
                break
            turn += 1
        ask = [(nods or Nods(japanese=japanese)).next()] if turn + 1 > SENTENCES_PER_TURN else []
    return [
        *ask,
        *(Line(GUEST, t.format(recalled=recalled)) for t in words["recap_reply"]),
        Line(HOST, thanks[0], "happy"),
        *(Line(GUEST, t, "happy") for t in thanks[1:]),
    ]


def _words(japanese: bool) -> dict:
    return _WORDS["ja" if japanese else "en"]


def _question(heading: str, index: int, is_intro: bool, words: dict) -> list[str]:
    if is_intro:
        return [words["intro_ask"]]
    if not heading.strip():  # a part with no title of its own (その1): asked about without naming it
        return [words["intro_ask"] if index == 0 else words["asks"][(index - 1) % len(words["asks"])]]
    if heading.rstrip().endswith(("？", "?")):
        return [heading]
    if heading.strip().casefold() in _SUMMARIES:
        return [words["summary_ask"]]
    if index == 0:
        return [words["first"].format(heading=heading)]
    asks = words["asks"]
    return [words["next"].format(heading=heading), asks[(index - 1) % len(asks)]]
