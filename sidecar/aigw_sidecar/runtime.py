"""The runtime config: a bundle compiled once, at load, into what the hot path needs.

The bundle's pydantic models are a good contract and a poor hot path. On every (re)load
:func:`build_runtime` turns a validated :class:`~aigw_contract.Bundle` into plain, immutable
objects so that a request does only dict lookups: per route a backend table with cumulative
weights for the weighted choice and the timeouts in seconds; per backend the upstream URLs,
the credential headers (read from the mounted Secret files now, not per request), the
adapter, and prices (:class:`~aigw_sidecar.governance.Prices`, integer nano-USD: the one
money unit of the sidecar); per route its compiled :class:`AttemptPlan`.

Credentials are held in fields excluded from ``repr`` and never put in logs, status or
errors. A backend whose credential file is missing stays in the config, marked unusable; the
problem (never the value) is listed in ``warnings`` and shown in ``/aigw/status``.

Settings of the bundle's policies and routes that this sidecar does not enforce yet are
found with the contract's field-status table (``aigw_contract.enforcement``, the same rule
``aigw validate`` and the operator apply) and listed in ``not_enforced``; the defaults that
are not enforced yet in ``inactive_defaults``. Both show in ``/aigw/status``.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import quote

import orjson
from aiohttp import ClientTimeout

from aigw_contract import Backend, Bundle, BundleRoute, ErrorClass, Provider
from aigw_contract.enforcement import unenforced

from .adapters import ADAPTERS, Adapter
from .governance.money import Prices
from .scrub import Scrubber
from .state import State

__all__ = [
    "ANTHROPIC_VERSION",
    "AttemptPlan",
    "RuntimeBackend",
    "RuntimeConfig",
    "RuntimeRoute",
    "build_runtime",
    "credential_files",
    "render_models",
]

ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True, slots=True)
class RuntimeBackend:
    """One backend, ready to call."""

    name: str
    provider: Provider
    model: str
    adapter: Adapter = field(repr=False)
    chat_url: str = field(repr=False)
    embeddings_url: str | None = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)
    """Request headers including the credential. Never log."""
    secret: str | None = field(repr=False)
    """The credential itself, kept only to scrub it from provider error messages."""
    prices: Prices
    """What this backend costs (nano-USD per million tokens)."""
    count_tokens_url: str | None = field(default=None, repr=False)
    """Anthropic backends: the ``/v1/messages/count_tokens`` URL."""
    credential_problem: str | None = None
    """Why the backend cannot be used (its credential file is missing), or None."""
    region: str | None = None
    """The region it runs in (residency), or None when the route does not say."""


@dataclass(frozen=True, slots=True)
class AttemptPlan:
    """How the attempt chain may call a route, compiled once per bundle.

    The primary pick is weighted-random among backends with weight > 0; a retryable
    failure (``retry_on``) may be retried, up to ``attempts`` attempts in all, on the next
    backend of ``fallback`` not tried yet (else the same one), after a full-jitter backoff of
    at most ``backoff_max_s``. ``breaker_*`` are the circuit-breaker thresholds per backend.
    """

    weighted: tuple[RuntimeBackend, ...]
    """Backends with weight > 0, in bundle order."""
    cumulative: tuple[int, ...]
    """Running sums of the weights of ``weighted``."""
    weights: tuple[int, ...]
    """The weights of ``weighted``."""
    fallback: tuple[RuntimeBackend, ...]
    """The route's fallback order."""
    attempts: int
    """Most attempts of one request, the first included."""
    retry_on: frozenset[ErrorClass]
    backoff_base_s: float
    backoff_max_s: float
    breaker_failures: int
    """Consecutive failures that open a backend's circuit."""
    breaker_open_s: float
    """How long an open circuit refuses before one probe."""

    def pick(self, rng: random.Random) -> RuntimeBackend:
        """The primary backend: weighted-random among those with weight > 0."""
        if len(self.weighted) == 1:
            return self.weighted[0]
        point = rng.random() * self.cumulative[-1]
        return self.weighted[bisect.bisect_right(self.cumulative, point)]

    def next_backend(self, tried: Collection[str], current: RuntimeBackend) -> RuntimeBackend:
        """The backend of the next attempt: the first fallback not in ``tried``, else
        ``current`` again."""
        for backend in self.fallback:
            if backend.name not in tried:
                return backend
        return current

    def retryable(self, error_class: ErrorClass) -> bool:
        return error_class in self.retry_on


@dataclass(frozen=True, slots=True)
class RuntimeRoute:
    """One route: its backends and how to pick and call them."""

    name: str
    backends: tuple[RuntimeBackend, ...]
    plan: AttemptPlan
    """What the attempt chain may do (primary pick, fallbacks, retries, breakers)."""
    connect_s: float
    request_s: float
    idle_s: float
    timeout: ClientTimeout = field(repr=False)
    """A complete answer: ``connect_s`` to connect, ``request_s`` in total."""
    stream_timeout: ClientTimeout = field(repr=False)
    """A stream: ``connect_s`` to connect, ``idle_s`` between reads (the first byte is
    bounded separately by ``request_s``)."""
    spec: BundleRoute = field(repr=False)
    """The route as the bundle has it."""

    def backend(self, name: str) -> RuntimeBackend | None:
        for backend in self.backends:
            if backend.name == name:
                return backend
        return None


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """Everything the request path reads, built from one bundle."""

    bundle: Bundle = field(repr=False)
    revision: int
    content_hash: str
    policy_version: str
    """``<revision>.<first 12 hex of the content hash>``: the X-AIGW-Policy-Version header."""
    routes: Mapping[str, RuntimeRoute]
    """By route name."""
    aliases: Mapping[str, str]
    """Model alias -> route name (the routes' ``modelAliases``)."""
    families: frozenset[str]
    """The routes' ``intent.family`` values (a request's ``model`` may name one)."""
    models_openai: bytes
    """Pre-rendered ``GET /v1/models`` body (OpenAI shape)."""
    models_anthropic: bytes
    """Pre-rendered ``GET /v1/models`` body (Anthropic shape)."""
    warnings: tuple[str, ...] = ()
    """Problems of this config (unreadable credentials), never a credential."""
    not_enforced: tuple[str, ...] = ()
    """Settings of the bundle that are accepted but not enforced yet, one line each."""
    inactive_defaults: tuple[str, ...] = ()
    """Defaults in the bundle that would do something but are not enforced yet."""
    scrubber: Scrubber = field(default_factory=Scrubber, repr=False)
    """Removes every backend's credential from provider messages (:mod:`.scrub`)."""
    credential_files: tuple[Path, ...] = ()
    """The credential files read for this config (watched for rotation)."""
    prepared: State = field(default_factory=State, repr=False)
    """Per-bundle state of pipeline steps (``Step.prepare``), by typed key. Filled once,
    before the config is swapped in, and only read afterwards."""

    def route_for(self, model: str) -> RuntimeRoute | None:
        """The route a request's ``model`` names: a route name or one of its model aliases."""
        route = self.routes.get(model)
        if route is None and (name := self.aliases.get(model)) is not None:
            route = self.routes.get(name)
        return route


def _read_secret(secrets_dir: Path, backend: Backend) -> tuple[str | None, str | None]:
    ref = backend.credential_secret_ref
    if ref is None:
        return None, None
    path = secrets_dir / ref.name / ref.key
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None, f"credential {ref.name}/{ref.key} of backend {backend.name} is not readable"
    if not value or any(c in value for c in "\r\n\0"):
        return None, f"credential {ref.name}/{ref.key} of backend {backend.name} is malformed"
    return value, None


def _urls(backend: Backend) -> tuple[str, str | None]:
    base = backend.base_url.rstrip("/")
    if backend.provider is Provider.ANTHROPIC:
        return _anthropic_messages_url(base), None
    if backend.provider is Provider.AZURE_OPENAI:
        deployment = f"{base}/openai/deployments/{quote(backend.model, safe='')}"
        query = f"?api-version={quote(backend.api_version or '', safe='')}"
        return f"{deployment}/chat/completions{query}", f"{deployment}/embeddings{query}"
    return base + "/chat/completions", base + "/embeddings"


def _anthropic_messages_url(base: str) -> str:
    return base + "/messages" if base.endswith("/v1") else base + "/v1/messages"


def _headers(provider: Provider, secret: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if provider is Provider.ANTHROPIC:
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if secret:
            headers["x-api-key"] = secret
    elif provider is Provider.AZURE_OPENAI:
        if secret:
            headers["api-key"] = secret
    elif secret:
        headers["Authorization"] = f"Bearer {secret}"
    return headers


def _backend(backend: Backend, secrets_dir: Path) -> RuntimeBackend:
    secret, problem = _read_secret(secrets_dir, backend)
    chat_url, embeddings_url = _urls(backend)
    count_url = chat_url + "/count_tokens" if backend.provider is Provider.ANTHROPIC else None
    return RuntimeBackend(
        name=backend.name,
        provider=backend.provider,
        model=backend.model,
        adapter=ADAPTERS[backend.provider],
        chat_url=chat_url,
        embeddings_url=embeddings_url,
        headers=MappingProxyType(_headers(backend.provider, secret)),
        secret=secret,
        prices=Prices.of(backend.pricing),
        count_tokens_url=count_url,
        credential_problem=problem,
        region=backend.region,
    )


def _route(route: BundleRoute, secrets_dir: Path) -> RuntimeRoute:
    backends = tuple(_backend(b, secrets_dir) for b in route.backends)
    weights = [b.weight for b in route.backends]
    weighted = tuple(rb for rb, w in zip(backends, weights, strict=True) if w > 0)
    cumulative: list[int] = []
    total = 0
    for weight in weights:
        if weight > 0:
            total += weight
            cumulative.append(total)
    connect = route.timeouts.connect_ms / 1000
    request = route.timeouts.request_ms / 1000
    idle = route.timeouts.idle_ms / 1000
    by_name = {b.name: b for b in backends}
    retry, breaker = route.retry, route.circuit_breaker
    plan = AttemptPlan(
        weighted=weighted,
        cumulative=tuple(cumulative),
        weights=tuple(w for w in weights if w > 0),
        fallback=tuple(by_name[name] for name in route.fallback if name in by_name),
        attempts=retry.attempts,
        retry_on=frozenset(retry.retry_on),
        backoff_base_s=retry.backoff_base_ms / 1000,
        backoff_max_s=retry.backoff_max_ms / 1000,
        breaker_failures=breaker.consecutive_failures,
        breaker_open_s=float(breaker.open_seconds),
    )
    return RuntimeRoute(
        name=route.name,
        backends=backends,
        plan=plan,
        connect_s=connect,
        request_s=request,
        idle_s=idle,
        timeout=ClientTimeout(total=request, connect=connect),
        stream_timeout=ClientTimeout(total=None, connect=connect, sock_read=idle),
        spec=route,
    )


def render_models(bundle: Bundle, names: list[str]) -> tuple[bytes, bytes]:
    """``GET /v1/models`` bodies listing ``names``: OpenAI's shape and Anthropic's."""
    created = int(bundle.generated_at.timestamp())
    openai_body = orjson.dumps(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": created, "owned_by": "aigw"}
                for name in names
            ],
        }
    )
    stamp = bundle.generated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    anthropic_body = orjson.dumps(
        {
            "data": [
                {"id": n, "type": "model", "display_name": n, "created_at": stamp} for n in names
            ],
            "has_more": False,
            "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None,
        }
    )
    return openai_body, anthropic_body


def credential_files(bundle: Bundle, secrets_dir: Path) -> tuple[Path, ...]:
    """Every credential file the bundle's backends reference, sorted."""
    return tuple(
        sorted(
            {
                secrets_dir / b.credential_secret_ref.name / b.credential_secret_ref.key
                for r in bundle.routes
                for b in r.backends
                if b.credential_secret_ref is not None
            }
        )
    )


def _not_enforced(bundle: Bundle) -> tuple[tuple[str, ...], tuple[str, ...]]:
    settings: list[str] = []
    defaults: set[str] = set()
    for kind, items in (("AIPolicy", bundle.policies), ("ModelRoute", bundle.routes)):
        for item in items:
            found = unenforced(kind, item, resource=f"{kind}/{item.name}")
            settings += [str(problem) for problem in found.settings]
            defaults.update(f"{kind} {default}" for default in found.defaults)
    return tuple(settings), tuple(sorted(defaults))


def build_runtime(bundle: Bundle, secrets_dir: Path) -> RuntimeConfig:
    """Compile a validated bundle; reads the credential files it references."""
    routes = {r.name: _route(r, secrets_dir) for r in bundle.routes}
    warnings = tuple(
        b.credential_problem for r in routes.values() for b in r.backends if b.credential_problem
    )
    aliases = [a for r in bundle.routes for a in r.model_aliases]
    models_openai, models_anthropic = render_models(bundle, [*routes, *aliases])
    digest = bundle.content_hash.removeprefix("sha256:")[:12]
    files = credential_files(bundle, secrets_dir)
    not_enforced, inactive_defaults = _not_enforced(bundle)
    return RuntimeConfig(
        bundle=bundle,
        revision=bundle.revision,
        content_hash=bundle.content_hash,
        policy_version=f"{bundle.revision}.{digest}",
        routes=MappingProxyType(routes),
        aliases=MappingProxyType({a: r.name for r in bundle.routes for a in r.model_aliases}),
        families=frozenset(r.intent.family for r in bundle.routes if r.intent.family),
        models_openai=models_openai,
        models_anthropic=models_anthropic,
        warnings=warnings,
        not_enforced=not_enforced,
        inactive_defaults=inactive_defaults,
        scrubber=Scrubber(b.secret for r in routes.values() for b in r.backends),
        credential_files=files,
    )
