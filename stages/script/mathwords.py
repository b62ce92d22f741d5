"""Inline math said in words: ``$\\vec{y}$`` is 「ベクトルy」, not 「この式」.

An article's inline formulas are mostly names: a vector, a parameter, an element of a list, a
small relation. :func:`math_words` turns such TeX into the words a reader says aloud, as text the
subtitles show and the voice reads (:mod:`stages.script.readings` reads the symbols it leaves:
``=`` イコール, ``+`` プラス, ``−`` マイナス, ``×`` カケル, Greek letters by name):

- letters, digits, ``,`` and parentheses stay; a subscript stays joined by ``_`` (``x_i``, ``W_{ac}``
  W_ac), which the readings spell letter by letter; letters side by side are a product, said
  apart (``ax`` a x);
- a power is said (``n^2`` 「nの2乗」 / "n squared", ``P^{-1}`` 「Pのマイナス1乗」, ``M^T``
  「Mの転置」); ``\\frac{1}{2}`` is 「2分の1」 / "1 over 2", ``3/4`` 「4分の3」;
- accents and vectors are words (``\\tilde{y}`` 「yチルダ」, ``\\hat{y}`` 「yハット」, ``\\bar{x}``
  「xバー」, ``\\vec{y}`` 「ベクトルy」); Greek letters are themselves (λ, θ); ``\\cdots`` …;
- operators become symbols the voice reads (``\\times`` ×, ``\\le`` ≤, ``\\sim`` チルダ).

Anything else (a sum, an integral, a matrix, an unknown command) or a result longer than
:data:`MAX_CHARS` characters returns None: the caller says 「この式」 / "this formula", and the
formula itself is on screen when it is a display block.
"""

from __future__ import annotations

import re

MAX_CHARS = 32

_GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε", "zeta": "ζ",
    "eta": "η", "theta": "θ", "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ",
    "sigma": "σ", "tau": "τ", "phi": "φ", "varphi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω",
    "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
}
_WORDS = {
    "ja": {"times": "×", "cdot": "×", "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥", "sim": "チルダ",
           "cdots": "…", "ldots": "…", "dots": "…", "infty": "無限大", "exp": "exp", "log": "log",
           "tilde": "{}チルダ", "hat": "{}ハット", "bar": "{}バー", "vec": "ベクトル{}", "power": "{}の{}乗",
           "transpose": "{}の転置", "frac": "{1}分の{0}"},
    "en": {"times": "×", "cdot": "×", "le": "≤", "leq": "≤", "ge": "≥", "geq": "≥", "sim": "~",
           "cdots": "…", "ldots": "…", "dots": "…", "infty": "infinity", "exp": "exp", "log": "log",
           "tilde": "{} tilde", "hat": "{} hat", "bar": "{} bar", "vec": "vector {}", "power": "{} to the {}",
           "transpose": "{} transpose", "frac": "{0} over {1}"},
}
_STYLES = {"mathbf", "mathrm", "mathit", "boldsymbol", "bm", "text", "mathsf", "operatorname"}
_ACCENTS = {"tilde", "widetilde", "hat", "widehat", "bar", "overline", "vec"}
_PLAIN = re.compile(r"[A-Za-z0-9.,()=+<>' ]")


class _Unsaid(Exception):
    """The formula holds something not said in words."""


def math_words(tex: str, japanese: bool) -> str | None:
    """The words for inline TeX (rules in the module docstring), or None."""
    words = _WORDS["ja" if japanese else "en"]
    try:
        said = _Reader(tex.strip(), words).expression()
    except _Unsaid:
        return None
    said = re.sub(r"\s*([=+<>≤≥×−])\s*", r" \1 ", said)
    said = re.sub(r"\s*,\s*", ", " if not japanese else "、", said)
    said = " ".join(said.split())
    said = re.sub(r"(^|[(の、,]) ?− ", r"\1−", said)  # a sign, not a subtraction: Pの−1乗, exp(−H)
    said = said.replace("= − ", "= −").replace("the − ", "the −")
    if japanese:  # no spaces between Japanese words and symbols
        said = re.sub(r"(?<=[\w\u3040-\u30ff\u4e00-\u9fff]) (?=[\u3040-\u30ff\u4e00-\u9fff])"
                      r"|(?<=[\u3040-\u30ff\u4e00-\u9fff]) (?=\w)", "", said)
    if not said or len(said) > MAX_CHARS or not any(ch.isalnum() for ch in said):
        return None
    if japanese and re.fullmatch(r"(\d+)\s*/\s*(\d+)", said):
        a, b = said.replace(" ", "").split("/")
        return f"{b}分の{a}"
    return said


class _Reader:
    """A small recursive reader of the TeX subset above."""

    def __init__(self, tex: str, words: dict[str, str]):
        self.tex, self.i, self.words = tex, 0, words
        self.subscript = 0

    def expression(self, until: str = "") -> str:
        out = ""
        while self.i < len(self.tex) and self.tex[self.i] not in until:
            out = self.atom(out)
        return out

    def atom(self, before: str) -> str:
        ch = self.tex[self.i]
        if ch == "\\":
            return before + self.command()
        if ch == "{":
            return before + self.group()
        if ch == "_":  # joined by "_", which the readings spell part by part (p_i ピーアイ, not パイ)
            self.i += 1
            self.subscript += 1
            try:
                return before + "_" + self.argument()
            finally:
                self.subscript -= 1
        if ch == "^":
            self.i += 1
            power = self.argument().strip()
            base, last = _split_last(before)
            if power in ("T", "t", "\\top"):
                return base + self.words["transpose"].format(last)
            return base + self.words["power"].format(last, power.replace("-", "−"))
        if ch == "-":
            self.i += 1
            return before + "−"
        if ch == "/" and re.search(r"\d$", before) and self.i + 1 < len(self.tex) and self.tex[self.i + 1].isdigit():
            self.i += 1
            return before + "/"
        if _PLAIN.match(ch):
            self.i += 1
            if ch.isalpha() and before[-1:].isascii() and before[-1:].isalpha() and not self.subscript:
                return before + " " + ch  # ax is a times x: said a x, not アークス
            return before + ch
        raise _Unsaid(ch)

    def command(self) -> str:
        match = re.match(r"\\([A-Za-z]+|.)", self.tex[self.i:])
        if match is None:
            raise _Unsaid("\\")
        name = match.group(1)
        self.i += len(match.group(0))
        if name in _GREEK:
            return _GREEK[name]
        if name in (",", ";", " ", "!", ":", "quad"):
            return " "
        if name in _STYLES:
            return self.argument()
        if name in _ACCENTS:
            key = {"widetilde": "tilde", "widehat": "hat", "overline": "bar"}.get(name, name)
            return self.words[key].format(self.argument())
        if name == "frac":
            top, bottom = self.argument(), self.argument()
            return self.words["frac"].format(top, bottom)
        if name in self.words and name not in ("power", "transpose", "frac"):
            return f" {self.words[name]} " if name in ("times", "cdot", "le", "leq", "ge", "geq", "sim") else self.words[name]
        raise _Unsaid(name)

    def group(self) -> str:
        self.i += 1
        inside = self.expression("}")
        if self.i >= len(self.tex):
            raise _Unsaid("{")
        self.i += 1
        return inside

    def argument(self) -> str:
        while self.i < len(self.tex) and self.tex[self.i] == " ":
            self.i += 1
        if self.i >= len(self.tex):
            raise _Unsaid("argument")
        ch = self.tex[self.i]
        if ch == "{":
            return self.group()
        if ch == "\\":
            return self.command()
        self.i += 1
        return ch


def _split_last(text: str) -> tuple[str, str]:
    """``text`` cut before its last term: the base a power applies to (``2a`` -> ``2``, ``a``)."""
    match = re.search(r"(\([^()]*\)|[^\s=+<>≤≥×−,、(]+)$", text)
    if match is None:
        raise _Unsaid("^")
    return text[: match.start()], match.group(1)
