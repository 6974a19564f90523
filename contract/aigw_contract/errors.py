"""The contract's error tree, in one place.

::

    ContractError                      anything the contract refuses
    ├── SourceError                    an input document is not a valid resource
    │     (file, document index, field path, message; many may be collected at once)
    ├── CompileError                   resources that are each valid do not fit together
    │     (a policy naming a route that does not exist, two resources with one name,
    │      a bundle too large for a ConfigMap)
    └── BundleError                    a compiled bundle cannot be used by a data plane
          ├── UnsupportedBundleFormat  its format version is not one this reader knows
          └── InvalidBundle            corrupt JSON, a failed schema check, a hash mismatch

Every error carries ``problems``: a list of :class:`Problem` (where and what), so tools can
print all of them and an operator can put the first few in a status condition.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BundleError",
    "CompileError",
    "ContractError",
    "InvalidBundle",
    "Problem",
    "SourceError",
    "UnsupportedBundleFormat",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that is wrong, and where."""

    message: str
    source: str = ""
    """The file (or other origin) the document came from."""
    document: int | None = None
    """The 1-based index of the YAML document within ``source``."""
    path: str = ""
    """The field path inside the document, e.g. ``spec.useCases[0].budgets[1].period``."""
    resource: str = ""
    """``Kind/name`` of the resource, when known."""

    def __str__(self) -> str:
        where = [part for part in (self.source, self._doc(), self.resource, self.path) if part]
        return f"{': '.join(where)}: {self.message}" if where else self.message

    def _doc(self) -> str:
        return f"document {self.document}" if self.document is not None else ""


class ContractError(Exception):
    """Base of every error the contract package raises."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SourceError(ContractError):
    """An input document is not a valid AIPolicy or ModelRoute."""


class CompileError(ContractError):
    """Valid resources that do not fit together, or a bundle that cannot be written."""


class BundleError(ContractError):
    """A bundle a data plane must refuse (and keep its last good one)."""


class UnsupportedBundleFormat(BundleError):
    """The bundle's ``formatVersion`` is not one this reader understands."""


class InvalidBundle(BundleError):
    """The bundle is corrupt, fails its schema, or its content hash does not match."""
