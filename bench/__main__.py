"""``make bench``: every target side by side, in one bounded run, with one report.

Run as ``python bench [--quick] [--cases direct,passthrough,...] [--out DIR]`` from the
repository (``bench/`` is a folder of scripts, not an installed package). The run:

1. installs LiteLLM's proxy into a cached virtualenv if it is missing (the only step that
   needs the package registry; ``bench/deps.sh`` installs nginx and the Collector first);
2. re-executes itself in a fresh network namespace with only loopback (as root, with
   ``unshare``), so no process under test can reach anything but 127.0.0.1;
3. starts the fake upstream, then each target in turn (an aigw row only once each of its
   steps proved it acts: ``rows.py``), and measures them with fixed durations and request
   counts (see :class:`Plan`): it always stops by itself;
4. profiles every aigw row under load with py-spy (and streamed calls to `aigw` and the
   broadest row);
5. writes ``results.json``, ``results.md`` and ``results.png`` (and ``profile-*.md``), and
   exits 1 if a landed step was configured but ignored, or left too little evidence.

This is the CLI layer of the harness: the only place it reads the environment.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import gzip
import json
import os
import platform
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import chart
import noise
import pyspy_profile
import report
from aigw import NotBuilt, StepIgnored, missing_flags, start_row
from infra import nginx_binary
from load import run_stream, run_wrk
from measure import CHAT, Plan, bodies, broadest, measure, soak
from rows import ALL_STEPS, ROWS, STEPS, Row
from targets import LITELLM_VERSION, BenchEnv, Target, ensure_litellm, start_target, upstream

ALL_CASES = (
    "direct",
    "nginx",
    "passthrough",
    *ROWS,
    "aigw-built",
    "aigw-built-no-audit",
    "aigw-built-no-retries",
    "litellm",
)
BUILT = "aigw-built"
"""The row of every step that proved it acts, when that is neither one step nor all."""
BUILT_NO_AUDIT = "aigw-built-no-audit"
"""``aigw-built`` (or ``aigw-full``) without the audit step: the pair measures what the audit
record writer costs on top of the whole pipeline, in the same run."""
BUILT_NO_RETRIES = "aigw-built-no-retries"
"""``aigw-built`` (or ``aigw-full``) without retries, fallback and breakers: the pair shows
what the resilience middlewares cost on the hot path (no faults: nothing is retried)."""


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _loopback_up() -> None:
    """Brings ``lo`` up in a new network namespace (ioctl; no ``ip`` binary needed)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def _raise_priority() -> int:
    """Runs the harness and every child at nice -10 when allowed (root), the same for all
    targets: other work on a shared machine then disturbs the measurements less."""
    try:
        return os.nice(-10)
    except OSError:
        return os.nice(0)


def _machine(litellm: bool) -> dict[str, Any]:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    wrk_version = (wrk.stdout + wrk.stderr).split("[")[0].strip() or "wrk"
    import aiohttp  # noqa: PLC0415

    parts = [
        f"{cpu}, {os.cpu_count()} cores, {mem_kb / 2**20:.0f} GiB",
        f"Linux {platform.release()}",
        f"Python {platform.python_version()}",
        f"aiohttp {aiohttp.__version__}",
        wrk_version,
    ]
    nginx = nginx_binary()
    if nginx:
        version = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
        parts.append(version.stderr.strip().removeprefix("nginx version: "))
    if litellm:
        parts.append(f"LiteLLM {LITELLM_VERSION}")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if commit:
        parts.append(f"aigw {commit}")
    return {"line": "; ".join(parts), "cpu": cpu, "cores": os.cpu_count()}


def _profile(
    target: Target,
    env: BenchEnv,
    plan: Plan,
    out: Path,
    profiles: dict[str, str],
    *,
    stream: bool = False,
) -> str | None:
    """Samples the target under load (wrk c=16, or with ``stream`` the streaming client at
    c=16); the summary lands in ``profiles``; returns a problem."""
    if not target.pid or not plan.profile_s:
        return None
    body, stream_body = bodies(target)
    seconds = plan.profile_s + 2
    if stream:
        load = threading.Thread(
            target=run_stream,
            args=(target.url, stream_body, target.headers),
            kwargs={"concurrency": 16, "total": 1_000_000, "max_seconds": seconds,
                    "cpus": env.load_cpu, "python": env.python},
        )  # fmt: skip
    else:
        load = threading.Thread(
            target=run_wrk,
            args=(target.url, body, target.headers),
            kwargs={"connections": 16, "seconds": seconds, "cpus": env.load_cpu},
        )
    key = f"{target.key}-stream" if stream else target.key
    load.start()
    time.sleep(1.0 if stream else 0.5)  # the streaming client is a Python process: it starts
    raw = pyspy_profile.record(target.pid, plan.profile_s, out / "raw" / f"profile-{key}.txt")
    load.join()
    if raw is None:
        return "py-spy was not available or could not attach"
    with (
        raw.open("rb") as stacks,
        gzip.open(out / f"profile-{key}.collapsed.gz", "wb") as kept,
    ):
        shutil.copyfileobj(stacks, kept)  # for a flame graph (speedscope, flamegraph.pl)
    summary = pyspy_profile.summarise(raw.read_text().splitlines())
    load_name = "streamed calls c=16" if stream else "wrk c=16"
    title = f"# Profile of {target.label} under {load_name} ({plan.profile_s:.0f} s, py-spy)\n\n"
    (out / f"profile-{key}.md").write_text(title + summary)
    profiles[key] = summary
    return None


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (smoke test)")
    parser.add_argument("--cases", default=",".join(ALL_CASES))
    parser.add_argument(
        "--profile", default="aigw*", help="targets to profile (comma-separated; aigw*: all aigw)"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--no-netns", action="store_true", help="stay in this network namespace")
    parser.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--litellm", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(raw_argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(ALL_CASES)
    if unknown:
        print(f"unknown cases: {sorted(unknown)}", file=sys.stderr)
        return 2
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("wrk and taskset are needed: run `make deps`", file=sys.stderr)
        return 2
    cache = Path(os.environ.get("AIGW_CACHE", Path.home() / ".cache" / "aigw"))
    litellm = Path(args.litellm) if args.litellm else None
    if "litellm" in cases and litellm is None:
        litellm = ensure_litellm(cache, _log)
    if not args.in_netns and not args.no_netns and os.geteuid() == 0 and shutil.which("unshare"):
        _log("re-running inside a new network namespace (loopback only)")
        extra = ["--in-netns"] + (["--litellm", str(litellm)] if litellm else [])
        command = ["unshare", "--net", "--", sys.executable, str(Path(__file__).parent)]
        child = subprocess.Popen([*command, *raw_argv, *extra])
        signal.signal(signal.SIGTERM, lambda *_: child.terminate())
        return child.wait()
    if args.in_netns:
        _loopback_up()
    return _run(args, cases, cache, litellm, raw_argv)


def _start(
    key: str, env: BenchEnv, upstream_url: str, steps: dict[str, dict[str, str]]
) -> contextlib.AbstractContextManager[Target]:
    if key == BUILT_NO_RETRIES:
        built = tuple(k for k in ALL_STEPS if steps.get(k, {}).get("state") == "measured")
        if "retries" not in built:
            why = steps.get("retries", {}).get("why", "the retries row did not run")
            raise NotBuilt({"retries": why})
        rest = tuple(k for k in built if k != "retries")
        label = f"aigw every step built so far but retries ({', '.join(rest) or 'none'})"
        return start_row(Row(BUILT_NO_RETRIES, label, rest), env, upstream_url)
    if key == BUILT:
        built = tuple(k for k in ALL_STEPS if steps.get(k, {}).get("state") == "measured")
        if len(built) < 2:
            raise _Same(f"the steps built so far ({', '.join(built) or 'none'}) have their own row")
        if built == ALL_STEPS:
            raise _Same("every step is built: aigw-full is this row")
        label = f"aigw every step built so far ({', '.join(built)})"
        return start_row(Row(BUILT, label, built), env, upstream_url)
    if key == BUILT_NO_AUDIT:
        built = tuple(k for k in ALL_STEPS if steps.get(k, {}).get("state") == "measured")
        if "audit" not in built:
            why = steps.get("audit", {}).get("why", "the audit row did not run")
            raise NotBuilt({"audit": why})
        rest = tuple(k for k in built if k != "audit")
        label = f"aigw every step built so far but audit ({', '.join(rest) or 'none'})"
        return start_row(Row(BUILT_NO_AUDIT, label, rest), env, upstream_url)
    if key in ROWS:  # a step already found missing or failing needs no second sidecar
        known = {k: steps[k] for k in ROWS[key].steps if k in steps}
        unbuilt = {k: v["why"] for k, v in known.items() if v["state"] != "measured"}
        unbuilt |= missing_flags(ROWS[key], env.python)
        if unbuilt:
            raise NotBuilt(unbuilt)
        return start_row(ROWS[key], env, upstream_url)
    return start_target(key, env, upstream_url)


class _Same(RuntimeError):
    """A computed row that would measure what another row measures."""


def _step_of_row(key: str) -> str | None:
    step = key.removeprefix("aigw-")
    return step if step in STEPS and ROWS[key].unique_bodies else None


def _start_all(
    cases: list[str], env: BenchEnv, upstream_url: str, running: contextlib.ExitStack,
    results: dict[str, Any],
) -> list[Target]:  # fmt: skip
    """Starts every case that can run; records why the others cannot."""
    targets: list[Target] = []
    steps: dict[str, dict[str, str]] = results["steps"]

    # Single-step rows first: what they find decides the rows of several steps.
    def order(k: str) -> tuple[bool, bool]:
        return k in (BUILT, BUILT_NO_AUDIT, BUILT_NO_RETRIES), k in ROWS and len(ROWS[k].steps) > 1

    for key in sorted(cases, key=order):
        _log(f"starting {key}")
        step = _step_of_row(key) if key in ROWS else None
        try:
            targets.append(running.enter_context(_start(key, env, upstream_url, steps)))
        except NotBuilt as exc:
            _log(f"  {key}: n/a, {exc}")
            results["not_built"][key] = str(exc)
            for each, why in exc.why.items():
                steps.setdefault(each, {"state": "not built", "why": why})
        except StepIgnored as exc:
            _log(f"  {key}: {exc}")
            results["failed"][key] = str(exc)
            steps[exc.step] = {"state": "failed", "why": str(exc)}
        except _Same as exc:
            _log(f"  {key}: not run, {exc}")
            results["skipped"][key] = str(exc)
        except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as exc:
            _log(f"  {key} not measured: {exc}")
            results["skipped"][key] = str(exc).splitlines()[0][:300]
        else:
            if step:
                steps[step] = {"state": "measured", "why": ""}
    return targets


def _write(results: dict[str, Any], out: Path) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(report.markdown(results))
    try:
        chart.chart(results, out / "results.png")
    except ImportError:
        _log("matplotlib missing: no chart (install the dev extras)")
    _log(f"wrote {out / 'results.md'} in {results['elapsed_s']:.0f} s; {results['load_line']}")
    for key, why in results["failed"].items():
        _log(f"FAILED {key}: {why}")


def _run(
    args: argparse.Namespace, cases: list[str], cache: Path, litellm: Path | None, argv: list[str]
) -> int:
    plan = Plan.quick() if args.quick else Plan()
    # SIGTERM unwinds like an exception, so every process under test is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    repo = Path(__file__).resolve().parent.parent
    os.sched_setaffinity(0, {1 if (os.cpu_count() or 1) > 1 else 0})
    niceness = _raise_priority()
    load_before = os.getloadavg()
    snapshot = noise.Snapshot.take()
    started = time.monotonic()
    out: Path = args.out
    shutil.rmtree(out / "raw", ignore_errors=True)
    (out / "raw").mkdir(parents=True)
    for old in out.glob("profile-*"):
        old.unlink()
    env = BenchEnv(
        repo=repo,
        python=sys.executable,
        work=Path(tempfile.mkdtemp(prefix="aigw-bench-")),
        cache=cache,
        load_cpu="1" if (os.cpu_count() or 1) > 1 else "0",
        litellm=litellm,
        probe_body=json.dumps(CHAT).encode(),
    )
    results: dict[str, Any] = {
        "command": "make bench" if not args.quick else "python bench --quick",
        "argv": argv,
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "plan": asdict(plan),
        "machine": _machine("litellm" in cases and litellm is not None),
        "network_namespace": bool(args.in_netns),
        "nice": niceness,
        "targets": {},
        "skipped": {},
        "not_built": {},
        "failed": {},
        "steps": {},
        "profiles": {},
    }
    _log(results["machine"]["line"])
    if "litellm" in cases and litellm is None:
        results["skipped"]["litellm"] = "LiteLLM could not be installed"
        cases.remove("litellm")
    wanted = [k for k in args.profile.split(",") if k]
    with upstream(env) as upstream_url, contextlib.ExitStack() as running:
        targets = _start_all(cases, env, upstream_url, running, results)
        _log(f"measuring {', '.join(t.key for t in targets)} in {plan.rounds} interleaved rounds")
        rows = measure(targets, env, plan, _log)
        results["broadest"] = broadest(targets)
        for target in targets:
            soak(target, rows[target.key], env, plan, _log, also=results["broadest"])
            if target.evidence is not None:
                rows[target.key]["evidence"] = target.evidence()
            if target.key in wanted or ("aigw*" in wanted and target.key.startswith("aigw")):
                problem = _profile(target, env, plan, out, results["profiles"])
                if problem:
                    results["skipped"][f"profile {target.key}"] = problem
                if target.key in ("aigw", results["broadest"]):
                    problem = _profile(target, env, plan, out, results["profiles"], stream=True)
                    if problem:
                        results["skipped"][f"profile {target.key}-stream"] = problem
        results["targets"] = rows
    for target in targets:  # every target has stopped: audit and spans are flushed
        if target.after_stop:
            rows[target.key]["evidence_short"] = dict(target.after_stop)
            for step, why in target.after_stop.items():
                results["failed"][f"{target.key} ({step})"] = f"too little evidence: {why}"
    shutil.copytree(env.logs, out / "raw" / "logs")
    shutil.rmtree(env.work, ignore_errors=True)
    load_after = os.getloadavg()
    results["noise"] = noise.noise(snapshot, noise.Snapshot.take(), os.cpu_count() or 1)
    results["elapsed_s"] = time.monotonic() - started
    results["load_average"] = [round(load_before[0], 2), round(load_after[0], 2)]
    others = results["noise"]
    results["load_line"] = (
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; other work "
        f"used {others['others_share']:.1%} of the machine during the run "
        f"({others['others_cpu_s']:.0f} core-s), steal {others['steal_s']:.0f} s"
    )
    _write(results, out)
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
