"""A stand-in kubelet for injected KWOK pods: their volumes and their sidecar, as local processes.

KWOK marks pods Running without running anything. :class:`Kubelet` does the part of a
kubelet the aigw chain needs, for every pod (in the given namespaces) that has the
``aigw-sidecar`` container, once the scheduler placed it and KWOK gave it an IP:

* lays out every volume that container mounts (ConfigMap, Secret, projected, downward API,
  emptyDir) in the kubelet's ``..data`` layout (:mod:`aigw_e2e.volumes`) and keeps them in
  sync with the API (a changed ConfigMap or Secret is re-published atomically, as the
  kubelet does, but at once: a real kubelet takes up to its sync period plus its cache TTL,
  about a minute by default);
* runs the container's own ``command`` + ``args`` with its own ``env`` (values, field refs,
  ConfigMap/Secret refs resolved), as a local process, stopped when the pod goes away.

What it translates, because every pod here shares the machine's network and filesystem:
mount paths in arguments and environment values become the pod's local directories; the
pod's loopback is its pod IP (KWOK is given a loopback pod CIDR, so pod IPs are 127.x
addresses): the sidecar gets ``AIGW_HOST``/``AIGW_ADMIN_HOST`` set to it, so three pods all
listen on port 15400 without colliding, and :meth:`Kubelet.app_env` maps ``127.0.0.1`` in an
app container's environment to it. The command's first word is looked up on ``path``.
A sidecar whose process exits is restarted after a back-off, as ``restartPolicy: Always``
asks; :meth:`Kubelet.stop_sidecar` stops one for good (a test's way to see a pod go Unknown).

Tests start it with :meth:`start`/:meth:`stop` (or as a context manager);
``python -m aigw_e2e.kubelet --kubeconfig ...`` runs it for people (``make cluster-up``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from aigw_e2e.processes import Process, start_process
from aigw_e2e.volumes import MissingSource, publish, volume_files

__all__ = ["Kubelet", "PodRuntime"]

logger = logging.getLogger(__name__)
SIDECAR = "aigw-sidecar"


@dataclass
class PodRuntime:
    """One pod the stand-in kubelet runs."""

    namespace: str
    name: str
    uid: str
    ip: str
    root: Path
    spec: dict[str, Any]
    process: Process | None = None
    stopped: bool = False
    """Stopped on purpose (:meth:`Kubelet.stop_sidecar`): not restarted."""
    pinned: set[str] = field(default_factory=set)
    """Volumes a test overrode: no longer synced from the API."""
    published: dict[str, dict[str, bytes]] = field(default_factory=dict)
    restarts: int = 0
    next_start: float = 0.0
    """Back-off after an exit (1 s, doubling, at most 10 s), as the kubelet's CrashLoop."""

    @property
    def fs(self) -> Path:
        """The pod's filesystem as the sidecar sees it: volumes at their mount paths below."""
        return self.root / "fs"

    def mount_path(self, volume: str) -> str:
        for mount in self.sidecar.get("volumeMounts") or []:
            if mount["name"] == volume:
                return str(mount["mountPath"])
        raise KeyError(volume)

    def volume_dir(self, volume: str) -> Path:
        return self.fs / self.mount_path(volume).strip("/")

    @property
    def sidecar(self) -> dict[str, Any]:
        spec = self.spec.get("spec", {})
        for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            if container.get("name") == SIDECAR:
                return dict(container)
        raise KeyError(SIDECAR)

    def container(self, name: str) -> dict[str, Any]:
        for container in self.spec.get("spec", {}).get("containers") or []:
            if container.get("name") == name:
                return dict(container)
        raise KeyError(name)


class Kubelet:
    """Runs the sidecars of injected KWOK pods (see the module docstring)."""

    def __init__(
        self,
        server: str,
        context: ssl.SSLContext,
        root: Path,
        *,
        namespaces: tuple[str, ...],
        path: str,
        interval: float = 0.2,
        die_with_parent: bool = True,
        token: str | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.context = context
        self.root = root
        self.namespaces = namespaces
        self.path = path
        self.interval = interval
        self.die_with_parent = die_with_parent
        self.token = token
        self.pods: dict[str, PodRuntime] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    # -- API ------------------------------------------------------------------------------

    def _get(self, path: str) -> Any:
        url = self.server + path  # https://<apiserver>: never a caller's scheme
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, context=self.context, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())

    def _list(self, namespace: str, plural: str) -> list[dict[str, Any]]:
        return list(self._get(f"/api/v1/namespaces/{namespace}/{plural}").get("items") or [])

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Kubelet:
        self.root.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="aigw-kubelet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def __enter__(self) -> Kubelet:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        # Processes are started from this thread, so they die with it (PR_SET_PDEATHSIG).
        try:
            while not self._stop.is_set():
                try:
                    self.sync()
                except (OSError, urllib.error.URLError, ValueError) as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    logger.warning("kubelet sync failed: %s", exc)
                self._stop.wait(self.interval)
        finally:
            with self._lock:
                for pod in list(self.pods.values()):
                    self._remove(pod)

    # -- one sync round -------------------------------------------------------------------

    def sync(self) -> None:
        """List pods, ConfigMaps and Secrets once; start, update and remove pods."""
        seen: set[str] = set()
        for namespace in self.namespaces:
            objects = {
                "configmap": {
                    c["metadata"]["name"]: c for c in self._list(namespace, "configmaps")
                },
                "secret": {c["metadata"]["name"]: c for c in self._list(namespace, "secrets")},
            }
            for pod in self._list(namespace, "pods"):
                runtime = self._runtime(pod)
                if runtime is None:
                    continue
                seen.add(runtime.uid)
                with self._lock:
                    self._sync_volumes(runtime, pod, objects)
                    self._reap(runtime)
                    if (
                        runtime.process is None
                        and not runtime.stopped
                        and time.monotonic() >= runtime.next_start
                    ):
                        self._start_sidecar(runtime, pod, objects)
        with self._lock:
            for uid in set(self.pods) - seen:
                self._remove(self.pods.pop(uid))

    def _runtime(self, pod: dict[str, Any]) -> PodRuntime | None:
        meta, status = pod["metadata"], pod.get("status") or {}
        spec = pod.get("spec") or {}
        containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        if meta.get("deletionTimestamp") or not any(c.get("name") == SIDECAR for c in containers):
            return None
        if not spec.get("nodeName") or not status.get("podIP"):
            return None
        uid = str(meta["uid"])
        with self._lock:
            runtime = self.pods.get(uid)
            if runtime is None:
                root = self.root / f"{meta['namespace']}_{meta['name']}_{uid[:8]}"
                runtime = PodRuntime(
                    meta["namespace"], meta["name"], uid, status["podIP"], root, pod
                )
                self.pods[uid] = runtime
            runtime.spec = pod
            return runtime

    def _sync_volumes(
        self, pod: PodRuntime, body: dict[str, Any], objects: Mapping[str, Mapping[str, Any]]
    ) -> None:
        mounted = {m["name"] for m in pod.sidecar.get("volumeMounts") or []}
        for volume in body.get("spec", {}).get("volumes") or []:
            name = volume["name"]
            if name not in mounted or name in pod.pinned:
                continue
            try:
                files = volume_files(volume, body, lambda kind, n: objects[kind].get(n))
            except MissingSource as exc:
                files = None
                if name not in pod.published:
                    logger.info("pod %s/%s waits: %s", pod.namespace, pod.name, exc)
                    continue
            if files is None:
                pod.volume_dir(name).mkdir(parents=True, exist_ok=True)
                continue
            if pod.published.get(name) != files:
                publish(pod.volume_dir(name), files)
                pod.published[name] = files

    def _ready_to_start(self, pod: PodRuntime) -> bool:
        mounted = {m["name"] for m in pod.sidecar.get("volumeMounts") or []}
        volumes = {v["name"]: v for v in pod.spec.get("spec", {}).get("volumes") or []}
        return all(
            name in pod.published or volume_files_kind(volumes.get(name, {})) == "dir"
            for name in mounted
        )

    # -- the sidecar process --------------------------------------------------------------

    def _local(self, pod: PodRuntime, value: str) -> str:
        """Container paths in ``value`` -> paths below the pod's ``fs`` directory: a mount path,
        anything below it, and its parents (``--secrets-dir`` names the parent of the Secret
        mounts). One pass, so a local path that itself lies under a mount path (``/tmp``) is not
        rewritten again."""
        candidates: set[str] = set()
        for mount in pod.sidecar.get("volumeMounts") or []:
            path = mount["mountPath"].rstrip("/")
            while path and path not in candidates:
                candidates.add(path)
                path = path.rsplit("/", 1)[0]
        if not candidates:
            return value
        alternatives = "|".join(re.escape(p) for p in sorted(candidates, key=len, reverse=True))
        pattern = f"(?:(?<=^)|(?<=[=:,\\s]))({alternatives})(?=/|$|[:,\\s])"
        return re.sub(pattern, lambda m: str(pod.fs) + m.group(1), value)

    def _env(
        self,
        pod: PodRuntime,
        container: Mapping[str, Any],
        objects: Mapping[str, Mapping[str, Any]],
    ) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            kind = "configmap" if "configMapRef" in source else "secret"
            ref = source.get("configMapRef") or source.get("secretRef") or {}
            obj = objects[kind].get(str(ref.get("name")))
            if obj is not None:
                data = obj.get("data") or {}
                decode: Callable[[Any], str] = str if kind == "configmap" else _b64
                env |= {str(source.get("prefix", "")) + k: decode(v) for k, v in data.items()}
        for item in container.get("env") or []:
            value = _env_value(item, pod, objects)
            if value is not None:
                env[item["name"]] = _expand(value, env) if "value" in item else value
        return env

    def _start_sidecar(
        self, pod: PodRuntime, body: dict[str, Any], objects: Mapping[str, Mapping[str, Any]]
    ) -> None:
        if not self._ready_to_start(pod):
            return
        container = pod.sidecar
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        if not argv:
            raise ValueError(f"pod {pod.namespace}/{pod.name}: {SIDECAR} has no command")
        found = shutil.which(argv[0], path=self.path)
        if found is None:
            raise ValueError(f"{argv[0]} is not on {self.path}")
        env = {k: self._local(pod, v) for k, v in self._env(pod, container, objects).items()}
        # The pod's loopback is its pod IP here (all pods share the machine's network).
        env |= {"AIGW_HOST": pod.ip, "AIGW_ADMIN_HOST": pod.ip, "PATH": self.path}
        env.setdefault("HOME", str(pod.root))
        argv = [found, *(self._local(pod, a) for a in argv[1:])]
        pod.process = start_process(
            f"{pod.name}/{SIDECAR}",
            argv,
            pod.root / f"{SIDECAR}.log",
            env,
            die_with_parent=self.die_with_parent,
        )
        logger.info(
            "pod %s/%s: started %s (pid %d)", pod.namespace, pod.name, SIDECAR, pod.process.pid
        )

    def _reap(self, pod: PodRuntime) -> None:
        """A sidecar that exited is restarted after a back-off (restartPolicy Always)."""
        if pod.process is None or (code := pod.process.popen.poll()) is None:
            return
        logger.warning("pod %s/%s: %s exited with %s", pod.namespace, pod.name, SIDECAR, code)
        pod.process = None
        pod.next_start = time.monotonic() + min(10.0, 2.0**pod.restarts)
        pod.restarts += 1

    def _remove(self, pod: PodRuntime) -> None:
        if pod.process is not None:
            pod.process.stop(grace_seconds=10)
            pod.process = None

    # -- what tests use -------------------------------------------------------------------

    def pod(self, name: str, namespace: str | None = None) -> PodRuntime:
        with self._lock:
            for pod in self.pods.values():
                if pod.name == name and namespace in (None, pod.namespace):
                    return pod
        raise KeyError(name)

    def running(self, namespace: str) -> list[PodRuntime]:
        """Pods of ``namespace`` whose sidecar process is running."""
        with self._lock:
            return sorted(
                (
                    p
                    for p in self.pods.values()
                    if p.namespace == namespace and p.process and p.process.popen.poll() is None
                ),
                key=lambda p: p.name,
            )

    def stop_sidecar(self, name: str, namespace: str | None = None) -> None:
        """Stop a pod's sidecar process for good (the pod stays: it goes Unknown)."""
        with self._lock:
            pod = self.pod(name, namespace)
            pod.stopped = True
            self._remove(pod)

    def override_volume(self, name: str, volume: str, files: Mapping[str, bytes]) -> None:
        """Publish ``files`` into one pod's volume and stop syncing it from the API."""
        with self._lock:
            pod = self.pod(name)
            pod.pinned.add(volume)
            publish(pod.volume_dir(volume), files)
            pod.published[volume] = dict(files)

    def release_volume(self, name: str, volume: str) -> None:
        """Sync an overridden volume from the API again."""
        with self._lock:
            pod = self.pod(name)
            pod.pinned.discard(volume)
            pod.published.pop(volume, None)

    def app_env(self, name: str, container: str, namespace: str | None = None) -> dict[str, str]:
        """An app container's environment as the kubelet would give it, the pod's loopback
        (``127.0.0.1``, ``localhost``) mapped to its pod IP."""
        with self._lock:
            pod = self.pod(name, namespace)
            spec = pod.container(container)
        objects = {
            "configmap": {
                c["metadata"]["name"]: c for c in self._list(pod.namespace, "configmaps")
            },
            "secret": {c["metadata"]["name"]: c for c in self._list(pod.namespace, "secrets")},
        }
        env = self._env(pod, spec, objects)
        return {
            k: v.replace("127.0.0.1", pod.ip).replace("localhost", pod.ip) for k, v in env.items()
        }


def volume_files_kind(volume: Mapping[str, Any]) -> str:
    """``dir`` for volumes that are only a directory (emptyDir and the like), else ``files``."""
    kinds = ("configMap", "secret", "downwardAPI", "projected")
    return "files" if any(k in volume for k in kinds) else "dir"


def _b64(value: Any) -> str:
    import base64  # noqa: PLC0415

    return base64.b64decode(str(value)).decode(errors="replace")


_REFERENCE = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


def _expand(value: str, defined: Mapping[str, str]) -> str:
    """The kubelet's ``$(VAR)`` expansion of an env value: a variable defined earlier in the
    list is replaced, an unknown one is left as it is, ``$$`` is a literal ``$``."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return defined.get(name, match.group(0))

    return _REFERENCE.sub(one, value)


def _env_value(
    item: Mapping[str, Any], pod: PodRuntime, objects: Mapping[str, Mapping[str, Any]]
) -> str | None:
    if "value" in item:
        return str(item["value"])
    source = item.get("valueFrom") or {}
    if "fieldRef" in source:
        return _field_value(str(source["fieldRef"].get("fieldPath", "")), pod.spec)
    for ref_key, kind in (("configMapKeyRef", "configmap"), ("secretKeyRef", "secret")):
        if ref_key in source:
            ref = source[ref_key]
            obj = objects[kind].get(str(ref.get("name")))
            data = (obj or {}).get("data") or {}
            if ref.get("key") not in data:
                return None
            value = data[ref["key"]]
            return str(value) if kind == "configmap" else _b64(value)
    return None


def _field_value(path: str, body: Mapping[str, Any]) -> str | None:
    meta, spec, status = body["metadata"], body.get("spec", {}), body.get("status", {})
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "spec.nodeName": spec.get("nodeName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
    }
    if path in simple:
        return str(simple[path] or "")
    for prefix, key in (
        ("metadata.labels['", "labels"),
        ("metadata.annotations['", "annotations"),
    ):
        if path.startswith(prefix):
            return str((meta.get(key) or {}).get(path[len(prefix) : -2], ""))
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m aigw_e2e.kubelet``: run the stand-in kubelet until interrupted."""
    import argparse  # noqa: PLC0415
    import signal  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m aigw_e2e.kubelet", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True, help="where pods' files live")
    parser.add_argument("--namespace", action="append", required=True)
    parser.add_argument("--path", default=os.environ.get("PATH", ""), help="to find commands")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = json.loads(args.kubeconfig.read_text())  # the control plane writes JSON
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    scratch = args.root / "pki"
    scratch.mkdir(parents=True, exist_ok=True)
    context = ssl.create_default_context(cadata=_b64(cluster["certificate-authority-data"]))
    if "client-certificate-data" in user:
        (scratch / "client.crt").write_text(_b64(user["client-certificate-data"]))
        (scratch / "client.key").write_text(_b64(user["client-key-data"]))
        (scratch / "client.key").chmod(0o600)
        context.load_cert_chain(scratch / "client.crt", scratch / "client.key")
    kubelet = Kubelet(
        cluster["server"],
        context,
        args.root,
        namespaces=tuple(args.namespace),
        path=args.path,
        die_with_parent=True,
        token=user.get("token"),
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    kubelet.start()
    done.wait()
    kubelet.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
