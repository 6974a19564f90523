"""``aigw audit verify FILE...`` and ``aigw audit report FILE...``: the evidence trail offline.

``verify`` checks the hash chains of audit files (``docs/audit.md``): exit 0 when every
chain is intact, 1 when a line was edited, removed, duplicated or is not a sealed record
(each problem printed with file and line), 2 for unreadable input. Notes (a chain starting
past its first record because older files are gone, a chain without its end record,
records the sidecar knowingly dropped) are printed but do not fail; ``--strict`` makes an
open chain or dropped records fail too.

``report`` answers questions from the records (:mod:`aigw_cli.audit_report`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = sub.add_parser("verify", help="check the hash chains of audit files")
    verify.add_argument("files", nargs="+", type=Path, metavar="FILE")
    verify.add_argument(
        "--strict",
        action="store_true",
        help="also fail on a chain without its end record or with dropped records",
    )
    verify.add_argument("--format", choices=("text", "json"), default="text")
    report = sub.add_parser("report", help="cost, tokens, errors and triggers by dimension")
    from .audit_report import add_report_arguments  # noqa: PLC0415 - only this action needs it

    add_report_arguments(report)


def _verify(args: argparse.Namespace) -> int:
    from aigw_sidecar.audit import verify_files  # noqa: PLC0415 - only this subcommand needs it

    try:
        report = verify_files(args.files)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    strict_fail = args.strict and any(not c.ended or c.dropped for c in report.chains.values())
    if args.format == "json":
        print(
            json.dumps(
                {
                    "ok": report.ok and not strict_fail,
                    "problems": report.problems,
                    "notes": report.notes,
                    "chains": {
                        name: {
                            "first_seq": c.first_seq,
                            "last_seq": c.last_seq,
                            "records": c.records,
                            "calls": c.calls,
                            "dropped": c.dropped,
                            "ended": c.ended,
                        }
                        for name, c in report.chains.items()
                    },
                },
                indent=2,
            )
        )
    else:
        for problem in report.problems:
            print(f"FAIL {problem}")
        for note in report.notes:
            print(f"note {note}")
        calls = sum(c.calls for c in report.chains.values())
        verdict = "ok" if report.ok and not strict_fail else "FAILED"
        print(f"{verdict}: {len(report.chains)} chain(s), {calls} call record(s)")
    return 0 if report.ok and not strict_fail else 1


def run(args: argparse.Namespace) -> int:
    if args.action == "verify":
        return _verify(args)
    from .audit_report import run_report  # noqa: PLC0415

    return run_report(args)
