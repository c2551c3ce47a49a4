"""Run the real coding agents — Claude Code and the Codex CLI — headless and offline against a local base URL.

Both come from npm (tests/clients/package.json; `npm ci --prefix tests/clients` installs them, their
native binaries arrive as platform optional dependencies). Each run gets its own temporary HOME (and
CODEX_HOME), an environment built from scratch (only PATH, LANG and TERM are inherited) and stdin
closed, so nothing from the developer's own configuration, login or history leaks in and nothing
prompts. What keeps them offline was checked with strace: the only sockets either opens go to the
base URL.

  run_claude_code(...)  `claude -p <prompt> --model <model> --allowedTools Read --output-format text`
                        with ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY; it calls POST {base}/v1/messages?beta=true
  run_codex(...)        `codex exec --skip-git-repo-check <prompt>` with a config.toml whose custom provider
                        "skylane" points at base_url (ending in /v1, wire_api "responses") and reads its key
                        from SKYLANE_API_KEY; it calls POST {base}/responses

Both return the CompletedProcess (text mode): stdout is the agent's final answer only, stderr its
chatter (Codex prints the whole transcript there). A timeout raises subprocess.TimeoutExpired.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

BIN = Path(__file__).resolve().parent / "clients" / "node_modules" / ".bin"
INSTALL_HINT = "run `npm ci --prefix tests/clients` (or `make test`) to install the coding agents"

# what every agent run inherits from the caller's environment; nothing else (no keys, no proxies, no config)
_INHERITED = ("PATH", "LANG", "LC_ALL", "TERM", "TMPDIR", "SYSTEMROOT")


def claude_binary() -> Path:
    return _binary("claude")


def codex_binary() -> Path:
    return _binary("codex")


def _binary(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: {INSTALL_HINT}")
    return path


def _base_env(home: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
                "XDG_DATA_HOME": str(home / ".local" / "share"), "XDG_STATE_HOME": str(home / ".local" / "state"),
                "NO_COLOR": "1",
                # the base URL is on loopback: never route it through a proxy the caller may have set
                "NO_PROXY": "127.0.0.1,localhost,::1", "no_proxy": "127.0.0.1,localhost,::1"})
    return env


def run_claude_code(base_url: str, api_key: str, prompt: str, model: str, workdir: Path, timeout: float = 120,
                    extra_env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Claude Code headless (`claude -p`) in `workdir`, its Read tool allowed without asking.

    base_url is the Anthropic root (no /v1: Claude Code appends /v1/messages). Any model name is sent
    verbatim (unknown ones only draw a stderr warning). `extra_env` is applied last (e.g.
    ANTHROPIC_AUTH_TOKEN to send `Authorization: Bearer` instead of `x-api-key`).
    """
    with tempfile.TemporaryDirectory(prefix="claude-home-") as tmp:
        home = Path(tmp)
        env = _base_env(home)
        env.update({
            "ANTHROPIC_BASE_URL": base_url.rstrip("/"),
            "ANTHROPIC_API_KEY": api_key,
            "DISABLE_TELEMETRY": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",  # no statsig/sentry/update/feedback calls
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_BUG_COMMAND": "1",
            "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
            "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
            "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
        })
        env.update(extra_env or {})
        cmd = [str(claude_binary()), "-p", prompt, "--model", model, "--allowedTools", "Read",
               "--output-format", "text"]
        return subprocess.run(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)


def codex_config(base_url: str, model: str, sandbox: str = "read-only") -> str:
    """The config.toml run_codex writes: the "skylane" provider, no approvals, nothing that phones home."""
    base = base_url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    return f"""\
model = {_toml(model)}
model_provider = "skylane"
approval_policy = "never"
sandbox_mode = {_toml(sandbox)}
check_for_update_on_startup = false

[model_providers.skylane]
name = "skylane"
base_url = {_toml(base)}
env_key = "SKYLANE_API_KEY"
wire_api = "responses"

[analytics]
enabled = false

[feedback]
enabled = false

[otel]
exporter = "none"

[features]
# the curated-plugin sync resolves api.github.com at startup even with no plugins configured
plugins = false
"""


def _toml(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_codex(base_url: str, api_key: str, prompt: str, model: str, workdir: Path, timeout: float = 180,
              extra_env: Mapping[str, str] | None = None, *, sandbox: str = "read-only",
              extra_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`codex exec` in `workdir` with approvals off and its shell tool (exec_command) sandboxed read-only.

    base_url may end in /v1 or not (it is added). The read-only sandbox uses Codex's bundled
    bubblewrap (user namespaces; they work here, as root); where they do not, pass
    sandbox="danger-full-access". Model names unknown to Codex (anything but its own catalogue,
    e.g. "gpt-5" or "openai/gpt-5") are sent verbatim with fallback metadata and the classic
    function tools (`exec_command` {"cmd": ...}); its catalogue models (e.g. "gpt-6.2-sol") switch it to
    "code mode": no `tools` field, an `additional_tools` input item and a freeform `exec` tool.
    """
    with tempfile.TemporaryDirectory(prefix="codex-home-") as tmp:
        home = Path(tmp)
        codex_home = home / ".codex"
        codex_home.mkdir()
        (codex_home / "config.toml").write_text(codex_config(base_url, model, sandbox))
        env = _base_env(home)
        env.update({"CODEX_HOME": str(codex_home), "SKYLANE_API_KEY": api_key, "RUST_LOG": "error"})
        env.update(extra_env or {})
        cmd = [str(codex_binary()), "exec", "--skip-git-repo-check", "--color", "never", *extra_args, prompt]
        return subprocess.run(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
