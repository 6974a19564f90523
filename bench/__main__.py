"""``make bench``: every target side by side, in one bounded run, with one report.

Run as ``python bench [--quick] [--cases direct,passthrough,...] [--out DIR]`` from the
repository (``bench/`` is a folder of scripts, not an installed package). The run:

1. installs LiteLLM's proxy into a cached virtualenv if it is missing (the only step that
   needs the package registry);
2. re-executes itself in a fresh network namespace with only loopback (as root, with
   ``unshare``), so no process under test can reach anything but 127.0.0.1;
3. starts the fake upstream, then each target in turn, and measures it with fixed durations
   and request counts (see :class:`Plan`): it always stops by itself;
4. profiles the aigw sidecar under load with py-spy;
5. writes ``results.json``, ``results.md`` and ``results.png`` (and ``profile-*.md``).

This is the CLI layer of the harness: the only place it reads the environment.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyspy_profile
import report
from load import LoadResult, run_stream, run_wrk
from procs import rss_bytes
from targets import LITELLM_VERSION, BenchEnv, Target, ensure_litellm, start_target, upstream

ALL_CASES = ("direct", "passthrough", "aigw", "aigw-full", "litellm")
CHAT = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hello to the benchmark in a few words please"}],
    "max_tokens": 16,
}


@dataclass(frozen=True)
class Plan:
    """Fixed durations (seconds) and request counts: the run is bounded by construction."""

    warm_s: float = 2
    c1_s: float = 8
    c16_s: float = 6
    max_s: float = 6
    stream_c1_total: int = 3_000
    stream_c16_total: int = 20_000
    stream_s: float = 6
    soak_to: int = 100_000
    soak_max_s: float = 45
    soak_max_s_aigw: float = 100
    profile_s: float = 8

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            warm_s=1, c1_s=1, c16_s=1, max_s=1, stream_c1_total=50, stream_c16_total=100,
            stream_s=2, soak_to=0, soak_max_s=0, soak_max_s_aigw=0, profile_s=0,
        )  # fmt: skip


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
    if litellm:
        parts.append(f"LiteLLM {LITELLM_VERSION}")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if commit:
        parts.append(f"aigw {commit}")
    return {"line": "; ".join(parts), "cpu": cpu, "cores": os.cpu_count()}


def _measure(target: Target, env: BenchEnv, plan: Plan) -> dict[str, Any]:
    chat = {**CHAT, "model": target.model}
    body = json.dumps(chat).encode()
    stream_body = json.dumps(
        {**chat, "stream": True, "stream_options": {"include_usage": True}}
    ).encode()
    row: dict[str, Any] = {"label": target.label}

    def wrk(connections: int, seconds: float, stop_after: int = 0) -> LoadResult:
        return run_wrk(
            target.url, body, target.headers, connections=connections, seconds=seconds,
            cpus=env.load_cpu, stop_after=stop_after,
        )  # fmt: skip

    total = wrk(4, plan.warm_s).requests
    row["rss_start"] = rss_bytes(target.pid) if target.pid else None
    for case, connections, seconds in (
        ("c1", 1, plan.c1_s),
        ("c16", 16, plan.c16_s),
        ("max", 64, plan.max_s),
    ):
        result = wrk(connections, seconds)
        row[case] = result.to_json()
        total += result.requests
        _log(f"  {target.key} {case}: {_line(result)}")
    for case, connections, count in (
        ("stream_c1", 1, plan.stream_c1_total),
        ("stream_c16", 16, plan.stream_c16_total),
    ):
        result = run_stream(
            target.url, stream_body, target.headers, concurrency=connections, total=count,
            max_seconds=plan.stream_s, cpus=env.load_cpu, python=env.python,
        )  # fmt: skip
        row[case] = result.to_json()
        total += result.requests
        _log(f"  {target.key} {case}: {_line(result)}")
    if target.pid and plan.soak_to > total:
        cap = plan.soak_max_s_aigw if target.key.startswith("aigw") else plan.soak_max_s
        result = wrk(16, cap, stop_after=plan.soak_to - total)
        row["soak"] = result.to_json()
        total += result.requests
        _log(f"  {target.key} soak: {result.requests:,} more requests in {result.seconds:.1f} s")
    row["served"] = total
    row["rss_end"] = rss_bytes(target.pid) if target.pid else None
    return row


def _line(result: LoadResult) -> str:
    text = f"{result.rps:,.0f} req/s, p50 {result.p50_us / 1000:.3f} ms, "
    text += f"p99 {result.p99_us / 1000:.3f} ms, errors {result.errors}"
    if result.ttft_p50_us is not None:
        text += f", TTFT p50 {result.ttft_p50_us / 1000:.3f} ms"
    return text


def _profile(
    target: Target, env: BenchEnv, plan: Plan, out: Path, profiles: dict[str, str]
) -> str | None:
    """Samples the target under load; the summary lands in ``profiles``; returns a problem."""
    if not target.pid or not plan.profile_s:
        return None
    body = json.dumps({**CHAT, "model": target.model}).encode()
    load = threading.Thread(
        target=run_wrk,
        args=(target.url, body, target.headers),
        kwargs={"connections": 16, "seconds": plan.profile_s + 2, "cpus": env.load_cpu},
    )
    load.start()
    time.sleep(0.5)
    raw = pyspy_profile.record(
        target.pid, plan.profile_s, out / "raw" / f"profile-{target.key}.txt"
    )
    load.join()
    if raw is None:
        return "py-spy was not available or could not attach"
    summary = pyspy_profile.summarise(raw.read_text().splitlines())
    title = f"# Profile of {target.label} under wrk c=16 ({plan.profile_s:.0f} s, py-spy)\n\n"
    (out / f"profile-{target.key}.md").write_text(title + summary)
    profiles[target.key] = summary
    return None


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (smoke test)")
    parser.add_argument("--cases", default=",".join(ALL_CASES))
    parser.add_argument("--profile", default="aigw-full,aigw", help="targets to profile")
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
        return subprocess.run([*command, *raw_argv, *extra], check=False).returncode
    if args.in_netns:
        _loopback_up()
    return _run(args, cases, cache, litellm, raw_argv)


def _run(
    args: argparse.Namespace, cases: list[str], cache: Path, litellm: Path | None, argv: list[str]
) -> int:
    plan = Plan.quick() if args.quick else Plan()
    repo = Path(__file__).resolve().parent.parent
    os.sched_setaffinity(0, {1 if (os.cpu_count() or 1) > 1 else 0})
    niceness = _raise_priority()
    load_before = os.getloadavg()
    started = time.monotonic()
    out: Path = args.out
    shutil.rmtree(out / "raw", ignore_errors=True)
    (out / "raw").mkdir(parents=True)
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
        "profiles": {},
    }
    _log(results["machine"]["line"])
    if "litellm" in cases and litellm is None:
        results["skipped"]["litellm"] = "LiteLLM could not be installed"
        cases.remove("litellm")
    profile_wanted = [k for k in args.profile.split(",") if k]
    with upstream(env) as upstream_url:
        for key in cases:
            _log(f"target {key}")
            try:
                with start_target(key, env, upstream_url) as target:
                    results["targets"][key] = _measure(target, env, plan)
                    if target.evidence is not None:
                        results["targets"][key]["evidence"] = target.evidence()
                    if key in profile_wanted:
                        problem = _profile(target, env, plan, out, results["profiles"])
                        if problem:
                            results["skipped"][f"profile {key}"] = problem
            except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as exc:
                _log(f"  {key} not measured: {exc}")
                results["skipped"][key] = str(exc).splitlines()[0][:300]
    shutil.copytree(env.logs, out / "raw" / "logs")
    shutil.rmtree(env.work, ignore_errors=True)
    load_after = os.getloadavg()
    results["elapsed_s"] = time.monotonic() - started
    results["load_line"] = (
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
        "(anything above ~0.5 means other work shared the cores)"
    )
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(report.markdown(results))
    try:
        report.chart(results, out / "results.png")
    except ImportError:
        _log("matplotlib missing: no chart (install the dev extras)")
    _log(f"wrote {out / 'results.md'} in {results['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
