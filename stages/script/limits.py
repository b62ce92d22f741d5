"""Budgets for reading a script file, enforced while it is read so a hostile file never grows memory.

A script comes from the inbox, so it is untrusted. Every budget is a setting under
``[script.limits]`` (:class:`stages.settings.ScriptLimitSettings`), with defaults far above any real
script (two hours of speech, a few MB):

- ``max_bytes``: the file's size, checked before it is read.
- ``max_nodes`` and ``max_depth``: the values in the YAML/JSON tree and their nesting. YAML anchors
  and aliases are allowed (PyYAML itself writes them), but every use of an alias counts the whole
  subtree it stands for, so the "billion laughs" (9 levels of 9 aliases: 10^9 values from 399 bytes)
  is stopped after a few hundred events, before a tree exists: they are counted on libyaml's event
  stream before libyaml composes the document (or while composing, with the pure-Python loader).
  An alias to a node that is still open (a recursive structure) is a syntax error. JSON has no
  aliases; its nesting and size are measured on the text before :func:`json.loads` sees it.
- ``max_sections``, ``max_phrases``, ``max_chars`` and ``max_speech_minutes``: the content.

Every refusal says which limit, the value found and the setting that raises it.
"""

from __future__ import annotations

import re
from itertools import islice
from typing import TYPE_CHECKING

import yaml
from yaml.composer import ComposerError
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, ScalarEvent

if TYPE_CHECKING:
    from stages.script.model import Script
    from stages.settings import ScriptLimitSettings


class LimitExceeded(Exception):
    """A script is over one of its budgets; ``str()`` is the message for the user."""

    def __init__(self, setting: str, found: str, limit: str, what: str, mark: tuple[int, int] = (1, 1)):
        self.setting = setting
        self.mark = mark
        env = "MOVIEGEN_SCRIPT__LIMITS__" + setting.upper()
        super().__init__(
            f"{what}: {found}, over the limit of {limit} (script.limits.{setting}; raise it under "
            f"[script.limits] in moviegen.toml, or with {env})"
        )


def default_limits() -> "ScriptLimitSettings":
    """The default budgets, for callers without settings."""
    from stages.settings import ScriptLimitSettings

    return ScriptLimitSettings()


def check_size(size: int, limits: "ScriptLimitSettings") -> None:
    """Refuse a file of ``size`` bytes before reading it.

    Raises:
        LimitExceeded: over ``max_bytes``.
    """
    if size > limits.max_bytes:
        raise LimitExceeded("max_bytes", _bytes(size), _bytes(limits.max_bytes), "the file is too large for a script")


def compose_yaml(text: str, limits: "ScriptLimitSettings") -> yaml.Node | None:
    """The YAML node tree of ``text`` (one document), composed within the node and depth budgets.

    Raises:
        LimitExceeded: too many values (aliases expanded), or too deep.
        yaml.YAMLError: a syntax error, or an alias inside its own anchor.
    """
    loader = _loader(text, limits)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def construct_yaml(text: str, limits: "ScriptLimitSettings") -> tuple[object, yaml.Node | None]:
    """``(data, node)``: ``text`` loaded with PyYAML's safe constructor, within the budgets.

    Raises:
        LimitExceeded, yaml.YAMLError: as :func:`compose_yaml`.
    """
    loader = _loader(text, limits)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    finally:
        loader.dispose()


def check_json_shape(text: str, limits: "ScriptLimitSettings") -> None:
    """Measure a JSON text's nesting and number of values without parsing it.

    :func:`json.loads` recurses per level (a deep file is a ``RecursionError``) and builds the whole
    tree at once, so both are measured on the text first: strings are skipped, brackets counted.

    Raises:
        LimitExceeded: deeper than ``max_depth`` or more values than ``max_nodes``.
    """
    bare = _JSON_STRING.sub('""', text)
    # Every comma adds an element, every colon a value to its key, every bracket a container.
    values = 1 + bare.count(",") + bare.count(":") + bare.count("[") + bare.count("{")
    if values > limits.max_nodes:
        raise LimitExceeded("max_nodes", f"about {values:,} values", f"{limits.max_nodes:,}",
                            "the JSON holds too many values")
    depth = 0  # the loop below now runs over at most max_nodes strings and brackets
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limits.max_depth:
                raise LimitExceeded("max_depth", f"more than {limits.max_depth} levels", str(limits.max_depth),
                                    "the JSON is nested too deeply", _line_column(text, match.start()))
        elif token in ("]", "}"):
            depth -= 1


def check_content(script: "Script", limits: "ScriptLimitSettings", mark: tuple[int, int] = (1, 1)) -> list[LimitExceeded]:
    """Every content budget a valid script is over: sections, phrases, characters, speaking time."""
    from stages.script.text import estimate_seconds, guess_language

    over: list[LimitExceeded] = []
    sections = len(script.sections)
    if sections > limits.max_sections:
        over.append(LimitExceeded("max_sections", f"{sections:,} sections", f"{limits.max_sections:,}",
                                  "the script has too many sections", mark))
    phrases = sum(len(section.narrations) for section in script.sections)
    if phrases > limits.max_phrases:
        over.append(LimitExceeded("max_phrases", f"{phrases:,} phrases", f"{limits.max_phrases:,}",
                                  "the script has too many narrations", mark))
    chars = sum(len(n.text) + len(n.reading or "") for _, _, n in script.phrases())
    if chars > limits.max_chars:
        over.append(LimitExceeded("max_chars", f"{chars:,} characters", f"{limits.max_chars:,}",
                                  "the narrations are too long", mark))
    # A script that does not say its language is spoken in the one its text is written in.
    language = script.language or guess_language("".join(n.text for _, _, n in islice(script.phrases(), 50)))
    minutes = sum(estimate_seconds(n.text, n.reading, language) for _, _, n in script.phrases()) / 60
    if minutes > limits.max_speech_minutes:
        over.append(LimitExceeded("max_speech_minutes", f"about {_duration(minutes)} of speech",
                                  _duration(limits.max_speech_minutes), "the script is too long to speak", mark))
    return over


def check_section_count(count: int, limits: "ScriptLimitSettings", mark: tuple[int, int]) -> None:
    """Refuse too many sections before each one is validated.

    Raises:
        LimitExceeded: over ``max_sections``.
    """
    if count > limits.max_sections:
        raise LimitExceeded("max_sections", f"{count:,} sections", f"{limits.max_sections:,}",
                            "the script has too many sections", mark)


def check_phrase_count(count: int, limits: "ScriptLimitSettings", mark: tuple[int, int]) -> None:
    """Refuse too many phrases (counted on the raw sections) before they are validated one by one.

    Raises:
        LimitExceeded: over ``max_phrases``.
    """
    if count > limits.max_phrases:
        raise LimitExceeded("max_phrases", f"{count:,} phrases", f"{limits.max_phrases:,}",
                            "the script has too many narrations", mark)


_FAST_LOADER = getattr(yaml, "CSafeLoader", None)
"""libyaml's loader: about 8 times faster than the pure-Python one (25 s for 145,000 values)."""


def _loader(text: str, limits: "ScriptLimitSettings") -> yaml.SafeLoader:
    """A safe loader for ``text`` within the budgets.

    With libyaml, its event stream (a non-recursive parser) is measured first and the document is
    composed only when it is within the budgets, so libyaml's recursive composer never sees more
    than ``max_depth`` levels. Without libyaml, :class:`BudgetLoader` measures while composing.
    """
    if _FAST_LOADER is None:
        return BudgetLoader(text, limits)
    _measure_events(text, limits)
    return _FAST_LOADER(text)


def _measure_events(text: str, limits: "ScriptLimitSettings") -> None:
    """Count values (aliases charged their anchor's whole subtree) and nesting on libyaml's events."""
    parser = _FAST_LOADER(text)
    try:
        count = depth = 0
        sizes: dict[str, int] = {}
        open_collections: list[tuple[str | None, int]] = []  # (anchor, count before it)
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, AliasEvent):
                if any(anchor == event.anchor for anchor, _ in open_collections):
                    raise ComposerError(None, None, f"the alias *{event.anchor} is inside its own anchor (a script "
                                        "cannot contain itself)", event.start_mark)
                count += sizes.get(event.anchor, 0)  # an undefined alias is the composer's error
            elif isinstance(event, ScalarEvent):
                count += 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            elif isinstance(event, CollectionStartEvent):
                count += 1
                depth += 1
                if depth > limits.max_depth:
                    raise LimitExceeded("max_depth", f"more than {limits.max_depth} levels", str(limits.max_depth),
                                        "the YAML is nested too deeply", _mark(event.start_mark))
                open_collections.append((event.anchor, count - 1))
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
                anchor, before = open_collections.pop()
                if anchor is not None:
                    sizes[anchor] = count - before
            if count > limits.max_nodes:
                raise LimitExceeded("max_nodes", f"more than {limits.max_nodes:,} values (aliases expanded)",
                                    f"{limits.max_nodes:,}", "the YAML holds too many values", _mark(event.start_mark))
    finally:
        parser.dispose()


class BudgetLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting every value it composes and every value an alias stands for.

    The composer shares an anchored node between its aliases, so composing costs nothing extra;
    the cost comes later, when the tree is walked or constructed. So each alias is charged the
    size of its anchor's subtree (its own aliases included) here, before anything walks it.
    """

    def __init__(self, stream: str, limits: "ScriptLimitSettings"):
        super().__init__(stream)
        self.limits = limits
        self.count = 0
        self.depth = 0
        self.anchor_sizes: dict[str, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            if event.anchor in self.anchors and event.anchor not in self.anchor_sizes:
                raise ComposerError(None, None, f"the alias *{event.anchor} is inside its own anchor (a script "
                                    "cannot contain itself)", event.start_mark)
            self._charge(self.anchor_sizes.get(event.anchor, 0), event.start_mark)
            return super().compose_node(parent, index)
        event = self.peek_event()
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise LimitExceeded("max_depth", f"more than {self.limits.max_depth} levels", str(self.limits.max_depth),
                                "the YAML is nested too deeply", _mark(event.start_mark))
        before = self.count
        self._charge(1, event.start_mark)
        node = super().compose_node(parent, index)
        self.depth -= 1
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self.anchor_sizes[anchor] = self.count - before
        return node

    def _charge(self, nodes: int, mark: yaml.Mark) -> None:
        self.count += nodes
        if self.count > self.limits.max_nodes:
            raise LimitExceeded("max_nodes", f"more than {self.limits.max_nodes:,} values (aliases expanded)",
                                f"{self.limits.max_nodes:,}", "the YAML holds too many values", _mark(mark))


# --- small helpers ----------------------------------------------------------------------------

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _mark(mark: yaml.Mark | None) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _line_column(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _bytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB ({size:,} bytes)" if size >= 1024 * 1024 else f"{size:,} bytes"


def _duration(minutes: float) -> str:
    if minutes >= 48 * 60:
        return f"{minutes / 60 / 24:.1f} days"
    if minutes >= 120:
        return f"{minutes / 60:.1f} hours"
    return f"{minutes:.1f} minutes" if minutes < 10 else f"{minutes:.0f} minutes"
