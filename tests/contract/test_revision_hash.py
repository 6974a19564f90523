"""``contentHash`` covers ``revision`` from bundle format 2 on; format 1 reads as it always did.

A revision edited by hand used to pass (and show in X-AIGW-Policy-Version as a version
that was never compiled); issue 11.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aigw_contract import InvalidBundle, compile_bundle, load_paths, parse_bundle
from aigw_contract.bundle import _canonical
from aigw_contract.codec import ENVELOPE_FILE, decode_files, encode_bundle

REPO = Path(__file__).resolve().parents[2]
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def _compiled(revision: int, format_version: int) -> Any:
    docs = load_paths([REPO / "examples" / "quickstart"])
    return compile_bundle(
        [d.resource for d in docs],
        namespace="team-a",
        generated_at=WHEN,
        revision=revision,
        format_version=format_version,
    )


def _edit_revision(files: dict[str, bytes], revision: int) -> dict[str, bytes]:
    """The format-2 files with ``revision`` changed in envelope and payload, hashes of the
    parts recomputed: what a careful hand edit produces."""
    envelope = json.loads(files[ENVELOPE_FILE])
    doc = json.loads(gzip.decompress(files["part-0.gz"]))
    doc["revision"] = envelope["revision"] = revision
    part = gzip.compress(_canonical(doc), mtime=0)
    envelope["parts"] = [
        {"name": "part-0.gz", "bytes": len(part), "sha256": hashlib.sha256(part).hexdigest()}
    ]
    return {ENVELOPE_FILE: _canonical(envelope), "part-0.gz": part}


def test_format_2_hash_covers_the_revision() -> None:
    seven, eight = _compiled(7, 2), _compiled(8, 2)
    assert seven.content_hash != eight.content_hash
    assert seven.with_revision(8) == eight
    assert decode_files(encode_bundle(seven).files).revision == 7
    with pytest.raises(InvalidBundle, match="contentHash"):
        decode_files(_edit_revision(dict(encode_bundle(seven).files), 99))


def test_format_1_keeps_its_definition() -> None:
    """Every format-1 bundle ever written still reads: its hash never covered the revision."""
    seven = _compiled(7, 1)
    assert seven.content_hash == _compiled(8, 1).content_hash
    assert seven.with_revision(8).content_hash == seven.content_hash
    raw = json.loads(seven.to_json_bytes())
    raw["revision"] = 99
    assert parse_bundle(json.dumps(raw)).revision == 99  # documented: format 1 cannot tell


def test_with_revision_is_the_only_way_to_renumber() -> None:
    bundle = _compiled(0, 2)
    stale = bundle.model_copy(update={"revision": 5})  # what the operator did before
    with pytest.raises(InvalidBundle, match="contentHash"):
        decode_files(encode_bundle(stale).files)
    assert decode_files(encode_bundle(bundle.with_revision(5)).files).revision == 5
