#!/usr/bin/env bash
# End to end on a kind cluster, for people with a Docker engine (see README.md: it is not run
# by CI or the test suite). Creates the cluster, builds and loads the image, installs the chart,
# applies the examples, deploys a fake provider and a demo app, labels the app for injection,
# checks the sidecar is there, and makes one governed call through it.
#
# usage: e2e/kind/run.sh            (CLUSTER=aigw-e2e IMAGE=aigw:e2e KEEP=1 to keep the cluster)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cluster=${CLUSTER:-aigw-e2e}
image=${IMAGE:-aigw:e2e}
release_ns=aigw-system
demo_ns=aigw-demo

say() { echo "e2e/kind: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
docker info >/dev/null 2>&1 || die "no Docker engine is reachable (docker info failed)"

cleanup() {
  if [[ ${KEEP:-0} != 1 ]]; then
    say "deleting cluster $cluster (KEEP=1 keeps it)"
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

say "1/7 cluster $cluster"
if ! kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  kind create cluster --name "$cluster" --wait 180s
fi
kubectl config use-context "kind-$cluster" >/dev/null

say "2/7 image $image: build and load"
make -C "$root" image IMAGE="$image"
kind load docker-image "$image" --name "$cluster"

say "3/7 helm install"
helm upgrade --install aigw "$root/charts/aigw" \
  --namespace "$release_ns" --create-namespace \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" \
  --set image.pullPolicy=Never \
  --wait --timeout 5m
kubectl -n "$release_ns" rollout status deployment/aigw --timeout=180s

say "4/7 the examples (namespace team-a)"
kubectl create namespace team-a --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f "$root/examples/secrets/provider-keys.yaml" -f "$root/examples/quickstart/"
kubectl -n team-a wait --for=condition=Ready aipolicies --all --timeout=120s
kubectl -n team-a wait --for=condition=Ready modelroutes --all --timeout=120s
kubectl -n team-a get configmap aigw-bundle >/dev/null || die "no bundle ConfigMap in team-a"

say "5/7 the demo: fake provider, route, policy, app (namespace $demo_ns)"
sed "s|AIGW_IMAGE|$image|g" "$here/demo/workloads.yaml" | kubectl apply -f -
kubectl apply -f "$here/demo/policy.yaml"
kubectl -n "$demo_ns" rollout status deployment/fake-llm --timeout=180s
kubectl -n "$demo_ns" rollout status deployment/demo-app --timeout=180s
kubectl -n "$demo_ns" wait --for=condition=Ready aipolicy/demo modelroute/demo-chat --timeout=120s

say "6/7 label the demo app for injection and check the sidecar"
kubectl -n "$demo_ns" patch deployment demo-app --type merge \
  -p '{"spec":{"template":{"metadata":{"labels":{"aigw.dev/inject":"true"}}}}}'
kubectl -n "$demo_ns" rollout status deployment/demo-app --timeout=180s
pod=$(kubectl -n "$demo_ns" get pods -l app=demo-app,aigw.dev/inject=true \
  --field-selector=status.phase=Running -o jsonpath='{.items[0].metadata.name}')
[[ -n $pod ]] || die "no running injected demo-app pod"
containers=$(kubectl -n "$demo_ns" get pod "$pod" \
  -o jsonpath='{.spec.initContainers[*].name} {.spec.containers[*].name}')
[[ " $containers " == *" aigw-sidecar "* ]] || die "pod $pod has no aigw-sidecar ($containers)"
status=$(kubectl -n "$demo_ns" get pod "$pod" \
  -o jsonpath='{.metadata.annotations.aigw\.dev/injection-status}')
say "injected: $status"

say "7/7 one governed call through the sidecar"
kubectl -n "$demo_ns" exec -i "$pod" -c app -- python - <<'PY'
import json
import os
import urllib.request

base = os.environ["OPENAI_BASE_URL"]  # injected: http://127.0.0.1:<port>/v1
body = {"model": "demo-chat", "messages": [{"role": "user", "content": "Say hello."}]}
request = urllib.request.Request(
    base + "/chat/completions",
    data=json.dumps(body).encode(),
    headers={"Content-Type": "application/json", "X-AIGW-Use-Case": "chat"},
)
with urllib.request.urlopen(request, timeout=30) as response:
    answer = json.load(response)
    headers = {k: v for k, v in response.headers.items() if k.lower().startswith("x-aigw-")}
print(json.dumps({"status": response.status, "headers": headers}, indent=2))
assert response.status == 200, response.status
assert headers.get("X-AIGW-Policy-Version"), "no X-AIGW-Policy-Version: not governed"
assert headers.get("X-AIGW-Route") == "demo-chat", headers
assert answer["choices"][0]["message"]["content"], answer
PY

say "OK: installed, injected, one governed call answered"
