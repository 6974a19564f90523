"""The fleet, end to end: injected KWOK pods run their real sidecars (aigw_e2e.kubelet plays
the kubelet), the operator's leader polls them, and the status says which pod serves what.

3 pods serve revision N; a changed AIPolicy gives N+1 and, a few seconds later, 3/3 on N+1
(measured: policy change -> every pod serving, median and max, printed, not asserted); a pod
fed a bundle it refuses is Refused with the reason and keeps serving; ``aigw rollout undo``
brings every pod back to N and the next change resumes from the resources; a pod whose
process stops becomes Unknown; an app-like process using ``OpenAI()`` and ``Anthropic()``
with only the injected environment calls through with model-like names.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from aigw_contract.codec import decode_files
from aigw_e2e.kubelet import Kubelet
from aigw_fakeprovider import FakeProvider
from aigw_fakeprovider.server import FakeProviderThread
from aigw_operator.bundles import configmap_files
from support.waiting import wait_for
from support.workloads import deployment_doc

pytestmark = pytest.mark.k8s

NS = "fleet-a"
CANARY_OPENAI = "sk-fleet-canary-openai-3c91"
CANARY_ANTHROPIC = "sk-ant-fleet-canary-77aa"
VENV_BIN = str(Path(sys.executable).parent)
APP = """
import json
from openai import OpenAI
from anthropic import Anthropic

chat = OpenAI().chat.completions.with_raw_response.create(
    model="gpt-4.1-mini", messages=[{"role": "user", "content": "hello"}]
)
message = Anthropic().messages.with_raw_response.create(
    model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hello"}]
)
print(json.dumps({
    "openai": [chat.headers["x-aigw-route"], chat.parse().choices[0].message.content],
    "anthropic": [message.headers["x-aigw-route"], message.parse().content[0].text],
}))
"""


def resources(openai_url: str, anthropic_url: str, max_tokens: int) -> str:
    docs = [
        {
            "apiVersion": "aigw.dev/v1alpha1",
            "kind": "ModelRoute",
            "metadata": {"name": "chat", "namespace": NS},
            "spec": {
                "modelAliases": ["gpt-4.1-mini", "gpt-4o-mini"],
                "backends": [
                    {
                        "name": "primary",
                        "provider": "openai",
                        "model": "gpt-4o-mini",
                        "baseURL": openai_url,
                        "credentialSecretRef": {"name": "provider-keys", "key": "openai"},
                        "pricing": {
                            "inputPerMillionTokensUSD": "0.15",
                            "outputPerMillionTokensUSD": "0.60",
                        },
                    }
                ],
            },
        },
        {
            "apiVersion": "aigw.dev/v1alpha1",
            "kind": "ModelRoute",
            "metadata": {"name": "claude", "namespace": NS},
            "spec": {
                "modelAliases": ["claude-sonnet-4-5"],
                "backends": [
                    {
                        "name": "sonnet",
                        "provider": "anthropic",
                        "model": "claude-sonnet-4-5",
                        "baseURL": anthropic_url,
                        "credentialSecretRef": {"name": "provider-keys", "key": "anthropic"},
                        "pricing": {
                            "inputPerMillionTokensUSD": "3",
                            "outputPerMillionTokensUSD": "15",
                        },
                    }
                ],
            },
        },
        {
            "apiVersion": "aigw.dev/v1alpha1",
            "kind": "AIPolicy",
            "metadata": {"name": "fleet-app", "namespace": NS},
            "spec": {
                "selector": {"matchLabels": {"app": "fleet"}},
                "useCases": [
                    {
                        "name": "default",
                        "routes": ["chat", "claude"],
                        "limits": {"maxTokens": max_tokens},
                    }
                ],
            },
        },
    ]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})


def deployment(replicas: int) -> str:
    labels = {"aigw.dev/inject": "true"}
    return json.dumps(deployment_doc("fleet", NS, replicas=replicas, labels=labels))


class Fleet:
    def __init__(self, cluster: Any, kubelet: Kubelet, oai: FakeProvider, claude: FakeProvider):
        self.cluster, self.kubelet, self.oai, self.claude = cluster, kubelet, oai, claude

    def apply(self, max_tokens: int) -> None:
        text = resources(self.oai.openai_base_url, self.claude.base_url, max_tokens)
        self.cluster.kubectl("apply", "-f", "-", input=text)

    def pointer_revision(self) -> int:
        """The revision in force (0 before the first one)."""
        result = self.cluster.plane.kubectl(
            "-n",
            NS,
            "get",
            "configmap",
            "aigw-bundle",
            "-o",
            "jsonpath={.metadata.annotations.aigw\\.dev/revision}",
            check=False,
        )
        return int(result.stdout) if result.returncode == 0 and result.stdout else 0

    def rollout(self) -> dict[str, Any]:
        policy = self.cluster.get("-n", NS, "aipolicy", "fleet-app")
        return dict((policy.get("status") or {}).get("rollout") or {})

    def synced(self, revision: int, updated: int, **counts: int) -> dict[str, Any] | None:
        rollout = self.rollout()
        wanted = {"revision": revision, "updated": updated, **counts}
        return rollout if all(rollout.get(k) == v for k, v in wanted.items()) else None

    def aigw(self, *args: str) -> str:
        env = {**os.environ, "KUBECONFIG": str(self.cluster.plane.kubeconfig)}
        result = subprocess.run(
            [sys.executable, "-m", "aigw_cli.main", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.aigw("status", "-n", NS, "-o", "json")))

    def report(self, pod: str) -> dict[str, Any]:
        runtime = self.kubelet.pod(pod, NS)
        url = f"http://{runtime.ip}:15401/aigw/rollout"
        with urllib.request.urlopen(url, timeout=5) as response:
            return dict(json.loads(response.read()))


@pytest.fixture(scope="module")
def fleet(aigw_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    plane = aigw_cluster.plane
    with (
        FakeProviderThread("openai", api_key=CANARY_OPENAI) as oai,
        FakeProviderThread("anthropic", api_key=CANARY_ANTHROPIC) as claude,
    ):
        aigw_cluster.kubectl("create", "namespace", NS)
        aigw_cluster.kubectl(
            "-n",
            NS,
            "create",
            "secret",
            "generic",
            "provider-keys",
            f"--from-literal=openai={CANARY_OPENAI}",
            f"--from-literal=anthropic={CANARY_ANTHROPIC}",
        )
        kubelet = Kubelet(
            plane.server,
            plane.admin_ssl_context(),
            tmp_path_factory.mktemp("kubelet"),
            namespaces=(NS,),
            path=os.pathsep.join([VENV_BIN, os.environ.get("PATH", "")]),
        )
        with kubelet:
            yield Fleet(aigw_cluster, kubelet, oai, claude)
        aigw_cluster.kubectl("delete", "namespace", NS, "--wait=false")


def _newer(fleet: Fleet, than: int) -> int | None:
    revision = fleet.pointer_revision()
    return revision if revision > than else None


def test_policy_change_reaches_every_pod_and_refusals_rollbacks_and_silence_show(
    fleet: Fleet,
) -> None:
    fleet.apply(max_tokens=100)
    first = wait_for("revision N", fleet.pointer_revision)
    fleet.cluster.kubectl("apply", "-f", "-", input=deployment(3))
    wait_for("3 sidecars running", lambda: len(fleet.kubelet.running(NS)) == 3)
    wait_for("3/3 on N", lambda: fleet.synced(first, 3, total=3))
    status = fleet.status()
    assert [p["state"] for p in status["pods"]] == ["Updated"] * 3
    assert {p["revision"] for p in status["pods"]} == {first}
    assert all(p["drift"] == 0 for p in status["pods"])

    # Policy change -> every pod serving the new revision, as the status reports it.
    times, revision = [], first
    for step in range(5):
        started = time.monotonic()
        fleet.apply(max_tokens=200 + step)
        revision = wait_for("N+1", partial(_newer, fleet, revision))
        wait_for(f"3/3 on {revision}", partial(fleet.synced, revision, 3, total=3))
        times.append(time.monotonic() - started)
    print(
        f"\npolicy change -> 3/3 pods serving (status.rollout): median "
        f"{statistics.median(times):.2f}s, max {max(times):.2f}s over {len(times)} changes "
        f"(load {os.getloadavg()[0]:.1f})"
    )
    assert fleet.rollout()["synced"] == "3/3"
    served = revision

    # The next revision reaches one pod in a format it does not know: that pod is Refused,
    # with the reason, and keeps serving the previous one; the others update.
    victim = fleet.kubelet.running(NS)[0]
    current = dict(victim.published["aigw-bundle"])
    envelope = json.loads(current["bundle.json"])
    envelope.update(formatVersion=99, revision=served + 1)
    fleet.kubelet.override_volume(
        victim.name, "aigw-bundle", {**current, "bundle.json": json.dumps(envelope).encode()}
    )
    fleet.apply(max_tokens=300)
    revision = wait_for("N+1", partial(_newer, fleet, served))
    wait_for("2 updated, 1 refused", partial(fleet.synced, revision, 2, refused=1))
    row = next(p for p in fleet.status()["pods"] if p["name"] == victim.name)
    assert row["state"] == "Refused"
    assert "formatVersion 99 is not supported" in row["detail"]
    assert row["refused"]["revision"] == served + 1
    assert row["revision"] == served  # keeps serving its last good bundle
    assert row["drift"] == 1
    assert fleet.report(victim.name)["serving"]["revision"] == served
    events = wait_for(
        "a BundleRefused Event",
        lambda: [
            e
            for e in fleet.cluster.get(
                "-n", NS, "events", "--field-selector", f"involvedObject.name={victim.name}"
            )["items"]
            if e["reason"] == "BundleRefused"
        ],
    )
    assert [e["type"] for e in events] == ["Warning"]  # once, however often it is polled
    assert "formatVersion 99" in events[0]["message"]
    fleet.kubelet.release_volume(victim.name, "aigw-bundle")
    wait_for("3/3 again", partial(fleet.synced, revision, 3, refused=0))
    served = revision

    # Rollback to N: every pod back on N, recorded; the resources' Ready says why.
    history = json.loads(fleet.aigw("rollout", "history", "-n", NS, "-o", "json"))
    assert history[-1]["inForce"]
    assert history[-1]["changes"]["changed"] == ["AIPolicy/fleet-app"]
    kept = [h["revision"] for h in history]
    target = kept[0]
    out = fleet.aigw("rollout", "undo", "-n", NS, f"--to-revision={target}", "--reason=test")
    assert f"revision {target} in force again" in out
    wait_for(f"3/3 back on {target}", lambda: fleet.synced(target, 3, total=3))
    status = fleet.status()
    assert status["rollback"]["toRevision"] == target
    assert status["rollback"]["by"] == "aigw-admin"
    assert status["rollback"]["reason"] == "test"
    assert {p["drift"] for p in status["pods"]} == {0}
    policy = fleet.cluster.get("-n", NS, "aipolicy", "fleet-app")
    ready = {c["type"]: c for c in policy["status"]["conditions"]}["Ready"]
    assert ready["reason"] == "RolledBack"
    # The next change of a resource publishes again, above every kept revision.
    fleet.apply(max_tokens=999)
    resumed = wait_for("a new revision", partial(_newer, fleet, served))
    wait_for(f"3/3 on {resumed}", lambda: fleet.synced(resumed, 3, total=3))

    # A pod whose process stops becomes Unknown.
    silent = fleet.kubelet.running(NS)[1]
    fleet.kubelet.stop_sidecar(silent.name)
    wait_for("1 unknown", lambda: fleet.synced(resumed, 2, unknown=1, total=3), timeout=60)
    row = next(p for p in fleet.status()["pods"] if p["name"] == silent.name)
    assert row["state"] == "Unknown"


def test_unchanged_sdks_call_through_with_model_like_names(fleet: Fleet) -> None:
    if not fleet.kubelet.running(NS):
        fleet.apply(max_tokens=100)
        wait_for("a bundle", fleet.pointer_revision)
        fleet.cluster.kubectl("apply", "-f", "-", input=deployment(3))
    pod = wait_for("a running sidecar", lambda: fleet.kubelet.running(NS))[0]
    wait_for("its sidecar ready", lambda: fleet.report(pod.name)["serving"])
    env = fleet.kubelet.app_env(pod.name, "app", NS)
    assert env["OPENAI_API_KEY"] == env["ANTHROPIC_API_KEY"] != CANARY_OPENAI
    # Only the injected environment (and what Python itself needs): no code change, no key.
    env |= {"PATH": os.environ.get("PATH", ""), "HOME": str(pod.root)}
    result = subprocess.run(
        [sys.executable, "-c", APP],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert answers["openai"][0] == "chat"
    assert answers["anthropic"][0] == "claude"
    # The providers saw the Secret's keys, never the app's placeholder.
    seen = json.dumps([e.to_json() for e in fleet.oai.recorder.exchanges])
    seen += json.dumps([e.to_json() for e in fleet.claude.recorder.exchanges])
    assert env["OPENAI_API_KEY"] not in seen


SCALE_NS = "fleet-scale"
SCALE_POLICIES = 1000
SCALE_ROUTES = 20


def _scale_resources(openai_url: str) -> str:
    backend = {
        "name": "primary",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "baseURL": openai_url,
        "credentialSecretRef": {"name": "provider-keys", "key": "openai"},
        "pricing": {"inputPerMillionTokensUSD": "0.15", "outputPerMillionTokensUSD": "0.60"},
    }
    items: list[dict[str, Any]] = [
        {
            "apiVersion": "aigw.dev/v1alpha1",
            "kind": "ModelRoute",
            "metadata": {"name": f"route-{r}", "namespace": SCALE_NS},
            "spec": {"backends": [backend]},
        }
        for r in range(SCALE_ROUTES)
    ]
    for i in range(SCALE_POLICIES):
        use_cases = [
            {
                "name": name,
                "routes": [f"route-{i % SCALE_ROUTES}"],
                "limits": {"maxTokens": 100 + i},
                "rateLimits": {"requestsPerMinute": 600},
                "budgets": [{"name": "monthly", "period": "month", "costUSD": "100.00"}],
            }
            for name in ("chat", "summarize")
        ]
        items.append(
            {
                "apiVersion": "aigw.dev/v1alpha1",
                "kind": "AIPolicy",
                "metadata": {"name": f"policy-{i}", "namespace": SCALE_NS},
                "spec": {"selector": {"matchLabels": {"app": f"app-{i}"}}, "useCases": use_cases},
            }
        )
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def test_a_1000_policy_bundle_is_published_loaded_and_served(fleet: Fleet, tmp_path: Path) -> None:
    cluster = fleet.cluster
    cluster.kubectl("create", "namespace", SCALE_NS)
    cluster.kubectl(
        "-n",
        SCALE_NS,
        "create",
        "secret",
        "generic",
        "provider-keys",
        f"--from-literal=openai={CANARY_OPENAI}",
    )
    try:
        started = time.monotonic()
        cluster.kubectl("create", "-f", "-", input=_scale_resources(fleet.oai.openai_base_url))
        created = time.monotonic()

        def published() -> dict[str, Any] | None:
            cm = cluster.plane.kubectl(
                "-n", SCALE_NS, "get", "configmap", "aigw-bundle", "-o", "json", check=False
            )
            if cm.returncode != 0:
                return None
            body = json.loads(cm.stdout)
            bundle = decode_files(configmap_files(body))
            return body if len(bundle.policies) == SCALE_POLICIES else None

        pointer = wait_for("the 1,000-policy bundle", published, timeout=600)
        bundled = time.monotonic()
        envelope = json.loads(pointer["data"]["bundle.json"])
        assert envelope["formatVersion"] == 2
        part = len(pointer["binaryData"]["part-0.gz"]) * 3 // 4
        print(
            f"\n1,000 policies: kubectl create {created - started:.1f}s, then bundle in force "
            f"{bundled - created:.1f}s; {part:,} bytes gzip ({envelope['expandedBytes']:,} "
            f"uncompressed) (load {os.getloadavg()[0]:.1f})"
        )
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "app-7",
                "namespace": SCALE_NS,
                "labels": {"app": "app-7", "aigw.dev/inject": "true"},
            },
            "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
        kubelet = Kubelet(
            cluster.plane.server,
            cluster.plane.admin_ssl_context(),
            tmp_path / "kubelet",
            namespaces=(SCALE_NS,),
            path=os.pathsep.join([VENV_BIN, os.environ.get("PATH", "")]),
        )
        with kubelet:
            runtime = wait_for("the sidecar", lambda: kubelet.running(SCALE_NS), timeout=120)[0]

            def serving() -> dict[str, Any] | None:
                try:
                    with urllib.request.urlopen(
                        f"http://{runtime.ip}:15401/aigw/rollout", timeout=5
                    ) as response:
                        report = json.loads(response.read())
                except OSError:
                    return None
                return report if report.get("serving") else None

            report = wait_for("the bundle loaded", serving, timeout=120)
            assert report["serving"]["revision"] == int(envelope["revision"])
            body = json.dumps(
                {"model": "route-7", "messages": [{"role": "user", "content": "hi"}]}
            ).encode()
            request = urllib.request.Request(
                f"http://{runtime.ip}:15400/v1/chat/completions",
                data=body,
                headers={"Content-Type": "application/json", "X-AIGW-Use-Case": "summarize"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
                assert response.headers["X-AIGW-Route"] == "route-7"
            log = (runtime.root / "aigw-sidecar.log").read_text()
            assert "1000 policies" in log
    finally:
        cluster.kubectl("delete", "namespace", SCALE_NS, "--wait=false")


def test_a_rotated_secret_reaches_the_running_sidecar(fleet: Fleet) -> None:
    """The Secret changes after admission: the (stand-in) kubelet re-publishes the mounted
    files, the sidecar notices and reloads with the new key, without a restart."""
    pod = wait_for("a running sidecar", lambda: fleet.kubelet.running(NS))[0]
    pid = pod.process.pid if pod.process else None
    rotated = "sk-fleet-rotated-9d1e"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "provider-keys", "namespace": NS},
        "stringData": {"openai": rotated, "anthropic": CANARY_ANTHROPIC},
    }
    fleet.cluster.kubectl("apply", "-f", "-", input=json.dumps(secret))
    wait_for(
        "the rotated file",
        lambda: (pod.volume_dir("aigw-secret-provider-keys") / "openai").read_text() == rotated,
    )

    def call_sent_with_the_new_key() -> bool:
        body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "x"}]})
        request = urllib.request.Request(
            f"http://{pod.ip}:15400/v1/chat/completions",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        # The fake refuses the new key (an error answer): what matters is which key it saw.
        with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=10):
            pass
        return any(
            rotated in (e.header("authorization") or "") for e in fleet.oai.recorder.exchanges
        )

    wait_for("a call with the rotated key", call_sent_with_the_new_key, timeout=60)
    assert pod.process is not None
    assert pod.process.pid == pid  # no restart
