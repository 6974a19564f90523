#!/usr/bin/env bash
# Builds the pinned Go tools that the Kubernetes tests and `make cluster-up` run: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok, helm and an
# OpenTelemetry Collector. Versions live in e2e/tools/versions.env; the binaries go to
#   ${AIGW_CACHE:-$HOME/.cache/aigw}/tools/<key>/bin
# where <key> is derived from e2e/tools/versions.env and e2e/tools/otelcol-builder.yaml
# (aigw_e2e.tools computes the same key). A binary that is already there is not rebuilt, so a
# warm run takes a second and needs no network. Go's module and build caches stay in their
# default places, outside the repository, so a rebuild after a version bump is incremental.
#
# usage: e2e/build-tools.sh [--print-bin-dir] [TOOL...]
# With TOOL names (e.g. `otelcol`, which `make bench` needs), only those are built.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
tools=$here/tools
# shellcheck source=tools/versions.env
source "$tools/versions.env"

cache=${AIGW_CACHE:-$HOME/.cache/aigw}
key=$(cat "$tools/versions.env" "$tools/otelcol-builder.yaml" | sha256sum | cut -c1-16)
root=$cache/tools/$key
bin=$root/bin
src=$root/src
share=$root/share
logs=$root/logs
all_tools=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm otelcol)

if [[ ${1:-} == --print-bin-dir ]]; then
  echo "$bin"
  exit 0
fi

say() { echo "build-tools: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

wanted=("${all_tools[@]}")
if [[ $# -gt 0 ]]; then
  for t in "$@"; do
    [[ " ${all_tools[*]} " == *" $t "* ]] || die "unknown tool $t (known: ${all_tools[*]})"
  done
  wanted=("$@")
fi
wants() { [[ " ${wanted[*]} " == *" $1 "* ]]; }

missing=()
for t in "${wanted[@]}"; do [[ -x $bin/$t ]] || missing+=("$t"); done
if wants kwok && [[ ! -f $share/kwok-stages.yaml ]]; then missing+=(kwok-stages.yaml); fi
if [[ ${#missing[@]} -eq 0 ]]; then
  say "all tools present in $bin (cache key $key)"
  exit 0
fi

command -v go >/dev/null || die "the go command is not on PATH; install Go >= 1.26"
go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
[[ $go_minor -ge 26 ]] || die "Go >= 1.26 is needed, found $(go env GOVERSION)"

mkdir -p "$bin" "$src" "$logs" "$share"
exec 9>"$root/.lock"
if command -v flock >/dev/null; then
  flock -n 9 || { say "another build holds $root/.lock; waiting"; flock 9; }
fi

say "building ${missing[*]} into $bin (cache key $key, $(go env GOVERSION))"
say "logs in $logs; a cold build of the Kubernetes binaries takes tens of minutes on 2 cores"

# One cheap request first, so an unreachable module proxy gives one clear message instead of
# a wall of download errors later.
check_proxy() {
  local out
  if ! out=$(cd "$src" && GOFLAGS=-mod=mod timeout 180 go list -m -f '{{.GoMod}}' \
      "k8s.io/kubernetes@$K8S_VERSION" 2>&1); then
    say "ERROR: cannot reach the Go module proxy (GOPROXY=$(go env GOPROXY))."
    say "The tools are built from Go modules; check the network or set GOPROXY to a reachable proxy."
    say "go said: $(echo "$out" | tail -3)"
    exit 2
  fi
}
check_proxy

# run_logged LABEL LOG CMD...: runs CMD with its output in LOG, printing a line of progress
# every 30 s and the log's tail if it fails.
run_logged() {
  local label=$1 log=$2 start pid rc
  shift 2
  start=$(date +%s)
  "$@" >"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null &&
      say "  ... $label: $(( $(date +%s) - start ))s, $(wc -l <"$log") log lines"
  done
  rc=0; wait "$pid" || rc=$?
  if [[ $rc -ne 0 ]]; then
    tail -30 "$log" >&2
    die "$label failed (exit $rc); full log: $log"
  fi
  say "  $label took $(( $(date +%s) - start ))s"
  echo "$label $(( $(date +%s) - start ))s" >>"$root/build-times.txt"
}

# new_module DIR NAME: an empty Go module whose requirements `go get` then pins.
new_module() {
  rm -rf "$1"; mkdir -p "$1"
  (cd "$1" && go mod init "aigw.dev/e2e/tools/$2" >/dev/null 2>&1)
}

need() { wants "$1" && [[ ! -x $bin/$1 ]]; }

build_kubernetes() {
  local dir=$src/kubernetes gomod staging_version ldflags p c
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  new_module "$dir" kubernetes
  # k8s.io/kubernetes requires every staging module at v0.0.0 and maps it to ./staging/...,
  # which only resolves inside its repository: replace each with its published v0.X.Y.
  gomod=$(cd "$dir" && go list -m -f '{{.GoMod}}' "k8s.io/kubernetes@$K8S_VERSION")
  staging_version=v0.${K8S_VERSION#v1.}
  {
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod" | sort -u |
      while read -r m; do echo "	$m => $m $staging_version"; done
    echo ")"
  } >>"$dir/go.mod"
  say "kubernetes $K8S_VERSION: $(grep -c " => .* $staging_version\$" "$dir/go.mod") staging modules replaced with $staging_version"
  run_logged "resolve kubernetes modules" "$logs/kubernetes-get.log" \
    bash -c "cd '$dir' && go get $(for c in "${cmds[@]}"; do printf 'k8s.io/kubernetes/cmd/%s@%s ' "$c" "$K8S_VERSION"; done)"
  # Without these, `kubectl version` and Helm's kubeVersion checks see v0.0.0-master.
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for c in "${cmds[@]}"; do
    need "$c" || continue
    run_logged "build $c $K8S_VERSION" "$logs/$c.log" bash -c \
      "cd '$dir' && go build -v -trimpath -ldflags '$ldflags' -o '$bin/$c.tmp' k8s.io/kubernetes/cmd/$c"
    mv "$bin/$c.tmp" "$bin/$c"
  done
}

# build_plain NAME MODULE_VERSION PACKAGE [LDFLAGS]: a command whose module needs no replaces.
build_plain() {
  local name=$1 version=$2 pkg=$3 ldflags=${4:-}
  local dir=$src/$name
  new_module "$dir" "$name"
  run_logged "resolve $name $version" "$logs/$name-get.log" \
    bash -c "cd '$dir' && go get '$pkg@$version'"
  if [[ $ldflags == *@K8S_MINOR@* ]]; then
    # Helm derives its default Kubernetes version from the client-go it was built with,
    # exactly as its Makefile does: v0.X.Y -> 1.X.
    local cg; cg=$(cd "$dir" && go list -m -f '{{.Version}}' k8s.io/client-go)
    cg=${cg#v0.}; ldflags=${ldflags//@K8S_MINOR@/${cg%%.*}}
  fi
  run_logged "build $name $version" "$logs/$name.log" bash -c \
    "cd '$dir' && go build -v -trimpath -ldflags '-s -w $ldflags' -o '$bin/$name.tmp' '$pkg'"
  mv "$bin/$name.tmp" "$bin/$name"
}

# The kwok binary alone has no stages (kwokctl adds them): take the "fast" node and pod stages
# and the node heartbeat from the very release that was built.
kwok_stages() {
  local dir f out=$share/kwok-stages.yaml
  dir=$(cd "$src/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
  : >"$out.tmp"
  for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml \
      pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    { echo "---"; cat "$dir/$f"; } >>"$out.tmp"
  done
  mv "$out.tmp" "$out"
  say "  kwok stages written to $out"
}

build_otelcol() {
  local dir=$src/otelcol
  rm -rf "$dir"; mkdir -p "$dir"
  run_logged "install collector builder $OTELCOL_VERSION" "$logs/otelcol-builder-install.log" \
    env GOBIN="$dir" go install "go.opentelemetry.io/collector/cmd/builder@$OTELCOL_VERSION"
  sed -e "s|@OTELCOL_VERSION@|$OTELCOL_VERSION|g" "$tools/otelcol-builder.yaml" >"$dir/manifest.yaml"
  # output_path belongs under dist:, which is the manifest's first mapping.
  awk -v out="$dir/dist" '{print} /^dist:/ {print "  output_path: " out}' "$dir/manifest.yaml" \
    >"$dir/manifest.final.yaml"
  run_logged "build otelcol $OTELCOL_VERSION" "$logs/otelcol.log" \
    "$dir/builder" --config "$dir/manifest.final.yaml"
  cp "$dir/dist/otelcol-aigw" "$bin/otelcol.tmp"
  mv "$bin/otelcol.tmp" "$bin/otelcol"
}

helm_ldflags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
helm_ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=@K8S_MINOR@"
done

total_start=$(date +%s)
for t in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  if need "$t"; then build_kubernetes; break; fi
done
# etcd's main package sits at the root of its server module; built from a module of our own,
# the local replaces in etcd's go.mod do not apply.
need etcd && build_plain etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3
need kwok && build_plain kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
if wants kwok && [[ ! -f $share/kwok-stages.yaml ]]; then kwok_stages; fi
need helm && build_plain helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
  "$helm_ldflags"
need otelcol && build_otelcol

say "done in $(( $(date +%s) - total_start ))s; tools in $bin"
