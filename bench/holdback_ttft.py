"""What the stream hold-back window costs in time to first token, with a model that streams.

``make bench``'s upstream sends a whole answer at once, so there the window costs CPU only.
This script measures it the way a caller feels it: a real sidecar (in process) in front of
the fake provider streaming one word every ``--gap-ms``, redaction off vs strict/mask, the
same prompt, interleaved, at c=1. TTFT is the time to the first chunk with content.
``python bench/holdback_ttft.py [--requests 40] [--gap-ms 20]``. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from aigw_contract import compile_bundle, parse_documents
from aigw_fakeprovider import FakeProvider
from aigw_sidecar import SidecarServer, SidecarSettings

REPLIES = {
    "prose": "The order shipped on Monday and should arrive by the end of the week",
    "digits": "4412 9921 7731 0043 is your reference and the order shipped on Monday",
}


def _bundle(base_url: str) -> bytes:
    def policy(name: str, profile: str) -> dict[str, Any]:
        use_case = {"name": "default", "routes": ["chat"], "redaction": {"profile": profile},
                    "promptInjection": {"mode": "off"}}  # fmt: skip
        return {
            "apiVersion": "aigw.dev/v1alpha1",
            "kind": "AIPolicy",
            "metadata": {"name": name, "namespace": "bench"},
            "spec": {"selector": {"matchLabels": {"row": name}}, "useCases": [use_case]},
        }

    route = {
        "apiVersion": "aigw.dev/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": "chat", "namespace": "bench"},
        "spec": {"backends": [{"name": "fake", "provider": "openai-compatible",
                               "model": "m", "baseURL": base_url,
                               "pricing": {"inputPerMillionTokensUSD": "1",
                                           "outputPerMillionTokensUSD": "1"}}]},
    }  # fmt: skip
    text = "\n---\n".join(
        json.dumps(d) for d in (route, policy("off", "off"), policy("on", "strict"))
    )
    parsed, problems = parse_documents(text.encode(), "bench")
    assert not problems, problems
    when = datetime(2026, 1, 1, tzinfo=UTC)
    return compile_bundle([d.resource for d in parsed], namespace="bench", generated_at=when,
                          revision=1).to_json_bytes()  # fmt: skip


async def _ttft(session: aiohttp.ClientSession, url: str) -> float:
    body = {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    start = time.perf_counter()
    async with session.post(url, json=body) as response:
        async for line in response.content:
            if (
                line.startswith(b"data: {")
                and b'"content":"' in line
                and b'"content":""' not in line
            ):
                return time.perf_counter() - start
    raise RuntimeError("no content")


async def main(requests: int, gap_ms: int) -> None:
    async with FakeProvider("openai") as fake:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bundle.json"
            path.write_bytes(_bundle(fake.openai_base_url))
            servers = {}
            for row in ("off", "on"):
                settings = SidecarSettings(bundle_path=path, port=0, admin_port=0,
                                           admin_host="127.0.0.1", pod_labels={"row": row},
                                           secrets_dir=Path(tmp))  # fmt: skip
                servers[row] = SidecarServer(settings)
                await servers[row].__aenter__()
            try:
                print(
                    f"| reply | redaction | TTFT p50 (ms) | TTFT p90 (ms) | gap {gap_ms} ms/word |"
                )
                print("|---|---|---:|---:|---|")
                async with aiohttp.ClientSession() as session:
                    for kind, reply in REPLIES.items():
                        words = reply.split(" ")
                        pieces = [words[0]] + [" " + w for w in words[1:]]
                        times: dict[str, list[float]] = {"off": [], "on": []}
                        for _ in range(requests):
                            for row, server in servers.items():
                                fake.queue_fault(
                                    reply_pieces=tuple(pieces), chunk_latency_ms=gap_ms
                                )
                                url = f"http://127.0.0.1:{server.api_port}/v1/chat/completions"
                                times[row].append(await _ttft(session, url))
                        for row in ("off", "on"):
                            data = sorted(times[row])
                            p50 = statistics.median(data) * 1000
                            p90 = data[int(len(data) * 0.9) - 1] * 1000
                            label = "strict, mask" if row == "on" else "off"
                            print(f"| {kind} | {label} | {p50:.1f} | {p90:.1f} | |")
            finally:
                for server in servers.values():
                    await server.__aexit__(None, None, None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--gap-ms", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.gap_ms))
