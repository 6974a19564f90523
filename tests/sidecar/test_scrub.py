"""Provider messages lose every rendering of every credential (issue 11: only the exact
string was removed). Through a running sidecar: test_edge_regressions.py."""

from __future__ import annotations

import base64

import pytest

from aigw_sidecar.scrub import MAX_MESSAGE, Scrubber

KEY = "sk-CANARYedge0123456789abcdefghijklmnop4f60"
OTHER = "sk-ant-api03-otherbackendsecret-99ZZ"
AZURE = "0123456789abcdef0123456789abcdef"
scrubber = Scrubber([KEY, OTHER, AZURE, None])


@pytest.mark.parametrize(
    "leak",
    [
        KEY,
        KEY[:12],  # a prefix
        KEY[-10:],  # a suffix
        "sk-CANAR****4f60",  # OpenAI's masked form
        "sk-CANARYed...4f60",
        KEY.upper(),
        KEY.lower(),
        base64.b64encode(KEY.encode()).decode(),
        base64.b64encode(b"user:" + KEY.encode()).decode(),  # inside a Basic header value
        base64.urlsafe_b64encode(b"xy" + KEY.encode()).decode(),
        KEY.encode().hex(),
        OTHER,  # another backend's key
        OTHER[5:20],
        AZURE,
        AZURE.upper(),
        "sk-proj-SomeUnknownKey12345",  # key-like, whoever it belongs to
        "AKIAIOSFODNN7EXAMPLE",
    ],
)
def test_every_rendering_is_removed(leak: str) -> None:
    out = scrubber.scrub(f'Incorrect API key provided: "{leak}". See the docs.')
    assert leak not in out
    assert leak.lower() not in out.lower()
    assert "[credential]" in out
    assert out.startswith("Incorrect API key provided:")


def test_useful_text_stays_and_urls_and_bearer_go() -> None:
    text = "max_tokens is too large: 90000. This model supports at most 16384 completion tokens."
    assert scrubber.scrub(text) == text
    out = scrubber.scrub("call http://10.0.0.7:8000/v1/chat failed; Authorization: Bearer abc.def")
    assert "10.0.0.7" not in out
    assert "abc.def" not in out
    assert "gpt-4o-mini" in scrubber.scrub("The model gpt-4o-mini does not exist")


def test_long_messages_are_cut() -> None:
    assert len(scrubber.scrub("word " * 1000)) == MAX_MESSAGE + 3
    assert Scrubber().scrub("nothing to hide") == "nothing to hide"
