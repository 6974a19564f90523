"""The fake as a separate process (``aigw fake-provider``) and on a thread for blocking clients."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import anthropic
import openai
import pytest

from aigw_fakeprovider import FakeProviderThread


def test_cli_serves_the_chosen_flavor_with_the_key_from_the_environment() -> None:
    env = {**os.environ, "AIGW_FAKE_API_KEY": "sk-from-env"}
    command = [sys.executable, "-m", "aigw_cli.main", "fake-provider", "--flavor", "anthropic"]
    ask: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "cli"}],
    }
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert "listening on http://127.0.0.1:" in line
            base_url = line.rsplit(" ", 1)[1].strip()
            with anthropic.Anthropic(base_url=base_url, api_key="sk-from-env", max_retries=0) as ok:
                message = ok.messages.create(**ask)
            assert message.content[0].type == "text"
            assert message.content[0].text == "Echo: cli"
            with (
                anthropic.Anthropic(base_url=base_url, api_key="sk-other", max_retries=0) as wrong,
                pytest.raises(anthropic.AuthenticationError),
            ):
                wrong.messages.create(**ask)
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_thread_runner_serves_blocking_clients() -> None:
    with (
        FakeProviderThread("openai", api_key="k") as fake,
        openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0) as client,
    ):
        fake.queue_fault(status=503)
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert caught.value.status_code == 503
        completion = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "sync"}]
        )
        assert completion.choices[0].message.content == "Echo: sync"
        exchanges = fake.recorder.wait_for_sync(lambda es: len(es) == 2)
        assert [e.status for e in exchanges] == [503, 200]
