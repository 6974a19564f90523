"""Redis Cluster for the governance scripts: the lean client, one connection per node.

Why not redis-py's cluster client: it costs every sidecar that loads it ~20 MB of RSS
(``redis.asyncio`` pulls in ``cryptography`` and ``opentelemetry``) and several times the
CPU per command of :class:`~.resp.RespClient` (see the figures in docs/governance.md),
while the store sends only single-slot commands: every key of a request shares the
``{namespace:tenant}`` hash tag, so each script runs on the one node that owns the slot.

What it does: learns the slot map with ``CLUSTER SLOTS`` from the seed nodes, sends each
command to the node owning its key's slot (CRC16 of the hash tag, mod 16384), and follows
the cluster's redirections: ``MOVED`` (the slot lives elsewhere now: the map is updated at
once and refreshed in full in the background) and ``ASK`` (a slot migrating: ``ASKING``
and the command go to the target node back to back, the map unchanged). A node that cannot
be reached, or ``CLUSTERDOWN``/``TRYAGAIN``, fails the command (the policy's fail mode
applies) and marks the map stale, so the next command asks the cluster again: after a
failover the promoted replica is found without a restart (a refresh that fails keeps the
map it had, so the other shards' commands still go out). A node that failed is skipped
for ``retry_interval`` seconds (its commands fail at once, without network I/O) while the
other nodes' tenants are served as usual: an outage of one shard is one shard's.

URLs: ``redis+cluster://[user:password@]host:port[,host:port...]`` (``rediss+cluster://``
with TLS); every node is reached with the same credentials and TLS settings.
"""

from __future__ import annotations

import asyncio
import binascii
import random
import time
from urllib.parse import unquote, urlparse

from .resp import Arg, Reply, RespClient, RespError, TlsSettings, _pack

__all__ = ["ClusterClient", "key_slot"]

SLOTS = 16384
_MAX_REDIRECTS = 3
_ASKING = _pack(("ASKING",))
_REFRESH_EVERY = 0.5
"""Least time between two full slot-map refreshes (seconds)."""


def key_slot(key: str | bytes) -> int:
    """The cluster slot of ``key``: CRC16 (XMODEM) of its hash tag, if any, mod 16384."""
    data = key.encode() if isinstance(key, str) else key
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    return binascii.crc_hqx(data, 0) % SLOTS


class ClusterClient:
    """Commands routed by key across the nodes of one Redis Cluster."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.5,
        tls: TlsSettings | None = None,
        retry_interval: float = 0.5,
    ) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("redis+cluster", "rediss+cluster"):
            raise ValueError("a cluster URL is redis+cluster:// or rediss+cluster://")
        self._scheme = "rediss" if parsed.scheme == "rediss+cluster" else "redis"
        userinfo = ""
        if parsed.password is not None:
            user = unquote(parsed.username or "")
            userinfo = f"{user}:{unquote(parsed.password)}@"
        self._userinfo = userinfo
        self._tls = tls
        self.timeout = timeout
        hosts = parsed.netloc.rsplit("@", 1)[-1]
        self._seeds = [self._address(part) for part in hosts.split(",") if part]
        if not self._seeds:
            raise ValueError("a cluster URL names at least one node")
        self._nodes: dict[tuple[str, int], RespClient] = {}
        self._owner: list[tuple[str, int] | None] = [None] * SLOTS
        self._stale = True
        self._refreshed = -_REFRESH_EVERY
        self._refreshing: asyncio.Task[None] | None = None
        self._retry_interval = retry_interval
        self._closed = False
        self._down: dict[tuple[str, int], float] = {}
        """Node -> monotonic time until which it is not tried again."""

    @staticmethod
    def _address(part: str) -> tuple[str, int]:
        host, _, port = part.rpartition(":")
        return (host.strip("[]") or "127.0.0.1", int(port or 6379))

    def node(self, address: tuple[str, int]) -> RespClient:
        """The connection to one node (made on first use)."""
        client = self._nodes.get(address)
        if client is None:
            if self._closed:  # a late task must not open a connection nobody will close
                raise ConnectionError("the redis cluster client is closed")
            host, port = address
            url = f"{self._scheme}://{self._userinfo}{host}:{port}/0"
            client = self._nodes[address] = RespClient(url, timeout=self.timeout, tls=self._tls)
        return client

    async def _refresh(self) -> None:
        """Rebuild the slot map from the first node (seeds, then known ones) that answers."""
        self._refreshed = time.monotonic()
        candidates = list(dict.fromkeys([*self._seeds, *self._nodes]))
        random.shuffle(candidates)
        last: BaseException | None = None
        for address in candidates:
            try:
                reply = await self.node(address).command("CLUSTER", "SLOTS")
            except (ConnectionError, OSError, RespError) as exc:
                last = exc
                continue
            owner: list[tuple[str, int] | None] = [None] * SLOTS
            for entry in reply:
                start, end, master = int(entry[0]), int(entry[1]), entry[2]
                host = master[0].decode() if master[0] else address[0]
                where = (host, int(master[1]))
                owner[start : end + 1] = [where] * (end - start + 1)
            self._owner = owner
            self._stale = False
            return
        raise ConnectionError(f"no cluster node answered CLUSTER SLOTS ({last})")

    async def _ensure_map(self) -> None:
        if not self._stale:
            return
        if time.monotonic() - self._refreshed < _REFRESH_EVERY and any(self._owner):
            return  # refreshed a moment ago: use what we know until the next attempt
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())
        try:
            await asyncio.shield(self._refreshing)
        except (ConnectionError, OSError):
            if not any(self._owner):
                raise  # nothing known yet: no node to send the command to
            # The map we know still routes every shard that did not move: a failed refresh
            # must not fail their tenants too. It stays stale, so it is tried again.

    def _mark_stale(self) -> None:
        self._stale = True

    async def command(self, *args: Arg, key: str | None = None) -> Reply:
        """Send ``args`` to the node owning ``key`` (any node when None), following
        MOVED/ASK; ConnectionError when no node can answer."""
        return await self.packed(_pack(args), key=key)

    async def packed(self, *commands: bytes, key: str | None = None) -> Reply:
        """Like :meth:`command` for commands already encoded (the last one's reply)."""
        await self._ensure_map()
        if key is None:
            address = next((a for a in self._owner if a is not None), self._seeds[0])
        else:
            address = self._owner[key_slot(key)] or self._seeds[0]
        asking = False
        for _ in range(_MAX_REDIRECTS + 1):
            if time.monotonic() < self._down.get(address, 0.0):
                raise ConnectionError(f"redis node {address[0]}:{address[1]} is down (retrying)")
            client = self.node(address)
            try:
                if asking:
                    return await client.packed(_ASKING, *commands)
                return await client.packed(*commands)
            except RespError as exc:
                text = str(exc)
                kind, _, rest = text.partition(" ")
                if kind not in ("MOVED", "ASK"):
                    if kind in ("CLUSTERDOWN", "TRYAGAIN"):
                        self._mark_stale()
                    raise
                slot, _, target = rest.partition(" ")
                address = self._address(target)
                asking = kind == "ASK"
                if kind == "MOVED":
                    self._owner[int(slot)] = address
                    self._mark_stale()
            except (ConnectionError, OSError):
                self._down[address] = time.monotonic() + self._retry_interval
                self._mark_stale()
                raise
        raise ConnectionError("too many cluster redirections")

    async def aclose(self) -> None:
        self._closed = True
        task, self._refreshing = self._refreshing, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for client in list(self._nodes.values()):
            await client.aclose()
