"""Scrubbing provider error messages before a caller sees them.

A provider's message is often the useful part of its error ("max_tokens is too large"), so it
is kept, but it may quote the credential the sidecar sent, whole or in part: OpenAI answers
a wrong key with "Incorrect API key provided: sk-CANAR****4f60". Removing only the exact
credential string let a prefix, a masked form, a base64 or upper-case rendering, or *another*
backend's key through. A :class:`Scrubber` is built once per loaded bundle from every
backend's credential and removes, case-insensitively, any word of the message that:

* contains 8 or more consecutive characters of any credential (prefixes, suffixes, masked
  forms that keep a long enough run, other backends' keys, upper case);
* contains the base64 (standard or URL-safe, at any of the three byte alignments) or the
  hex rendering of any credential (its inner part, so padding and neighbours do not matter);
* looks like a masked or raw key whatever it belongs to: a run of three or more ``*`` next to
  letters or digits, or a well-known key prefix (``sk-``, ``sk-ant-``, ``AKIA``, ``ghp_``,
  ``xox``...) followed by 8 or more key characters, or a ``Bearer`` token.

Then URLs are removed (they may name internal hosts) and the message is cut to
:data:`MAX_MESSAGE` characters. A removed word becomes ``[credential]``; a URL ``[url]``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable

__all__ = ["MAX_MESSAGE", "Scrubber"]

MAX_MESSAGE = 300
_WINDOW = 8
"""Shortest run of a credential's characters that counts as quoting it."""
_WORD = re.compile(r"[^\s\"'`,;()\[\]{}<>]+")
_URL = re.compile(r"\b(?:https?|wss?)://\S+", re.IGNORECASE)
_KEY_LIKE = re.compile(
    r"\*{3,}|(?<![A-Za-z0-9])(?:sk-|rk-|pk-|AKIA|ASIA|ghp_|gho_|xox[abpr]-|AIza)"
    r"[A-Za-z0-9_\-*]{8,}",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+\S+", re.IGNORECASE)


def _renderings(secret: bytes) -> set[str]:
    """Lower-cased base64 (both alphabets, every alignment) and hex inner parts of a secret."""
    out: set[str] = set()
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * shift + secret).decode().rstrip("=")
            inner = text[4:-4]  # drop the characters its neighbours or padding may change
            if len(inner) >= _WINDOW:
                out.add(inner.lower())
    out.add(secret.hex())
    return out


class Scrubber:
    """Removes every known credential, in any rendering, from provider messages."""

    __slots__ = ("_needles",)

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        needles: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            low = secret.lower()
            if len(low) <= _WINDOW:
                needles.add(low)
            else:
                needles.update(low[i : i + _WINDOW] for i in range(len(low) - _WINDOW + 1))
            needles.update(_renderings(secret.encode()))
        self._needles = frozenset(needles)

    def _is_secret(self, word: str) -> bool:
        if _KEY_LIKE.search(word):
            return True
        if len(word) < _WINDOW and word.lower() not in self._needles:
            return False
        low = word.lower()
        return any(needle in low for needle in self._needles)

    def scrub(self, message: str) -> str:
        """``message`` safe to show a caller."""
        message = _BEARER.sub(r"\1 [credential]", message[: 4 * MAX_MESSAGE])
        message = _URL.sub("[url]", message)
        message = _WORD.sub(
            lambda m: "[credential]" if self._is_secret(m.group()) else m.group(), message
        )
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + "..."
        return message
