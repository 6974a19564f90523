"""``aigw crds``: print or write the CustomResourceDefinitions generated from the models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aigw_contract.crdgen import render_crds

from .compile_cmd import write_atomically

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output-dir", type=Path, help="write one file per CRD here")


def run(args: argparse.Namespace) -> int:
    rendered = render_crds()
    if args.output_dir:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        for filename, text in rendered.items():
            write_atomically(args.output_dir / filename, text.encode())
    else:
        sys.stdout.write("---\n".join(rendered.values()))
    return 0
