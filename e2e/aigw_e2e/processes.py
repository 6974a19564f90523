"""Start, probe and stop the control plane's processes without leaking any.

Each component runs in a session of its own (so it is its own process group and survives the
launcher when a person runs ``make cluster-up``); stopping sends SIGTERM to the whole group,
then SIGKILL to whatever is left. Readiness is polled with a deadline, and a component that
exits or never becomes ready raises ControlPlaneError carrying the tail of its log.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aigw_e2e.errors import ControlPlaneError

__all__ = [
    "Process",
    "free_port",
    "free_ports",
    "http_ok",
    "pid_alive",
    "start_process",
    "stop_pid",
    "tail",
]

_POLL_SECONDS = 0.2
_PR_SET_PDEATHSIG = 1


_LISTEN_PORTS_FROM = 10000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _listen_port_range() -> range:
    """Ports below the kernel's ephemeral range (where outgoing connections take theirs)."""
    try:
        low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(_LISTEN_PORTS_FROM, max(low, _LISTEN_PORTS_FROM + 1000))


def free_ports(count: int) -> tuple[int, ...]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listens on right now.

    A component binds its port only seconds after the port is chosen, so the port must not be
    one the kernel hands out meanwhile: binding to port 0 picks from the ephemeral range, the
    same range every outgoing connection (the apiserver's to etcd, say) takes its source port
    from, and kwok once lost its port that way ("bind: address already in use"). These ports
    come from below that range, chosen at random so that concurrent launchers rarely meet.
    """
    candidates = _listen_port_range()
    chosen: list[int] = []
    rng = random.SystemRandom()
    while len(chosen) < count:
        port = rng.choice(candidates)
        if port in chosen:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
    return tuple(chosen)


def free_port() -> int:
    """One TCP port on 127.0.0.1 that nothing listens on right now (see free_ports)."""
    return free_ports(1)[0]


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, or a note that there is none."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def http_ok(url: str, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> bool:
    """True when GET url answers 200; False on any connection or HTTP error."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state follows the parenthesised command name, which may itself contain spaces.
    return stat.rpartition(")")[2].split()[0] != "Z"


def stop_pid(pid: int, grace_seconds: float = 10.0) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL it if it outlives the grace."""
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(_POLL_SECONDS)
    if pid_alive(pid):
        raise ControlPlaneError(f"process {pid} survived SIGKILL")


@dataclass
class Process:
    """One running component: its name, Popen handle and log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, grace_seconds: float = 10.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        # Children that outlived their leader would still be in the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> None:
        """Poll ``probe`` until it is true; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.popen.poll()
            if code is not None:
                raise ControlPlaneError(
                    f"{self.name} exited with code {code} while starting; log {self.log}:\n"
                    f"{tail(self.log)}"
                )
            if probe():
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{self.name} was not ready after {timeout:.0f}s; log {self.log}:\n"
                    f"{tail(self.log)}"
                )
            time.sleep(_POLL_SECONDS)


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGKILL it when the thread that started it exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def start_process(
    name: str,
    argv: Sequence[str | Path],
    log: Path,
    env: dict[str, str] | None = None,
    *,
    die_with_parent: bool = True,
) -> Process:
    """Start ``argv`` in its own session with stdout and stderr appended to ``log``.

    With ``die_with_parent`` (tests) the kernel kills it if the starting process dies without
    cleaning up (a killed pytest leaks nothing); ``make cluster-up`` turns it off, since its
    processes must outlive the launcher.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        popen = subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            preexec_fn=_die_with_parent if die_with_parent else None,  # noqa: PLW1509
        )
    return Process(name, popen, log)
