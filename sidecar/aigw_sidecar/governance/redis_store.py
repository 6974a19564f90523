"""Counters in Redis, shared by every sidecar of a tenant: one EVALSHA per operation.

The lean pipelined clients carry the scripts: :class:`~.resp.RespClient` for ``redis://``
and ``rediss://`` (TLS) URLs, :class:`~.resp_cluster.ClusterClient` for
``redis+cluster://`` and ``rediss+cluster://`` (every key of a request shares one hash
tag, so each script runs on the one node owning its slot). They cost several times less
CPU per command than redis-py's asyncio clients and none of their ~20 MB of RSS (figures in
docs/governance.md). A redis-py client passed in works the same way through
``register_script``. Either way EVALSHA is retried after SCRIPT LOAD when the server answers
NOSCRIPT (a restarted or failed-over Redis), and connections are re-opened after failures,
so a Redis that comes back needs no sidecar restart.

Every failure is :class:`~.store.StoreUnavailable`, so the policy's fail mode applies to all
of them alike: no connection, a timeout, and error replies too (``READONLY`` from a replica
or during a failover, ``MOVED``/``CLUSTERDOWN``, ``OOM``, ``BUSY``). After one the store
stays "down" for ``retry_interval`` seconds, answering at once without network I/O; the
first call after the interval probes again. Only the scripts' own ``AIGWARG`` refusal (an
argument out of range, a bug) is :class:`~.store.StoreRejected`.

Give-up deadline: a reservation carries the time, on the Redis server's clock, after which
the sidecar no longer waits for it (``timeout x GIVE_UP_SHARE`` after sending); the script
refuses to write past it. The store learns the offset between its clock and the server's
from ``TIME`` once a minute (its error is half a round trip, well inside the share of the
timeout left for the reply to travel back).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .redis_scripts import RECONCILE, RENEW, RESERVE
from .resp import RespClient, RespError, Script, TlsSettings, array, bulk
from .resp_cluster import ClusterClient
from .store import (
    Counter,
    CounterKind,
    ReserveResult,
    StoreRejected,
    StoreUnavailable,
    check_counters,
)

if TYPE_CHECKING:  # redis-py is imported only where it is used: see .redis_py
    from redis.asyncio import Redis

__all__ = ["GIVE_UP_SHARE", "RedisStore", "ScriptNotLoaded", "hash_key", "zset_of"]

_LEAN_FAILURES: tuple[type[BaseException], ...] = (TimeoutError, OSError, RespError, ValueError)
GIVE_UP_SHARE = 0.75
"""Share of the reply timeout after which a reservation may no longer be written."""
_OFFSET_EVERY = 60.0
_MAX_ENCODED = 4096
"""Counters whose encoded arguments are kept (more: the cache starts again)."""
_ONE = bulk("1")
"""The amount of a request or a lease, encoded."""
_DELTAS = {d: bulk(str(d)) for d in (-1, 0)}
"""A lease's end and a request's settlement (no change), encoded."""
_K = TypeVar("_K")
_V = TypeVar("_V")


class ScriptNotLoaded(Exception):
    """The server answered NOSCRIPT to a command sent by :meth:`RedisStore.reconcile_nowait`
    (nothing ran): :meth:`RedisStore.reconcile` loads the script and sends it again."""


def hash_key(tag: str) -> str:
    """The hash of every bucket and budget of one ``{namespace:tenant}`` tag."""
    return f"aigw:{{{tag}}}:c"


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> _V:
    """``value``, kept under ``key`` in a cache of at most :data:`_MAX_ENCODED` entries (a
    full cache starts again)."""
    if len(cache) >= _MAX_ENCODED:
        cache.clear()
    cache[key] = value
    return value


def _field_of(tag: str, counter: Counter) -> str:
    """The counter's field in the tag's hash (a lease counts in its own zset: none)."""
    if counter.kind is CounterKind.LEASE:
        return ""
    return counter.key.removeprefix(hash_key(tag)[:-1])


def zset_of(tag: str, counters: Sequence[Counter]) -> tuple[str, str]:
    """(key, name) of the zset that holds a request's record: its lease set, else ``open``."""
    prefix = f"aigw:{{{tag}}}:"
    for c in counters:
        if c.kind is CounterKind.LEASE:
            return c.key, c.key.removeprefix(prefix)
    return prefix + "open", "open"


class RedisStore:
    """Counters in a (possibly clustered) Redis."""

    name = "redis"

    def __init__(
        self,
        client: RespClient | ClusterClient | Redis,
        *,
        retry_interval: float = 0.5,
        timeout: float = 0.5,
        failures: tuple[type[BaseException], ...] = _LEAN_FAILURES,
    ) -> None:
        """``failures``: the client's exceptions that mean Redis cannot be used now; pass
        :data:`.redis_py.FAILURES` with a redis-py client. ``timeout`` is the client's reply
        timeout (the give-up deadline is derived from it)."""
        self._client = client
        self._failures = failures
        self._reserve: Any
        self._reconcile: Any
        self._renew: Any
        if isinstance(client, RespClient | ClusterClient):
            self._reserve = Script(client, RESERVE)
            self._reconcile = Script(client, RECONCILE)
            self._renew = Script(client, RENEW)
        else:
            self._reserve = client.register_script(RESERVE)
            self._reconcile = client.register_script(RECONCILE)
            self._renew = client.register_script(RENEW)
        self._retry_interval = retry_interval
        self._give_up = timeout * GIVE_UP_SHARE
        self._down_until = 0.0
        self._offset = 0.0
        """Server clock minus this process's clock, in seconds."""
        self._offset_at = -_OFFSET_EVERY
        self._lean = isinstance(client, RespClient | ClusterClient)
        """Lean client: commands go out encoded here, what a plan repeats encoded once."""
        self._reserve_head = self._reserve.head(2) if self._lean else b""
        self._reconcile_head = self._reconcile.head(2) if self._lean else b""
        self._encoded: dict[tuple[str, str, str, int, float, bool], tuple[bytes, bytes]] = {}
        """(tag, key, kind, limit, param, enforce) -> a RESERVE counter's arguments before
        and after its amount, encoded."""
        self._settling: dict[tuple[str, str, str, float], tuple[bytes, bytes]] = {}
        """(tag, key, kind, param) -> a RECONCILE counter's arguments around its delta."""
        self._keys: dict[tuple[str, str], bytes] = {}
        """(tag, zset key) -> both keys of a script call, encoded."""

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout: float = 0.5,
        retry_interval: float = 0.5,
        tls: TlsSettings | None = None,
    ) -> RedisStore:
        """A store for ``url``; ``timeout`` bounds connecting and every reply, so an
        unreachable Redis is noticed within it; ``tls`` applies to ``rediss`` schemes."""
        client: RespClient | ClusterClient
        if url.startswith(("redis+cluster://", "rediss+cluster://")):
            # The cluster client backs off per node: one dead shard is not every tenant's.
            cluster = ClusterClient(url, timeout=timeout, tls=tls, retry_interval=retry_interval)
            return cls(cluster, retry_interval=0.0, timeout=timeout)
        client = RespClient(url, timeout=timeout, tls=tls)
        return cls(client, retry_interval=retry_interval, timeout=timeout)

    @property
    def client(self) -> RespClient | ClusterClient | Redis:
        """The underlying client (closed by whoever created it)."""
        return self._client

    @property
    def failures(self) -> tuple[type[BaseException], ...]:
        """The client's exceptions that mean Redis cannot be used now (for other stores
        sharing the connection, such as idempotency records)."""
        return self._failures

    def _unavailable(self, exc: BaseException, *, sent: bool) -> StoreUnavailable:
        self._down_until = time.monotonic() + self._retry_interval
        reason = type(exc).__name__
        if isinstance(exc, RespError) or reason in ("ResponseError", "ReadOnlyError"):
            # The error code only (READONLY, MOVED, OOM): the rest may name keys.
            reason = f"{reason} {str(exc).split(' ', 1)[0][:32]}"
        error = StoreUnavailable(f"redis failed: {reason}")
        error.maybe_applied = sent
        return error

    def _script_failed(self, exc: BaseException) -> StoreRejected | StoreUnavailable:
        """The store's error for a script call that failed: an argument the script refused,
        or Redis that cannot be used now."""
        if "AIGWARG" in str(exc):
            return StoreRejected(f"redis refused an argument: {exc}")
        return self._unavailable(exc, sent=True)

    async def _run(self, script: Any, keys: list[str], args: list[str]) -> list[bytes]:
        # Monotonic time: the back-off must not depend on the injectable wall clock.
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("redis is unreachable (retrying shortly)")
        try:
            result: list[bytes] = await script(keys=keys, args=args)
        except self._failures as exc:
            raise self._script_failed(exc) from exc
        return result

    async def _run_packed(self, script: Script, command: bytes, key: str) -> list[bytes]:
        """:meth:`_run` for a command encoded here (lean clients)."""
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("redis is unreachable (retrying shortly)")
        client = self._client
        try:
            # The open connection's reply awaited here: three coroutines fewer per call.
            reply = client.packed_nowait(command) if isinstance(client, RespClient) else None
            if reply is None:
                result: list[bytes] = await script.packed(command, key)
            else:
                answer = await reply
                if isinstance(answer, RespError):
                    if not str(answer).startswith("NOSCRIPT"):
                        raise answer
                    answer = await script.loaded(command, key)
                result = answer
        except self._failures as exc:
            raise self._script_failed(exc) from exc
        return result

    def _keys_of(self, tag: str, zkey: str) -> bytes:
        """``KEYS`` of a RESERVE or RECONCILE call (the hash, the zset), encoded."""
        keys = self._keys.get((tag, zkey))
        if keys is None:
            keys = _remember(self._keys, (tag, zkey), bulk(hash_key(tag)) + bulk(zkey))
        return keys

    def _reserve_command(
        self, tag: str, zkey: str, zname: str, args: list[str], counters: Sequence[Counter]
    ) -> bytes:
        """The RESERVE call, encoded: each counter's fixed arguments from the cache."""
        encoded = self._encoded
        parts = [array(10 + 6 * len(counters)), self._reserve_head, self._keys_of(tag, zkey)]
        parts += map(bulk, args)
        parts.append(bulk(zname))
        for c in counters:
            ident = (tag, c.key, c.kind, c.limit, c.param, c.enforce)
            fixed = encoded.get(ident)
            if fixed is None:
                fixed = _remember(
                    encoded,
                    ident,
                    (
                        bulk(c.kind.value) + bulk(_field_of(tag, c)) + bulk(str(c.limit)),
                        bulk(repr(c.param)) + bulk("1" if c.enforce else "0"),
                    ),
                )
            amount = c.amount
            parts += (fixed[0], _ONE if amount == 1 else bulk(str(amount)), fixed[1])
        return b"".join(parts)

    def _reconcile_command(
        self,
        tag: str,
        zkey: str,
        args: list[str],
        counters: Sequence[Counter],
        actual: Sequence[int],
    ) -> bytes:
        """The RECONCILE call, encoded: each counter's fixed arguments from the cache."""
        settling = self._settling
        parts = [array(7 + 4 * len(counters)), self._reconcile_head, self._keys_of(tag, zkey)]
        parts += map(bulk, args)
        for c, amount in zip(counters, actual, strict=True):
            lease = c.kind is CounterKind.LEASE
            ident = (tag, c.key, c.kind, c.param)
            fixed = settling.get(ident)
            if fixed is None:
                fixed = _remember(
                    settling,
                    ident,
                    (
                        bulk(c.kind.value) + bulk(_field_of(tag, c)),
                        bulk("0" if lease else repr(c.param)),
                    ),
                )
            delta = -1 if lease else amount - c.amount
            parts += (fixed[0], _DELTAS.get(delta) or bulk(str(delta)), fixed[1])
        return b"".join(parts)

    async def _deadline_ms(self, key: str) -> int:
        """The give-up deadline of a reservation sent now, on the server's clock (measured
        on the node that owns ``key``: in a cluster, the one that runs the script)."""
        mono = time.monotonic()
        if mono - self._offset_at >= _OFFSET_EVERY:
            before = time.time()
            try:
                reply = await self._command("TIME", key=key)
            except self._failures as exc:
                raise self._unavailable(exc, sent=False) from exc
            after = time.time()
            self._offset = int(reply[0]) + int(reply[1]) / 1e6 - (before + after) / 2
            self._offset_at = mono
        return int((time.time() + self._offset + self._give_up) * 1000)

    async def reserve(
        self, tag: str, request_id: str, counters: Sequence[Counter], now: float, until: float
    ) -> ReserveResult:
        check_counters(counters, now, until)
        mono = time.monotonic()
        if mono < self._down_until:
            raise StoreUnavailable("redis is unreachable (retrying shortly)")
        zkey, zname = zset_of(tag, counters)
        if mono - self._offset_at < _OFFSET_EVERY:  # no await on the hot path
            deadline = int((time.time() + self._offset + self._give_up) * 1000)
        else:
            deadline = await self._deadline_ms(hash_key(tag))
        if self._lean:
            head = [repr(now), str(deadline), request_id, repr(until)]
            command = self._reserve_command(tag, zkey, zname, head, counters)
            raw = await self._run_packed(self._reserve, command, hash_key(tag))
        else:
            raw = await self._run(
                self._reserve,
                [hash_key(tag), zkey],
                self._args(
                    f"aigw:{{{tag}}}:",
                    [repr(now), str(deadline), request_id, repr(until), zname],
                    counters,
                ),
            )
        return self._reserved(raw)

    @staticmethod
    def _args(prefix: str, args: list[str], counters: Sequence[Counter]) -> list[str]:
        for c in counters:
            args += [
                c.kind.value,
                "" if c.kind is CounterKind.LEASE else c.key.removeprefix(prefix),
                str(c.limit),
                str(c.amount),
                repr(c.param),
                "1" if c.enforce else "0",
            ]
        return args

    def _reserved(self, raw: list[bytes]) -> ReserveResult:
        try:
            status = raw[0]
            if status == b"3":
                error = StoreUnavailable("redis ran the reservation after its give-up deadline")
                error.maybe_applied = False
                raise error
            over = tuple(int(i) for i in raw[3].split(b",")) if raw[3] else ()
            return ReserveResult(
                ok=status != b"0",
                failed=int(raw[1]),
                retry_after=float(raw[2]),
                levels=tuple(map(float, raw[4:])),
                over=over,
                duplicate=status == b"2",
            )
        except (IndexError, TypeError, ValueError, AttributeError) as exc:
            raise self._unavailable(exc, sent=True) from exc

    async def renew(
        self, tag: str, request_id: str, counters: Sequence[Counter], now: float, until: float
    ) -> bool:
        check_counters(counters, now, until)
        zkey, _ = zset_of(tag, counters)
        raw: Any = await self._run(self._renew, [zkey], [repr(now), request_id, repr(until)])
        return bool(raw == 1)

    async def reconcile(
        self,
        tag: str,
        request_id: str,
        counters: Sequence[Counter],
        actual: Sequence[int],
        now: float,
    ) -> tuple[float, ...] | None:
        if self._lean:
            command = self._reconcile_packed(tag, request_id, counters, actual, now)
            raw = await self._run_packed(self._reconcile, command, hash_key(tag))
            return self._reconciled(raw)
        zkey, _ = zset_of(tag, counters)
        prefix = f"aigw:{{{tag}}}:"
        args = [repr(now), request_id]
        for c, amount in zip(counters, actual, strict=True):
            lease = c.kind is CounterKind.LEASE
            delta = -1 if lease else amount - c.amount
            args += [c.kind.value, "" if lease else c.key.removeprefix(prefix), str(delta)]
            args.append("0" if lease else repr(c.param))
        return self._reconciled(await self._run(self._reconcile, [hash_key(tag), zkey], args))

    def reconcile_nowait(
        self,
        tag: str,
        request_id: str,
        counters: Sequence[Counter],
        actual: Sequence[int],
        now: float,
    ) -> asyncio.Future[Any] | None:
        """:meth:`reconcile` without a coroutine (the settlement of every call): the command
        sent now, the future of its reply for :meth:`reconciled_reply`; None when it cannot
        go out at once (not one lean node's open connection, or backing off after a
        failure): then :meth:`reconcile`."""
        client = self._client
        if not isinstance(client, RespClient) or time.monotonic() < self._down_until:
            return None
        return client.packed_nowait(self._reconcile_packed(tag, request_id, counters, actual, now))

    def _reconcile_packed(
        self,
        tag: str,
        request_id: str,
        counters: Sequence[Counter],
        actual: Sequence[int],
        now: float,
    ) -> bytes:
        """The RECONCILE call of :meth:`reconcile` for a lean client, encoded."""
        zkey, _ = zset_of(tag, counters)
        return self._reconcile_command(tag, zkey, [repr(now), request_id], counters, actual)

    def reconciled_reply(self, reply: asyncio.Future[Any]) -> tuple[float, ...] | None:
        """What :meth:`reconcile` returns or raises, from a done future of
        :meth:`reconcile_nowait`; :class:`ScriptNotLoaded` for NOSCRIPT."""
        try:
            raw = reply.result()
            if isinstance(raw, RespError):
                raise raw
        except self._failures as exc:
            if isinstance(exc, RespError) and str(exc).startswith("NOSCRIPT"):
                raise ScriptNotLoaded(str(exc)) from exc
            raise self._script_failed(exc) from exc
        return self._reconciled(raw)

    def _reconciled(self, raw: list[bytes]) -> tuple[float, ...] | None:
        try:
            if raw[0] == b"0":
                return None
            return tuple(map(float, raw[1:]))
        except (IndexError, TypeError, ValueError) as exc:
            raise self._unavailable(exc, sent=True) from exc

    async def _command(self, *args: str, key: str | None = None) -> Any:
        if isinstance(self._client, RespClient | ClusterClient):
            return await self._client.command(*args, key=key)
        return await self._client.execute_command(*args)  # type: ignore[no-untyped-call]

    async def read(self, counters: Sequence[Counter], now: float) -> tuple[float, ...]:
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("redis is unreachable (retrying shortly)")
        calls = []
        for c in counters:
            tag = c.key.split("{", 1)[1].split("}", 1)[0]
            field = c.key.removeprefix(f"aigw:{{{tag}}}:")
            hkey = hash_key(tag)
            if c.kind is CounterKind.BUCKET:
                calls.append(self._command("HMGET", hkey, field + ".l", field + ".t", key=hkey))
            elif c.kind is CounterKind.LEASE:
                calls.append(self._command("ZCOUNT", c.key, f"({now!r}", "+inf", key=c.key))
            else:
                calls.append(self._command("HMGET", hkey, field + ".v", field + ".w", key=hkey))
        try:
            replies = await asyncio.gather(*calls)
        except self._failures as exc:
            raise self._unavailable(exc, sent=False) from exc
        levels: list[float] = []
        for c, reply in zip(counters, replies, strict=True):
            if c.kind is CounterKind.BUCKET:
                level = float(reply[0] or 0) - max(0.0, now - float(reply[1] or now)) * c.param
                levels.append(max(0.0, level))
            elif c.kind is CounterKind.LEASE:
                levels.append(float(reply or 0))
            else:
                same = reply[1] is not None and float(reply[1]) == c.param
                levels.append(float(reply[0] or 0) if same else 0.0)
        return tuple(levels)
