"""The attempt chain: how one request's upstream attempts are made (see :mod:`.chain`)."""

from .chain import (
    Attempt,
    AttemptChain,
    AttemptMiddleware,
    BackendStates,
    CallNext,
    Stage,
    Upstream,
)
from .http import HttpCall
from .retry import RetryFallback

__all__ = [
    "Attempt",
    "AttemptChain",
    "AttemptMiddleware",
    "BackendStates",
    "CallNext",
    "HttpCall",
    "RetryFallback",
    "Stage",
    "Upstream",
]
