"""The targets measured side by side, each started the same way against the same upstream.

* ``direct``: the client talks to the fake upstream itself (the floor).
* ``passthrough``: the bare aiohttp passthrough of ``passthrough.py`` (the Python floor).
* ``aigw``: the aigw sidecar with the least policy work a bundle allows (a policy is required:
  one use case, no limits, so identify and authorize only, state in memory).
* ``aigw-full``: the sidecar with every pipeline step that exists switched on (limits and
  budgets on Redis, redaction, prompt-injection checks, audit; metrics are always on).
* ``litellm``: LiteLLM's proxy (pinned version, own virtualenv outside the repository,
  cached), one model pointing at the same upstream, no database.

Proxies run pinned to the proxy core; the upstream, Redis and the load tools share the other.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procs import Proc, free_port, wait_for_port, wait_until_answers

__all__ = [
    "LITELLM_VERSION",
    "UPSTREAM_KEY",
    "BenchEnv",
    "Target",
    "ensure_litellm",
    "start_target",
    "upstream",
]

LITELLM_VERSION = "1.106.12"
"""Pinned: newer releases' ``proxy`` extra needs packages the registry here does not serve."""
UPSTREAM_KEY = "sk-bench-upstream"
APP_KEY = "sk-bench-app-not-forwarded"
LITELLM_MASTER_KEY = "sk-bench-litellm-3f9c2e7a1b8d4c6e9f0a2b4c6d8e0f1a"
"""LiteLLM refuses to start without one; checking it needs no database."""
MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class BenchEnv:
    """Where and how the run happens."""

    repo: Path
    python: str
    work: Path
    cache: Path
    proxy_cpu: str = "0"
    load_cpu: str = "1"
    litellm: Path | None = None
    probe_body: bytes = b""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        path = self.work / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass(frozen=True)
class Target:
    """One thing to load: where to send requests, with which headers, and which process.

    ``model`` is what the client asks for: the provider's model, or the aigw route name.
    """

    key: str
    label: str
    url: str
    headers: dict[str, str]
    pid: int | None
    model: str = MODEL
    evidence: Callable[[], dict[str, Any]] | None = None
    """What the target says it did (sidecar status, Redis command counts), read after the run."""


@contextlib.contextmanager
def upstream(env: BenchEnv) -> Iterator[str]:
    """The fake OpenAI upstream on the load core; yields its base URL."""
    port = free_port()
    command = [env.python, "-m", "aigw_cli.main", "fake-provider", "--port", str(port)]
    command += ["--api-key", UPSTREAM_KEY, "--record-limit", "0"]
    base = f"http://127.0.0.1:{port}"
    with Proc("upstream", command, cpus=env.load_cpu, log_dir=env.logs) as proc:
        headers = {"Authorization": f"Bearer {UPSTREAM_KEY}", "Content-Type": "application/json"}
        wait_until_answers(proc, f"{base}/v1/chat/completions", env.probe_body, headers)
        yield base


def ensure_litellm(cache: Path, log: Callable[[str], None]) -> Path | None:
    """Installs LiteLLM's proxy into a cached virtualenv; returns its ``litellm`` or None."""
    venv = cache / "bench" / f"litellm-venv-{LITELLM_VERSION}"
    executable = venv / "bin" / "litellm"
    marker = venv / ".installed"
    if marker.exists() and executable.exists():
        return executable
    uv = shutil.which("uv")
    if uv is None:
        log("litellm: uv not found; skipping LiteLLM")
        return None
    log(f"litellm: installing litellm[proxy]=={LITELLM_VERSION} into {venv} (cached)")
    shutil.rmtree(venv, ignore_errors=True)
    try:
        subprocess.run([uv, "venv", "--quiet", "--python", "python3.11", str(venv)], check=True)
        install = [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
        subprocess.run([*install, f"litellm[proxy]=={LITELLM_VERSION}"], check=True, timeout=600)
    except (subprocess.SubprocessError, OSError) as exc:
        log(f"litellm: install failed ({exc}); skipping LiteLLM")
        return None
    marker.touch()
    return executable


def _litellm_config(env: BenchEnv, upstream_url: str) -> Path:
    config = env.work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {upstream_url}/v1\n"
        f"      api_key: {UPSTREAM_KEY}\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_MASTER_KEY}\n"
    )
    return config


@contextlib.contextmanager
def start_target(key: str, env: BenchEnv, upstream_url: str) -> Iterator[Target]:
    """Starts target ``key`` in front of ``upstream_url`` and stops it afterwards."""
    app_headers = {"Authorization": f"Bearer {APP_KEY}", "Content-Type": "application/json"}
    direct_headers = {"Authorization": f"Bearer {UPSTREAM_KEY}", "Content-Type": "application/json"}
    if key == "direct":
        yield Target(
            key, "direct to upstream (floor)", f"{upstream_url}/v1/chat/completions",
            direct_headers, None,
        )  # fmt: skip
        return
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if key == "passthrough":
        script = str(Path(__file__).with_name("passthrough.py"))
        command = [env.python, script, "--port", str(port), "--upstream", upstream_url]
        label, headers, proc_env = "bare aiohttp passthrough", direct_headers, None
    elif key == "litellm":
        if env.litellm is None:
            raise RuntimeError("LiteLLM is not installed")
        config = _litellm_config(env, upstream_url)
        command = [str(env.litellm), "--config", str(config), "--host", "127.0.0.1"]
        command += ["--port", str(port), "--num_workers", "1"]
        label = f"LiteLLM proxy {LITELLM_VERSION}"
        headers = {**app_headers, "Authorization": f"Bearer {LITELLM_MASTER_KEY}"}
        proc_env = {
            **_base_env(),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "LITELLM_MODE": "PRODUCTION",
        }
    elif key in ("aigw", "aigw-full"):
        if "sidecar" not in _subcommands():
            raise RuntimeError("`aigw sidecar` is not in this checkout yet")
        full = key == "aigw-full"
        bundle, secrets = _aigw_files(env, upstream_url, full=full)
        admin = free_port()
        command = [env.python, "-m", "aigw_cli.main", "sidecar", "--bundle", str(bundle)]
        command += ["--port", str(port), "--admin-port", str(admin), "--admin-host", "127.0.0.1"]
        command += ["--secrets-dir", str(secrets), "--log-level", "WARNING", "--drain-timeout", "2"]
        label = "aigw sidecar, full pipeline" if full else "aigw sidecar, minimal policy"
        headers, proc_env, model = app_headers, None, ROUTE
    else:
        raise ValueError(f"unknown target {key!r}")
    if key not in ("aigw", "aigw-full"):
        model = MODEL
    with contextlib.ExitStack() as stack:
        redis_url = None
        if key == "aigw-full" and "--redis-url" in _sidecar_help(env):
            redis_url = stack.enter_context(_redis(env))
            command += ["--redis-url", redis_url]
            label += " (Redis)"
        proc = stack.enter_context(
            Proc(key, command, cpus=env.proxy_cpu, log_dir=env.logs, env=proc_env)
        )
        url = f"{base}/v1/chat/completions"
        probe = env.probe_body.replace(f'"{MODEL}"'.encode(), f'"{model}"'.encode())
        wait_until_answers(proc, url, probe, headers, within=180)
        evidence = None
        if key.startswith("aigw"):
            evidence = functools.partial(_sidecar_evidence, admin, redis_url)
        yield Target(key, label, url, headers, proc.pid, model, evidence)


@contextlib.contextmanager
def _redis(env: BenchEnv) -> Iterator[str]:
    """A throw-away redis-server on the load core (no persistence); yields its URL."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is missing: run `make deps`")
    port = free_port()
    command = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--protected-mode", "no"]
    with Proc("redis", command, cpus=env.load_cpu, log_dir=env.logs) as proc:
        wait_for_port(proc, port)
        yield f"redis://127.0.0.1:{port}/0"


def _sidecar_evidence(admin_port: int, redis_url: str | None) -> dict[str, Any]:
    """The sidecar's own status, and how many commands Redis served (proof it was used)."""
    found: dict[str, Any] = {}
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/aigw/status", timeout=5) as r:
            status = json.loads(r.read())
        found["status"] = {k: status.get(k) for k in ("bundle", "governance") if k in status}
    except (OSError, ValueError) as exc:
        found["status_error"] = str(exc)
    if redis_url is not None:
        port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"INFO commandstats\r\n")
            time.sleep(0.2)
            text = sock.recv(65536).decode(errors="replace")
        calls = {
            line.split(":")[0].removeprefix("cmdstat_"): int(line.split("calls=")[1].split(",")[0])
            for line in text.splitlines()
            if line.startswith("cmdstat_")
        }
        found["redis_calls"] = calls
    return found


def _sidecar_help(env: BenchEnv) -> str:
    command = [env.python, "-m", "aigw_cli.main", "sidecar", "--help"]
    return subprocess.run(command, capture_output=True, text=True, check=False).stdout


def _subcommands() -> dict[str, tuple[str, str]]:
    from aigw_cli.main import SUBCOMMANDS  # noqa: PLC0415 - only to see what exists

    return SUBCOMMANDS


ROUTE = "chat"
_NAMESPACE = "bench"


def _aigw_files(env: BenchEnv, upstream_url: str, *, full: bool) -> tuple[Path, Path]:
    """Compiles the bench bundle with ``aigw compile`` and writes the provider key file."""
    secrets = env.work / "secrets"
    (secrets / "provider-keys").mkdir(parents=True, exist_ok=True)
    (secrets / "provider-keys" / "openai").write_text(UPSTREAM_KEY)
    route = f"""apiVersion: aigw.dev/v1alpha1
kind: ModelRoute
metadata: {{name: {ROUTE}, namespace: {_NAMESPACE}}}
spec:
  backends:
    - name: fake
      provider: openai
      model: {MODEL}
      baseURL: {upstream_url}/v1
      credentialSecretRef: {{name: provider-keys, key: openai}}
      pricing: {{inputPerMillionTokensUSD: "0.15", outputPerMillionTokensUSD: "0.60"}}
"""
    policy = f"""apiVersion: aigw.dev/v1alpha1
kind: AIPolicy
metadata: {{name: bench, namespace: {_NAMESPACE}}}
spec:
  useCases:
    - name: default
      routes: [{ROUTE}]
"""
    if full:
        policy += FULL_USE_CASE
    source = env.work / ("aigw-full.yaml" if full else "aigw.yaml")
    source.write_text(route + "---\n" + policy)
    bundle = env.work / ("bundle-full.json" if full else "bundle.json")
    compile_command = [env.python, "-m", "aigw_cli.main", "compile", str(source), "-o", str(bundle)]
    subprocess.run(compile_command, check=True, capture_output=True, timeout=60)
    return bundle, secrets


FULL_USE_CASE = """      limits: {maxTokens: 1024, maxCostUSD: "1.00", maxLatencyMs: 30000}
      rateLimits: {requestsPerMinute: 100000000, tokensPerMinute: 1000000000, concurrency: 1024}
      budgets:
        - {name: daily-tokens, period: day, tokens: 1000000000000}
        - {name: monthly-spend, period: month, costUSD: "1000000.00"}
      redaction: {profile: pii, mode: mask}
      promptInjection: {mode: block}
      audit: {storePrompts: false, retentionDays: 90}
"""
"""Every step switched on, with limits far above what the run can reach (nothing is denied).

The exact cache stays off: the benchmark repeats one request, so every call would be a hit and
the upstream would not be measured."""


def _base_env() -> dict[str, str]:
    import os  # noqa: PLC0415 - the harness is the CLI layer: the one place env is read

    return {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC"))}
