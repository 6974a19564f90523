"""The attempt chain: how one request's upstream attempts are made (see :mod:`.chain`)."""

from .breaker import CircuitBreaker
from .chain import (
    Attempt,
    AttemptChain,
    AttemptMiddleware,
    BackendStates,
    CallNext,
    Stage,
    Upstream,
)
from .health import HEALTH, Circuit, Health
from .http import HttpCall
from .retry import RetryFallback
from .select import BACKEND_FILTER, BackendFilter, Picker

__all__ = [
    "BACKEND_FILTER",
    "HEALTH",
    "Attempt",
    "AttemptChain",
    "AttemptMiddleware",
    "BackendFilter",
    "BackendStates",
    "CallNext",
    "Circuit",
    "CircuitBreaker",
    "Health",
    "HttpCall",
    "Picker",
    "RetryFallback",
    "Stage",
    "Upstream",
]
