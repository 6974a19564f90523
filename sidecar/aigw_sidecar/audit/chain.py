"""Hash-chained audit lines: how a record is sealed, and how a set of files is verified.

Every record a sidecar writes belongs to one **chain** (a random id per sidecar process) and
carries its position ``seq`` (1, 2, ...) and ``prev``, the hash of the record before it
(:data:`GENESIS` for the first). A line is the record's canonical JSON (orjson, sorted keys,
no whitespace) with ``"hash":"sha256:<hex>"`` appended as its last member, where the hash
is SHA-256 over the line's bytes *without* that member (the canonical body up to its final
``}``). Verification is purely textual: it never re-serialises a record, so any edit of a
byte of the body breaks the hash, an edited hash breaks the next record's ``prev``, and a
removed record breaks ``seq`` and ``prev``.

A chain may start past ``seq`` 1 in the files given (older files rotated away or expired by
retention): that is reported, not a failure. A chain whose last record is not an ``end``
record was still open (the sidecar is running, crashed, or the tail was cut): reported too.
Records knowingly dropped when the queue was full are counted in the next record's
``dropped`` (the chain itself stays intact), and reported.

Limits: the chain detects gaps and edits in what a log agent shipped or what sits on disk;
an attacker who can rewrite a whole file *and* every later record is stopped only by the
copy already shipped off the pod.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "GENESIS",
    "ChainReport",
    "Chainer",
    "VerifyReport",
    "iter_records",
    "seal",
    "verify_files",
]

GENESIS = "sha256:" + "0" * 64
"""``prev`` of the first record of a chain."""
_HASH_PREFIX = b',"hash":"sha256:'
_HASH_TAIL = len(_HASH_PREFIX) + 64 + 2  # the member, its closing quote and the final brace


def seal(body: dict[str, Any]) -> tuple[bytes, str]:
    """The sealed line (newline included) of ``body`` (which has ``seq`` and ``prev``), and
    its hash."""
    raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    hexdigest = hashlib.sha256(raw).hexdigest()
    # One copy of the body into the line (slicing and concatenating made four).
    line = b"".join((memoryview(raw)[:-1], _HASH_PREFIX, hexdigest.encode(), b'"}\n'))
    return line, "sha256:" + hexdigest


class Chainer:
    """Seals records in order for one chain (the writer owns one)."""

    __slots__ = ("chain", "prev", "seq")

    def __init__(self, chain: str) -> None:
        self.chain = chain
        self.seq = 0
        self.prev = GENESIS

    def next(self, body: dict[str, Any]) -> bytes:
        """Put ``body`` next in the chain (sets its ``chain``, ``seq``, ``prev``): its line.
        Raises ``TypeError`` (the chain unchanged) when ``body`` is not JSON."""
        body["chain"] = self.chain
        body["seq"] = self.seq + 1
        body["prev"] = self.prev
        line, self.prev = seal(body)
        self.seq += 1
        return line


def _check_line(line: bytes) -> tuple[dict[str, Any] | None, str, str]:
    """(record, its hash, problem): the record is None when the line is not a sealed one."""
    text = line.rstrip(b"\r\n")
    if len(text) <= _HASH_TAIL or not text.endswith(b'"}'):
        return None, "", "not a sealed audit record"
    start = len(text) - _HASH_TAIL
    if text[start : start + len(_HASH_PREFIX)] != _HASH_PREFIX:
        return None, "", "not a sealed audit record (no hash as its last member)"
    claimed = "sha256:" + text[start + len(_HASH_PREFIX) : -2].decode("ascii", "replace")
    actual = "sha256:" + hashlib.sha256(text[:start] + b"}").hexdigest()
    try:
        record = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None, "", "not JSON"
    if not isinstance(record, dict):
        return None, "", "not a JSON object"
    if claimed != actual:
        return record, claimed, "hash mismatch: the record was edited"
    return record, claimed, ""


@dataclass
class ChainReport:
    """What the files hold of one chain."""

    chain: str
    first_seq: int = 0
    last_seq: int = 0
    records: int = 0
    calls: int = 0
    dropped: int = 0
    """Records the sidecar knowingly dropped (queue full, policy ``drop``)."""
    ended: bool = False
    """The chain's last record is its ``end`` record (the sidecar stopped cleanly)."""


@dataclass
class VerifyReport:
    """The outcome of :func:`verify_files`."""

    chains: dict[str, ChainReport] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """Failures: a line that is not a sealed record, an edit, a gap, a duplicate."""
    notes: list[str] = field(default_factory=list)
    """Not failures: a chain starting past seq 1, a chain still open, records dropped."""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Entry:
    seq: int
    prev: str
    digest: str
    kind: str
    dropped: int
    where: str


def iter_records(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Every JSON object line of ``paths`` (unverified; lines that are not objects skipped)."""
    for path in paths:
        with path.open("rb") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    yield record


def _entries(paths: Iterable[Path], report: VerifyReport) -> dict[str, list[_Entry]]:
    chains: dict[str, list[_Entry]] = {}
    for path in paths:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                record, digest, problem = _check_line(line)
                if problem:
                    report.problems.append(f"{where}: {problem}")
                if record is None:
                    continue
                chain, seq, prev = record.get("chain"), record.get("seq"), record.get("prev")
                if (
                    not isinstance(chain, str)
                    or not isinstance(seq, int)
                    or not isinstance(prev, str)
                ):
                    report.problems.append(f"{where}: no chain, seq or prev")
                    continue
                dropped = record.get("dropped")
                chains.setdefault(chain, []).append(
                    _Entry(
                        seq,
                        prev,
                        digest,
                        str(record.get("kind", "")),
                        dropped if isinstance(dropped, int) else 0,
                        where,
                    )
                )
    return chains


def verify_files(paths: Iterable[Path]) -> VerifyReport:
    """Check every chain in ``paths`` (any order: rotated files and several sidecars mixed)."""
    report = VerifyReport()
    for chain, entries in _entries(paths, report).items():
        entries.sort(key=lambda e: e.seq)
        summary = ChainReport(chain, entries[0].seq, entries[-1].seq)
        if entries[0].seq != 1:
            report.notes.append(
                f"chain {chain} starts at seq {entries[0].seq} (earlier records not given)"
            )
        elif entries[0].prev != GENESIS:
            report.problems.append(f"{entries[0].where}: seq 1 does not start from the genesis")
        previous: _Entry | None = None
        for entry in entries:
            summary.records += 1
            summary.calls += entry.kind == "call"
            summary.dropped += entry.dropped
            if previous is not None:
                if entry.seq == previous.seq:
                    report.problems.append(f"{entry.where}: seq {entry.seq} appears twice")
                    continue
                if entry.seq != previous.seq + 1:
                    report.problems.append(
                        f"{entry.where}: records {previous.seq + 1}..{entry.seq - 1} of chain "
                        f"{chain} are missing"
                    )
                elif entry.prev != previous.digest:
                    report.problems.append(
                        f"{entry.where}: prev does not match the hash of seq {previous.seq}"
                    )
                if previous.kind == "end":
                    report.problems.append(f"{entry.where}: a record after the chain's end")
            previous = entry
        summary.ended = entries[-1].kind == "end"
        if not summary.ended:
            report.notes.append(f"chain {chain} has no end record (open, crashed or cut)")
        if summary.dropped:
            report.notes.append(
                f"chain {chain}: the sidecar dropped {summary.dropped} record(s) (queue full)"
            )
        report.chains[chain] = summary
    return report
