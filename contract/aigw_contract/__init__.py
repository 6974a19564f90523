"""The aigw contract: typed models of the AIPolicy and ModelRoute resources, and of the
compiled policy bundle that the operator writes and the sidecar reads.

This package is the bottom layer: it imports neither the operator nor the sidecar, nor any
Kubernetes or HTTP library. See ``errors`` for the error tree.

The compiler and the YAML loader are imported on first use: the sidecar reads compiled
bundles only, and PyYAML and the compiler are megabytes of resident memory it never needs.
"""

from typing import TYPE_CHECKING, Any

from .bundle import (
    BUNDLE_FORMAT_VERSION,
    MAX_BUNDLE_BYTES,
    Bundle,
    BundlePolicy,
    BundleRoute,
    compute_content_hash,
    parse_bundle,
)
from .errors import (
    BundleError,
    CompileError,
    ContractError,
    InvalidBundle,
    Problem,
    SourceError,
    UnsupportedBundleFormat,
)
from .policy import (
    AIPolicySpec,
    AuditQueueFull,
    Budget,
    BudgetPeriod,
    DataClassification,
    EnforcementMode,
    ExhaustionAction,
    FailMode,
    Idempotency,
    InFlightAction,
    Leasing,
    LimitScope,
    ResidencyRule,
    UseCase,
)
from .resources import API_VERSION, GROUP, VERSION, AIPolicy, Condition, ModelRoute
from .route import Backend, ErrorClass, ModelRouteSpec, Provider

__all__ = [
    "API_VERSION",
    "BUNDLE_FORMAT_VERSION",
    "GROUP",
    "MAX_BUNDLE_BYTES",
    "VERSION",
    "AIPolicy",
    "AIPolicySpec",
    "AuditQueueFull",
    "Backend",
    "Budget",
    "BudgetPeriod",
    "Bundle",
    "BundleError",
    "BundlePolicy",
    "BundleRoute",
    "CompileError",
    "Condition",
    "ContractError",
    "DataClassification",
    "EnforcementMode",
    "ErrorClass",
    "ExhaustionAction",
    "FailMode",
    "Idempotency",
    "InFlightAction",
    "InvalidBundle",
    "Leasing",
    "LimitScope",
    "ModelRoute",
    "ModelRouteSpec",
    "Problem",
    "Provider",
    "ResidencyRule",
    "SourceDocument",
    "SourceError",
    "UnsupportedBundleFormat",
    "UseCase",
    "compile_bundle",
    "compute_content_hash",
    "load_paths",
    "parse_bundle",
    "parse_documents",
]

if TYPE_CHECKING:
    from .compiler import compile_bundle
    from .loader import SourceDocument, load_paths, parse_documents

_LAZY = {
    "compile_bundle": "compiler",
    "SourceDocument": "loader",
    "load_paths": "loader",
    "parse_documents": "loader",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aigw_contract' has no attribute {name!r}")
    from importlib import import_module  # noqa: PLC0415 - lazy on purpose

    return getattr(import_module(f".{module}", __name__), name)
