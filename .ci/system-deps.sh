#!/usr/bin/env bash
# Installs the Debian packages that aigw's tests, demo and benchmarks need, only if missing.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
# redis-cli joins the test Redis Clusters (redis-cli --cluster create); Debian ships it in
# redis-tools. Debian's redis-server is built with TLS (the TLS tests start --tls-port).
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v wrk >/dev/null || need+=(wrk)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
    echo "system-deps: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts a redis-server service on install; tests start their own on free ports.
if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
    systemctl stop redis-server || true
fi
