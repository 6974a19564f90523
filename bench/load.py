"""Load generation: wrk for plain requests, a small raw-socket client for streams.

Every target is driven by the same two tools, so differences are the targets' own:

* :func:`run_wrk` runs Debian's ``wrk`` with a generated Lua script (POST body, headers)
  whose ``done`` hook prints one JSON line with the request count, errors and latency
  percentiles (microseconds, from wrk's histogram). wrk always runs its full ``-d`` duration
  (a Lua ``wrk.thread:stop()`` ends the requests, not the clock), so a run is bounded by
  time only, and requests / duration is the real rate.
* Run as a script, this module is the streaming client: N keep-alive connections send
  streaming chat requests and time the first content token (TTFT) and the whole stream, with
  a minimal HTTP/1.1 parser (chunked or sized bodies) so the client costs little.
  ``python bench/load.py --url URL --body-file F --concurrency C --total N --max-seconds S``.

A body holding :data:`UNIQUE` is made unique per request by both tools: the marker becomes a
number that no earlier request of the run used (so an exact cache misses every time), spelt
in letters (:func:`unique_word`) because a 16-digit number passes a card check one time in
ten and would make redaction mask what no real prompt here holds; a body without the marker
is sent unchanged (so a cache hits).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "UNIQUE",
    "LoadResult",
    "percentile",
    "run_stream",
    "run_wrk",
    "unique_base",
    "unique_word",
]

_CONTENT = re.compile(rb'"content":\s*"[^"]')
UNIQUE = "@@unique@@"
"""Placeholder in a request body replaced by a number unique to each request of the run."""


def unique_word(n: int) -> str:
    """``n`` in base 26 with the letters a-z: no digits, so no detector takes it for data."""
    letters = ""
    while True:
        n, digit = divmod(n, 26)
        letters = chr(97 + digit) + letters
        if n == 0:
            return letters


_LUA_WORD = """local function word(n)
  local s = ""
  repeat
    local d = n % 26
    s = string.char(97 + d) .. s
    n = (n - d) / 26
  until n == 0
  return s
end"""
""":func:`unique_word` in wrk's Lua (numbers are doubles, exact below 2**53)."""


def unique_base() -> int:
    """Where a load run's request numbers start: microseconds since the epoch.

    Runs are sequential and no tool sends a request per microsecond, so numbers of two runs
    never meet, and no state outlives a run.
    """
    return time.time_ns() // 1000


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured. Latencies in microseconds."""

    requests: int
    seconds: float
    errors: int
    p50_us: float
    p99_us: float
    ttft_p50_us: float | None = None
    ttft_p99_us: float | None = None
    cpu_s: float | None = None
    """User + system CPU seconds the proxy (all threads and children) used during the run."""
    round_cpu_us: tuple[float, ...] = ()
    """CPU per call of each round a combined result is made of: their spread is the noise."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_call(self) -> float | None:
        """The proxy's CPU microseconds per request served (None: no proxy, no request)."""
        if self.cpu_s is None or not self.requests:
            return None
        return self.cpu_s / self.requests * 1e6

    def to_json(self) -> dict[str, Any]:
        data = {**self.__dict__, "rps": self.rps, "cpu_us_per_call": self.cpu_us_per_call}
        data["round_cpu_us"] = list(self.round_cpu_us)
        return data


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (which need not be sorted)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _lua(body: bytes, headers: Mapping[str, str]) -> str:
    text = body.decode()
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{text}]==]"]
    lines += [f'wrk.headers["{k}"] = [==[{v}]==]' for k, v in headers.items()]
    if UNIQUE in text:
        head, _, tail = text.partition(UNIQUE)
        lines += [
            _LUA_WORD,
            f"local n = {unique_base()}",
            f"local head, tail = [==[{head}]==], [==[{tail}]==]",
            "request = function()",
            "  n = n + 1",
            "  return wrk.format(nil, nil, nil, head .. word(n) .. tail)",
            "end",
        ]
    lines += [
        "done = function(summary, latency, requests)",
        "  local e = summary.errors",
        "  io.write(string.format("
        '\'{"wrk":1,"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,'
        '"p50":%d,"p99":%d}\\n\', '
        "summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, "
        "e.status, latency:percentile(50), latency:percentile(99)))",
        "end",
    ]
    return "\n".join(lines) + "\n"


def run_wrk(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    connections: int,
    seconds: float,
    cpus: str,
) -> LoadResult:
    """Runs wrk (one thread, pinned to ``cpus``) for whole ``seconds`` against ``url``."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua(body, headers))
    command = [
        "taskset", "-c", cpus, "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
        "--timeout", "10s", "-s", script.name, url,
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    finally:
        Path(script.name).unlink()
    line = next(x for x in done.stdout.splitlines() if x.startswith('{"wrk"'))
    data = json.loads(line)
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=data["errors"] + data["non2xx"],
        p50_us=float(data["p50"]),
        p99_us=float(data["p99"]),
    )


def run_stream(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    concurrency: int,
    total: int,
    max_seconds: float,
    cpus: str,
    python: str,
) -> LoadResult:
    """Runs this module as the streaming client in its own process, pinned to ``cpus``."""
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as body_file:
        body_file.write(body)
    command = [
        "taskset", "-c", cpus, python, __file__, "--url", url, "--body-file", body_file.name,
        "--concurrency", str(concurrency), "--total", str(total),
        "--max-seconds", str(max_seconds), "--headers", json.dumps(dict(headers)),
    ]  # fmt: skip
    try:
        timeout = max_seconds + 60
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=timeout)
    finally:
        Path(body_file.name).unlink()
    return LoadResult(**json.loads(done.stdout.splitlines()[-1]))


class _Client:
    """One keep-alive connection sending streaming requests one after another."""

    def __init__(self, host: str, port: int, request: Callable[[], bytes]) -> None:
        self.host, self.port, self.request = host, port, request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def one(self) -> tuple[float, float]:
        """Sends one request; returns (ttft, total) in seconds; raises on a failed answer."""
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader = self.reader
        request = self.request()
        start = time.perf_counter()
        ttft = 0.0
        self.writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        lowered = head.lower()
        chunked = b"transfer-encoding: chunked" in lowered
        if not chunked:
            found = re.search(rb"content-length:\s*(\d+)", lowered)
            payload = await reader.readexactly(int(found.group(1))) if found else b""
            ttft = time.perf_counter() - start if _CONTENT.search(payload) else 0.0
        else:
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await reader.readline()
                    break
                chunk = await reader.readexactly(size + 2)
                if not ttft and _CONTENT.search(chunk):
                    ttft = time.perf_counter() - start
        if b"connection: close" in lowered:
            self.writer.close()
            self.reader = self.writer = None
        if status != 200 or not ttft:
            raise RuntimeError(f"status {status}, content seen: {bool(ttft)}")
        return ttft, time.perf_counter() - start


def _requests(url: str, body: bytes, headers: Mapping[str, str]) -> Callable[[], bytes]:
    """A maker of the raw HTTP request: the same bytes each time, or a new number each time."""
    parts = urlsplit(url)
    fixed = {"Host": parts.netloc, "Content-Type": "application/json", **headers}
    head = f"POST {parts.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fixed.items())

    def build(payload: bytes) -> bytes:
        return f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload

    if UNIQUE.encode() not in body:
        request = build(body)
        return lambda: request
    before, _, after = body.partition(UNIQUE.encode())
    numbers = itertools.count(unique_base() + 1)
    return lambda: build(before + unique_word(next(numbers)).encode() + after)


async def _stream_main(args: argparse.Namespace) -> dict[str, Any]:
    parts = urlsplit(args.url)
    request = _requests(args.url, args.body, json.loads(args.headers))
    ttfts: list[float] = []
    totals: list[float] = []
    errors = 0
    deadline = time.monotonic() + args.max_seconds
    started = time.perf_counter()

    sent = 0

    async def worker() -> None:
        nonlocal errors, sent
        client = _Client(parts.hostname or "127.0.0.1", parts.port or 80, request)
        while sent < args.total and time.monotonic() < deadline:
            sent += 1  # counted before sending, so concurrent workers never exceed the total
            try:
                ttft, total = await client.one()
            except (OSError, RuntimeError, ValueError, asyncio.IncompleteReadError):
                errors += 1
                client.writer = client.reader = None
                continue
            ttfts.append(ttft)
            totals.append(total)

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "requests": len(totals),
        "seconds": elapsed,
        "errors": errors,
        "p50_us": percentile(totals, 50) * 1e6,
        "p99_us": percentile(totals, 99) * 1e6,
        "ttft_p50_us": percentile(ttfts, 50) * 1e6,
        "ttft_p99_us": percentile(ttfts, 99) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="streaming load client (TTFT)")
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--headers", default="{}")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--total", type=int, default=1000)
    parser.add_argument("--max-seconds", type=float, default=10.0)
    args = parser.parse_args()
    args.body = Path(args.body_file).read_bytes()
    import uvloop  # noqa: PLC0415 - only the client process needs it

    print(json.dumps(uvloop.run(_stream_main(args))))


if __name__ == "__main__":
    main()
