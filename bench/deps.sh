#!/usr/bin/env bash
# What `make bench` needs beyond `make deps` (which brings wrk and redis-server): Debian's
# nginx, the compiled floor the sidecar is compared with, and the pinned OpenTelemetry
# Collector for the tracing rows. Idempotent: installs and builds only what is missing.
# nginx is only a binary here: the benchmark writes its own config in a temp dir and starts
# it on loopback, so a system service the package may have started is stopped again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    echo "bench-deps: installing nginx" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nginx >/dev/null
    if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
        systemctl stop nginx || true
        systemctl disable --quiet nginx || true
    elif [[ -s /run/nginx.pid ]]; then
        /usr/sbin/nginx -s quit || true
    fi
fi

# Without Go or the module proxy the Collector cannot be built: the tracing rows then say so
# (n/a) and everything else is measured.
if ! bash "$here/../e2e/build-tools.sh" otelcol; then
    echo "bench-deps: no OpenTelemetry Collector; the tracing rows will be n/a" >&2
fi
