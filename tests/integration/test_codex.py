"""Codex CLI itself through Skylane (auth on, DynamoDB Local): reading a file with its exec_command tool.

    Codex --POST /v1/responses--> Skylane --native--> the scripted Responses fake (openai/*)
                                          --bridged--> the scripted Anthropic fake (anthropic/*)

Codex's custom model_provider (`wire_api = "responses"`) points at the gateway with a Skylane key;
the fakes script a shell call (`cat notes.txt`) and then an answer quoting the secret word Codex read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents import codex_binary, run_codex
from tests.fakes.scripted_anthropic import ScriptedAnthropic
from tests.fakes.scripted_responses import ScriptedResponses
from tests.fakes.server import serve
from tests.integration.conftest_dynamo import NewKey

PROMPT = "What is the secret word in notes.txt? Read the file and answer with the word."


@pytest.fixture
def fakes(secret_file: tuple[Path, str]) -> Iterator[dict[str, Any]]:
    path, _ = secret_file
    responses, anthropic = ScriptedResponses(str(path)), ScriptedAnthropic(str(path))
    with serve(responses.app) as r_url, serve(anthropic.app) as a_url:
        yield {"openai": responses, "openai_url": r_url + "/v1", "anthropic": anthropic, "anthropic_url": a_url}


def _explain(proc: Any, fake: Any) -> str:
    return (f"rc={proc.returncode}\nstdout={proc.stdout[-2000:]}\nstderr={proc.stderr[-3000:]}\n"
            f"calls={[(r['method'], r['path']) for r in fake.requests]}\nanswers={fake.answers}")


@pytest.mark.parametrize(("model", "provider", "call_kind"), [
    ("openai/gpt-5", "openai", "function_call"),  # native: relayed event for event
    ("gpt-6.2-sol", "openai", "custom_tool_call"),  # native, Codex's "code mode" (custom tools, untouched)
    ("anthropic/claude-sonnet-4-5", "anthropic", "tool_use"),  # bridged through the internal request
])
def test_codex_reads_a_file_through_skylane(auth_gateway: Callable[..., str], make_key: Callable[..., NewKey],
                                            fakes: dict[str, Any], secret_file: tuple[Path, str], model: str,
                                            provider: str, call_kind: str) -> None:
    codex_binary()
    path, word = secret_file
    gw = auth_gateway(OPENAI_BASE_URL=fakes["openai_url"], ANTHROPIC_API_KEY="sk-ant-test",
                      ANTHROPIC_BASE_URL=fakes["anthropic_url"])
    key = make_key("codex")
    proc = run_codex(gw + "/v1", key.key, PROMPT, model, path.parent, timeout=120)
    fake = fakes[provider]
    assert proc.returncode == 0, _explain(proc, fake)
    assert word in proc.stdout, _explain(proc, fake)
    assert [a["kind"] for a in fake.answers if a["kind"] != "side"][:2] == [call_kind, "answer"], _explain(proc, fake)
    first = fake.model_calls[0]
    # the caller's Skylane key never reaches the provider
    assert key.key not in json.dumps(first["headers"])
    if provider == "openai":
        assert first["path"] == "/v1/responses" and first["body"]["store"] is False
        assert first["body"]["model"] == model.split("/")[-1]
        later = fake.model_calls[1]["body"]["input"]
        assert word in json.dumps(later[-1]["output"])
    else:
        body = first["body"]
        assert first["path"] == "/v1/messages" and body["model"] == "claude-sonnet-4-5"
        names = {t["name"] for t in body["tools"]}
        assert "exec_command" in names and "web_search" not in names
        results = [b for m in fake.model_calls[1]["body"]["messages"] if isinstance(m["content"], list)
                   for b in m["content"] if b.get("type") == "tool_result"]
        assert results and word in json.dumps(results[-1])
