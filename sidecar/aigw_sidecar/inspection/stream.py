"""Redacting text that arrives in pieces: the hold-back window of a stream.

A secret split across two chunks (``"ghp_4f9a"`` + ``"...c2"``) is in neither chunk, so a
stream redactor must hold text back until it knows no match can still be in progress, but
no longer: whatever it holds is time to first token the caller waits. A
:class:`TextChannel` (one per streamed text: a choice's content, a tool call's arguments)
keeps the text not yet released, and on every piece releases the longest prefix that no
incomplete match can reach back into. Each detector's :class:`~.detectors.Hold` says where
that can start:

- token-shaped detectors (keys, JWTs, e-mails, connection strings, IP addresses, private
  key blocks): only in the trailing run of non-whitespace characters;
- spaced ones (cards, phones, IBANs, SSNs): only in the trailing run of their characters
  (digits, separators, capitals), at most their longest match (42 characters for an IBAN);
- custom patterns: in the last ``max width`` characters.

A match that reaches the end of the held text, or straddles the release point, is held from
its start (it may still grow: ``bob@example.co`` + ``m``). So for prose the hold-back is the
word in progress; behind digits and capitals it is at most the window
(:attr:`~.redactor.RedactionPlan.window`). The last :data:`CONTEXT` released characters are
kept (raw) as look-behind for the next scan (``password: `` then the value), never
re-released. At the end of the stream :meth:`TextChannel.flush` releases everything.

Bounds: a token in progress is held up to :data:`TOKEN_CAP` characters (longer ones are
released but for their last :data:`TOKEN_CAP`); an unfinished match that grows past
:data:`MAX_HOLD` (a private key block without its END line) raises
:class:`HoldOverflow`: the step fails closed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .detectors import Detector, DetectorTable, Finding, Hold, scan, select
from .redactor import apply

__all__ = ["CONTEXT", "MAX_HOLD", "TOKEN_CAP", "HoldOverflow", "RestoreChannel", "TextChannel"]

CONTEXT = 96
TOKEN_CAP = 16_384
MAX_HOLD = 65_536

_TRAILING_TOKEN = re.compile(r"\S*\Z")
_PARTIAL_PLACEHOLDER = re.compile(r"\[[A-Z0-9_a-f]{0,58}\Z")


class HoldOverflow(Exception):
    """An unfinished match grew past :data:`MAX_HOLD`: nothing more can be released safely."""


def _tail(holds: Sequence[Hold]) -> re.Pattern[str] | None:
    """One class of every character a non-token hold's run can end in (the union of their
    ``last``), or None when a hold has none (a custom pattern: held by width)."""
    spaced = [h for h in holds if not h.token]
    if not spaced or any(h.last is None for h in spaced):
        return None
    return re.compile("[" + "".join(h.last.pattern[1:-1] for h in spaced if h.last) + "]")


class TextChannel:
    """One streamed text, redacted with a hold-back (see the module docstring)."""

    __slots__ = (
        "_buffer",
        "_context",
        "_detectors",
        "_holds",
        "_on_finding",
        "_replace",
        "_tail",
        "_token",
    )

    def __init__(
        self,
        detectors: Sequence[Detector] | DetectorTable,
        holds: Sequence[Hold],
        replace: Callable[[str, str], str],
        on_finding: Callable[[Finding], None],
    ) -> None:
        self._detectors = (
            detectors if isinstance(detectors, DetectorTable) else DetectorTable(detectors)
        )
        self._holds = holds
        self._replace = replace
        self._on_finding = on_finding
        self._buffer = ""
        self._context = ""
        self._token = any(h.token for h in holds)
        self._tail = _tail(holds)

    @property
    def held(self) -> int:
        """Characters received and not released yet."""
        return len(self._buffer)

    def feed(self, text: str) -> str:
        """A piece in; the redacted text that can be released now out (may be "")."""
        if not text:
            return ""
        self._buffer += text
        return self._release(final=False)

    def flush(self) -> str:
        """The end of the text: everything still held, redacted."""
        return self._release(final=True) if self._buffer else ""

    def _cut(self, full: str, base: int, findings: list[Finding]) -> int:
        end = len(full)
        token = _TRAILING_TOKEN.search(full, base)
        token_start = token.start() if token is not None else end
        token_start = max(token_start, end - TOKEN_CAP)
        tail = self._tail
        if tail is not None and tail.match(full, end - 1) is None:
            # the last character ends no run of a spaced hold: each would say ``end``
            cut = token_start if self._token else end
        else:
            cut = end
            for hold in self._holds:
                cut = min(cut, hold.start(full, token_start))
        for finding in findings:
            if finding.end >= end or finding.start < cut < finding.end:
                cut = min(cut, finding.start)
        return max(cut, base)

    def _release(self, *, final: bool) -> str:
        context = self._context
        full = context + self._buffer
        base = len(context)
        findings = [f for f in select(scan(self._detectors, full)) if f.end > base]
        cut = len(full) if final else self._cut(full, base, findings)
        if cut == base:
            if len(self._buffer) > MAX_HOLD:
                raise HoldOverflow(f"an unfinished match is longer than {MAX_HOLD} characters")
            return ""
        released = [f for f in findings if f.end <= cut]
        for finding in released:
            self._on_finding(finding)
        out = apply(full[base:cut], released, self._replace, offset=base)
        self._context = full[max(0, cut - CONTEXT) : cut]
        self._buffer = full[cut:]
        return out


class RestoreChannel:
    """One streamed text whose mask placeholders go back to the caller's values; holds
    back only a ``[`` that may begin a placeholder."""

    __slots__ = ("_buffer", "_restore")

    def __init__(self, restore: Callable[[str], str]) -> None:
        self._restore = restore
        self._buffer = ""

    def feed(self, text: str) -> str:
        if not text:
            return ""
        full = self._buffer + text
        partial = _PARTIAL_PLACEHOLDER.search(full)
        cut = partial.start() if partial is not None else len(full)
        self._buffer = full[cut:]
        return self._restore(full[:cut])

    def flush(self) -> str:
        out, self._buffer = self._buffer, ""
        return self._restore(out)
