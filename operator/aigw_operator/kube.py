"""A small Kubernetes API client over aiohttp, and credentials from a kubeconfig or the pod.

kopf watches and dispatches events, but it has no public client for the writes the operator
makes (ConfigMaps, status, Events): this module does those, with the same credentials kopf
logs in with. Only what the operator needs: JSON requests, merge patches, typed errors.
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from .errors import ApiError, ConfigError, Conflict, NotFound, OperatorError
from .settings import KubeSettings

__all__ = ["Credentials", "KubeClient", "load_credentials"]


@dataclass(frozen=True, slots=True)
class Credentials:
    """Where the apiserver is and how to authenticate to it (files, for ssl and kopf)."""

    server: str
    ca_file: Path | None = None
    insecure: bool = False
    token: str | None = None
    token_file: Path | None = None
    """Re-read on every request: projected service-account tokens rotate."""
    cert_file: Path | None = None
    key_file: Path | None = None

    def current_token(self) -> str | None:
        if self.token_file is not None:
            return self.token_file.read_text().strip()
        return self.token


def _materialize(entry: Mapping[str, Any], key: str, base: Path, scratch: Path) -> Path | None:
    """A kubeconfig field as a file: ``<key>`` (a path) or ``<key>-data`` (base64)."""
    if entry.get(f"{key}-data"):
        path = scratch / key
        path.write_bytes(base64.b64decode(entry[f"{key}-data"]))
        path.chmod(0o600)
        return path
    if entry.get(key):
        path = Path(entry[key])
        return path if path.is_absolute() else base / path
    return None


def _named(items: Any, name: str, what: str) -> Mapping[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            return dict(item.get(what) or {})
    raise ConfigError(f"kubeconfig has no {what} {name!r}")


def _from_kubeconfig(path: Path, context: str | None, scratch: Path) -> Credentials:
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc}") from exc
    name = context or config.get("current-context")
    if not name:
        raise ConfigError(f"kubeconfig {path} names no current context")
    ctx = _named(config.get("contexts"), name, "context")
    cluster = _named(config.get("clusters"), ctx["cluster"], "cluster")
    user = _named(config.get("users"), ctx["user"], "user")
    base = path.parent
    token_file = user.get("tokenFile")
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_file=_materialize(cluster, "certificate-authority", base, scratch),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        token=user.get("token"),
        token_file=(base / token_file) if token_file else None,
        cert_file=_materialize(user, "client-certificate", base, scratch),
        key_file=_materialize(user, "client-key", base, scratch),
    )


def load_credentials(settings: KubeSettings, scratch: Path) -> Credentials:
    """Credentials from the kubeconfig in settings, or the in-cluster service account.

    Certificates and keys embedded in the kubeconfig are written into ``scratch`` (a private
    temporary directory the caller removes), because ``ssl`` and kopf load them from files.
    """
    if settings.kubeconfig is not None:
        return _from_kubeconfig(settings.kubeconfig, settings.context, scratch)
    if not settings.in_cluster_host:
        raise ConfigError("not in a cluster (no KUBERNETES_SERVICE_HOST): pass --kubeconfig")
    sa = settings.service_account_dir
    return Credentials(
        server=settings.in_cluster_host, ca_file=sa / "ca.crt", token_file=sa / "token"
    )


class KubeClient:
    """JSON over HTTPS to the apiserver. Use as an async context manager."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext:
        creds = self.credentials
        context = ssl.create_default_context(cafile=str(creds.ca_file) if creds.ca_file else None)
        if creds.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if creds.cert_file and creds.key_file:
            context.load_cert_chain(str(creds.cert_file), str(creds.key_file))
        return context

    async def __aenter__(self) -> KubeClient:
        connector = aiohttp.TCPConnector(ssl=self._ssl(), limit=20)
        timeout = aiohttp.ClientTimeout(total=30)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One API call; the decoded JSON answer, or ApiError (NotFound, Conflict)."""
        if self._session is None:
            raise OperatorError("KubeClient used outside 'async with'")
        headers = {"Accept": "application/json"}
        token = self.credentials.current_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        url = self.credentials.server + path
        async with self._session.request(
            method, url, data=data, params=params, headers=headers
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise _error(response.status, text)
            return json.loads(text) if text else None

    async def list(self, path: str, *, label_selector: str | None = None) -> list[Any]:
        params = {"labelSelector": label_selector} if label_selector else None
        answer = await self.request("GET", path, params=params)
        return list(answer.get("items") or [])

    async def get(self, path: str) -> Any | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", path)
        except NotFound:
            return None

    async def merge_patch(self, path: str, patch: Any) -> Any:
        return await self.request(
            "PATCH", path, body=patch, content_type="application/merge-patch+json"
        )

    async def delete(self, path: str) -> None:
        """Delete; an object already gone is not an error."""
        try:
            await self.request("DELETE", path)
        except NotFound:
            return


def _error(status: int, text: str) -> ApiError:
    try:
        answer = json.loads(text)
        reason, message = str(answer.get("reason", "")), str(answer.get("message", text))
    except (json.JSONDecodeError, AttributeError):
        reason, message = "", text[:500]
    if status == 404:
        return NotFound(status, reason or "NotFound", message)
    if status == 409:
        return Conflict(status, reason or "Conflict", message)
    return ApiError(status, reason, message)
