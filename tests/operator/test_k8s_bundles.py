"""The bundle flow against the real apiserver, the operator running with the chart's RBAC.

Order matters within this module (apply, edit, delete, burst, invalid, too large): each test
leaves the namespace in a known state for the next. Propagation times are measured and printed
(run with ``-s``), never asserted.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

import pytest

from aigw_contract.codec import decode_files
from aigw_operator import KubeSettings
from aigw_operator.bundles import configmap_files
from aigw_operator.kube import KubeClient, load_credentials
from aigw_sidecar.bundle_store import BundleStore
from aigw_sidecar.metrics import Metrics as SidecarMetrics
from support import wait_for

pytestmark = pytest.mark.k8s

NS = "op-team-a"  # the quickstart examples, moved out of the chart tests' team-a
POLICIES = f"/apis/aigw.dev/v1alpha1/namespaces/{NS}/aipolicies"
POINTER = f"/api/v1/namespaces/{NS}/configmaps/aigw-bundle"


def pointer(cluster: Any) -> dict[str, Any] | None:
    result = cluster.plane.kubectl(
        "-n", NS, "get", "configmap", "aigw-bundle", "-o", "json", check=False
    )
    return None if result.returncode else dict(json.loads(result.stdout))


def revision(cm: dict[str, Any] | None) -> int:
    return int(cm["metadata"]["annotations"]["aigw.dev/revision"]) if cm else 0


def conditions(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}


async def set_max_tokens(client: KubeClient, value: int) -> None:
    """Patch support-assistant's first use case to maxTokens=value (lists merge as a whole)."""
    body = await client.request("GET", f"{POLICIES}/support-assistant")
    use_case = body["spec"]["useCases"][0]
    use_case["limits"]["maxTokens"] = value
    await client.merge_patch(f"{POLICIES}/support-assistant", {"spec": {"useCases": [use_case]}})


def admin(cluster: Any) -> KubeClient:
    scratch = cluster.operator.workdir / "admin-credentials"
    scratch.mkdir(mode=0o700, exist_ok=True)
    settings = KubeSettings(kubeconfig=cluster.plane.kubeconfig)
    return KubeClient(load_credentials(settings, scratch))


def sidecar_loads(cm: dict[str, Any], root: Path) -> Any:
    """Lay the ConfigMap out as kubelet mounts it (``..data`` symlink) and load it with the
    sidecar's own BundleStore; the Secret as it would be mounted beside it."""
    data = root / "..2026_01_01_00_00_00.000000001"
    data.mkdir(parents=True)
    for name, content in configmap_files(cm).items():
        (data / name).write_bytes(content)
        (root / name).symlink_to(f"..data/{name}")
    (root / "..data").symlink_to(data.name)
    secrets = root.parent / "secrets" / "provider-keys"
    secrets.mkdir(parents=True)
    for key in ("openai", "anthropic"):
        (secrets / key).write_text("sk-test")
    store = BundleStore(root / "bundle.json", secrets.parent, SidecarMetrics())
    assert store.load(), store.last_error
    return store.current


def test_examples_give_a_bundle_the_sidecar_accepts(aigw_cluster: Any, tmp_path: Path) -> None:
    aigw_cluster.apply_examples()
    cm = wait_for("the pointer ConfigMap", lambda: pointer(aigw_cluster))
    bundle = decode_files(configmap_files(cm))
    assert bundle.revision == revision(cm) >= 1
    loaded = sidecar_loads(cm, tmp_path / "bundle")
    assert (loaded.revision, loaded.content_hash) == (bundle.revision, bundle.content_hash)
    assert [p.name for p in bundle.policies] == ["report-summarizer", "support-assistant"]
    assert [r.name for r in bundle.routes] == ["chat", "chat-economy"]
    history = aigw_cluster.get("-n", NS, "configmap", f"aigw-bundle-{bundle.revision}")
    assert history["immutable"] is True
    assert configmap_files(history) == configmap_files(cm)

    def ready() -> bool:
        items = aigw_cluster.get("-n", NS, "aipolicies,modelroutes")["items"]
        return len(items) == 4 and all(
            conditions(i).get("Ready", {}).get("status") == "True"
            and i["status"].get("bundleRevision") == bundle.revision
            for i in items
        )

    wait_for("every resource Ready in the bundle's revision", ready)
    policy = aigw_cluster.get("-n", NS, "aipolicy", "support-assistant")
    assert policy["status"]["observedGeneration"] == policy["metadata"]["generation"]
    assert policy["status"]["tenant"] == "acme"
    assert conditions(policy)["Valid"]["status"] == "True"


def test_an_edit_publishes_a_new_revision(aigw_cluster: Any) -> None:
    async def measure() -> list[float]:
        times: list[float] = []
        async with admin(aigw_cluster) as client:
            for i in range(5):
                before = await client.request("GET", POINTER)
                started = time.perf_counter()
                await set_max_tokens(client, 1000 + i)
                while True:
                    now = await client.request("GET", POINTER)
                    if revision(now) > revision(before):
                        break
                    await asyncio.sleep(0.005)
                times.append(time.perf_counter() - started)
                bundle = decode_files(configmap_files(now))
                assert bundle.policies[1].use_cases[0].limits.max_tokens == 1000 + i
        return times

    times = asyncio.run(measure())
    print(
        f"\npropagation (edit accepted -> new pointer ConfigMap), 5 edits: "
        f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
    )


def test_unchanged_content_writes_no_revision(aigw_cluster: Any) -> None:
    before = revision(pointer(aigw_cluster))
    runs = aigw_cluster.operator.metric("aigw_operator_reconciles_total", result="unchanged")
    aigw_cluster.kubectl("-n", NS, "label", "aipolicy", "support-assistant", "touched=yes")
    wait_for(
        "a reconcile",
        lambda: (
            aigw_cluster.operator.metric("aigw_operator_reconciles_total", result="unchanged")
            > runs
        ),
    )
    assert revision(pointer(aigw_cluster)) == before


def test_a_deleted_policy_leaves_the_bundle(aigw_cluster: Any) -> None:
    before = revision(pointer(aigw_cluster))
    aigw_cluster.kubectl("-n", NS, "delete", "aipolicy", "report-summarizer")

    def newer() -> dict[str, Any] | None:
        cm = pointer(aigw_cluster)
        return cm if revision(cm) > before else None

    cm = wait_for("a new revision", newer)
    bundle = decode_files(configmap_files(cm))
    assert [p.name for p in bundle.policies] == ["support-assistant"]


def test_100_rapid_edits_give_few_revisions_and_the_last_is_correct(aigw_cluster: Any) -> None:
    before = revision(pointer(aigw_cluster))

    async def burst() -> float:
        async with admin(aigw_cluster) as client:
            body = await client.request("GET", f"{POLICIES}/support-assistant")
            use_case = body["spec"]["useCases"][0]
            started = time.perf_counter()
            for i in range(1, 101):
                use_case["limits"]["maxTokens"] = i
                await client.merge_patch(
                    f"{POLICIES}/support-assistant", {"spec": {"useCases": [use_case]}}
                )
            return time.perf_counter() - started

    took = asyncio.run(burst())

    def settled() -> dict[str, Any] | None:
        cm = pointer(aigw_cluster)
        if cm is None:
            return None
        bundle = decode_files(configmap_files(cm))
        return cm if bundle.policies[0].use_cases[0].limits.max_tokens == 100 else None

    cm = wait_for("the last edit in force", settled)
    published = revision(cm) - before
    print(f"\n100 edits in {took:.2f}s -> {published} revisions")
    # The debouncer's guarantee (--max-delay-seconds 1): at most one bundle per second of a
    # burst, plus the one after it; not a speed assertion (a slower machine just takes longer).
    assert 1 <= published <= took / 1.0 + 2

    def collected() -> list[dict[str, Any]] | None:
        """The history once garbage-collected down to --keep-revisions (the operator
        deletes old revisions after it has published the new pointer)."""
        selector = ("-l", "aigw.dev/bundle=history")
        items: list[dict[str, Any]] = aigw_cluster.get("-n", NS, "configmaps", *selector)["items"]
        return items if len(items) <= 5 else None

    history = wait_for("the history garbage-collected to 5 revisions", collected, timeout=60)
    assert f"aigw-bundle-{revision(cm)}" in {h["metadata"]["name"] for h in history}


def test_an_invalid_policy_is_reported_and_the_bundle_stays(aigw_cluster: Any) -> None:
    before = pointer(aigw_cluster)
    bad = """
apiVersion: aigw.dev/v1alpha1
kind: AIPolicy
metadata: {name: bad-policy, namespace: op-team-a}
spec:
  selector: {matchLabels: {app: bad}}
  useCases:
    - name: chat
      routes: [no-such-route]
"""
    aigw_cluster.kubectl("apply", "-f", "-", input=bad)

    def invalid() -> dict[str, Any] | None:
        body = aigw_cluster.get("-n", NS, "aipolicy", "bad-policy")
        valid = conditions(body).get("Valid", {})
        return valid if valid.get("status") == "False" else None

    valid = wait_for("Valid=False", invalid)
    assert valid["reason"] == "InvalidReference"
    assert "no-such-route" in valid["message"]
    events = wait_for(
        "a Warning Event",
        lambda: aigw_cluster.get(
            "-n", NS, "events", "--field-selector", "involvedObject.name=bad-policy"
        )["items"],
    )
    assert {(e["type"], e["reason"]) for e in events} == {("Warning", "InvalidReference")}
    after = pointer(aigw_cluster)
    assert after is not None
    assert before is not None
    assert configmap_files(after) == configmap_files(before)  # the previous one stays in force
    route = aigw_cluster.get("-n", NS, "modelroute", "chat")
    assert conditions(route)["Ready"]["reason"] == "BundleBlocked"

    aigw_cluster.kubectl("-n", NS, "delete", "aipolicy", "bad-policy")
    wait_for(
        "Ready again",
        lambda: (
            conditions(aigw_cluster.get("-n", NS, "modelroute", "chat"))["Ready"]["status"]
            == "True"
        ),
    )


def test_a_bundle_too_large_is_reported_and_the_previous_one_stays(aigw_cluster: Any) -> None:
    before = pointer(aigw_cluster)
    assert before is not None
    backend = (
        "{name: b%d, provider: openai-compatible, model: %s, baseURL: http://vllm:8000/v1,"
        ' pricing: {inputPerMillionTokensUSD: "0.02", outputPerMillionTokensUSD: "0.05"}}'
    )
    # Random model names: format 2 compresses anything repetitive into one part, and the
    # session's operator runs with 100 KB parts, so 4 parts hold about 400 KB of gzip.
    routes = [
        f"apiVersion: aigw.dev/v1alpha1\nkind: ModelRoute\nmetadata: {{name: bulk-{r}, "
        f"namespace: {NS}, labels: {{bulk: 'yes'}}}}\nspec:\n  backends:\n"
        + "".join(f"    - {backend % (i, 'm' + token_urlsafe(186))}\n" for i in range(16))
        for r in range(200)
    ]
    aigw_cluster.kubectl("apply", "-f", "-", input="---\n".join(routes))

    def too_large() -> dict[str, Any] | None:
        ready = conditions(aigw_cluster.get("-n", NS, "modelroute", "bulk-0")).get("Ready", {})
        return ready if ready.get("reason") == "BundleTooLarge" else None

    ready = wait_for("Ready=False BundleTooLarge", too_large)
    assert "fit the ConfigMaps a pod mounts" in ready["message"]
    # While the 200 routes arrived, smaller bundles were published; the last one that fitted
    # stays in force, and the status names it.
    after = pointer(aigw_cluster)
    assert after is not None
    assert f"revision {revision(after)} stays in force" in ready["message"]
    # Bundles of a few hundred KB were sharded: the pointer and its part ConfigMaps together.
    parts = aigw_cluster.get("-n", NS, "configmaps", "-l", "aigw.dev/bundle=pointer-part")
    in_force = decode_files(configmap_files(after, *parts["items"]))
    assert len(in_force.routes) < 200
    assert revision(after) >= revision(before)
    events = aigw_cluster.get(
        "-n", NS, "events", "--field-selector", "involvedObject.name=bulk-0,reason=BundleTooLarge"
    )["items"]
    assert events
    aigw_cluster.kubectl("-n", NS, "delete", "modelroutes", "-l", "bulk=yes", "--wait=false")
    aigw_cluster.apply_examples(secrets=False)
    wait_for(
        "Ready again",
        lambda: (
            conditions(aigw_cluster.get("-n", NS, "modelroute", "chat"))["Ready"]["status"]
            == "True"
        ),
    )


def test_the_operator_has_no_more_than_the_chart_grants(aigw_cluster: Any) -> None:
    """It did all of the above as its ServiceAccount; it can list Pods (rollout status) but
    not change them, and cannot read Secrets."""
    sa = "system:serviceaccount:aigw-op-system:aigw-operator"

    def can(*args: str) -> bool:
        result = aigw_cluster.plane.kubectl("auth", "can-i", *args, f"--as={sa}", check=False)
        return bool(result.stdout.strip() == "yes")

    assert can("create", "configmaps", "-n", NS)
    assert can("list", "pods", "-n", NS)  # the rollout poller finds injected pods
    assert can("patch", "aipolicies.aigw.dev", "--subresource=status", "-n", NS)
    for verb, resource in [
        ("get", "secrets"),
        ("patch", "pods"),
        ("watch", "pods"),
        ("get", "namespaces"),
        ("update", "aipolicies.aigw.dev"),
        ("watch", "configmaps"),
        ("create", "mutatingwebhookconfigurations"),
        ("patch", "clusterkopfpeerings.kopf.dev/someone-else"),
    ]:
        assert not can(verb, resource, "-n", NS), f"{verb} {resource}"
