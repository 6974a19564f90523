"""CPU per call is read from /proc: every thread, live children and reaped children count."""

from __future__ import annotations

import subprocess
import sys

import noise
from procs import _stat_fields, cpu_seconds

BURN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"


def _child(code: str) -> subprocess.Popen[str]:
    """A Python child that runs ``code``, prints 'ready' and waits for its stdin to close."""
    script = code + "\nprint('ready', flush=True)\nimport sys; sys.stdin.read()\n"
    return subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def _wait_ready(child: subprocess.Popen[str]) -> None:
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"


def _finish(child: subprocess.Popen[str]) -> None:
    with child:  # closes stdin (the child then exits) and stdout, and waits
        pass


def test_stat_fields_survive_a_command_name_with_spaces_and_parentheses() -> None:
    stat = "4242 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15"
    fields = _stat_fields(stat)
    assert fields[0] == "S"
    assert fields[11:15] == ["11", "12", "13", "14"]  # utime, stime, cutime, cstime


THREADS = """
import threading, time
def burn():
    end = time.thread_time() + 0.3
    while time.thread_time() < end: pass
workers = [threading.Thread(target=burn) for _ in range(2)]
for w in workers: w.start()
for w in workers: w.join()
"""


def test_cpu_of_every_thread_is_counted() -> None:
    child = _child(THREADS)
    try:
        _wait_ready(child)
        assert cpu_seconds(child.pid) >= 0.55  # two threads of 0.3 s each, ticks of 10 ms
    finally:
        _finish(child)


def test_cpu_of_live_and_of_reaped_grandchildren_is_counted() -> None:
    burn = BURN.format(s=0.3)
    stay = burn + "print('burnt', flush=True)\nimport time\ntime.sleep(60)\n"
    code = "\n".join(
        [
            "import subprocess, sys",
            f"subprocess.run([sys.executable, '-c', {burn!r}])",  # exits and is reaped: cutime
            f"alive = subprocess.Popen([sys.executable, '-c', {stay!r}], stdout=subprocess.PIPE)",
            "alive.stdout.readline()",  # alive: counted as a descendant
            "import atexit; atexit.register(alive.kill)",
        ]
    )
    child = _child(code)
    try:
        _wait_ready(child)
        assert cpu_seconds(child.pid) >= 0.55
    finally:
        _finish(child)


def test_a_process_that_is_gone_counts_nothing() -> None:
    gone = subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert gone.returncode == 0
    assert cpu_seconds(2**22 + 12345) == 0.0


def test_noise_is_the_machines_busy_time_minus_this_runs_own() -> None:
    before = noise.Snapshot.take()
    subprocess.run([sys.executable, "-c", BURN.format(s=0.3)], check=True)
    after = noise.Snapshot.take()
    figures = noise.noise(before, after, cores=2)
    assert figures["own_cpu_s"] >= 0.29  # the reaped child is this run's own work
    assert figures["others_cpu_s"] >= 0.0
    assert 0.0 <= figures["others_share"] <= 1.0
