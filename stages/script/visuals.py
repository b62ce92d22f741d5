"""What the article shows rather than says: blocks that become visuals, and prose made speakable.

A writer never reads code, table cells, math source, URLs or handles aloud. This module decides:

- which article blocks are shown on screen (:func:`visual_of`: code, table, display math, image),
  and the words that introduce one when the article gives none (:func:`introduction`: from its
  caption, else a table's header row, else its kind);
- what of a sentence is spoken (:func:`speakable`): URLs and ``@handles`` are removed, a link's
  text is already plain text in ``article.json``, inline code that is a name, a path, an option or a
  number (```union```, ```git rebase -i```, ```.git/config```, ```c1'```, ```2.3```) is said as
  words (a call, ```atomicMin()```, by its name) and longer code as 「このコード」 / "this code", inline math
  that names something (``$N$``, ``$x_i$``, ``$\\vec{y}$`` 「ベクトルy」: :mod:`stages.script.mathwords`)
  in words and anything else as 「この式」 / "this formula", markup characters are dropped. A sentence left with nothing to say is dropped.
  Emoji go (no voice says them, the subtitle font cannot draw them) and ☓ becomes ×.
  A page's call to action ("Click here…", "Subscribe to…", "READ MORE: …", "See it now: Amazon",
  "Send us…", "Get … delivered…", 「続きを読む」) is not said, nor an embedded tweet's byline
  ("— Name (@handle) October 9, 2018") or a tweet of hashtags alone, nor an English spec box or contact
  line (two "Label:" fields in a sentence, "Tested by: … RRP: …", or a telephone number), and an
  image whose caption only credits it ("(Image: … / Getty Images)") is not introduced.
  In a Japanese article, a sentence with no Japanese in it and at least four English words (a
  cited paper, a book's title: 「R. H. Swendsen, J.-S. Wang, "Nonuniversal critical dynamics…"」)
  is dropped too: the Japanese voice would read it word by word in katakana, which no viewer can
  follow.
"""

from __future__ import annotations

import re
from typing import Any

from stages.script.mathwords import math_words
from stages.script.model import Visual

VISUAL_KINDS = ("code", "table", "math", "image")
# A URL, also without its scheme when a path follows a host with a known top-level domain
# (pic.twitter.com/4p7SXk7JPW, t.co/x; not Node.js/Deno). It ends at the first character no URL
# holds unescaped, so 「https://example.comを参照」 keeps 「を参照」.
_TLD = r"(?:com|org|net|io|co|jp|dev|app|me|ly|gl|gg|be|info|edu|gov|uk|de|fr|tv|fm|ai|so|sh|to|us|ca|au|in|cn|kr|ru|br|it|es|nl|xyz|blog|news)"
_URL = re.compile(r"\(?(?:(?:https?|ftp)://|www\.[a-z0-9-]+\.|(?<![\w.@])(?:[a-z0-9-]+\.)+" + _TLD + r"/(?=\w))"
                  r"[A-Za-z0-9\-._~:/?#@!$&'*+,;=%\[\]]*\)?", re.IGNORECASE)
_HANDLE = re.compile(r"(?<![\w.])@[A-Za-z0-9_]{2,}")
# An embedded tweet's byline, "— The Nigerian Senate (@NGRSenate) October 9, 2018": who and when,
# not what it says; and a tweet left with nothing but hashtags ("#TodayInSenatePlenary")
_TWEET_BYLINE = re.compile(
    r"(?:^|\s)(?:[—–]\s*)?[^—–.!?\n]{1,80}?\(@\w+\)\s*(?:January|February|March|April|May|June|July|August|"
    r"September|October|November|December)\s+\d{1,2},\s+\d{4}\s*$"
)
_ONLY_HASHTAGS = re.compile(r"^\s*(?:#\w+[\s,.]*)+$")
_INLINE_CODE = re.compile(r"`([^`]+)`")
_INLINE_MATH = re.compile(r"\$([^$]+)\$")
_MARKUP = re.compile(r"[*`#|<>\\]+|(?<![0-9A-Za-z])_+|_+(?![0-9A-Za-z])|\[\^?\d*\]|\[|\]")
# Inline code said as words: a name, a path or an option, with primes (c1'), a call's empty
# parentheses (atomicMin(), func2(...): said without them), up to three words (git rebase -i); a number
_NAME = re.compile(r"^-{0,2}[A-Za-z0-9_./][A-Za-z0-9_./-]*'*(?: -{0,2}[A-Za-z0-9_./-]+'*){0,2}$")
_CALL = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)\((?:\.\.\.)?\)$")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
# A page's calls to action, not its article: said by no one who explains the article
_CALL_TO_ACTION = re.compile(
    r"^(?:click here\b|subscribe to\b|sign up (?:for|to)\b|read more\b|also read\b|related\s*:|follow us\b|"
    r"(?:see it|buy it|shop|get it|buy) now\b|view (?:deal|offer)\b|check (?:price|availability)\b|disclosure\s*:|"
    r"see also\s*:|send us\b|get\b.{0,60}\bdelivered\b|続きを読む|関連記事\s*[:：])",
    re.IGNORECASE,
)
# A review's spec box or a contact line: "Tested by: … RRP: 49.95 Euro More info: +49 (0)40 …"
# (two or more "Label:" fields in one sentence) or a telephone number: read, nobody follows it
_SPEC_FIELD = re.compile(r"(?:^|\s)[A-Z][A-Za-z]{0,11}(?: [A-Za-z]{1,11})?:\s")
_PHONE = re.compile(r"(?<![\w.])\+\d{1,3}[\s(]+\d[\d\s()\-]{6,}\d")
# A caption that only credits the picture: "(Image: gargantiopa / Getty Images)", "Photo: AP"
_CREDIT = re.compile(r"^\(?\s*(?:image|photo|picture|credit|source|画像|写真|出典)\s*[:：]|getty images|shutterstock|"
                     r"\bap photo\b|\breuters\b|istock", re.IGNORECASE)
_CREDIT_NAME = re.compile(r"^[A-Z][a-z.'-]+(?: [A-Z][a-z.'-]+){0,3}\s*/\s*[A-Z][\w.-]*$")  # Jason Cipriani/ZDNet
_LONE_LABEL = re.compile(r"^[A-Za-z]+(?: [A-Za-z]+)?\s*:$")  # "Also:", "See tweets:" said alone introduce nothing
# Pictographs: no voice says them and the subtitle font (Noto Sans CJK) cannot draw them
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\uFE0F\u200D]")
_CROSSES = str.maketrans({"☓": "×", "✕": "×", "✖": "×"})  # 「☓☓段」: a cross the font has
_SLUG = re.compile(r"[a-z0-9_\-]+")  # an image's alt that is its file's name
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")
_ENGLISH_WORD = re.compile(r"[A-Za-z]{2,}")
FOREIGN_SENTENCE_WORDS = 4  # English words that make a sentence without Japanese a citation, not prose
_WORDS = {
    "ja": {"code": "このコード", "math": "この式", "table": "次の表", "formula": "次の式を見てみましょう。",
           "listing": "コードを見てみましょう。", "named": "{name}のコードを見てみましょう。",
           "table_named": "{name}の表を見てみましょう。", "table_header": "{header}の表を見てみましょう。",
           "table_plain": "表を見てみましょう。", "image": "{name}の図です。"},
    "en": {"code": "this code", "math": "this formula", "table": "the table", "formula": "Here is the formula.",
           "listing": "Here is the code.", "named": "Here is the code of {name}.",
           "table_named": "Here is the table: {name}.", "table_header": "The table lists {header}.",
           "table_plain": "Here is the table.", "image": "This is {name}."},
}


def visual_of(block: dict[str, Any]) -> Visual | None:
    """The visual for an article block, or None when the block is said, not shown."""
    kind = block.get("type")
    caption = _text(block.get("caption")) or None
    try:
        if kind == "code":
            return Visual(kind="code", text=str(block.get("text") or ""), language=_text(block.get("language")) or None,
                          caption=caption)
        if kind == "math":
            return Visual(kind="math", text=str(block.get("text") or ""), caption=caption)
        if kind == "table":
            header = [_text(c) for c in block.get("header") or []]
            rows = [[_text(c) for c in row] for row in block.get("rows") or [] if isinstance(row, list)]
            return Visual(kind="table", header=header, rows=rows, caption=caption)
        if kind == "image" and block.get("src"):
            return Visual(kind="image", src=str(block["src"]), caption=caption or _image_name(block))
    except ValueError:  # an empty code block or table: nothing to show
        return None
    return None


def introduction(visual: Visual, japanese: bool) -> str | None:
    """A sentence that introduces ``visual`` in words, or None (an image without a usable name)."""
    words = _WORDS["ja" if japanese else "en"]
    if visual.kind == "code":
        name = visual.caption or ""
        return words["named"].format(name=name) if name and _speakable_name(name) else words["listing"]
    if visual.kind == "math":
        return words["formula"]
    if visual.kind == "table":
        if visual.caption and speakable(visual.caption, japanese) == visual.caption:
            return words["table_named"].format(name=visual.caption)
        header = [h for h in (speakable(h, japanese) for h in visual.header) if h][:4]
        if header:
            joiner = "、" if japanese else ", "
            return words["table_header"].format(header=joiner.join(header))
        return words["table_plain"]
    if visual.kind == "image" and visual.caption and not _CREDIT.search(visual.caption) \
            and not _CREDIT_NAME.match(visual.caption):
        caption = speakable(visual.caption, japanese)
        if caption and caption == visual.caption and not re.search(r"\.(png|jpe?g|gif|svg|webp)$", caption, re.I):
            name = caption.rstrip("。.")
            if japanese and name.endswith(("図", "画像", "写真", "イメージ", "グラフ")):
                return f"{name}です。" if len(caption) <= 40 else None  # not 「概念図の図です」
            return words["image"].format(name=name) if len(caption) <= 40 else None
    return None


def speakable(sentence: str, japanese: bool) -> str:
    """``sentence`` as it may be spoken (rules in the module docstring); "" when nothing is left."""
    words = _WORDS["ja" if japanese else "en"]
    sentence = _TWEET_BYLINE.sub("", sentence)
    if _ONLY_HASHTAGS.match(sentence):
        return ""
    text = _URL.sub("", _EMOJI.sub("", sentence).translate(_CROSSES))
    text = _HANDLE.sub("", text)
    text = _INLINE_CODE.sub(lambda m: _code_words(m.group(1).strip(), words["code"]), text)
    text = _INLINE_MATH.sub(lambda m: math_words(m.group(1), japanese) or words["math"], text)
    text = re.sub(r"(ベクトル|vector )(?=\1)", "", text)  # 「ベクトル$\vec{y}$」 is one ベクトル
    text = _MARKUP.sub("", text)
    text = re.sub(r"[（(]\s*[)）]", "", text)  # what was left of "(https://…)"
    text = " ".join(text.split())
    text = re.sub(r"\s+([、。，．,.:;!?！？)）]|[’']s\b)", r"\1", text)  # "Senate ’s", "tweets :"
    text = re.sub(r"[,、;:]+(?=[.。!?！？])", "", text)  # "the Senate, @NGRSenate." said "the Senate,."
    if japanese:  # a removed word leaves a space that Japanese does not have
        text = re.sub(r"(?<=[\u3000-\u30ff\u3400-\u9fff\uff00-\uffef])\s+(?=[\u3000-\u30ff\u3400-\u9fff\uff00-\uffef])", "", text)
    if sum(ch.isalnum() for ch in text) < 2:
        return ""
    if japanese and not _JAPANESE.search(text) and len(_ENGLISH_WORD.findall(text)) >= FOREIGN_SENTENCE_WORDS:
        return ""
    if _CALL_TO_ACTION.match(text) or _LONE_LABEL.match(text):
        return ""
    if not japanese and (len(_SPEC_FIELD.findall(text)) >= 2 or _PHONE.search(text)):
        return ""
    return text


def _code_words(code: str, fallback: str) -> str:
    if call := _CALL.match(code):
        return call.group(1)
    if _NUMBER.match(code) or (_NAME.match(code) and any(ch.isalpha() for ch in code)):
        return code
    return fallback


def _speakable_name(name: str) -> bool:
    return bool(re.match(r"^[\w.\- ]{1,40}$", name))


def _image_name(block: dict[str, Any]) -> str | None:
    alt = _text(block.get("alt"))
    if not alt or re.search(r"\.(png|jpe?g|gif|svg|webp)$", alt, re.I) or _SLUG.fullmatch(alt):
        return None  # a file's name ("detached_head", "head"), not words: 「detached_headの図です」 said nothing
    return alt


def _text(value: object) -> str:
    return " ".join(str(value).split()) if isinstance(value, (str, int, float)) else ""
