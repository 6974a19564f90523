"""The caller's ``Cache-Control`` request directives, as far as the cache honours them.

Only three request directives mean something to a response cache in front of an LLM
(RFC 9111 section 5.2.1): ``no-store`` (neither read nor write an entry: a bypass),
``no-cache`` (do not answer from an entry, but store the fresh answer: a revalidating miss)
and ``max-age=N`` (an entry older than N seconds is not used; ``max-age=0`` is
``no-cache``). Every other directive is ignored. Parsing is bounded by the edge (a header
line is at most 8,190 bytes) and tolerant: repeated headers are joined, names are
case-insensitive, a malformed ``max-age`` is ignored rather than refused (a cache directive
never makes a request fail).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["NO_DIRECTIVES", "CacheControl", "parse_cache_control"]

_MAX_AGE_DIGITS = 10


@dataclass(frozen=True, slots=True)
class CacheControl:
    """What the caller asked of the cache."""

    no_store: bool = False
    no_cache: bool = False
    max_age_s: int | None = None
    """Oldest entry the caller accepts, in seconds (None: any within its TTL)."""


NO_DIRECTIVES = CacheControl()


def parse_cache_control(values: Iterable[str]) -> CacheControl:
    """The directives of every ``Cache-Control`` header line in ``values``."""
    no_store = no_cache = False
    max_age: int | None = None
    for value in values:
        for part in value.split(","):
            name, _, argument = part.strip().partition("=")
            name = name.strip().lower()
            if name == "no-store":
                no_store = True
            elif name == "no-cache":
                no_cache = True
            elif name == "max-age":
                digits = argument.strip().strip('"')
                if digits.isascii() and digits.isdigit() and len(digits) <= _MAX_AGE_DIGITS:
                    age = int(digits)
                    max_age = age if max_age is None else min(max_age, age)
    if max_age == 0:
        no_cache = True
    if not (no_store or no_cache or max_age is not None):
        return NO_DIRECTIVES
    return CacheControl(no_store, no_cache, max_age)
