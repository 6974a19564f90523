"""Bundle format 2: compressed, defaults written once, sharded; format-1 readers refuse it."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aigw_contract import (
    AIPolicy,
    CompileError,
    InvalidBundle,
    ModelRoute,
    UnsupportedBundleFormat,
    compile_bundle,
    load_paths,
    parse_bundle,
)
from aigw_contract.bundle import _canonical, _hash_content
from aigw_contract.codec import (
    ENVELOPE_FILE,
    MAX_EXPANDED_BYTES,
    decode_files,
    encode_bundle,
    peek_envelope,
    read_bundle_file,
)

REPO = Path(__file__).resolve().parents[2]
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def _many(policies: int, routes: int = 20) -> list[AIPolicy | ModelRoute]:
    """``policies`` AIPolicies of two use cases each, like the scale benchmark's."""
    backend = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "baseURL": "https://api.openai.com/v1",
        "pricing": {"inputPerMillionTokensUSD": "0.15", "outputPerMillionTokensUSD": "0.60"},
    }
    out: list[AIPolicy | ModelRoute] = [
        ModelRoute.model_validate(
            {
                "apiVersion": "aigw.dev/v1alpha1",
                "kind": "ModelRoute",
                "metadata": {"name": f"route-{r}"},
                "spec": {"backends": [{**backend, "name": "primary"}]},
            }
        )
        for r in range(routes)
    ]
    for i in range(policies):
        use_cases = [
            {
                "name": name,
                "routes": [f"route-{i % routes}"],
                "limits": {"maxTokens": 100 + i},
                "budgets": [{"name": "monthly", "period": "month", "costUSD": f"{i}.50"}],
            }
            for name in ("chat", "summarize")
        ]
        out.append(
            AIPolicy.model_validate(
                {
                    "apiVersion": "aigw.dev/v1alpha1",
                    "kind": "AIPolicy",
                    "metadata": {"name": f"policy-{i}"},
                    "spec": {
                        "selector": {"matchLabels": {"app": f"app-{i}"}},
                        "useCases": use_cases,
                    },
                }
            )
        )
    return out


def _quickstart(format_version: int = 2) -> Any:
    docs = load_paths([REPO / "examples" / "quickstart"])
    return compile_bundle(
        [d.resource for d in docs],
        namespace="team-a",
        generated_at=WHEN,
        revision=7,
        format_version=format_version,
    )


def test_format_2_round_trips_and_format_1_still_reads() -> None:
    bundle = _quickstart()
    encoded = encode_bundle(bundle)
    assert list(encoded.files) == [ENVELOPE_FILE, "part-0.gz"]
    assert decode_files(encoded.files) == bundle
    v1 = _quickstart(format_version=1)
    assert decode_files(encode_bundle(v1).files) == v1
    # Same resources, same bytes: the gzip header carries no timestamp.
    assert encode_bundle(_quickstart()).files == encoded.files


def test_a_format_1_reader_refuses_format_2_cleanly() -> None:
    encoded = encode_bundle(_quickstart())
    # parse_bundle is the format-1 reader every sidecar before format 2 runs.
    with pytest.raises(UnsupportedBundleFormat, match="formatVersion 2 is not supported"):
        parse_bundle(encoded.files[ENVELOPE_FILE])
    future = json.loads(encoded.files[ENVELOPE_FILE]) | {"formatVersion": 3}
    with pytest.raises(UnsupportedBundleFormat, match="formatVersion 3 is not supported"):
        decode_files({**encoded.files, ENVELOPE_FILE: json.dumps(future).encode()})


def test_1000_policies_fit_one_configmap_and_defaults_are_written_once() -> None:
    bundle = compile_bundle(_many(1000), namespace="bench", generated_at=WHEN, format_version=2)
    v1_bytes = len(bundle.model_copy(update={"format_version": 1}).to_json_bytes())
    encoded = encode_bundle(bundle)
    assert encoded.parts == ["part-0.gz"]
    assert encoded.size < 200_000 < v1_bytes  # format 1 would not fit a ConfigMap at all
    assert encoded.expanded_bytes < 0.6 * v1_bytes
    payload = json.loads(gzip.decompress(encoded.files["part-0.gz"]))
    first_use_case = payload["policies"][0]["useCases"][0]
    assert "cache" not in first_use_case
    assert "redaction" not in first_use_case
    assert payload["defaults"]["useCase"]["redaction"] == {
        "profile": "secrets",
        "mode": "mask",
        "customPatterns": [],
        "restoreInAnswer": False,
    }
    assert decode_files(encoded.files) == bundle


def test_a_large_bundle_is_sharded_and_a_stale_part_refuses_the_whole() -> None:
    bundle = compile_bundle(_many(300), namespace="bench", generated_at=WHEN, format_version=2)
    encoded = encode_bundle(bundle, part_bytes=2_000)
    assert len(encoded.parts) == 4  # the largest a pod mounts
    assert all(len(encoded.files[p]) <= 2_000 for p in encoded.parts)
    assert decode_files(encoded.files) == bundle
    other = compile_bundle(_many(301), namespace="bench", generated_at=WHEN, format_version=2)
    stale = encode_bundle(other, part_bytes=2_000)
    mixed = {**encoded.files, "part-2.gz": stale.files["part-2.gz"]}
    with pytest.raises(InvalidBundle, match=r"part-2\.gz does not match the envelope"):
        decode_files(mixed)
    missing = {k: v for k, v in encoded.files.items() if k != "part-3.gz"}
    with pytest.raises(InvalidBundle, match=r"part-3\.gz is missing"):
        decode_files(missing)
    with pytest.raises(CompileError, match="at most 4 parts"):
        encode_bundle(bundle, part_bytes=1_000)


def _rewrap(doc: dict[str, Any], envelope: dict[str, Any]) -> dict[str, bytes]:
    """Files for a hand-made payload, with a matching envelope (as a writer would make)."""
    part = gzip.compress(_canonical(doc), mtime=0)
    envelope = envelope | {
        "parts": [
            {"name": "part-0.gz", "bytes": len(part), "sha256": hashlib.sha256(part).hexdigest()}
        ],
        "contentHash": doc["contentHash"],
    }
    return {ENVELOPE_FILE: json.dumps(envelope).encode(), "part-0.gz": part}


def test_defaults_come_from_the_bundle_not_the_reader() -> None:
    encoded = encode_bundle(_quickstart())
    envelope = json.loads(encoded.files[ENVELOPE_FILE])
    doc = json.loads(gzip.decompress(encoded.files["part-0.gz"]))
    doc["defaults"]["useCase"]["audit"] = {"storePrompts": True, "retentionDays": 9}
    expanded = [
        {
            **doc["defaults"]["policy"],
            **p,
            "useCases": [{**doc["defaults"]["useCase"], **u} for u in p["useCases"]],
        }
        for p in doc["policies"]
    ]
    routes = [
        {
            **doc["defaults"]["route"],
            **r,
            "backends": [{**doc["defaults"]["backend"], **b} for b in r["backends"]],
        }
        for r in doc["routes"]
    ]
    doc["contentHash"] = _hash_content(2, doc["namespace"], expanded, routes, doc["revision"])
    bundle = decode_files(_rewrap(doc, envelope))
    # Use cases that set no audit get the bundle's default; the one that sets 90 keeps it.
    assert {u.audit.retention_days for p in bundle.policies for u in p.use_cases} == {9, 90}


def test_tampering_and_bombs_are_refused() -> None:
    encoded = encode_bundle(_quickstart())
    envelope = json.loads(encoded.files[ENVELOPE_FILE])
    doc = json.loads(gzip.decompress(encoded.files["part-0.gz"]))
    doc["policies"][0]["mode"] = "observe"  # loosen a policy, keep the old hash
    with pytest.raises(InvalidBundle, match="contentHash"):
        decode_files(_rewrap(doc, envelope))
    bomb = gzip.compress(b" " * (MAX_EXPANDED_BYTES + 10), mtime=0)
    files = _rewrap({"contentHash": "x"}, envelope)
    files["part-0.gz"] = bomb
    env = json.loads(files[ENVELOPE_FILE])
    env["parts"][0]["sha256"] = hashlib.sha256(bomb).hexdigest()
    files[ENVELOPE_FILE] = json.dumps(env).encode()
    with pytest.raises(InvalidBundle, match="inflates past"):
        decode_files(files)
    files["part-0.gz"] = bomb[:100]
    env["parts"][0]["sha256"] = hashlib.sha256(bomb[:100]).hexdigest()
    files[ENVELOPE_FILE] = json.dumps(env).encode()
    with pytest.raises(InvalidBundle, match="truncated"):
        decode_files(files)
    with pytest.raises(InvalidBundle, match="not JSON"):
        decode_files({ENVELOPE_FILE: b"{"})


def test_files_on_disk_and_peek(tmp_path: Path) -> None:
    encoded = encode_bundle(_quickstart())
    for name, data in encoded.files.items():
        (tmp_path / name).write_bytes(data)
    assert read_bundle_file(tmp_path / ENVELOPE_FILE).revision == 7
    assert peek_envelope(encoded.files[ENVELOPE_FILE]) == {
        "formatVersion": 2,
        "revision": 7,
        "contentHash": encoded.content_hash,
    }
    assert peek_envelope(b"\xff not json") == {}
