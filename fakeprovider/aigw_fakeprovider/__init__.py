"""A fake LLM provider: the one fake in aigw's tests, and the upstream of its benchmarks.

It speaks the OpenAI (and Azure OpenAI) and Anthropic wire formats exactly as the official
SDKs read them, answers deterministically (see :mod:`aigw_fakeprovider.answers`), records what
it received (:mod:`aigw_fakeprovider.recorder`) and misbehaves on request
(:mod:`aigw_fakeprovider.faults`). It imports nothing of aigw: it is a peer, not a part.

    async with FakeProvider("openai", api_key="sk-upstream") as fake:
        client = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="sk-upstream")
        fake.queue_fault(status=429, retry_after="2")
"""

from .app import FakeProviderSettings, Flavor, build_app
from .faults import Fault, FaultQueue
from .recorder import Exchange, Recorder
from .server import FakeProvider, FakeProviderThread, serve
from .vectors import Vectors

__all__ = [
    "Exchange",
    "FakeProvider",
    "FakeProviderSettings",
    "FakeProviderThread",
    "Fault",
    "FaultQueue",
    "Flavor",
    "Recorder",
    "Vectors",
    "build_app",
    "serve",
]
