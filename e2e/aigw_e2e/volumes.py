"""Pod volumes laid out as the kubelet does: files in a timestamped directory behind ``..data``.

The kubelet's AtomicWriter publishes a ConfigMap, Secret, projected or downward-API volume as

    <volume>/..2026_12_01_22_00_00.000000001/<key>    the files of this version
    <volume>/..data -> ..2026_12_01_22_00_00.000000001
    <volume>/<key>  -> ..data/<key>                   one link per top-level name

and updates it by writing a new timestamped directory, pointing a temporary link at it and
renaming that link over ``..data`` (one atomic step: a reader sees all old or all new
files), then removing the old directory. :func:`publish` does exactly that, so the sidecar's
reload code meets the layout it meets in a cluster.

:func:`volume_files` computes what a volume holds from the pod spec and the API objects it
references (ConfigMap ``data``/``binaryData``, Secret ``data``, ``items``, ``optional``,
projected sources, downward-API labels and annotations).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["MissingSource", "publish", "volume_files"]

Lookup = Callable[[str, str], Mapping[str, Any] | None]
"""(kind, name) -> the ConfigMap or Secret of the pod's namespace, or None."""


class MissingSource(Exception):
    """A volume's required ConfigMap or Secret does not exist (yet)."""


def _stamp() -> str:
    ns = time.time_ns()
    return time.strftime("..%Y_%m_%d_%H_%M_%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}"


def publish(volume: Path, files: Mapping[str, bytes]) -> None:
    """Make ``volume`` hold exactly ``files`` (relative paths), atomically for readers."""
    volume.mkdir(parents=True, exist_ok=True)
    target = volume / _stamp()
    while target.exists():
        target = volume / _stamp()
    target.mkdir()
    for name, data in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    data_link = volume / "..data"
    old = os.readlink(data_link) if data_link.is_symlink() else None
    tmp = volume / "..data_tmp"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(target.name)
    tmp.replace(data_link)
    tops = {name.split("/", 1)[0] for name in files}
    for top in tops:
        link = volume / top
        if not link.is_symlink():
            link.symlink_to(f"..data/{top}")
    for entry in volume.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in tops:
            entry.unlink()
    if old is not None and old != target.name:
        shutil.rmtree(volume / old, ignore_errors=True)


def _object_files(kind: str, obj: Mapping[str, Any]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    if kind == "configmap":
        files |= {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        files |= {k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()}
    else:
        files |= {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    return files


def _source(kind: str, ref: Mapping[str, Any], lookup: Lookup) -> dict[str, bytes]:
    name = str(ref.get("name") or ref.get("secretName") or "")
    obj = lookup(kind, name)
    if obj is None:
        if ref.get("optional"):
            return {}
        raise MissingSource(f"{kind} {name} does not exist")
    files = _object_files(kind, obj)
    items = ref.get("items")
    if items:
        missing = [str(i["key"]) for i in items if str(i["key"]) not in files]
        if missing and not ref.get("optional"):  # the kubelet fails the mount, the pod waits
            raise MissingSource(f"{kind} {name} has no key {missing[0]}")
        return {str(i["path"]): files[str(i["key"])] for i in items if str(i["key"]) in files}
    return files


def _downward(items: list[Mapping[str, Any]], pod: Mapping[str, Any]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    meta = pod.get("metadata", {})
    for item in items:
        field = str((item.get("fieldRef") or {}).get("fieldPath", ""))
        if field in ("metadata.labels", "metadata.annotations"):
            values = meta.get(field.split(".")[1]) or {}
            # key="value" lines, sorted, values quoted as Go's %q does (JSON is close enough).
            text = "\n".join(f"{k}={json.dumps(str(v))}" for k, v in sorted(values.items()))
            files[str(item["path"])] = text.encode()
        elif field in ("metadata.name", "metadata.namespace", "metadata.uid"):
            files[str(item["path"])] = str(meta.get(field.split(".")[1], "")).encode()
    return files


def volume_files(
    volume: Mapping[str, Any], pod: Mapping[str, Any], lookup: Lookup
) -> dict[str, bytes] | None:
    """The files of one pod volume, or None for kinds laid out once (emptyDir) or not
    supported here (their directory stays empty)."""
    if "configMap" in volume:
        return _source("configmap", volume["configMap"], lookup)
    if "secret" in volume:
        return _source("secret", volume["secret"], lookup)
    if "downwardAPI" in volume:
        return _downward(volume["downwardAPI"].get("items") or [], pod)
    if "projected" in volume:
        files: dict[str, bytes] = {}
        for source in volume["projected"].get("sources") or []:
            if "configMap" in source:
                files |= _source("configmap", source["configMap"], lookup)
            elif "secret" in source:
                files |= _source("secret", source["secret"], lookup)
            elif "downwardAPI" in source:
                files |= _downward(source["downwardAPI"].get("items") or [], pod)
        return files
    return None
