"""Governance: who may call what, within which limits, counted across every replica.

Pure logic and state stores, no HTTP: the sidecar's pipeline steps call into it.
:class:`Governor` runs identify → authorize → constrain (:meth:`Governor.admit`), reserves
against rate limits and budgets (:meth:`Governor.limit`) and settles after the call
(:meth:`Governor.settle`). State lives in a :class:`MemoryStore` (one pod) or a
:class:`RedisStore` (shared by every sidecar). See each module's docstring for the why.
"""

from .claims import MAX_COST_NUSD, MAX_LATENCY_MS, Claims
from .clock import Clock, ManualClock, SystemClock
from .decisions import Decision, Denied, DenyKind, Verdict
from .governor import (
    Admission,
    BundleView,
    GovernanceSettings,
    Governor,
    Grant,
)
from .identity import Identity, PodIdentity, PolicyIndex
from .memory_store import MemoryStore
from .money import NANO, Prices, format_usd
from .observer import NullObserver, Observer
from .prometheus import PrometheusObserver
from .redis_store import RedisStore
from .resp import TlsSettings
from .status import budget_status
from .store import (
    Counter,
    CounterKind,
    ReserveResult,
    Store,
    StoreError,
    StoreRejected,
    StoreUnavailable,
)
from .tokens import BpeCounter, EstimateCounter, TokenCounter, count_prompt
from .usage import OutputCounter, Usage, response_output_tokens, usage_of
from .windows import Window, window_at

__all__ = [
    "MAX_COST_NUSD",
    "MAX_LATENCY_MS",
    "NANO",
    "Admission",
    "BpeCounter",
    "BundleView",
    "Claims",
    "Clock",
    "Counter",
    "CounterKind",
    "Decision",
    "Denied",
    "DenyKind",
    "EstimateCounter",
    "GovernanceSettings",
    "Governor",
    "Grant",
    "Identity",
    "ManualClock",
    "MemoryStore",
    "NullObserver",
    "Observer",
    "OutputCounter",
    "PodIdentity",
    "PolicyIndex",
    "Prices",
    "PrometheusObserver",
    "RedisStore",
    "ReserveResult",
    "Store",
    "StoreError",
    "StoreRejected",
    "StoreUnavailable",
    "SystemClock",
    "TlsSettings",
    "TokenCounter",
    "Usage",
    "Verdict",
    "Window",
    "budget_status",
    "count_prompt",
    "format_usd",
    "response_output_tokens",
    "usage_of",
    "window_at",
]
