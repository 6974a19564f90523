"""The targets measured side by side, each started the same way against the same upstream.

* ``direct``: the client talks to the fake upstream itself (the floor).
* ``nginx``: Debian's nginx as a reverse proxy with upstream keep-alive (the compiled floor
  for one HTTP hop; see ``infra.py``).
* ``passthrough``: the bare aiohttp passthrough of ``passthrough.py`` (the Python floor).
* ``aigw*``: the aigw sidecar, one target per row of ``rows.py`` (started by ``aigw.py``).
* ``litellm``: LiteLLM's proxy (pinned version, own virtualenv outside the repository,
  cached), one model pointing at the same upstream, no database.

Proxies run pinned to the proxy core; the upstream, Redis, Collectors and the load tools
share the other.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra import nginx_binary, start_nginx
from procs import Proc, free_port, wait_until_answers

__all__ = [
    "APP_KEY",
    "LITELLM_VERSION",
    "MODEL",
    "UPSTREAM_KEY",
    "BenchEnv",
    "Target",
    "base_env",
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
    unique_bodies: bool = True
    """Every request differs (see ``load.UNIQUE``); False for the cache-hit row."""
    steps: tuple[str, ...] = ()
    """aigw rows: the pipeline steps switched on (``rows.py``)."""
    after_stop: dict[str, str] = field(default_factory=dict)
    """Filled once the target stopped: evidence that fell short, by step (empty: none did)."""


@contextlib.contextmanager
def upstream(env: BenchEnv) -> Iterator[str]:
    """The fake OpenAI upstream on the load core; yields its base URL."""
    port = free_port()
    command = [env.python, "-m", "aigw_cli.main", "fake-provider", "--port", str(port)]
    command += ["--api-key", UPSTREAM_KEY, "--record-limit", "8"]  # the probes read the last
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
    """Starts the non-aigw target ``key`` in front of ``upstream_url``; stops it afterwards."""
    app_headers = {"Authorization": f"Bearer {APP_KEY}", "Content-Type": "application/json"}
    direct_headers = {"Authorization": f"Bearer {UPSTREAM_KEY}", "Content-Type": "application/json"}
    if key == "direct":
        yield Target(
            key, "direct to upstream (floor)", f"{upstream_url}/v1/chat/completions",
            direct_headers, None,
        )  # fmt: skip
        return
    if key == "nginx":
        upstream_port = int(upstream_url.rsplit(":", 1)[1])
        with start_nginx(env.proxy_cpu, env.logs, upstream_port) as (proc, port):
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            wait_until_answers(proc, url, env.probe_body, direct_headers)
            yield Target(
                key, f"nginx {_nginx_version()} reverse proxy", url, direct_headers, proc.pid
            )
        return
    port = free_port()
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
            **base_env(),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "LITELLM_MODE": "PRODUCTION",
        }
    else:
        raise ValueError(f"unknown target {key!r}")
    with Proc(key, command, cpus=env.proxy_cpu, log_dir=env.logs, env=proc_env) as proc:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        wait_until_answers(proc, url, env.probe_body, headers, within=180)
        yield Target(key, label, url, headers, proc.pid)


def _nginx_version() -> str:
    binary = nginx_binary() or "nginx"
    done = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    return done.stderr.strip().rsplit("/", 1)[-1] or "?"


def base_env() -> dict[str, str]:
    import os  # noqa: PLC0415 - the harness is the CLI layer: the one place env is read

    return {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC"))}
