"""The cache key: one SHA-256 over everything that decides an answer, and who shares it.

An entry may answer a request only when the request would have been sent upstream exactly
as the one that produced it, to a route resolving to the same backend models, by a caller
allowed to see it. The key material is one JSON array (canonical bytes: sorted keys, no
whitespace; a structured array, so no two different inputs concatenate to the same text):

1. the key version, the bundle namespace, the policy, the **partition** (scope, tenant, use
   case: :class:`Partition`);
2. the route's name and the fingerprint of its backends (provider, model and endpoint of
   each: a route moved to another model misses);
3. the fingerprint of what transforms an answer before it is stored (the use case's
   enforcement mode, redaction settings and tool allowlist): a use case whose answer
   redaction differs never reads an entry stored under another's;
4. the caller API (``openai`` / ``anthropic``) and the operation (chat, embeddings);
5. the canonical request body **as it is sent upstream** (after admission clamped
   ``max_tokens`` and after prompt redaction), minus the fields that do not change an
   answer (:data:`IGNORED_FIELDS`), plus the front end's carriage (Anthropic-only
   parameters such as ``top_k`` and ``thinking``, the ``anthropic-beta`` header).

Every other field of the body is part of the key, known or not: messages, tools,
``tool_choice``, every sampling parameter, ``response_format``, ``n``, ``seed``, ``stop``,
``reasoning_effort``, ``logprobs``... A field the sidecar has never heard of changes the key
rather than being ignored (the safe direction).

The key is never sent to a caller, logged or put in a metric; stores see only its hex digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "IGNORED_FIELDS",
    "KEY_VERSION",
    "Partition",
    "digest",
    "exact_key",
    "fingerprint",
]

KEY_VERSION = 1
IGNORED_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "store"})
"""Body fields that never change an answer: how it is delivered (``stream``: a streamed
entry answers a complete request and the reverse), who asked (``user``: an abuse-tracking
id; ``metadata``, ``store``: the provider's stored-completions bookkeeping)."""
_SHARED = "@shared"
"""The tag's tenant part for entries of the shared scope (a tenant name is a DNS label, so
this can never be a tenant)."""


@dataclass(frozen=True, slots=True)
class Partition:
    """Who shares the entries of one request: the part of the key that names the sharers."""

    namespace: str
    policy: str
    scope: str
    """``useCase``, ``tenant`` or ``shared`` (the contract's ``CacheScope``)."""
    tenant: str | None
    """None for the shared scope."""
    use_case: str | None
    """None for the tenant scope."""

    @classmethod
    def of(cls, namespace: str, policy: str, scope: str, tenant: str, use_case: str) -> Partition:
        if scope == "shared":
            return cls(namespace, policy, scope, None, use_case)
        if scope == "tenant":
            return cls(namespace, policy, scope, tenant, None)
        return cls(namespace, policy, "useCase", tenant, use_case)

    @property
    def tag(self) -> str:
        """The Redis hash tag of its keys: ``namespace:tenant`` (``namespace:@shared``)."""
        return f"{self.namespace}:{self.tenant if self.tenant is not None else _SHARED}"

    def material(self) -> list[Any]:
        return [self.namespace, self.policy, self.scope, self.tenant, self.use_case]


def fingerprint(value: Any) -> str:
    """A short digest of any JSON-able value (route backends, answer settings)."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def digest(material: list[Any]) -> str:
    """The hex SHA-256 of canonical key material."""
    return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()


def keyed_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body without :data:`IGNORED_FIELDS` (a new dict; values are shared, not copied)."""
    return {k: v for k, v in body.items() if k not in IGNORED_FIELDS}


def exact_key(
    partition: Partition,
    *,
    route: str,
    route_fp: str,
    answer_fp: str,
    api: str,
    operation: str,
    body: Mapping[str, Any],
    carriage: Iterable[Any] = (),
) -> str:
    """The exact-cache key of one request (hex SHA-256)."""
    return digest(
        [
            KEY_VERSION,
            "exact",
            partition.material(),
            route,
            route_fp,
            answer_fp,
            api,
            operation,
            list(carriage),
            keyed_body(body),
        ]
    )
