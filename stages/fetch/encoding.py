"""Turn a page's bytes into text ourselves, instead of letting the extractor guess.

Order: a byte-order mark, then the HTTP ``charset``, then ``<meta charset>`` or the
``http-equiv`` Content-Type in the first bytes, then detection with charset-normalizer. A declared
charset that cannot decode the bytes is skipped (sites often declare UTF-8 and send Shift_JIS).
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

PRESCAN_BYTES = 4096

# Browsers treat these labels as their supersets; decoding with the label itself loses characters
# such as ① or ～ (Shift_JIS vs. Windows-31J) and “smart quotes” (Latin-1 vs. Windows-1252).
_SUPERSETS = {
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc-kr": "cp949",
}

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
_XML_DECL = re.compile(rb"""^<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode_html(data: bytes, header_charset: str | None = None) -> tuple[str, str]:
    """Decode an HTML page; return ``(text, codec_used)``.

    Args:
        data: the raw bytes.
        header_charset: the ``charset`` parameter of the HTTP Content-Type, if any.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data.decode(codec, errors="replace"), codec
    declared = [c for c in (normalize_charset(header_charset), normalize_charset(meta_charset(data))) if c]
    for codec in declared:
        try:
            return data.decode(codec), codec
        except UnicodeDecodeError:
            continue
    best = charset_normalizer.from_bytes(data).best()
    if best is not None and best.encoding:
        codec = normalize_charset(best.encoding) or best.encoding
        return data.decode(codec, errors="replace"), codec
    codec = declared[0] if declared else "utf-8"
    return data.decode(codec, errors="replace"), codec


def meta_charset(data: bytes) -> str | None:
    """The charset a page declares in its first bytes (XML declaration, ``<meta>``), if any."""
    head = data[:PRESCAN_BYTES]
    match = _XML_DECL.match(head.lstrip()) or _META_CHARSET.search(head)
    return match.group(1).decode("ascii", errors="replace") if match else None


def normalize_charset(label: str | None) -> str | None:
    """A Python codec name for a charset label (with browser supersets), or None if unknown."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _SUPERSETS.get(label, label)
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    # A page cannot really be UTF-16 if we found its label in ASCII bytes.
    if name.startswith("utf-16") or name.startswith("utf-32"):
        return None
    return _SUPERSETS.get(name, name)
