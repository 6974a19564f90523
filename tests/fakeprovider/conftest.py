"""Fixtures: a fake provider of each flavor on a free loopback port, and real SDK clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import openai
import pytest

from aigw_fakeprovider import FakeProvider

KEY = "sk-upstream-test"


@pytest.fixture
async def openai_fake() -> AsyncIterator[FakeProvider]:
    async with FakeProvider("openai", api_key=KEY) as fake:
        yield fake


@pytest.fixture
async def anthropic_fake() -> AsyncIterator[FakeProvider]:
    async with FakeProvider("anthropic", api_key=KEY) as fake:
        yield fake


@pytest.fixture
async def oai(openai_fake: FakeProvider) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=openai_fake.openai_base_url, api_key=KEY, max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def claude(anthropic_fake: FakeProvider) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(base_url=anthropic_fake.base_url, api_key=KEY, max_retries=0)
    yield client
    await client.close()
