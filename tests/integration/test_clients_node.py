"""The Node clients people use — the OpenAI Node SDK and the Vercel AI SDK — unchanged, against a
real Skylane with an OpenAI-compatible model and an Anthropic model.

The scripts live in tests/clients/ (their own npm project; `make test` installs it). Each runs every
scenario against the gateway named in its environment and prints one line of JSON; node's output
never reaches the terminal, so CI still reads pytest's own last line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration._clients import MODELS, PROVIDERS, greeting, two_provider_gateway

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
INSTALL_HINT = "run `make test` (or `npm ci --prefix tests/clients`) to install the Node clients"


def _node() -> str:
    node = shutil.which("node")
    assert node, "Node.js 20+ is needed for the Node client tests (see the README's requirements)"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert int(version.lstrip("v").split(".")[0]) >= 20, f"Node.js 20+ needed, found {version}"
    for pkg in ("openai", "ai", "@ai-sdk/openai-compatible"):
        assert (CLIENTS / "node_modules" / pkg / "package.json").is_file(), f"{pkg} missing: {INSTALL_HINT}"
    return node


@pytest.fixture(scope="module")
def stack(gateway_factory, fake_openai):
    with two_provider_gateway(gateway_factory, fake_openai) as s:
        yield s


@pytest.fixture(scope="module")
def run_script(stack):
    node = _node()
    cache: dict[tuple[str, str], dict] = {}

    def run(script: str, provider: str) -> dict:
        if (script, provider) not in cache:
            env = {**os.environ, "SKYLANE_BASE_URL": stack.base, "SKYLANE_MODEL": MODELS[provider],
                   "NO_COLOR": "1"}
            proc = subprocess.run([node, str(CLIENTS / script)], cwd=CLIENTS, env=env, capture_output=True,
                                  text=True, timeout=120)
            assert proc.returncode == 0, f"{script} exited {proc.returncode}: {proc.stderr[-2000:]}"
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            assert lines, f"{script} printed no JSON: {proc.stdout[-1000:]} {proc.stderr[-1000:]}"
            cache[(script, provider)] = json.loads(lines[-1])
        return cache[(script, provider)]

    return run


@pytest.fixture(params=PROVIDERS)
def provider(request) -> str:
    return request.param


def scenario(result: dict, name: str) -> dict:
    got = result[name]
    assert "failed" not in got, f"{name}: {got['failed']}"
    return got


# ---- OpenAI Node SDK ------------------------------------------------------------------------


@pytest.fixture
def sdk(run_script, provider) -> dict:
    return run_script("node_sdk.mjs", provider)


def test_node_sdk_chat(sdk, stack, provider):
    r = scenario(sdk, "chat")
    assert r["object"] == "chat.completion" and r["model"] == MODELS[provider]
    assert r["content"] == greeting(provider, "hello node") and r["role"] == "assistant"
    assert r["finish_reason"] == "stop"
    u = r["usage"]
    assert u["prompt_tokens"] > 0 and u["completion_tokens"] > 0
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    if provider == "anthropic":
        assert u["prompt_tokens_details"]["cached_tokens"] > 0
    sent = [r["headers"] for r in stack.fake(provider).requests]
    assert sent and "sk-anything" not in json.dumps(sent), "the client's key never goes upstream"


def test_node_sdk_response_headers(sdk):
    r = scenario(sdk, "chatWithResponse")
    assert r["status"] == 200 and r["requestId"] and 0 < float(r["overheadMs"]) < 5000
    assert r["content"].endswith(": headers")


def test_node_sdk_stream(sdk, provider):
    r = scenario(sdk, "stream")
    assert r["text"] == greeting(provider, "stream node") and r["contentPieces"] > 1
    assert r["firstRole"] == "assistant"
    assert r["finishReasons"][-1] == "stop" and set(r["finishReasons"][:-1]) == {None}
    assert r["ids"] == 1 and r["objects"] == ["chat.completion.chunk"] and r["models"] == [MODELS[provider]]
    assert r["lastChoices"] == 0 and r["usage"]["completion_tokens"] > 0


def test_node_sdk_stream_helper(sdk, provider):
    r = scenario(sdk, "streamHelper")
    assert r["content"] == greeting(provider, "helper node") and r["finish_reason"] == "stop"
    assert r["pieces"] > 1


def test_node_sdk_tools_round_trip(sdk):
    r = scenario(sdk, "tools")
    assert r["finish_reason"] == "tool_calls"
    [call] = r["calls"]
    assert call["type"] == "function" and call["name"] == "get_weather" and call["args"] == {"city": "Paris0"}
    assert call["id"]
    assert r["answer"] == "Tool said: sunny, 24C" and r["answerFinish"] == "stop"


def test_node_sdk_parallel_tools(sdk):
    r = scenario(sdk, "toolsParallel")
    assert r["finish_reason"] == "tool_calls"
    assert [(c["name"], c["args"]) for c in r["calls"]] == [("get_weather", {"city": "Paris0"}),
                                                            ("get_time", {"city": "Paris1"})]
    assert len({c["id"] for c in r["calls"]}) == 2


def test_node_sdk_tools_stream(sdk):
    r = scenario(sdk, "toolsStream")
    assert r["indexes"] == [0, 1], "dense tool-call indexes from 0"
    assert [(c["name"], c["args"], c["idDeltas"]) for c in r["calls"]] == [
        ("get_weather", {"city": "Paris0"}, 1), ("get_time", {"city": "Paris1"}, 1)]
    assert r["finish_reason"] == "tool_calls"


def test_node_sdk_json_mode(sdk):
    assert scenario(sdk, "jsonMode")["parsed"] == {"answer": 42}


def test_node_sdk_models(sdk, provider):
    r = scenario(sdk, "models")
    assert MODELS["openai"] in r["ids"] and MODELS["anthropic"] in r["ids"]
    assert r["retrieved"] == {"id": MODELS[provider], "object": "model"}


def test_node_sdk_errors_are_typed(sdk):
    nf = scenario(sdk, "notFound")
    assert nf["isNotFound"] and nf["status"] == 404 and nf["code"] == "model_not_found"
    bad = scenario(sdk, "badRequest")
    assert bad["isBadRequest"] and bad["status"] == 400 and bad["param"] == "temperature"
    rl = scenario(sdk, "rateLimit")
    assert rl["isRateLimit"] and rl["status"] == 429 and rl["retryAfter"] == "1"
    ms = scenario(sdk, "midstream")
    assert ms["seen"] == "partial"
    assert ms["error"]["isAPIError"] and ms["error"]["message"]


# ---- Vercel AI SDK --------------------------------------------------------------------------


@pytest.fixture
def vercel(run_script, provider) -> dict:
    return run_script("vercel_ai.mjs", provider)


def test_vercel_generate_text(vercel, provider):
    r = scenario(vercel, "generateText")
    assert r["text"] == greeting(provider, "hello vercel") and r["finishReason"] == "stop"
    assert r["responseModel"] == MODELS[provider]
    u = r["usage"]
    assert u["inputTokens"] > 0 and u["outputTokens"] > 0 and u["totalTokens"] == u["inputTokens"] + u["outputTokens"]
    if provider == "anthropic":
        assert u["cachedInputTokens"] > 0


def test_vercel_stream_text(vercel, provider):
    r = scenario(vercel, "streamText")
    assert r["pieces"] > 1 and r["joined"] == r["text"] == greeting(provider, "stream vercel")
    assert r["finishReason"] == "stop"
    assert r["usage"]["outputTokens"] > 0, "usage reaches the SDK in streams (includeUsage)"


def test_vercel_tool_call(vercel):
    r = scenario(vercel, "toolCall")
    assert r["finishReason"] == "tool-calls"
    assert [(c["name"], c["input"]) for c in r["toolCalls"]] == [("get_weather", {"city": "Paris0"})]


def test_vercel_tool_loop(vercel):
    r = scenario(vercel, "toolLoop")
    assert r["steps"] == 2 and r["text"] == "Tool said: cloudy in Paris0" and r["finishReason"] == "stop"


def test_vercel_stream_parallel_tools(vercel):
    r = scenario(vercel, "streamToolsParallel")
    assert [(c["name"], c["input"]) for c in r["toolCalls"]] == [("get_weather", {"city": "Paris0"}),
                                                                ("get_time", {"city": "Paris1"})]
    assert r["finishReason"] == "tool-calls" and r["sawToolInputDeltas"]


def test_vercel_structured_output(vercel):
    r = scenario(vercel, "structuredOutput")
    assert r["output"] == {"answer": 42} and r["finishReason"] == "stop"


def test_vercel_rate_limit(vercel):
    r = scenario(vercel, "rateLimited")
    assert r["isAPICallError"] and r["statusCode"] == 429 and r["isRetryable"]
