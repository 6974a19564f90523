"""The OpenAI flavor's embeddings, models, Azure paths and authentication, via the real SDK."""

from __future__ import annotations

import base64
import struct

import aiohttp
import openai
import pytest

from aigw_fakeprovider import FakeProvider

from .conftest import KEY


async def test_embeddings_float_and_base64_agree(oai: openai.AsyncOpenAI) -> None:
    floats = await oai.embeddings.create(
        model="text-embedding-3-small", input=["alpha beta", "gamma"], encoding_format="float"
    )
    assert [d.index for d in floats.data] == [0, 1]
    vector = floats.data[0].embedding
    assert len(vector) == 1536
    assert abs(sum(v * v for v in vector) - 1.0) < 1e-5
    assert floats.data[0].embedding != floats.data[1].embedding
    assert floats.usage.prompt_tokens == 3
    encoded = await oai.embeddings.create(
        model="text-embedding-3-small", input="alpha beta", encoding_format="base64"
    )
    raw = base64.b64decode(str(encoded.data[0].embedding))
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == vector
    # Without an encoding the SDK asks for base64 and decodes it itself.
    default = await oai.embeddings.create(model="text-embedding-3-small", input="alpha beta")
    assert default.data[0].embedding == vector


async def test_embeddings_dimensions_and_token_inputs(oai: openai.AsyncOpenAI) -> None:
    result = await oai.embeddings.create(
        model="text-embedding-3-small", input=[[1, 2, 3], [4]], dimensions=8
    )
    assert [len(d.embedding) for d in result.data] == [8, 8]


async def test_embeddings_reject_empty_input(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.embeddings.create(model="text-embedding-3-small", input=[])
    assert caught.value.param == "input"


async def test_models_lists_the_configured_models(oai: openai.AsyncOpenAI) -> None:
    models = [m.id async for m in oai.models.list()]
    assert "gpt-4o-mini" in models
    assert "text-embedding-3-small" in models


async def test_wrong_key_is_refused_in_openai_shape(openai_fake: FakeProvider) -> None:
    client = openai.AsyncOpenAI(
        base_url=openai_fake.openai_base_url, api_key="sk-app-key", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as caught:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    await client.close()
    assert caught.value.code == "invalid_api_key"
    assert caught.value.type == "invalid_request_error"
    assert openai_fake.recorder.last.status == 401


async def test_azure_deployment_paths_with_api_key_header(openai_fake: FakeProvider) -> None:
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=openai_fake.base_url,
        api_key=KEY,
        api_version="2024-10-21",
        max_retries=0,
    )
    completion = await client.chat.completions.create(
        model="my-deployment", messages=[{"role": "user", "content": "azure hello"}]
    )
    assert completion.choices[0].message.content == "Echo: azure hello"
    assert completion.model == "my-deployment"
    chat = openai_fake.recorder.last
    assert chat.path == "/openai/deployments/my-deployment/chat/completions"
    assert chat.query == {"api-version": "2024-10-21"}
    assert chat.header("api-key") == KEY
    assert chat.header("authorization") is None
    embedded = await client.embeddings.create(model="my-embedder", input="x", dimensions=4)
    assert len(embedded.data[0].embedding) == 4
    assert openai_fake.recorder.last.path == "/openai/deployments/my-embedder/embeddings"
    await client.close()


async def test_azure_wrong_key_is_refused(openai_fake: FakeProvider) -> None:
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=openai_fake.base_url, api_key="nope", api_version="2024-10-21", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(model="d", messages=[{"role": "user", "content": "x"}])
    await client.close()


async def test_unknown_path_is_a_404_in_openai_shape(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await oai.post("/nowhere", cast_to=object, body={})
    assert isinstance(caught.value.body, dict)
    assert "Unknown path" in caught.value.body["message"]


async def test_any_key_is_accepted_without_an_expected_key() -> None:
    async with FakeProvider("openai") as fake:
        client = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="whatever")
        completion = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "ok"}]
        )
        await client.close()
    assert completion.choices[0].message.content == "Echo: ok"


async def test_body_that_is_not_json_is_a_400(openai_fake: FakeProvider) -> None:
    async with aiohttp.ClientSession(openai_fake.base_url) as http:
        response = await http.post(
            "/v1/chat/completions",
            data=b"{not json",
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        )
        body = await response.json()
    assert response.status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert openai_fake.recorder.last.body == "{not json"
