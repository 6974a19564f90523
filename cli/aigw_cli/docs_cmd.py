"""``aigw docs``: write the reference pages generated from the code.

``aigw docs policy-reference -o docs/policy-reference.md`` renders every AIPolicy and
ModelRoute field with its bounds, default, description, and what enforces it (the table in
``aigw_contract/field_status.py``); a test fails when the committed page is stale.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from aigw_contract.reference import render_policy_reference

from .compile_cmd import write_atomically

__all__ = ["PAGES", "add_arguments", "run"]

PAGES: dict[str, Callable[[], str]] = {"policy-reference": render_policy_reference}
"""Page name -> renderer."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("page", choices=sorted(PAGES), help="which page")
    parser.add_argument("-o", "--output", type=Path, help="write it here (default: stdout)")


def run(args: argparse.Namespace) -> int:
    text = PAGES[args.page]()
    if args.output:
        write_atomically(args.output, text.encode())
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
