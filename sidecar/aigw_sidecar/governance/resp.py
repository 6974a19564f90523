"""A lean Redis client for the governance scripts: one pipelined RESP2 connection, TLS too.

Why not redis-py on the hot path: measured on this project's 2-core machines under uvloop,
one redis-py asyncio command costs ~170 us of CPU, this client ~25-30 us, for the same
round trip; with one EVALSHA per reserve and one per settle that is the difference between
Redis state fitting the sidecar's latency budget or not. The store needs only EVALSHA,
SCRIPT LOAD, a few reads and PING, so the client is small: requests are written in order on
one connection and replies are matched to waiters first-in first-out.

Parsing and encoding use hiredis's C reader and ``pack_command`` (the redis organisation's
parser, a 0.9 MB extension: about 1 MB of RSS) when it is installed, as it is by default:
measured on this machine, parsing a RESERVE reply takes 3.5 us against 32 us in Python and
encoding its command 14 us against 30 us (load average 12; the ratio is what counts). The
Python parser and encoder below stay as the fallback and produce the same results. The
governance store goes further for its two per-call scripts: it sends them already encoded
(:meth:`RespClient.packed`, :func:`bulk`), each counter's fixed arguments encoded once per
plan, so per call only the time, the reservation id and the amounts are (~7 us against ~11
us for the 37 arguments of a typical RESERVE, measured with timeit on this machine).

Reply deadlines: one watchdog timer per connection, armed at the oldest waiter's deadline
and moved along as replies come in, instead of a timer created and cancelled per command.

Writes are coalesced: commands issued in the same event-loop turn (concurrent requests)
leave in one ``write`` at the end of that turn, so a burst costs one system call and, on
the server, one read; no command waits longer than the current turn for it.

TLS (``rediss://``): :class:`TlsSettings` names the CA bundle that verifies the server, an
optional client certificate and key (mutual TLS), and the name to verify the server's
certificate against (default: the URL's host). Clusters use one client per node
(:mod:`.resp_cluster`); ``command(..., key=...)`` lets both route by key.

Failure handling: connecting and every reply are bounded by ``timeout``. A timeout or a lost
connection fails every waiter with :class:`ConnectionError` and drops the connection (a late
reply could otherwise be handed to the wrong waiter); the next command reconnects, so a
Redis that comes back is used again without a restart. Server error replies (NOSCRIPT,
WRONGTYPE, ...) raise :class:`RespError` and leave the connection usable.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import unquote, urlparse

try:  # the C reader, when installed (a dependency of aigw; the Python one is the fallback)
    import hiredis
except ImportError:  # pragma: no cover - exercised where the wheel is missing
    hiredis = None  # type: ignore[assignment]

__all__ = ["Commands", "RespClient", "RespError", "Script", "TlsSettings", "array", "bulk"]

Reply = Any
Arg = bytes | str | int | float


class Commands(Protocol):
    """What the store needs of a client: one node (:class:`RespClient`) or a cluster."""

    async def command(self, *args: Arg, key: str | None = None) -> Reply: ...

    async def packed(self, *commands: bytes, key: str | None = None) -> Reply: ...

    async def aclose(self) -> None: ...


_INCOMPLETE = object()


class RespError(Exception):
    """An error reply from the server (the connection stays usable)."""


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """How a ``rediss://`` connection is verified and authenticated."""

    ca_file: Path | None = None
    """PEM bundle of the CAs that may sign the server's certificate (None: the system's)."""
    cert_file: Path | None = None
    """Client certificate (PEM) for servers that require one (``tls-auth-clients``)."""
    key_file: Path | None = None
    """Private key of ``cert_file`` (PEM; None: it is in ``cert_file``)."""
    server_name: str | None = None
    """Name the server's certificate must carry (SNI too); None: the URL's host."""

    def context(self) -> ssl.SSLContext:
        """A client context: TLS 1.2 or newer, the server verified, the client certificate."""
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file is not None:
            context.load_cert_chain(
                str(self.cert_file), str(self.key_file) if self.key_file else None
            )
        return context


def _encode(args: tuple[Arg, ...]) -> bytes:
    """A RESP command. Built as one latin-1 string (one byte per character, so ``len`` is
    the byte length) and encoded once: fewer allocations than joining encoded pieces."""
    out = [f"*{len(args)}\r\n"]
    for arg in args:
        if isinstance(arg, bytes):
            text = arg.decode("latin-1")
        else:
            text = arg if isinstance(arg, str) else str(arg)
            if not text.isascii():
                text = text.encode().decode("latin-1")
        out.append(f"${len(text)}\r\n{text}\r\n")
    return "".join(out).encode("latin-1")


def bulk(text: str) -> bytes:
    """One RESP bulk string: pieces of a command encoded ahead (:func:`array` heads them).
    The governance store encodes what a plan repeats once and only the per-call values
    per call (a reservation's 37 arguments re-encoded per call cost more than its parse)."""
    data = text.encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


def array(count: int) -> bytes:
    """The header of a command of ``count`` bulk strings."""
    return b"*%d\r\n" % count


_pack: Callable[[tuple[Arg, ...]], bytes] = (
    hiredis.pack_command if hiredis is not None else _encode  # type: ignore[assignment]
)


def _parse(buf: bytearray, pos: int) -> tuple[Reply, int]:  # noqa: PLR0911 - one per type
    """One reply from ``buf[pos:]``: (reply, next position) or (_INCOMPLETE, pos)."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return _INCOMPLETE, pos
    kind = buf[pos]
    line = bytes(buf[pos + 1 : end])
    after = end + 2
    if kind == 43:  # '+'
        return line, after
    if kind == 45:  # '-'
        return RespError(line.decode(errors="replace")), after
    if kind == 58:  # ':'
        return int(line), after
    if kind == 36:  # '$'
        size = int(line)
        if size < 0:
            return None, after
        if len(buf) < after + size + 2:
            return _INCOMPLETE, pos
        return bytes(buf[after : after + size]), after + size + 2
    if kind == 42:  # '*'
        count = int(line)
        if count < 0:
            return None, after
        items: list[Reply] = []
        for _ in range(count):
            item, after = _parse(buf, after)
            if item is _INCOMPLETE:
                return _INCOMPLETE, pos
            items.append(item)
        return items, after
    raise ConnectionError(f"unexpected RESP type byte {kind!r}")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.made: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done once ``connection_lost`` ran (a TLS close needs a round trip first)."""
        """Done once ``connection_made`` ran (uvloop may return from create_connection first)."""
        self.waiters: deque[asyncio.Future[Reply]] = deque()
        self.deadlines: deque[float] = deque()
        """Loop time by which each waiter's reply is due (one per waiter, same order)."""
        self.watchdog: asyncio.TimerHandle | None = None
        """One timer per connection, at the oldest waiter's deadline (not one per command)."""
        self.buf = bytearray()
        self.closed = False
        self.outgoing: list[bytes] = []
        """Commands written this event-loop turn, sent together by :meth:`flush`."""
        self.reader: Any = (
            hiredis.Reader(replyError=RespError, protocolError=ConnectionError)
            if hiredis is not None
            else None
        )

    def send(self, data: bytes) -> None:
        if not self.outgoing:
            asyncio.get_running_loop().call_soon(self.flush)
        self.outgoing.append(data)

    def expect(self, waiter: asyncio.Future[Reply], due: float) -> None:
        """Queue ``waiter`` for the next reply, due by loop time ``due``: past it, the
        connection fails (every waiter with it)."""
        self.waiters.append(waiter)
        self.deadlines.append(due)
        if self.watchdog is None:
            self.watchdog = asyncio.get_running_loop().call_at(due, self._check)

    def _next_waiter(self) -> asyncio.Future[Reply]:
        """The waiter the reply just parsed is for (its deadline goes with it)."""
        self.deadlines.popleft()
        return self.waiters.popleft()

    def _check(self) -> None:
        self.watchdog = None
        if self.closed or not self.deadlines:
            return
        loop = asyncio.get_running_loop()
        due = self.deadlines[0]
        if due <= loop.time():
            self.fail(ConnectionError("redis did not answer in time"))
            return
        self.watchdog = loop.call_at(due, self._check)

    def flush(self) -> None:
        data, self.outgoing = self.outgoing, []
        if data and self.transport is not None and not self.closed:
            self.transport.write(b"".join(data) if len(data) > 1 else data[0])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have its methods.
        self.transport = cast(asyncio.Transport, transport)
        if not self.made.done():
            self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.reader is not None:
            self._received_c(data)
            return
        buf = self.buf
        buf += data
        pos = 0
        try:
            while self.waiters and pos < len(buf):
                reply, pos_next = _parse(buf, pos)
                if reply is _INCOMPLETE:
                    break
                pos = pos_next
                waiter = self._next_waiter()
                if not waiter.done():
                    waiter.set_result(reply)
        except (ConnectionError, ValueError) as exc:
            self.fail(ConnectionError(f"bad reply from redis: {exc}"))
            return
        del buf[:pos]

    def _received_c(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        try:
            while self.waiters:
                reply = reader.gets()
                if reply is False:
                    break
                waiter = self._next_waiter()
                if not waiter.done():
                    waiter.set_result(reply)
        except (ConnectionError, ValueError) as exc:
            self.fail(ConnectionError(f"bad reply from redis: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        self.fail(ConnectionError("connection to redis lost"))

    def fail(self, exc: Exception) -> None:
        self.closed = True
        self.deadlines.clear()
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()


class RespClient:
    """One pipelined connection to ``redis[s]://[[user]:password@]host:port/db``."""

    def __init__(self, url: str, *, timeout: float = 0.5, tls: TlsSettings | None = None) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "rediss"):
            raise ValueError("the governance store speaks redis:// and rediss:// URLs")
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 6379
        self.username = unquote(parsed.username) if parsed.username else None
        self.password = unquote(parsed.password) if parsed.password else None
        self.db = int(parsed.path.lstrip("/") or 0)
        self.timeout = timeout
        self.tls = (tls or TlsSettings()) if parsed.scheme == "rediss" else None
        self._ssl = self.tls.context() if self.tls is not None else None
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._closed = False

    def is_closed(self) -> bool:
        """Closed by :meth:`aclose`: it opens no connection any more."""
        return self._closed

    async def _connection(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and not protocol.closed:
            return protocol
        if self.is_closed():  # a late task must not open a connection nobody will close
            raise ConnectionError("the redis client is closed")
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            protocol = self._protocol
            if protocol is not None and not protocol.closed:
                return protocol
            loop = asyncio.get_running_loop()
            extra: dict[str, Any] = {}
            if self._ssl is not None:
                assert self.tls is not None
                extra = {"ssl": self._ssl, "server_hostname": self.tls.server_name or self.host}
            try:
                async with asyncio.timeout(self.timeout):
                    _, protocol = await loop.create_connection(
                        _Protocol, self.host, self.port, **extra
                    )
                    await protocol.made
            except TimeoutError as exc:
                raise ConnectionError("connecting to redis timed out") from exc
            except ssl.SSLError as exc:  # a refused certificate is an unreachable Redis
                raise ConnectionError(f"TLS with redis failed: {exc.reason}") from exc
            if self.is_closed():  # closed while connecting: this connection is nobody's
                protocol.fail(ConnectionError("the redis client is closed"))
                raise ConnectionError("the redis client is closed")
            self._protocol = protocol
            if self.password is not None:
                user = (self.username,) if self.username is not None else ()
                await self._send(protocol, ("AUTH", *user, self.password))
            if self.db:
                await self._send(protocol, ("SELECT", self.db))
            return protocol

    async def _send(self, protocol: _Protocol, *commands: tuple[Arg, ...] | bytes) -> Reply:
        """Send ``commands`` (argument tuples, or commands already encoded) back to back;
        the last one's reply (earlier errors raise). The connection's watchdog fails it
        when a reply is not in within ``timeout``."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.timeout
        if len(commands) == 1:  # the hot path (every script call): no lists, no join
            command = commands[0]
            one: asyncio.Future[Reply] = loop.create_future()
            protocol.expect(one, due)
            protocol.send(command if isinstance(command, bytes) else _pack(command))
            reply = await one
            if isinstance(reply, RespError):
                raise reply
            return reply
        waiters: list[asyncio.Future[Reply]] = []
        for _ in commands:
            waiter: asyncio.Future[Reply] = loop.create_future()
            protocol.expect(waiter, due)
            waiters.append(waiter)
        protocol.send(b"".join(c if isinstance(c, bytes) else _pack(c) for c in commands))
        replies = [await waiter for waiter in waiters]
        for reply in replies:
            if isinstance(reply, RespError):
                raise reply
        return replies[-1]

    async def command(self, *args: Arg, key: str | None = None) -> Reply:
        """Send one command and return its reply; raise ConnectionError when unreachable.
        ``key`` is for routing in a cluster; one connection ignores it."""
        return await self._send(await self._connection(), args)

    async def command_after(self, first: tuple[Arg, ...], *args: Arg) -> Reply:
        """``first`` then ``args``, adjacent on the connection (``ASKING`` + a command)."""
        return await self._send(await self._connection(), first, args)

    async def packed(self, *commands: bytes, key: str | None = None) -> Reply:
        """Like :meth:`command` for commands already RESP-encoded (:func:`bulk`), sent
        back to back; the last one's reply. ``key`` routes in a cluster."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._connection()
        return await self._send(protocol, *commands)

    def packed_nowait(self, command: bytes) -> asyncio.Future[Reply] | None:
        """Send one command already encoded now, without a coroutine: the future of its
        reply (an error reply is its result, a :class:`RespError`, not raised; a lost or
        timed-out connection its exception), or None when no connection is open (then
        :meth:`packed` connects). For a caller that finishes in the future's callback."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            return None
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Reply] = loop.create_future()
        protocol.expect(reply, loop.time() + self.timeout)
        protocol.send(command)
        return reply

    def command_nowait(self, *args: Arg) -> asyncio.Future[Reply] | None:
        """:meth:`command` without a coroutine, as :meth:`packed_nowait` sends."""
        return self.packed_nowait(_pack(args))

    async def aclose(self) -> None:
        self._closed = True
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.closed = True
            protocol.transport.close()
            # A TLS transport closes its socket only after the close_notify exchange: wait
            # for it (briefly), so no socket outlives the client.
            try:
                async with asyncio.timeout(self.timeout):
                    await asyncio.shield(protocol.lost)
            except TimeoutError:
                protocol.transport.abort()


class Script:
    """A Lua script run by EVALSHA, loaded again whenever the server answers NOSCRIPT (on
    the node that said so, in a cluster)."""

    def __init__(self, client: Commands, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis' script id

    def head(self, numkeys: int) -> bytes:
        """``EVALSHA sha numkeys`` as bulk strings: what every call of it starts with (the
        array header, which counts all arguments, comes before)."""
        return bulk("EVALSHA") + bulk(self.sha) + bulk(str(numkeys))

    async def packed(self, command: bytes, key: str | None) -> Reply:
        """Run an ``EVALSHA`` of this script already encoded (:meth:`head` and the rest)."""
        try:
            return await self.client.packed(command, key=key)
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.loaded(command, key)

    async def loaded(self, command: bytes, key: str | None) -> Reply:
        """Load the script (the server answered NOSCRIPT) and run ``command`` again."""
        await self.client.command("SCRIPT", "LOAD", self.source, key=key)
        return await self.client.packed(command, key=key)

    async def __call__(self, keys: list[str], args: list[str]) -> Reply:
        key = keys[0] if keys else None
        try:
            return await self.client.command("EVALSHA", self.sha, len(keys), *keys, *args, key=key)
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.client.command("SCRIPT", "LOAD", self.source, key=key)
        return await self.client.command("EVALSHA", self.sha, len(keys), *keys, *args, key=key)
