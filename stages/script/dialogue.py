"""The offline dialogue: who says what when the extractive writer makes a conversation of an article.

Two roles. The **host** (the default persona) opens the video, introduces each part by its heading
and asks about it; the **guest** (the other of the first two personas) explains it with the
article's own sentences. Between the guest's paragraphs, and after every
:data:`SENTENCES_PER_TURN` sentences of a long one, the host answers briefly (「なるほど。」), so no
one talks for long. The closing recalls the parts and thanks the viewer.

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
        "nods": ["なるほど。", "そうなんですね。", "ふむふむ。", "へえ、知りませんでした。", "それは大事ですね。"],
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
        "nods": ["I see.", "Got it.", "Interesting.", "That makes sense."],
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


def opening(title: str, covers: str, *, japanese: bool) -> list[Line]:
    """The host names the topic; the guest says what the video covers (``covers`` is that sentence)."""
    words = _words(japanese)
    return [
        *(Line(HOST, t.format(title=title), "happy") for t in words["open"]),
        *(Line(GUEST, t.format(covers=covers)) for t in words["open_reply"]),
    ]


def part(heading: str, paragraphs: list[list[str]], index: int, *, is_intro: bool, japanese: bool) -> list[Line]:
    """One part of the article: the host's question from ``heading``, then the guest's explanation.

    Args:
        heading: the part's heading (the section title).
        paragraphs: the guest's sentences, grouped by the paragraph (or list) they came from.
        index: the part's position among the body parts (0 = the first), which picks the wording.
        is_intro: the text before the article's first heading (no heading to ask about).
        japanese: Japanese wording, else English.
    """
    words = _words(japanese)
    lines = [Line(HOST, t, _MOODS.get(t)) for t in _question(heading, index, is_intro, words)]
    nods = 0
    for p, sentences in enumerate(paragraphs):
        for s, sentence in enumerate(sentences):
            if s and s % SENTENCES_PER_TURN == 0:
                lines.append(_nod_line(words, index, nods))
                nods += 1
            lines.append(Line(GUEST, sentence))
        if sentences and p < len(paragraphs) - 1 and any(paragraphs[p + 1 :]):
            lines.append(_nod_line(words, index, nods))
            nods += 1
    return lines


def closing(recalled: str, *, japanese: bool) -> list[Line]:
    """The host calls for a recap, the guest recalls the parts (``recalled``), and they thank the viewer."""
    words = _words(japanese)
    thanks = words["thanks"]
    return [
        *(Line(HOST, t) for t in words["recap"]),
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


def _nod_line(words: dict, part_index: int, count: int) -> Line:
    nods = words["nods"]
    text = nods[(part_index + count) % len(nods)]
    return Line(HOST, text, _MOODS.get(text))
