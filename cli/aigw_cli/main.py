"""Entry point of the ``aigw`` console script.

Subcommands are registered in ``SUBCOMMANDS`` as ``name -> (module, help)``. The module must
expose ``add_arguments(parser: argparse.ArgumentParser) -> None`` and
``run(args: argparse.Namespace) -> int``. Only the chosen module is imported: the sidecar
process stays small, and a broken optional dependency of one subcommand cannot break another.
This is the one place where the command line is parsed; each ``run`` turns its arguments (and
the environment, read there and nowhere else) into a settings object.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

__all__ = ["SUBCOMMANDS", "main"]


class _Subcommand(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "compile": ("aigw_cli.compile_cmd", "compile AIPolicy/ModelRoute YAML into a bundle"),
    "validate": ("aigw_cli.compile_cmd", "validate AIPolicy/ModelRoute YAML"),
    "crds": ("aigw_cli.crds_cmd", "print the CustomResourceDefinitions generated from the models"),
    "docs": ("aigw_cli.docs_cmd", "write a generated reference page (policy-reference)"),
    "fake-provider": ("aigw_cli.fake_provider_cmd", "serve the fake LLM provider (tests, bench)"),
    "operator": (
        "aigw_cli.operator_cmd",
        "run the operator: bundle compiler and injection webhook",
    ),
    "sidecar": ("aigw_cli.sidecar_cmd", "run the data-plane proxy beside a workload"),
    "status": (
        "aigw_cli.status_cmd",
        "which bundle revision each injected pod of a namespace serves",
    ),
    "rollout": ("aigw_cli.rollout_cmd", "kept bundle revisions (history) and rolling back (undo)"),
    "audit": ("aigw_cli.audit_cmd", "verify audit files, report from them (verify, report)"),
    "replay": ("aigw_cli.replay_cmd", "re-evaluate audited calls against a candidate bundle"),
    "demo": ("aigw_cli.demo_cmd", "run the local end-to-end demo (fake providers, sidecar, SDKs)"),
}


def _load(name: str) -> _Subcommand:
    module_name, _ = SUBCOMMANDS[name]
    return cast(_Subcommand, importlib.import_module(module_name))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="aigw", description="Kubernetes-native AI gateway")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    if chosen not in SUBCOMMANDS:
        parser.parse_args(argv)  # prints usage or the "invalid choice" error
        parser.print_help()
        return 2
    module = _load(chosen)
    sub = argparse.ArgumentParser(prog=f"aigw {chosen}", description=SUBCOMMANDS[chosen][1])
    module.add_arguments(sub)
    args = sub.parse_args(argv[argv.index(chosen) + 1 :])
    args.command = chosen
    return module.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
