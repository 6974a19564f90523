"""The real servers the targets need beside them: Redis, an OpenTelemetry Collector, nginx.

Each is a child process started by :class:`procs.Proc` on loopback only, configured from a
file generated in the run's temp directory (no system service, no system config), and
stopped when its context ends.

* ``redis-server`` (Debian): no persistence, one per aigw row that keeps state in Redis, so
  its command counts belong to that row alone.
* ``otelcol`` (the pinned Go build in ``$AIGW_CACHE``, see ``e2e/build-tools.sh``): OTLP over
  HTTP and gRPC in, the ``debug`` exporter out at ``basic`` verbosity, which logs one line
  per batch with its span count: evidence that every call was traced, without writing
  hundreds of megabytes of spans to disk.
* ``nginx`` (Debian): the compiled floor for one HTTP hop. One worker, ``proxy_pass`` to
  the upstream over a keep-alive pool (HTTP/1.1, ``Connection`` cleared), no buffering (so
  server-sent events flow as they come), no access log, keep-alive without a request cap on
  both sides.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from procs import Proc, free_port, wait_for_port

__all__ = [
    "Collector",
    "collector",
    "nginx_binary",
    "nginx_config",
    "otelcol_path",
    "redis",
    "start_nginx",
]


@contextlib.contextmanager
def redis(name: str, cpus: str, logs: Path) -> Iterator[int]:
    """A throw-away redis-server; yields its port."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is missing: run `make deps`")
    port = free_port()
    command = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--protected-mode", "no"]
    with Proc(name, command, cpus=cpus, log_dir=logs) as proc:
        wait_for_port(proc, port)
        yield port


def otelcol_path(cache: Path) -> Path | None:
    """The pinned Collector build, or None when ``make tools`` has not built it."""
    from aigw_e2e.tools import Tools, tools_key  # noqa: PLC0415 - only tracing rows need it

    path = Tools(cache / "tools" / tools_key()).path("otelcol")
    return path if os.access(path, os.X_OK) else None


@dataclass(frozen=True)
class Collector:
    http_endpoint: str
    """Base URL of the OTLP/HTTP receiver (exporters append /v1/traces)."""
    grpc_endpoint: str
    log: Path
    """The debug exporter's output: one line per batch, with its span count."""


@contextlib.contextmanager
def collector(name: str, binary: Path, cpus: str, work: Path, logs: Path) -> Iterator[Collector]:
    """One Collector on free loopback ports."""
    http, grpc = free_port(), free_port()
    config = {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"127.0.0.1:{grpc}"},
                    "http": {"endpoint": f"127.0.0.1:{http}"},
                }
            }
        },
        "processors": {"batch": {"timeout": "200ms"}},
        "exporters": {"debug": {"verbosity": "basic"}},
        "service": {
            # The Collector samples its own log lines by default (10 per 10 s, then 1 in
            # 100): the debug exporter's span counts are read from that log, so no sampling.
            "telemetry": {"metrics": {"level": "none"}, "logs": {"sampling": {"enabled": False}}},
            "pipelines": {
                signal: {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["debug"]}
                for signal in ("traces", "metrics", "logs")
            },
        },
    }
    path = work / f"{name}.json"
    path.write_text(json.dumps(config, indent=2))
    with Proc(name, [str(binary), f"--config=file:{path}"], cpus=cpus, log_dir=logs) as proc:
        wait_for_port(proc, http, within=60)
        wait_for_port(proc, grpc, within=60)
        yield Collector(f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc}", proc.log_path)


def nginx_binary() -> str | None:
    """Debian's nginx (in /usr/sbin, which a non-root PATH may lack), or None."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")


def nginx_config(root: Path, port: int, upstream_port: int) -> str:
    """The whole nginx.conf: every path inside ``root``, loopback only."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers need no other user here
    return f"""{user}daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_timeout 120s;
    keepalive_requests 100000000;
    upstream fake {{
        server 127.0.0.1:{upstream_port};
        keepalive 128;
        keepalive_requests 100000000;
        keepalive_timeout 120s;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""


@contextlib.contextmanager
def start_nginx(cpus: str, logs: Path, upstream_port: int) -> Iterator[tuple[Proc, int]]:
    """nginx as a reverse proxy in front of the upstream; yields the process and its port."""
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        raise RuntimeError("nginx is missing: `make bench` installs it (bench/deps.sh)")
    root = Path(tempfile.mkdtemp(prefix="aigw-bench-nginx-"))
    try:
        port = free_port()
        config = root / "nginx.conf"
        config.write_text(nginx_config(root, port, upstream_port))
        command = [binary, "-p", str(root), "-c", str(config), "-e", str(root / "error.log")]
        with Proc("nginx", command, cpus=cpus, log_dir=logs) as proc:
            wait_for_port(proc, port)
            yield proc, port
    finally:
        with contextlib.suppress(OSError):
            shutil.copy(root / "error.log", logs / "nginx-error.log")
        shutil.rmtree(root, ignore_errors=True)
