"""Undoing the tricks that hide an injection from a phrase rule: the views a rule sees.

An attacker writes ``Ignore`` in fullwidth letters, with a Cyrillic ``i``, ``ig\u200bnore``
(a zero-width space), ``1gn0r3`` (leetspeak), ``i g n o r e`` (spaced), smuggles ASCII in
Unicode tag characters (U+E0000..E007F, invisible in most UIs), or encodes the whole
instruction in base64, hex or escapes. :func:`views` returns the texts a rule should see:
the normalised text (NFKC, case-folded, confusables mapped, invisible characters dropped,
whitespace collapsed), and, only when the text shows the trick, its leetspeak, de-spaced,
tag-decoded and decoded-payload variants, each with the technique that produced it. The
work per text is linear and the decoders are bounded (:data:`MAX_SEGMENTS` payloads of at
most :data:`MAX_SEGMENT_CHARS` each).
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterator
from urllib.parse import unquote

__all__ = ["MAX_SEGMENTS", "MAX_SEGMENT_CHARS", "View", "normalize", "views"]

MAX_SEGMENTS = 16
MAX_SEGMENT_CHARS = 8192

View = tuple[str, str]
"""(technique, text): ``plain`` for the normalised text itself."""

_INVISIBLE = dict.fromkeys(
    [
        *(0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF),
        *range(0x200B, 0x2010),
        *range(0x202A, 0x202F),
        *range(0x2060, 0x2070),
    ]
)
_CONFUSABLES = str.maketrans(
    "аеорсухіјԁһӏѕԛԝνοριτκαεηυ",
    "aeopcyxijdhlsqwvopitkaenu",
)
_LEET = str.maketrans("013457@$!|", "oieastasil")
_LEET_HINT = re.compile(r"[a-z][013457@$!|]+[a-z]|\b[013457@$][a-z]{2}")
_LEET_CHARS = re.compile(r"[013457@$!|]")
"""Every match of :data:`_LEET_HINT` has one of these: one quick scan skips it for prose."""
_SPACED = re.compile(r"\b\w[ .\-_*]\b\w[ .\-_*]\b\w[ .\-_*]\w\b")
"""Whether the text has ``(?:\\b\\w[ .\\-_*]){3,}\\w\\b`` (three single-character words and a
fourth): a match with more repeats has one with exactly three at its last three, so the
search answers the same, without the regex engine's repeat bookkeeping at every character."""
_WS = re.compile(r"\s+")
_DIGIT = re.compile(r"\d")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{24,}={0,2}")
"""A match starts where a run starts (the greedy run is taken whole, so no later match can
start inside it): the look-behind spares a retry at every character of every word."""
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}[\s:]?){12,}")
_ESCAPES = re.compile(
    r"(?:\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|%[0-9a-fA-F]{2}|&#x?[0-9a-fA-F]{2,5};){6,}"
)


def normalize(text: str) -> str:
    """NFKC, case-folded, confusables mapped, invisible characters dropped, whitespace
    collapsed: the text a phrase rule reads."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text.translate(_INVISIBLE))
        text = text.casefold().translate(_CONFUSABLES)
    else:
        text = text.lower()
    return " ".join(text.split())


def _tags(text: str) -> str:
    """ASCII smuggled in Unicode tag characters (U+E0020..E007E)."""
    return "".join(chr(ord(c) - 0xE0000) for c in text if 0xE0020 <= ord(c) <= 0xE007E)


def _printable(raw: bytes) -> str | None:
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not decoded:
        return None
    letters = sum(c.isalpha() or c == " " for c in decoded)
    return decoded if letters >= 0.8 * len(decoded) and " " in decoded else None


def _decoded(text: str) -> Iterator[View]:
    count = 0
    has_digit = _DIGIT.search(text) is not None
    for match in _BASE64.finditer(text):
        if count >= MAX_SEGMENTS:
            return
        segment = match.group(0)[:MAX_SEGMENT_CHARS]
        count += 1
        try:
            raw = base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_")
        except (binascii.Error, ValueError):
            continue
        if (plain := _printable(raw)) is not None:
            yield "base64", normalize(plain)
    for match in _HEX.finditer(text) if has_digit else ():
        if count >= MAX_SEGMENTS:
            return
        count += 1
        digits = re.sub(r"[\s:]", "", match.group(0))[:MAX_SEGMENT_CHARS]
        try:
            raw = bytes.fromhex(digits[: len(digits) // 2 * 2])
        except ValueError:
            continue
        if (plain := _printable(raw)) is not None:
            yield "hex", normalize(plain)
    escaped = "\\x" in text or "\\u" in text or "%" in text or "&#" in text
    for match in _ESCAPES.finditer(text) if escaped else ():
        if count >= MAX_SEGMENTS:
            return
        count += 1
        yield "escapes", normalize(_unescape(match.group(0)[:MAX_SEGMENT_CHARS]))


def _unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith("&#"):
            body = token[2:-1]
            return chr(int(body[1:], 16) if body[:1] in "xX" else int(body))
        if token.startswith("%"):
            return unquote(token)
        return chr(int(token[2:], 16))

    return re.sub(
        r"\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|%[0-9a-fA-F]{2}|&#x?[0-9a-fA-F]{2,5};", one, text
    )


def views(text: str) -> Iterator[View]:
    """The texts the phrase rules check, each with the technique that revealed it."""
    plain = normalize(text)
    if text.isascii() or plain == " ".join(text.lower().split()):
        yield "plain", plain
    else:  # fullwidth, confusables or invisible characters were undone
        yield "unicode_obfuscation", plain
    if not text.isascii() and (smuggled := _tags(text)):
        yield "unicode_tags", normalize(smuggled)
    if _LEET_CHARS.search(plain) and _LEET_HINT.search(plain):
        yield "leetspeak", plain.translate(_LEET)
    if _SPACED.search(plain):
        yield "spaced_letters", re.sub(r"(?<=\b\w)[ .\-_*](?=\w\b)", "", plain)
    yield from _decoded(text)
