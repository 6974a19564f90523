"""One "sidecar" of the multi-process accuracy test: the governance engine against Redis.

Run as ``python engine_worker.py REDIS_URL BUNDLE_PATH REQUESTS NOW [TLS_JSON [hold]]``. It
prints ``ready``, waits for a line on stdin (so every worker starts at once), fires REQUESTS
concurrent requests (reserve, a yield to the loop, settle with usage equal to the
reservation) and prints a JSON summary. NOW fixes the clock so rate-limit buckets do not
drain mid-test and the expected count is exact. ``hold`` (concurrency): every admitted
request keeps its lease until a second line arrives on stdin, after the summary.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

from aigw_contract import parse_bundle
from aigw_sidecar.governance import (
    Denied,
    Governor,
    Grant,
    ManualClock,
    PodIdentity,
    RedisStore,
    TlsSettings,
    Usage,
)

POD = PodIdentity("team-a", "sa", {"app": "support"})
BODY = {"model": "chat", "max_tokens": 91, "messages": [{"role": "user", "content": "hello"}]}


async def main(
    url: str, bundle_bytes: bytes, requests: int, now: float, tls: TlsSettings, hold: bool
) -> None:
    store = RedisStore.from_url(url, timeout=5.0, tls=tls)
    governor = Governor(POD, store, clock=ManualClock(now))
    view = governor.view(parse_bundle(bundle_bytes))
    await store.client.command("PING", key=None)  # type: ignore[call-arg]
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    outcomes: Counter[str] = Counter()
    held: list[Grant] = []

    async def one(i: int) -> None:
        admission = governor.admit(view, request_id=f"{id(governor)}-{i}", body=BODY, route="chat")
        try:
            grant = await governor.limit(view, admission)
        except Denied as denied:
            outcomes[denied.kind.value] += 1
            return
        outcomes["granted"] += 1
        if hold:
            held.append(grant)
            return
        await asyncio.sleep(0)
        c = admission.constraints
        await governor.settle(grant, Usage(c.prompt_tokens, c.max_output_tokens))

    await asyncio.gather(*(one(i) for i in range(requests)))
    print(json.dumps(outcomes), flush=True)
    if hold:
        await loop.run_in_executor(None, sys.stdin.readline)
        for grant in held:
            c = grant.admission.constraints
            await governor.settle(grant, Usage(c.prompt_tokens, c.max_output_tokens))
    await governor.aclose()


if __name__ == "__main__":
    bundle = Path(sys.argv[2]).read_bytes()
    tls_fields = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    files = {k: Path(v) for k, v in tls_fields.items() if k.endswith("_file")}
    tls = TlsSettings(**files, server_name=tls_fields.get("server_name"))
    hold = len(sys.argv) > 6 and sys.argv[6] == "hold"
    asyncio.run(main(sys.argv[1], bundle, int(sys.argv[3]), float(sys.argv[4]), tls, hold))
