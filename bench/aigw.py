"""The aigw sidecar rows: each started from its row of ``rows.py``, proven, then measured.

:func:`start_row` compiles the row's policy and route with ``aigw compile``, starts the
servers its steps need (a redis-server, a Collector, an audit file), starts the sidecar with
the row's flags, and then decides whether the row may be measured (the rules are in the
``rows`` module docstring): it raises :class:`NotBuilt` for a step that does not exist yet
and :class:`StepIgnored` for a landed step whose probe failed. After the run, the evidence
each step left (audit records per call, spans per call, upstream attempts of a cache hit) is
checked once the sidecar has stopped and flushed.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import probes
from infra import collector, otelcol_path, redis
from procs import Proc, free_port, wait_until_answers
from rows import STEPS, Row, Step
from targets import APP_KEY, MODEL, UPSTREAM_KEY, BenchEnv, Target, base_env

__all__ = [
    "ROUTE",
    "NotBuilt",
    "StepIgnored",
    "compile_bundle",
    "documents",
    "flag_listed",
    "missing_flags",
    "sidecar_help",
    "start_row",
    "verdict",
]

ROUTE = "chat"
_NAMESPACE = "bench"


class NotBuilt(RuntimeError):
    """Steps of the row do not exist yet (``why``, by step key): the row is reported n/a."""

    def __init__(self, why: Mapping[str, str]) -> None:
        super().__init__(
            "not built yet: " + "; ".join(f"{STEPS[k].title}: {w}" for k, w in why.items())
        )
        self.why = dict(why)


class StepIgnored(RuntimeError):
    """A landed step of the row was configured and did not act: the run fails loudly."""

    def __init__(self, step: str, why: str) -> None:
        super().__init__(f"FAILED: {STEPS[step].title} is configured but ignored: {why}")
        self.step = step


@functools.cache
def sidecar_help(python: str) -> str:
    command = [python, "-m", "aigw_cli.main", "sidecar", "--help"]
    return subprocess.run(command, capture_output=True, text=True, check=False).stdout


def documents(row: Row, upstream_url: str) -> list[dict[str, Any]]:
    backend = {
        "name": "fake",
        "provider": "openai",
        "model": MODEL,
        "baseURL": f"{upstream_url}/v1",
        "credentialSecretRef": {"name": "provider-keys", "key": "openai"},
        "pricing": {"inputPerMillionTokensUSD": "0.15", "outputPerMillionTokensUSD": "0.60"},
    }
    route_spec: dict[str, Any] = {"backends": [backend], **row.route()}
    if "fallback" in route_spec:  # the same upstream again, only used as a fallback
        route_spec["backends"].append(
            {**copy.deepcopy(backend), "name": "fake-fallback", "weight": 0}
        )
    use_case = {"name": "default", "routes": [ROUTE], **row.use_case()}
    meta = {"namespace": _NAMESPACE}
    return [
        {"apiVersion": "aigw.dev/v1alpha1", "kind": "ModelRoute",
         "metadata": {"name": ROUTE, **meta}, "spec": route_spec},
        {"apiVersion": "aigw.dev/v1alpha1", "kind": "AIPolicy",
         "metadata": {"name": "bench", **meta}, "spec": {"useCases": [use_case]}},
    ]  # fmt: skip


def compile_bundle(row: Row, env: BenchEnv, upstream_url: str) -> Path:
    """The row's bundle, compiled by ``aigw compile`` (so it is validated like any other)."""
    source = env.work / f"{row.key}.yaml"
    source.write_text(yaml.safe_dump_all(documents(row, upstream_url), sort_keys=False))
    bundle = env.work / f"{row.key}.bundle.json"
    command = [env.python, "-m", "aigw_cli.main", "compile", str(source), "-o", str(bundle)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"aigw compile refused the {row.key} bundle: {done.stderr[-600:]}")
    return bundle


def _flag_names(row: Row, help_text: str) -> tuple[dict[str, str], dict[str, str]]:
    """The spelling of each flag the row needs, by value kind; and why steps lack one."""
    chosen: dict[str, str] = {}
    missing: dict[str, str] = {}
    for key in row.steps:
        for flag in STEPS[key].flags:
            listed = [n for n in flag.names if flag_listed(n, help_text)]
            if listed:
                chosen[flag.value] = listed[0]
            else:
                missing[key] = f"`aigw sidecar --help` lists no {' or '.join(flag.names)}"
    return chosen, missing


def flag_listed(name: str, help_text: str) -> bool:
    """``--flag`` as a whole word of the help, or ``env:VAR`` when the help names ``VAR``."""
    wanted = name.removeprefix("env:")
    return re.search(rf"(?<![\w-]){re.escape(wanted)}(?![\w-])", help_text) is not None


def missing_flags(row: Row, python: str) -> dict[str, str]:
    """The steps of ``row`` whose sidecar flag does not exist, and why."""
    return _flag_names(row, sidecar_help(python))[1]


def _secrets(env: BenchEnv) -> Path:
    secrets = env.work / "secrets"
    (secrets / "provider-keys").mkdir(parents=True, exist_ok=True)
    (secrets / "provider-keys" / "openai").write_text(UPSTREAM_KEY)
    return secrets


@dataclass
class _Resources:
    settings: list[tuple[str, str]] = field(default_factory=list)
    """(flag or env:VAR, value) for the sidecar."""
    redis_port: int | None = None
    audit: Path | None = None
    collector_log: Path | None = None


def _resources(
    key: str, flags: Mapping[str, str], env: BenchEnv, stack: contextlib.ExitStack
) -> _Resources:
    """Starts what the row's flags point at (its own redis-server and Collector, an audit
    file path) inside ``stack``; returns the flag values and where the evidence will be."""
    found = _Resources()
    for kind, name in flags.items():
        if kind == "redis":
            found.redis_port = stack.enter_context(redis(f"redis-{key}", env.load_cpu, env.logs))
            found.settings.append((name, f"redis://127.0.0.1:{found.redis_port}/0"))
        elif kind == "audit":
            found.audit = env.work / f"audit-{key}" / "audit.jsonl"  # and rotated siblings
            found.audit.parent.mkdir(parents=True, exist_ok=True)
            found.settings.append((name, str(found.audit)))
        elif kind in ("otlp", "otlp-grpc"):
            binary = otelcol_path(env.cache)
            if binary is None:
                raise NotBuilt({"tracing": "the pinned otelcol is not built (`make tools`)"})
            otel = stack.enter_context(
                collector(f"otelcol-{key}", binary, env.load_cpu, env.work, env.logs)
            )
            found.collector_log = otel.log
            found.settings.append(
                (name, otel.http_endpoint if kind == "otlp" else otel.grpc_endpoint)
            )
        elif kind.startswith("="):
            found.settings.append((name, kind[1:]))
    return found


@contextlib.contextmanager
def start_row(row: Row, env: BenchEnv, upstream_url: str) -> Iterator[Target]:
    """Starts the sidecar of ``row``; yields it once every step proved it acts."""
    if "--bundle" not in sidecar_help(env.python):
        raise RuntimeError("`aigw sidecar` is not in this checkout")
    flags, missing = _flag_names(row, sidecar_help(env.python))
    if missing:
        raise NotBuilt(missing)
    bundle = compile_bundle(row, env, upstream_url)
    port, admin = free_port(), free_port()
    command = [env.python, "-m", "aigw_cli.main", "sidecar", "--bundle", str(bundle)]
    command += ["--port", str(port), "--admin-port", str(admin), "--admin-host", "127.0.0.1"]
    command += ["--secrets-dir", str(_secrets(env)), "--log-level", "WARNING"]
    command += ["--drain-timeout", "2"]
    with contextlib.ExitStack() as stack:
        found = _resources(row.key, flags, env, stack)
        redis_port, audit, log = found.redis_port, found.audit, found.collector_log
        settings = found.settings
        variables = {n.removeprefix("env:"): v for n, v in settings if n.startswith("env:")}
        command += [x for n, v in settings if not n.startswith("env:") for x in (n, v)]
        proc_env = {**base_env(), **variables} if variables else None
        proc = stack.enter_context(
            Proc(row.key, command, cpus=env.proxy_cpu, log_dir=env.logs, env=proc_env)
        )
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        headers = {"Authorization": f"Bearer {APP_KEY}", "Content-Type": "application/json"}
        probe_env = probes.ProbeEnv(
            url, headers, ROUTE, upstream_url, admin, redis_port, audit, log
        )
        wait_until_answers(proc, url, probe_env.chat("ready?"), headers, within=120)
        _prove(row, probe_env)
        start = probes.Marks.read(admin)
        spans = probes.spans_exported(log)
        found_after: dict[str, Any] = {}
        end: list[probes.Marks] = []

        def evidence() -> dict[str, Any]:
            end.append(probes.Marks.read(admin))
            return _evidence(admin, redis_port)

        yield Target(
            row.key, row.label, url, headers, proc.pid, ROUTE, evidence,
            unique_bodies=row.unique_bodies, steps=row.steps, after_stop=found_after,
        )  # fmt: skip
        proc.stop()
        stack.close()
        if end:
            found_after.update(
                probes.after_run(
                    row.steps,
                    probe_env,
                    start=start,
                    end=end[-1],
                    spans_at_start=spans,
                    cache_hits_expected=not row.unique_bodies,
                )
            )


def _prove(row: Row, env: probes.ProbeEnv) -> None:
    """Every step of the row acts, or NotBuilt/StepIgnored says which do not and why."""
    status = probes.read_status(env.admin_port)
    warnings = probes.status_warnings(status)
    unwarned = [k for k in row.steps if not probes.warned(warnings, STEPS[k].fields)]
    problems = {key: probes.PROBES[key](env) for key in unwarned}
    verdict(row.steps, STEPS, warnings, problems, probes.declares_field_status(status))


def verdict(
    keys: tuple[str, ...],
    steps: Mapping[str, Step],
    warnings: list[str],
    problems: Mapping[str, str | None],
    declares: bool = False,
) -> None:
    """Decides a row from its steps' status warnings and probe results (``problems``, by
    step: None when the probe passed; absent when it did not run).

    Returns when every step acts. A step whose probe failed is a defect, raised as
    :class:`StepIgnored`, when it claims to exist: it is marked ``landed``, or it needs a
    sidecar flag (which exists, or the row would not have started), or the sidecar
    ``declares`` which settings it does not enforce and did not warn about this one. Any
    other missing step is raised, with all the others, as :class:`NotBuilt`.
    """
    missing: dict[str, str] = {}
    for key in keys:
        step = steps[key]
        warning = probes.warned(warnings, step.fields)
        problem = problems.get(key)
        claimed = step.landed or bool(step.flags) or (declares and bool(step.fields))
        if warning:
            missing[key] = f"the sidecar warns: {warning}"
        elif key not in problems:
            missing[key] = "not probed"
        elif problem is not None and claimed:
            raise StepIgnored(key, problem)
        elif problem is not None:
            missing[key] = f"its probe found: {problem}"
    if missing:
        raise NotBuilt(missing)


def _evidence(admin_port: int, redis_port: int | None) -> dict[str, Any]:
    """The sidecar's own status, and how many commands Redis served (proof it was used)."""
    found: dict[str, Any] = {}
    try:
        url = f"http://127.0.0.1:{admin_port}/aigw/status"
        with urllib.request.urlopen(url, timeout=5) as response:
            status: Mapping[str, Any] = json.loads(response.read())
        found["status"] = {k: status.get(k) for k in ("bundle", "governance") if k in status}
    except (OSError, ValueError) as exc:
        found["status_error"] = str(exc)
    if redis_port is not None:
        found["redis_calls"] = probes.redis_calls(redis_port)
    return found
