"""The detector interface: what every secret, PII and custom-pattern detector looks like.

A :class:`Detector` has a ``name`` (``github_token``), a ``category`` (``TOKEN``: what a
placeholder and a ``content_blocked`` message name), a ``confidence`` (0..1, used to pick
between overlapping findings and reported with them) and a :class:`Hold`: how much of the
end of a stream it may still be matching, so the stream redactor holds back exactly that
(see :mod:`.stream`). ``find(text)`` yields the spans of the sensitive part of each match.

:class:`PatternDetector` is the one implementation the catalog uses: a bounded regular
expression, an optional group that is the sensitive part (``password: <value>`` masks the
value only) and an optional check (Luhn, mod-97, CRC-32...) that a match must pass.

:func:`select` merges the findings of many detectors into non-overlapping ones: the
earliest start wins, then the longest, then the most confident.

:func:`scan` runs on every prompt and answer, so it skips a detector on facts about the
text it learns once (not once per detector): a ``hint`` substring that is missing, fewer
``\\d`` characters than every match of a detector has (``digits``: a card number has at
least 12, a US phone number 10; most prompts have a handful at most), and, for
ASCII text, none of a detector's ``words`` in the lowered text for a case-insensitive
pattern (``words``; non-ASCII text always runs the regex, since ``(?i)`` also matches
U+017F for ``s`` and U+212A for ``k``). Each is a necessary condition of a match,
so skipping never changes what is found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Detector",
    "DetectorFailed",
    "DetectorTable",
    "Finding",
    "Hold",
    "PatternDetector",
    "scan",
    "select",
]


class DetectorFailed(Exception):
    """A detector raised: ``name`` says which (the text is never part of the error)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"detector {name} failed")
        self.name = name


@dataclass(frozen=True, slots=True)
class Hold:
    """How a detector's matches can end a stream's text while still incomplete.

    - ``token``: a match never contains whitespace, so only the trailing run of
      non-whitespace characters can be an incomplete match;
    - ``charset`` + ``max_length``: a match consists only of these characters and is at
      most this long, so only the trailing run of them (within ``max_length``) can be;
    - neither: any of the last ``max_length`` characters can be (custom patterns).

    A match that reaches the end of the text is always held from its start (it may grow).
    """

    token: bool = False
    charset: re.Pattern[str] | None = None
    """A pattern matching the trailing run, e.g. ``[0-9 -]*\\Z``."""
    max_length: int = 0
    last: re.Pattern[str] | None = None
    """When ``charset`` is a run of one character class (``[0-9 -]*\\Z``): that class
    (``[0-9 -]``). Text whose last character is outside it has an empty trailing run, so
    the search is skipped (a stream's prose mostly ends in a letter)."""

    def start(self, text: str, token_start: int) -> int:
        """The earliest index of ``text`` an incomplete match may start at."""
        end = len(text)
        if self.token:
            return token_start
        last = self.last
        if last is not None and (end == 0 or last.match(text, end - 1) is None):
            return end
        floor = max(0, end - self.max_length)
        if self.charset is None:
            return floor
        run = self.charset.search(text, floor)
        return run.start() if run is not None else end


@dataclass(frozen=True, slots=True)
class Finding:
    """A sensitive span: ``text[start:end]`` matched ``detector`` (never the value itself)."""

    start: int
    end: int
    detector: str
    category: str
    confidence: float


class Detector(Protocol):
    """Anything that finds sensitive spans in text."""

    @property
    def name(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def hold(self) -> Hold: ...
    @property
    def hint(self) -> str:
        """A substring every match contains ("" when none): text without it is skipped."""
        ...

    def find(self, text: str) -> Iterable[tuple[int, int]]: ...


Check = Callable[[re.Match[str]], bool]


@dataclass(frozen=True, slots=True)
class PatternDetector:
    """A regular expression, the group that is sensitive, and an optional check."""

    name: str
    category: str
    confidence: float
    pattern: re.Pattern[str]
    hold: Hold
    group: int | str = 0
    check: Check | None = None
    hint: str = ""
    digits: int = 0
    """Every finding contains at least this many characters ``\\d`` matches (text with fewer
    is skipped; 0: no such bound)."""
    words: tuple[str, ...] = ()
    """For ASCII text: every match contains one of these (lowercase) in the lowered text."""

    def find(self, text: str) -> Iterator[tuple[int, int]]:
        if self.hint and self.hint not in text:
            return
        check = self.check
        for match in self.pattern.finditer(text):
            if check is not None and not check(match):
                continue
            start, end = match.span(self.group)
            if end > start:
                yield start, end


_DIGIT = re.compile(r"\d")


class DetectorTable:
    """Detectors compiled for :func:`scan`, once per redaction plan: each detector's
    prefilters read into one row (its hint, its digit bound, one regex of its words), so a
    scan walks plain tuples instead of loading attributes and testing words one by one."""

    __slots__ = ("_rows", "detectors")

    def __init__(self, detectors: Sequence[Detector]) -> None:
        self.detectors = tuple(detectors)
        rows: list[tuple[str, int, re.Pattern[str] | None, Detector]] = []
        for detector in self.detectors:
            digits, words = 0, None
            if type(detector) is PatternDetector:
                digits = detector.digits
                if detector.words:
                    words = re.compile("|".join(re.escape(w) for w in detector.words))
            rows.append((detector.hint, digits, words, detector))
        self._rows = tuple(rows)

    def __len__(self) -> int:
        return len(self.detectors)

    def scan(self, text: str) -> list[Finding]:
        """Every detector's findings in ``text``, unmerged."""
        found: list[Finding] = []
        digit_count = -1  # counted on first need
        lowered: str | None = None  # "" when the text is not ASCII (no word prefilter)
        for hint, digits, words, detector in self._rows:
            if hint and hint not in text:
                continue
            if digits:
                if digit_count < 0:
                    digit_count = len(_DIGIT.findall(text))
                if digit_count < digits:
                    continue
            if words is not None:
                if lowered is None:
                    lowered = text.lower() if text.isascii() else ""
                if lowered and words.search(lowered) is None:
                    continue
            try:
                spans = list(detector.find(text))
            except Exception as exc:
                raise DetectorFailed(detector.name) from exc
            for start, end in spans:
                found.append(
                    Finding(start, end, detector.name, detector.category, detector.confidence)
                )
        return found


def scan(detectors: Sequence[Detector] | DetectorTable, text: str) -> list[Finding]:
    """Every detector's findings in ``text``, unmerged (pass a plan's :class:`DetectorTable`
    on the hot path; a plain sequence is compiled for this one call)."""
    table = detectors if isinstance(detectors, DetectorTable) else DetectorTable(detectors)
    return table.scan(text)


def select(findings: Iterable[Finding]) -> list[Finding]:
    """Non-overlapping findings in text order: earliest, then longest, then most confident."""
    ordered = sorted(findings, key=lambda f: (f.start, f.start - f.end, -f.confidence))
    chosen: list[Finding] = []
    last_end = -1
    for finding in ordered:
        if finding.start >= last_end:
            chosen.append(finding)
            last_end = finding.end
    return chosen
