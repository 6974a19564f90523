"""``aigw compile`` and ``aigw validate``: the offline side of the contract.

A GitOps pipeline runs these before anything reaches a cluster. Every problem of every
input is printed as ``file: document N: Kind/name: field.path: what is wrong``; the exit
code is 1 on any problem and nothing is written then (the output file is replaced
atomically, only after a successful compile).

Settings that are accepted but not enforced yet (``aigw_contract.enforcement``) are printed
the same way as ``warning:`` lines, and defaults that are not enforced yet as one ``note:``
line; they change the exit code only with ``--fail-on-warning``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from aigw_contract import ContractError, SourceDocument, compile_bundle, load_paths
from aigw_contract.enforcement import inactive_defaults_text, unenforced
from aigw_contract.loader import locate_problems

__all__ = ["add_arguments", "run", "write_atomically"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, help="YAML files or directories")
    parser.add_argument(
        "--namespace",
        help="namespace of resources that name none (default: the resources' own namespace)",
    )
    parser.add_argument("-o", "--output", type=Path, help="write the bundle here (compile)")
    parser.add_argument("--revision", type=int, default=0, help="bundle revision (compile)")
    parser.add_argument(
        "--fail-on-warning",
        action="store_true",
        help="exit 1 (and write nothing) when a setting is not enforced yet",
    )


def _generated_at() -> datetime:
    # Reproducible builds: SOURCE_DATE_EPOCH pins the timestamp, so output is byte-identical.
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None and epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), tz=UTC)
    return datetime.now(tz=UTC).replace(microsecond=0)


def write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent or Path(), prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _namespace(args: argparse.Namespace, found: set[str | None]) -> str:
    if args.namespace:
        return str(args.namespace)
    named = sorted(ns for ns in found if ns)
    if len(named) == 1:
        return named[0]
    if not named:
        raise ContractError("no resource names a namespace: pass --namespace")
    raise ContractError(
        f"resources span namespaces {', '.join(named)}: a bundle holds one namespace"
    )


def _warn(documents: list[SourceDocument]) -> int:
    """Print what is not enforced yet; the number of warnings."""
    warnings = 0
    defaults: list[str] = []
    for doc in documents:
        resource = doc.resource
        found = unenforced(
            resource.kind,
            resource.spec,
            resource=f"{resource.kind}/{resource.metadata.name}",
            source=doc.source,
            document=doc.document,
        )
        for problem in found.settings:
            print(f"warning: {problem}", file=sys.stderr)
        warnings += len(found.settings)
        defaults += [f"{resource.kind} {d}" for d in found.defaults]
    if defaults:
        print(f"note: {inactive_defaults_text(defaults)}", file=sys.stderr)
    return warnings


def _compile(args: argparse.Namespace) -> int:
    documents = load_paths(args.paths)
    resources = [d.resource for d in documents]
    namespace = _namespace(args, {r.metadata.namespace for r in resources})
    revision = getattr(args, "revision", 0)
    try:
        bundle = compile_bundle(
            resources, namespace=namespace, generated_at=_generated_at(), revision=revision
        )
    except ContractError as exc:  # cross-references name a resource: say where it is
        raise type(exc)(locate_problems(exc.problems, documents)) from exc
    warnings = _warn(documents)
    if warnings and args.fail_on_warning:
        print(f"error: {warnings} setting(s) not enforced yet (--fail-on-warning)", file=sys.stderr)
        return 1
    if args.command == "validate":
        print(
            f"ok: {len(bundle.policies)} AIPolicy, {len(bundle.routes)} ModelRoute "
            f"in namespace {namespace} ({bundle.content_hash})",
            file=sys.stderr,
        )
        return 0
    data = bundle.to_json_bytes()
    if args.output:
        write_atomically(args.output, data)
        print(f"wrote {args.output} ({len(data)} bytes, {bundle.content_hash})", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return _compile(args)
    except ContractError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
