"""Reading AIPolicy and ModelRoute resources from YAML, as an admin would kubectl apply them.

Input is untrusted (a GitOps pipeline runs ``aigw validate`` on pull requests), so reading is
strict: UTF-8 only, documents of at most 1 MiB, no YAML anchors or aliases (alias bombs), no
duplicate mapping keys (YAML would silently keep the last one), each document a mapping of
one of our kinds. Every problem names the file, the document and the field path; all
problems of all files are collected before anything is reported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import Problem, SourceError
from .resources import API_VERSION, AIPolicy, ModelRoute, Resource
from .validation import problems_from_validation_error

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "SourceDocument",
    "load_paths",
    "locate_problems",
    "parse_documents",
]

MAX_DOCUMENT_BYTES = 1_048_576
_KINDS: dict[str, type[AIPolicy] | type[ModelRoute]] = {
    "AIPolicy": AIPolicy,
    "ModelRoute": ModelRoute,
}


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """A resource and where it came from."""

    source: str
    document: int
    resource: Resource


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without aliases and with duplicate-key detection."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                "YAML aliases are not allowed",
                self.peek_event().start_mark,  # type: ignore[no-untyped-call]
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _split_documents(text: str) -> list[str]:
    """Split on document markers so each document can be size-checked before parsing."""
    documents: list[list[str]] = [[]]
    for line in text.splitlines(keepends=True):
        if line.rstrip() == "---" or line.startswith("--- "):
            documents.append([])
        else:
            documents[-1].append(line)
    return ["".join(lines) for lines in documents]


def _parse_one(raw: Any, source: str, index: int) -> Resource | list[Problem]:
    def problem(message: str, path: str = "") -> list[Problem]:
        return [Problem(message, source=source, document=index, path=path)]

    if not isinstance(raw, dict):
        return problem(f"a document must be a mapping, not {type(raw).__name__}")
    api_version, kind = raw.get("apiVersion"), raw.get("kind")
    if not isinstance(kind, str) or kind not in _KINDS:
        return problem(f"kind must be AIPolicy or ModelRoute, not {kind!r}", "kind")
    if api_version != API_VERSION:
        return problem(f"apiVersion must be {API_VERSION}, not {api_version!r}", "apiVersion")
    name = raw.get("metadata", {}).get("name") if isinstance(raw.get("metadata"), dict) else None
    try:
        return _KINDS[kind].model_validate(raw)
    except ValidationError as exc:
        return problems_from_validation_error(
            exc, source=source, document=index, resource=f"{kind}/{name or '?'}"
        )


def parse_documents(data: bytes, source: str) -> tuple[list[SourceDocument], list[Problem]]:
    """Parse one multi-document YAML file; returns resources and problems."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [Problem(f"not valid UTF-8 (byte {exc.start})", source=source)]
    resources: list[SourceDocument] = []
    problems: list[Problem] = []
    index = 0
    for chunk in _split_documents(text):
        if not chunk.strip() or all(
            line.lstrip().startswith("#") or not line.strip() for line in chunk.splitlines()
        ):
            continue
        index += 1
        if len(chunk.encode()) > MAX_DOCUMENT_BYTES:
            problems.append(
                Problem(
                    f"document is larger than {MAX_DOCUMENT_BYTES} bytes",
                    source=source,
                    document=index,
                )
            )
            continue
        try:
            raw = yaml.load(chunk, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            problems.append(Problem(f"invalid YAML: {exc}", source=source, document=index))
            continue
        if raw is None:
            continue
        parsed = _parse_one(raw, source, index)
        if isinstance(parsed, list):
            problems.extend(parsed)
        else:
            resources.append(SourceDocument(source, index, parsed))
    return resources, problems


def _files(paths: Iterable[Path]) -> Iterable[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
            )
        else:
            yield path


def load_paths(paths: Iterable[Path]) -> list[SourceDocument]:
    """Load every resource from files and directories; raise SourceError with all problems."""
    resources: list[SourceDocument] = []
    problems: list[Problem] = []
    for path in _files(paths):
        try:
            data = path.read_bytes()
        except OSError as exc:
            problems.append(Problem(f"cannot read: {exc.strerror}", source=str(path)))
            continue
        found, wrong = parse_documents(data, str(path))
        resources.extend(found)
        problems.extend(wrong)
    if problems:
        raise SourceError(problems)
    return resources


def locate_problems(
    problems: Iterable[Problem], documents: Iterable[SourceDocument]
) -> list[Problem]:
    """Problems that name a resource but not where it came from (cross-reference errors of
    the compiler, for instance), with the file and document of that resource added; a resource
    defined in several documents gets one problem per document."""
    where: dict[str, list[SourceDocument]] = {}
    for doc in documents:
        where.setdefault(f"{doc.resource.kind}/{doc.resource.metadata.name}", []).append(doc)
    located: list[Problem] = []
    for problem in problems:
        found = where.get(problem.resource, []) if not problem.source else []
        if not found:
            located.append(problem)
            continue
        located += [
            dataclasses.replace(problem, source=doc.source, document=doc.document) for doc in found
        ]
    return list(dict.fromkeys(located))
