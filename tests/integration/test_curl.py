"""curl, exactly as the README's first call shows it (streaming with -N).

The command is read from README.md, so the README cannot drift from what works: only the host
and port are pointed at the test gateway, and, for the second run, the model at the Anthropic one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import sse_data
from tests.integration._clients import MODELS, PROVIDERS, greeting, two_provider_gateway

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_curl() -> str:
    """The first `curl` command in a ```bash block of the README (continuation lines joined by bash)."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    for block in blocks:
        m = re.search(r"^curl .*?(?<!\\)\n(?=\S|$)", block + "\n", flags=re.S | re.M)
        if m and "chat/completions" in m.group(0):
            return m.group(0).strip()
    raise AssertionError("README.md has no curl example for /v1/chat/completions")


@pytest.fixture(scope="module")
def stack(gateway_factory, fake_openai):
    with two_provider_gateway(gateway_factory, fake_openai) as s:
        yield s


def run_bash(command: str, key: str = "sk-skylane-test-key") -> subprocess.CompletedProcess[str]:
    assert shutil.which("curl"), "curl is needed for this test"
    return subprocess.run(["bash", "-c", command], env={**os.environ, "SKYLANE_KEY": key},
                          capture_output=True, text=True, timeout=60)


def sse_payloads(out: str) -> list[str]:
    return sse_data(out)


def test_readme_example_is_the_streaming_call():
    cmd = readme_curl()
    assert cmd.startswith("curl -N ")
    assert "http://localhost:4200/v1/chat/completions" in cmd
    assert '"stream": true' in cmd and "$SKYLANE_KEY" in cmd


@pytest.mark.parametrize("provider", PROVIDERS)
def test_readme_curl_streams(stack, provider):
    cmd = readme_curl().replace("http://localhost:4200", stack.base)
    readme_model = json.loads(re.search(r"-d '(.*?)'", cmd, flags=re.S).group(1))["model"]
    cmd = cmd.replace(f'"{readme_model}"', f'"{MODELS[provider]}"')
    proc = run_bash(cmd)
    assert proc.returncode == 0, proc.stderr
    payloads = sse_payloads(proc.stdout)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MODELS[provider] for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    prompt = json.loads(re.search(r"-d '(.*?)'", cmd, flags=re.S).group(1))["messages"][-1]["content"]
    assert text == greeting(provider, prompt)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # the key reached the gateway (the header line survived bash quoting), and went no further
    assert "sk-skylane-test-key" not in json.dumps(stack.fake(provider).requests[-1]["headers"])


def test_curl_without_stream_and_an_error(stack):
    url = stack.base + "/v1/chat/completions"
    hi = '"messages": [{"role": "user", "content": "hi"}]'
    proc = run_bash(f"curl -s {url} -H 'content-type: application/json' "
                    f"-d '{{\"model\": \"openai/gpt-4o-mini\", {hi}}}'")
    body = json.loads(proc.stdout)
    assert body["choices"][0]["message"]["content"] == greeting("openai", "hi")
    proc = run_bash(f"curl -s -w '\\n%{{http_code}}' {url} -H 'content-type: application/json' "
                    f"-d '{{\"model\": \"nosuch/model\", {hi}}}'")
    body, status = proc.stdout.rsplit("\n", 1)
    assert status == "404"
    assert json.loads(body)["error"]["message"] == "Model not found: nosuch/model"
