"""The loaded bundle, and hot reload of the mounted file.

:class:`BundleStore` holds the current :class:`~aigw_sidecar.runtime.RuntimeConfig` in one
attribute. A request reads it once at its start (``store.current``) and keeps that snapshot,
so a reload never changes a request in flight; swapping is a single reference assignment on
the event loop thread, hence atomic.

A load reads the file (and, for bundle format 2, the compressed parts beside it), parses
and fully validates it (:func:`aigw_contract.codec.read_bundle_file`: JSON, format
version, part hashes, schema, content hash, references), builds the runtime config (reading
the credential files), and only then swaps. Any failure (unreadable file, corrupt JSON, an
invalid policy, an unknown ``formatVersion``) is refused: logged, counted
(``aigw_bundle_reloads{result="failed"}``), kept as ``last_error`` for ``/aigw/status``, and
the last good config stays. What was refused (its revision and content hash, as far as the
envelope can be read) is kept too: the operator's rollout status reports it.

The watcher polls the path every ``reload_interval_s`` (a stat costs microseconds). Its
fingerprint is the fully resolved target path plus the target's inode, size and mtime, so it
sees both the kubelet's ``..data`` symlink swap (``bundle.json -> ..data/bundle.json``,
``..data -> ..2026_11_27_...``; the resolved path changes) and a plain in-place or
rename-over replacement (inode/mtime change). A failed bundle is not retried until the file
changes again. Credentials are re-read on every load, and the credential files of the
current config are watched the same way: a rotated Secret (the kubelet swaps its ``..data``
too) triggers a reload of the same bundle with the new key.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aigw_contract import MAX_BUNDLE_BYTES, BundleError
from aigw_contract.codec import peek_envelope, read_bundle_file

from .metrics import Metrics
from .runtime import RuntimeConfig, build_runtime, credential_files

__all__ = ["BundleStore", "LoadFailure"]

_log = logging.getLogger(__name__)
_Fingerprint = tuple[str, int, int, int, int]
_Credentials = tuple[_Fingerprint | None, ...]


@dataclass(frozen=True, slots=True)
class LoadFailure:
    """Why the last load was refused."""

    at: float
    """Unix time."""
    message: str
    revision: int | None = None
    """Revision of the refused bundle, if its envelope could be read."""
    content_hash: str | None = None
    """Content hash of the refused bundle, if its envelope could be read."""
    format_version: int | None = None
    """Format version of the refused bundle, if its envelope could be read."""


class BundleStore:
    """The current runtime config and its history of loads."""

    def __init__(self, path: Path, secrets_dir: Path, metrics: Metrics) -> None:
        self.path = path
        self.secrets_dir = secrets_dir
        self._metrics = metrics
        self.current: RuntimeConfig | None = None
        self.loaded_at: float | None = None
        self.last_error: LoadFailure | None = None
        self.loads_ok = 0
        self.loads_failed = 0
        self._fingerprint: _Fingerprint | None = None
        self._credentials: _Credentials = ()
        self.preparer: Callable[[RuntimeConfig], None] | None = None
        """Called with a validated config before it is swapped in (the pipeline's
        ``prepare``); raising refuses the bundle."""

    def _stat(self, path: Path | None = None) -> _Fingerprint | None:
        try:
            resolved = os.path.realpath(path or self.path)
            st = os.stat(resolved)
        except OSError:
            return None
        return (resolved, st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)

    def _stat_credentials(self, files: tuple[Path, ...]) -> tuple[_Fingerprint | None, ...]:
        return tuple(self._stat(p) for p in files)

    def _peek(self) -> dict[str, object]:
        try:
            with self.path.open("rb") as handle:
                return peek_envelope(handle.read(MAX_BUNDLE_BYTES + 1))
        except OSError:
            return {}

    def _refuse(self, message: str) -> bool:
        self.loads_failed += 1
        seen = self._peek()
        revision, digest, version = (
            seen.get("revision"),
            seen.get("contentHash"),
            seen.get("formatVersion"),
        )
        self.last_error = LoadFailure(
            time.time(),
            message,
            revision=revision if isinstance(revision, int) else None,
            content_hash=digest if isinstance(digest, str) else None,
            format_version=version if isinstance(version, int) else None,
        )
        if self.current is not None:  # retry only once something changes again
            self._credentials = self._stat_credentials(self.current.credential_files)
        self._metrics.bundle_reloads.labels("failed").inc()
        kept = f"keeping revision {self.current.revision}" if self.current else "no bundle loaded"
        _log.error("bundle %s refused (%s): %s", self.path, kept, message)
        return False

    def _prepare(self) -> tuple[RuntimeConfig, _Credentials] | str:
        """Read, validate and compile the file: a config and the fingerprints of its
        credential files (taken before they were read), or why it is refused."""
        self._fingerprint = self._stat()
        try:
            bundle = read_bundle_file(self.path)
            credentials = self._stat_credentials(credential_files(bundle, self.secrets_dir))
            return build_runtime(bundle, self.secrets_dir), credentials
        except BundleError as exc:
            return f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - a bug must not take the last good bundle down with it
            _log.exception("building the runtime config failed")
            return f"internal error while loading the bundle ({type(exc).__name__})"

    def _commit(self, result: tuple[RuntimeConfig, _Credentials] | str) -> bool:
        if isinstance(result, str):
            return self._refuse(result)
        config, credentials = result
        if self.preparer is not None:
            try:
                self.preparer(config)
            except Exception as exc:  # noqa: BLE001 - any step refusing refuses the bundle
                return self._refuse(
                    f"a pipeline step refused the bundle: {type(exc).__name__}: {exc}"
                )
        self.current = config
        self._credentials = credentials
        self.loaded_at = time.time()
        self.loads_ok += 1
        self._metrics.bundle_reloads.labels("ok").inc()
        self._metrics.bundle_revision.set(config.revision)
        self._metrics.bundle_loaded_timestamp.set(self.loaded_at)
        for warning in config.warnings:
            _log.warning("bundle revision %s: %s", config.revision, warning)
        if config.not_enforced:  # one line, however many: each is listed in /aigw/status
            _log.warning(
                "bundle revision %s: %d setting(s) accepted but not enforced yet, e.g. %s "
                "(all of them: warnings in /aigw/status)",
                config.revision,
                len(config.not_enforced),
                config.not_enforced[0],
            )
        _log.info(
            "bundle loaded: revision %s, %s, %d routes, %d policies",
            config.revision,
            config.content_hash,
            len(config.routes),
            len(config.bundle.policies),
        )
        return True

    def load(self) -> bool:
        """Load the file now (blocking) if it is valid; True if it was swapped in."""
        return self._commit(self._prepare())

    async def reload(self) -> bool:
        """Like :meth:`load`, parsing in a worker thread; the swap happens on the loop."""
        return self._commit(await asyncio.to_thread(self._prepare))

    def changed(self) -> bool:
        """Whether the bundle differs from the one last loaded (or tried), or a credential
        file of the current config was rotated."""
        return self._stat() != self._fingerprint or (
            self.current is not None
            and self._stat_credentials(self.current.credential_files) != self._credentials
        )

    async def watch(self, interval_s: float) -> None:
        """Poll for changes forever (cancel to stop)."""
        while True:
            await asyncio.sleep(interval_s)
            if self.changed():
                await self.reload()

    def status(self) -> dict[str, object]:
        """What ``/aigw/status`` shows. Never a credential."""
        config = self.current
        return {
            "ready": config is not None,
            "bundlePath": str(self.path),
            "bundle": None
            if config is None
            else {
                "revision": config.revision,
                "contentHash": config.content_hash,
                "policyVersion": config.policy_version,
                "namespace": config.bundle.namespace,
                "generatedAt": config.bundle.generated_at.isoformat(),
                "routes": sorted(config.routes),
                "policies": [p.name for p in config.bundle.policies],
                "warnings": [*config.warnings, *config.not_enforced],
                "inactiveDefaults": list(config.inactive_defaults),
            },
            "loadedAt": self.loaded_at,
            "loadsOk": self.loads_ok,
            "loadsFailed": self.loads_failed,
            "lastReloadError": None
            if self.last_error is None
            else {"at": self.last_error.at, "message": self.last_error.message},
        }
