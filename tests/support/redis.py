"""Real redis-servers for tests: one plain or TLS server, or a Redis Cluster, on loopback.

:func:`make_certificates` writes a throw-away CA, a server certificate for ``redis.test``
and a client certificate with the ``openssl`` command line. :class:`Cluster` starts
``masters x (1 + replicas)`` ``redis-server --cluster-enabled yes`` processes on free
ports, joins them with ``redis-cli --cluster create`` and waits until every node says
``cluster_state:ok``. :class:`SharedRedis` is what a test needs of either (or of one plain
server): the URL and TLS settings for the store, the ``aigw sidecar`` flags, and one
blocking client per master to look at what was written.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from aigw_sidecar.governance import TlsSettings

from .ports import free_port

__all__ = [
    "Cluster",
    "RedisServer",
    "SharedRedis",
    "client_tls",
    "make_certificates",
]

SERVER_NAME = "redis.test"


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and below 65536 too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    pytest.fail("no free port pair for a cluster node")


class RedisServer:
    """A redis-server on a free loopback port, in its own directory; stoppable mid-test."""

    def __init__(self, workdir: Path, *extra: str, tls: Path | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (bash .ci/system-deps.sh installs it)")
        self.binary = binary
        # A private directory, not pytest's tmp_path: pytest deletes old numbered temp
        # directories when other sessions start, and a cluster node whose config file
        # vanishes exits. ``workdir`` keeps a link to it for whoever reads the test's files.
        self.workdir = Path(tempfile.mkdtemp(prefix="aigw-redis-"))
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_cluster_port() if "--cluster-enabled" in extra else free_port()
        self.extra = extra
        """More redis-server arguments (``--cluster-enabled yes``)."""
        self.tls = tls
        """A directory with ca.crt, server.crt/key and client.crt/key: serve TLS only."""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def _tls_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        return [
            "--port", "0", "--tls-port", str(self.port),
            "--tls-cert-file", str(self.tls / "server.crt"),
            "--tls-key-file", str(self.tls / "server.key"),
            "--tls-ca-cert-file", str(self.tls / "ca.crt"),
            "--tls-auth-clients", "yes",
        ]  # fmt: skip

    def _client_kwargs(self) -> dict[str, Any]:
        if self.tls is None:
            return {}
        return {
            "ssl": True,
            "ssl_ca_certs": str(self.tls / "ca.crt"),
            "ssl_certfile": str(self.tls / "client.crt"),
            "ssl_keyfile": str(self.tls / "client.key"),
            "ssl_check_hostname": False,
        }

    def start(self) -> None:
        assert self.proc is None
        for _ in range(5):  # a port taken meanwhile by another process: try another one
            if self._launch():
                return
            self.port = free_cluster_port() if "--cluster-enabled" in self.extra else free_port()
        pytest.fail(f"redis-server did not start: see {self.workdir}")

    def _launch(self) -> bool:
        """Start on ``self.port``; False when the server exited (the port was taken)."""
        self.proc = subprocess.Popen(
            [
                self.binary,
                *self._tls_args(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.workdir / f"redis-{self.port}.log"),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(
            host="127.0.0.1",
            port=self.port,
            socket_connect_timeout=0.2,
            socket_timeout=0.5,
            **self._client_kwargs(),
        )
        try:
            for _ in range(400):
                if self.proc.poll() is not None:
                    self.proc = None
                    return False
                try:
                    if client.ping():
                        return True
                except redis.RedisError:  # not up yet, or someone else's server on the port
                    time.sleep(0.025)
            pytest.fail(f"redis-server did not answer on port {self.port}")
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen server cannot handle SIGTERM
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None

    def remove(self) -> None:
        """Stop and delete the server's directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL: no shutdown, nothing saved."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self.proc = None

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and commands wait in socket buffers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def client(self) -> redis.Redis:
        """A blocking client with string replies (close it)."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, decode_responses=True, **self._client_kwargs()
        )

    def flush(self) -> None:
        client = self.client()
        try:
            client.flushall()
        finally:
            client.close()


def make_certificates(directory: Path) -> Path:
    """CA, server (``redis.test``) and client certificates as PEM files in ``directory``."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed (bash .ci/system-deps.sh installs it)")
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=aigw test CA")  # fmt: skip
    for name, subject, ext in (
        ("server", f"/CN={SERVER_NAME}", f"subjectAltName=DNS:{SERVER_NAME}\n"),
        ("client", "/CN=aigw sidecar", "extendedKeyUsage=clientAuth\n"),
    ):
        (directory / f"{name}.ext").write_text(ext)
        run("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2",
            "-extfile", f"{name}.ext")  # fmt: skip
    return directory


def client_tls(directory: Path) -> TlsSettings:
    """The sidecar's TLS settings for servers made by :func:`make_certificates`."""
    return TlsSettings(
        ca_file=directory / "ca.crt",
        cert_file=directory / "client.crt",
        key_file=directory / "client.key",
        server_name=SERVER_NAME,
    )


_CLUSTER_ARGS = (
    "--cluster-enabled", "yes",
    "--cluster-config-file", "nodes.conf",
    "--cluster-node-timeout", "1000",
    "--cluster-replica-validity-factor", "0",
    "--repl-diskless-sync-delay", "0",
    # A shard that lost its master refuses its own slots; the others keep serving (the
    # default, yes, makes every node answer CLUSTERDOWN until the failover is over).
    "--cluster-require-full-coverage", "no",
)  # fmt: skip


class Cluster:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each."""

    def __init__(self, workdir: Path, masters: int = 3, replicas: int = 0) -> None:
        self.nodes = [
            RedisServer(workdir / f"node{i}", *_CLUSTER_ARGS)
            for i in range(masters * (1 + replicas))
        ]
        self.replicas = replicas

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:2])

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            pytest.fail("redis-cli is not installed (bash .ci/system-deps.sh installs it)")
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self.wait_ok()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every running node reports ``cluster_state:ok`` and agrees on the masters."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = []
            for node in self.nodes:
                if node.proc is None:
                    continue
                client = node.client()
                try:
                    states.append(client.cluster("INFO")["cluster_state"] == "ok")
                except redis.RedisError:
                    states.append(False)
                finally:
                    client.close()
            settled = all(states) and len(self.masters()) * (1 + self.replicas) >= len(states)
            if settled and self._replicas_in_sync():
                return
            time.sleep(0.1)
        pytest.fail("the cluster did not reach cluster_state:ok")

    def _replicas_in_sync(self) -> bool:
        """Every running replica has finished its sync with its master."""
        for node in self.nodes:
            if node.proc is None:
                continue
            client = node.client()
            try:
                info = client.info("replication")
                if info["role"] == "slave" and info.get("master_link_status") != "up":
                    return False
            except redis.RedisError:
                return False
            finally:
                client.close()
        return True

    def masters(self) -> list[RedisServer]:
        """The running nodes that are masters now."""
        found = []
        for node in self.nodes:
            if node.proc is None:
                continue
            client = node.client()
            try:
                if client.info("replication")["role"] == "master":
                    found.append(node)
            except redis.RedisError:
                pass
            finally:
                client.close()
        return found

    def flush(self) -> None:
        for node in self.masters():
            node.flush()

    def remove(self) -> None:
        for node in self.nodes:
            node.remove()


@dataclass
class SharedRedis:
    """One plain server, one TLS server or a cluster, as tests use them."""

    kind: str
    url: str
    servers: list[RedisServer]
    tls: TlsSettings | None = None
    cluster: Cluster | None = field(default=None, repr=False)

    def flags(self) -> list[str]:
        """``aigw sidecar`` flags for this state."""
        flags = ["--redis-url", self.url]
        if self.tls is not None:
            flags += [
                "--redis-tls-ca", str(self.tls.ca_file),
                "--redis-tls-cert", str(self.tls.cert_file),
                "--redis-tls-key", str(self.tls.key_file),
                "--redis-tls-server-name", str(self.tls.server_name),
            ]  # fmt: skip
        return flags

    def primaries(self) -> list[RedisServer]:
        return self.cluster.masters() if self.cluster is not None else self.servers

    def flush(self) -> None:
        for server in self.primaries():
            server.flush()

    def commandstats(self) -> dict[str, int]:
        """Calls per command, summed over the primaries (``INFO commandstats``)."""
        calls: dict[str, int] = {}
        for server in self.primaries():
            client = server.client()
            try:
                for name, stats in client.info("commandstats").items():
                    command = name.removeprefix("cmdstat_")
                    calls[command] = calls.get(command, 0) + int(stats["calls"])
            finally:
                client.close()
        return calls

    def reset_stats(self) -> None:
        for server in self.primaries():
            client = server.client()
            try:
                client.config_resetstat()
            finally:
                client.close()
