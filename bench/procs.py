"""Processes under test: started pinned to a core, waited for, measured, always stopped.

Every server of the benchmark (the fake upstream, the passthrough, the sidecar, LiteLLM,
Redis) is a child process started under ``taskset``, logged to a file, polled until it
answers, and stopped by its own process id when the run ends, even on errors.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "Proc",
    "cpu_seconds",
    "free_port",
    "post_json",
    "rss_bytes",
    "wait_for_port",
    "wait_until_answers",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Proc:
    """A child process pinned to ``cpus``; a context manager that stops it on exit."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        cpus: str,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            ["taskset", "-c", cpus, *command],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
        log.close()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=15)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def post_json(url: str, body: bytes, headers: Mapping[str, str], timeout: float = 5.0) -> int:
    """POSTs ``body``; returns the HTTP status (0 when nothing answered)."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, ValueError):
        return 0


def wait_until_answers(
    proc: Proc, url: str, body: bytes, headers: Mapping[str, str], within: float = 90.0
) -> None:
    """Polls ``url`` with ``body`` until it answers 200; raises with the log tail otherwise."""
    deadline = time.monotonic() + within
    status = 0
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
        status = post_json(url, body, headers)
        if status == 200:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{proc.name} did not answer 200 (last {status}):\n{proc.tail()}")


def wait_for_port(proc: Proc, port: int, within: float = 30.0) -> None:
    """Waits until something accepts TCP connections on loopback ``port``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.1)
        else:
            return
    raise RuntimeError(f"{proc.name} did not listen on {port}:\n{proc.tail()}")


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (LiteLLM may fork workers)."""
    total = 0
    for each in _tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its live descendants, all threads, in seconds.

    Read from ``/proc/<pid>/stat``: ``utime`` and ``stime`` cover every thread of a process,
    ``cutime`` and ``cstime`` the children it has already reaped, so a worker that forks and
    exits is counted once, by its parent, and a live one by itself. Resolution is one clock
    tick (10 ms): callers read it over whole phases of a run, never per request.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for each in _tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = _stat_fields(Path(f"/proc/{each}/stat").read_text())
            total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total / ticks


def _stat_fields(stat: str) -> list[str]:
    """The fields after ``comm`` (which may hold spaces and parentheses), from ``state`` on."""
    return stat[stat.rindex(")") + 2 :].split()


def _tree(pid: int) -> list[int]:
    pids = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            for child in children:
                pids += _tree(int(child))
    return pids
