"""One "sidecar" of the multi-process accuracy test: the governance engine against Redis.

Run as ``python engine_worker.py REDIS_URL BUNDLE_PATH REQUESTS NOW``. It prints ``ready``,
waits for a line on stdin (so every worker starts at once), fires REQUESTS concurrent
requests (reserve, a yield to the loop, settle with usage equal to the reservation) and
prints a JSON summary. NOW fixes the clock so rate-limit buckets do not drain mid-test and
the expected count is exact.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

from aigw_contract import parse_bundle
from aigw_sidecar.governance import Denied, Governor, ManualClock, PodIdentity, RedisStore, Usage
from aigw_sidecar.governance.resp import RespClient

POD = PodIdentity("team-a", "sa", {"app": "support"})
BODY = {"model": "chat", "max_tokens": 91, "messages": [{"role": "user", "content": "hello"}]}


async def main(url: str, bundle_bytes: bytes, requests: int, now: float) -> None:
    client = RespClient(url, timeout=5.0)
    store = RedisStore(client)
    governor = Governor(POD, store, clock=ManualClock(now))
    view = governor.view(parse_bundle(bundle_bytes))
    await client.command("PING")
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    outcomes: Counter[str] = Counter()

    async def one(i: int) -> None:
        admission = governor.admit(view, request_id=f"{id(governor)}-{i}", body=BODY, route="chat")
        try:
            grant = await governor.limit(view, admission)
        except Denied as denied:
            outcomes[denied.kind.value] += 1
            return
        await asyncio.sleep(0)
        c = admission.constraints
        await governor.settle(grant, Usage(c.prompt_tokens, c.max_output_tokens))
        outcomes["granted"] += 1

    await asyncio.gather(*(one(i) for i in range(requests)))
    await client.aclose()
    print(json.dumps(outcomes), flush=True)


if __name__ == "__main__":
    bundle = Path(sys.argv[2]).read_bytes()
    asyncio.run(main(sys.argv[1], bundle, int(sys.argv[3]), float(sys.argv[4])))
