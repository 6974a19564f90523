"""``aigw fake-provider``: serve the fake LLM provider on a loopback port.

Used by the demo, by tests that want the fake in a separate process, and by the benchmarks as
the upstream. The API key may come from ``--api-key`` or ``AIGW_FAKE_API_KEY``; this is the
one place the fake's settings are read from the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flavor", choices=("openai", "anthropic"), default="openai")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    parser.add_argument("--port", type=int, default=0, help="port (0: a free one, printed)")
    parser.add_argument(
        "--api-key",
        default=None,
        help="key clients must present (default: $AIGW_FAKE_API_KEY; unset accepts any)",
    )
    parser.add_argument("--model", action="append", default=[], help="model to list (repeat)")
    parser.add_argument(
        "--record-limit", type=int, default=10_000, help="exchanges kept for GET /_fake/requests"
    )


def run(args: argparse.Namespace) -> int:
    from aigw_fakeprovider import FakeProviderSettings, serve  # noqa: PLC0415 - lazy by design

    settings = FakeProviderSettings(
        flavor=args.flavor,
        api_key=args.api_key if args.api_key is not None else os.environ.get("AIGW_FAKE_API_KEY"),
        models=tuple(args.model),
        record_limit=args.record_limit,
    )

    def ready(base_url: str) -> None:
        print(f"aigw fake-provider ({settings.flavor}) listening on {base_url}", flush=True)

    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        runner: asyncio.Runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with contextlib.suppress(KeyboardInterrupt), runner:
        runner.run(serve(settings, args.host, args.port, ready))
    print("aigw fake-provider stopped", file=sys.stderr)
    return 0
