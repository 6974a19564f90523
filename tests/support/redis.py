"""A real ``redis-server`` on a free loopback port, started and stopped by tests."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis

from .ports import free_port

__all__ = ["RedisServer"]


class RedisServer:
    """A redis-server on a free loopback port, in its own directory; stoppable mid-test."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (bash .ci/system-deps.sh installs it)")
        self.binary = binary
        # A private directory, not pytest's tmp_path: pytest deletes old numbered temp
        # directories when other sessions start, and a cluster node whose config file
        # vanishes exits. ``workdir`` keeps a link to it for whoever reads the test's files.
        self.workdir = Path(tempfile.mkdtemp(prefix="aigw-redis-"))
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.extra = extra
        """More redis-server arguments (``--cluster-enabled yes``, TLS settings)."""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.proc is None
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
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
            host="127.0.0.1", port=self.port, socket_connect_timeout=0.2, socket_timeout=0.5
        )
        try:
            for _ in range(400):
                if self.proc.poll() is not None:
                    pytest.fail(f"redis-server exited: see {self.workdir}/redis-{self.port}.log")
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError):
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
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def flush(self) -> None:
        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            client.flushall()
        finally:
            client.close()
