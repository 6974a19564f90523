"""Who shares an entry: never another tenant or use case, unless the use case's scope opts
in; and what is never cached (excluded classifications, ``no-store``) or always refreshed
(``no-cache``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from aigw_fakeprovider import FakeProvider

from .caching import (
    OTHER_TENANT,
    TENANT,
    Decisions,
    cache_gateway,
    cached_use_case,
    metric,
    metrics_text,
)

PROMPT: Any = [{"role": "user", "content": "tell me about the tides"}]


async def _outcome(client: openai.AsyncOpenAI, tenant: str, use_case: str, **headers: str) -> str:
    raw = await client.chat.completions.with_raw_response.create(
        model="chat",
        messages=PROMPT,
        extra_headers={"X-AIGW-Tenant": tenant, "X-AIGW-Use-Case": use_case, **headers},
    )
    raw.parse()
    return raw.headers["x-aigw-cache"]


SCOPES = [
    cached_use_case("private-a"),
    cached_use_case("private-b"),
    cached_use_case("tenant-a", exact={"scope": "tenant"}),
    cached_use_case("tenant-b", exact={"scope": "tenant"}),
    cached_use_case("shared-a", exact={"scope": "shared"}),
    cached_use_case("shared-b", exact={"scope": "shared"}),
]
# (use case the entry is made by, as tenant) -> (tenant, use case) -> shared?
VISIBLE: dict[str, dict[tuple[str, str], bool]] = {
    "private-a": {
        (TENANT, "private-a"): True,
        (OTHER_TENANT, "private-a"): False,
        (TENANT, "private-b"): False,
        (TENANT, "tenant-a"): False,
        (TENANT, "shared-a"): False,
    },
    "tenant-a": {
        (TENANT, "tenant-a"): True,
        (TENANT, "tenant-b"): True,  # the tenant's use cases that say tenant share
        (OTHER_TENANT, "tenant-a"): False,
        (OTHER_TENANT, "tenant-b"): False,
        (TENANT, "private-a"): False,
        (TENANT, "shared-a"): False,
    },
    "shared-a": {
        (TENANT, "shared-a"): True,
        (OTHER_TENANT, "shared-a"): True,  # the explicit opt-in across tenants
        (OTHER_TENANT, "shared-b"): False,  # ... of this use case only
        (TENANT, "shared-b"): False,
        (OTHER_TENANT, "private-a"): False,
        (OTHER_TENANT, "tenant-a"): False,
    },
}


@pytest.mark.parametrize("maker", sorted(VISIBLE))
async def test_no_entry_crosses_a_tenant_or_use_case_unless_the_scope_says_so(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider, maker: str
) -> None:
    for (tenant, use_case), shared in VISIBLE[maker].items():
        oai_fake.reset()
        (tmp_path / f"{tenant}-{use_case}").mkdir()
        async with (
            cache_gateway(tmp_path / f"{tenant}-{use_case}", oai_fake, claude_fake, SCOPES) as gw,
            gw.openai() as client,
        ):
            assert await _outcome(client, TENANT, maker) == "miss"
            outcome = await _outcome(client, tenant, use_case)
            assert outcome == ("hit" if shared else "miss"), (maker, tenant, use_case)
            assert len(oai_fake.recorder) == (1 if shared else 2)
            if not shared:  # the other party's miss made its own entry, and leaked nothing
                assert await _outcome(client, tenant, use_case) == "hit"
                assert await _outcome(client, TENANT, maker) == "hit"


@pytest.mark.parametrize(
    ("excluded", "classification", "cached"),
    [
        (None, "restricted", False),
        (None, "confidential", False),
        (None, "internal", True),
        (None, "public", True),
        (["restricted"], "confidential", True),
        (["restricted", "internal"], "internal", False),
    ],
)
async def test_excluded_classifications_bypass_the_cache(
    tmp_path: Path,
    oai_fake: FakeProvider,
    claude_fake: FakeProvider,
    excluded: list[str] | None,
    classification: str,
    cached: bool,
) -> None:
    settings: dict[str, Any] = {} if excluded is None else {"excludedClassifications": excluded}
    recorder = Decisions()
    async with (
        cache_gateway(
            tmp_path, oai_fake, claude_fake, [cached_use_case("default", **settings)],
            recorder=recorder,
        ) as gw,
        gw.openai() as client,
    ):  # fmt: skip
        header = {"X-AIGW-Data-Classification": classification}
        first = await _outcome(client, TENANT, "default", **header)
        second = await _outcome(client, TENANT, "default", **header)
        metrics = await metrics_text(gw.admin_url)
    if cached:
        assert (first, second) == ("miss", "hit")
        assert len(oai_fake.recorder) == 1
    else:
        assert (first, second) == ("bypass", "bypass")
        assert len(oai_fake.recorder) == 2
        assert metric(metrics, "aigw_cache_bypasses_total", reason="classification") == 2
        assert metric(metrics, "aigw_cache_writes_total") == 0
        assert recorder.calls[0][1] == [("bypass", "cache_bypass_classification")]


async def test_no_store_bypasses_and_no_cache_refreshes(
    tmp_path: Path, oai_fake: FakeProvider, claude_fake: FakeProvider
) -> None:
    async with (
        cache_gateway(tmp_path, oai_fake, claude_fake, [cached_use_case("default")]) as gw,
        gw.openai() as client,
    ):
        no_store = {"Cache-Control": "no-store"}
        assert await _outcome(client, TENANT, "default", **no_store) == "bypass"
        assert await _outcome(client, TENANT, "default") == "miss"  # nothing was stored
        assert await _outcome(client, TENANT, "default", **no_store) == "bypass"  # nor read
        assert await _outcome(client, TENANT, "default") == "hit"
        oai_fake.queue_fault(reply="a fresher answer")
        assert await _outcome(client, TENANT, "default", **{"Cache-Control": "no-cache"}) == "miss"
        raw = await client.chat.completions.with_raw_response.create(model="chat", messages=PROMPT)
        assert raw.headers["x-aigw-cache"] == "hit"
        assert raw.parse().choices[0].message.content == "a fresher answer"  # refreshed
        assert await _outcome(client, TENANT, "default", **{"cache-control": "Max-Age=0"}) == "miss"
        assert len(oai_fake.recorder) == 5
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=PROMPT, extra_headers={"Cache-Control": "max-age=3600"}
        )
        assert raw.headers["x-aigw-cache"] == "hit"
        # the max-age=0 request refreshed the entry after the no-cache one
        assert raw.parse().choices[0].message.content == "Echo: tell me about the tides"
        hostile = {"Cache-Control": "max-age=99999999999999999999, no-transform, =, ,,"}
        assert await _outcome(client, TENANT, "default", **hostile) == "hit"
