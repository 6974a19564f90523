"""The response cache's logic and stores (``docs/cache.md``); the steps that use them are
:mod:`aigw_sidecar.steps.cache`.

- :mod:`.key`: the key over everything that decides an answer, and who shares it;
- :mod:`.entry`: entries as bytes, checked against their key when read back;
- :mod:`.replay`: a complete answer from a recorded stream and the reverse;
- :mod:`.control`: the caller's ``Cache-Control`` directives;
- :mod:`.eligibility`: whether a request may use the cache at all (the one rule the cache
  step and ``aigw replay`` share);
- :mod:`.semantic`: which prompts may match by meaning, their partition, the vector index;
  :mod:`.semantic_store`: the vectors shared through Redis;
- :mod:`.memory_store` (this pod, bounded in bytes) and :mod:`.redis_store` (shared by the
  tenant's sidecars, fail-open).

No HTTP here: the steps hand in the request's parts.
"""

from .control import NO_DIRECTIVES, CacheControl, parse_cache_control
from .entry import COMPRESS_ABOVE, Entry, EntryInvalid, decode_entry, encode_entry
from .key import IGNORED_FIELDS, KEY_VERSION, Partition, digest, exact_key, fingerprint
from .memory_store import ENTRY_OVERHEAD, MemoryCache
from .redis_store import LEAN_FAILURES, CacheStoreDown, RedisCache, entry_key
from .replay import chunks_of, replay, response_of
from .semantic import (
    MAX_PROMPT_CHARS,
    VectorIndex,
    entry_id,
    load_numpy,
    normalise,
    semantic_partition,
    semantic_prompt,
)
from .semantic_store import SharedVectors

__all__ = [
    "COMPRESS_ABOVE",
    "ENTRY_OVERHEAD",
    "IGNORED_FIELDS",
    "KEY_VERSION",
    "LEAN_FAILURES",
    "MAX_PROMPT_CHARS",
    "NO_DIRECTIVES",
    "CacheControl",
    "CacheStoreDown",
    "Entry",
    "EntryInvalid",
    "MemoryCache",
    "Partition",
    "RedisCache",
    "SharedVectors",
    "VectorIndex",
    "chunks_of",
    "decode_entry",
    "digest",
    "encode_entry",
    "entry_id",
    "entry_key",
    "exact_key",
    "fingerprint",
    "load_numpy",
    "normalise",
    "parse_cache_control",
    "replay",
    "response_of",
    "semantic_partition",
    "semantic_prompt",
]
