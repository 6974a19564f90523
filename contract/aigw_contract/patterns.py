"""Custom redaction patterns: which regular expressions a policy may give the sidecar.

A policy's ``redaction.customPatterns`` run on every prompt and answer of its use case, in
the sidecar's event loop, over text a caller chose. Python's ``re`` backtracks, so a pattern
like ``(a+)+b`` takes exponential time on ``aaaa...``: a caller could stall the sidecar with
one request. And a stream can only be redacted with a bounded hold-back window if every
match has a bounded length. So a custom pattern must

- compile, be at most :data:`MAX_PATTERN_CHARS` characters, and use no backreferences;
- match at most :data:`MAX_MATCH_CHARS` characters (``\\d{6}`` yes, ``\\d+`` no): its
  longest match is part of the stream hold-back window;
- not nest choices inside a variable repetition: no ``(a+)+``, ``(a|ab){1,9}`` or
  ``(\\w{1,5}){1,9}`` (a fixed count such as ``(\\d{3}-){2}`` is fine). This is the
  "star height" rule of safe-regex checkers: with it, matching time is polynomial.

:func:`check_pattern` says what is wrong with a pattern (None: nothing), :func:`max_width`
gives its longest match. The contract validates with them, the sidecar compiles with them.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

__all__ = ["MAX_MATCH_CHARS", "MAX_PATTERN_CHARS", "check_pattern", "max_width"]

MAX_PATTERN_CHARS = 512
MAX_MATCH_CHARS = 128

_c: Any = importlib.import_module("re._constants")  # Python 3.11+: re.compile's parser
_p: Any = importlib.import_module("re._parser")

_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", _c.MAX_REPEAT)}
_CHOICE = {_c.BRANCH}
_BACKREFS = {_c.GROUPREF, getattr(_c, "GROUPREF_EXISTS", _c.GROUPREF)}


def _parse(pattern: str) -> Any:
    return _p.parse(pattern)


def max_width(pattern: str) -> int:
    """The longest text ``pattern`` can match (``re``'s own bound; huge when unbounded)."""
    width: int = _parse(pattern).getwidth()[1]
    return width


def _children(op: Any, arg: Any) -> list[Any]:
    """The sub-patterns of one parsed node."""
    if op in _REPEATS:
        return [arg[2]]
    if op == _c.SUBPATTERN:
        return [arg[-1]]
    if op == _c.BRANCH:
        return list(arg[1])
    if op in (_c.ASSERT, _c.ASSERT_NOT):
        return [arg[1]]
    if op == getattr(_c, "ATOMIC_GROUP", None):
        return [arg]
    return []


def _problem(nodes: Any, inside_variable_repeat: bool) -> str | None:
    for op, arg in nodes:
        if op in _BACKREFS:
            return "backreferences are not allowed"
        if op in _REPEATS:
            low, high = arg[0], arg[1]
            variable = low != high
            if inside_variable_repeat and variable:
                return "a variable repetition inside another one (like (a+)+) is not allowed"
        else:
            variable = False
        if op in _CHOICE and inside_variable_repeat:
            return "alternatives inside a variable repetition (like (a|ab)+) are not allowed"
        for child in _children(op, arg):
            problem = _problem(child, inside_variable_repeat or variable)
            if problem:
                return problem
    return None


def check_pattern(pattern: str) -> str | None:
    """What makes ``pattern`` unfit for a custom redaction pattern, or None."""
    if not pattern:
        return "the pattern is empty"
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"the pattern is longer than {MAX_PATTERN_CHARS} characters"
    try:
        re.compile(pattern)
        parsed = _parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return f"not a valid regular expression: {exc}"
    low, high = parsed.getwidth()
    if low == 0:
        return "the pattern can match the empty string"
    if high > MAX_MATCH_CHARS:
        return (
            f"the pattern can match more than {MAX_MATCH_CHARS} characters: bound every "
            "repetition ({1,20} instead of + or *)"
        )
    return _problem(parsed, False)
