"""The real coding agents (tests/agents.py) against the scripted fakes directly — no gateway in between.

This proves the harness: each agent, offline, asks the fake, is told to read a file holding a random
secret word, runs its own tool, sends the result back, and prints the fake's answer quoting the
word. Later tests put Skylane between the agent and an upstream fake.

SKYLANE_UPDATE_WIRE_FIXTURES=1 rewrites tests/data/{claude_code,codex}/first_request.json (the first
model request each agent sent, API key values redacted; for Codex's code mode also
tests/data/codex/first_request_code_mode.json) from these runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.agents import claude_binary, codex_binary, run_claude_code, run_codex
from tests.fakes.scripted_anthropic import ScriptedAnthropic
from tests.fakes.scripted_responses import ScriptedResponses
from tests.fakes.server import serve

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data"
KEY = "sk-agent-test-key"
PROMPT = "What is the secret word in notes.txt? Read the file and answer with the word."
_KEY_HEADERS = ("x-api-key", "authorization")


def _fixture_record(rec: dict[str, Any]) -> dict[str, Any]:
    headers = {k: ("<redacted>" if k.lower() in _KEY_HEADERS else v) for k, v in rec["headers"].items()}
    return dict(rec, headers=headers)


def _maybe_save(agent: str, rec: dict[str, Any], name: str = "first_request.json") -> None:
    if os.environ.get("SKYLANE_UPDATE_WIRE_FIXTURES") == "1":
        out = DATA / agent / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(_fixture_record(rec), indent=1, ensure_ascii=False) + "\n")


def _explain(proc: Any, fake: Any) -> str:
    return (f"rc={proc.returncode}\nstdout={proc.stdout[-2000:]}\nstderr={proc.stderr[-3000:]}\n"
            f"calls={[(r['method'], r['path']) for r in fake.requests]}\nanswers={fake.answers}")


@pytest.mark.parametrize("model", ["claude-opus-4-8", "openai/gpt-5"])
def test_claude_code_reads_a_file_through_the_fake(secret_file: tuple[Path, str], model: str) -> None:
    claude_binary()  # a clear error when not installed
    path, word = secret_file
    fake = ScriptedAnthropic(str(path))
    with serve(fake.app) as url:
        proc = run_claude_code(url, KEY, PROMPT, model, path.parent, timeout=60)
    assert proc.returncode == 0, _explain(proc, fake)
    assert word in proc.stdout, _explain(proc, fake)
    assert len(fake.model_calls) >= 2, _explain(proc, fake)
    assert [a["kind"] for a in fake.answers if a["kind"] != "side"][:2] == ["tool_use", "answer"]
    first = fake.model_calls[0]
    assert first["path"] == "/v1/messages" and first["query"] == "beta=true"
    assert first["headers"]["x-api-key"] == KEY
    assert first["headers"]["anthropic-version"] == "2023-06-01"
    body = first["body"]
    assert body["model"] == model and body["stream"] is True
    assert "Read" in {t["name"] for t in body["tools"]}
    second = fake.model_calls[1]["body"]["messages"]
    assert any(isinstance(m["content"], list) and any(b.get("type") == "tool_result" for b in m["content"])
               for m in second if m["role"] == "user")
    if model == "claude-opus-4-8":
        _maybe_save("claude_code", first)


# "openai/gpt-5" is unknown to Codex: classic function tools (`exec_command`). "gpt-6.2-sol" is in its
# catalogue: "code mode" (no `tools`; an `additional_tools` input item with a freeform JavaScript `exec`).
@pytest.mark.parametrize(("model", "call_kind"), [("openai/gpt-5", "function_call"),
                                                  ("gpt-6.2-sol", "custom_tool_call")])
def test_codex_reads_a_file_through_the_fake(secret_file: tuple[Path, str], model: str, call_kind: str) -> None:
    codex_binary()
    path, word = secret_file
    fake = ScriptedResponses(str(path))
    with serve(fake.app) as url:
        proc = run_codex(url + "/v1", KEY, PROMPT, model, path.parent, timeout=90)
    assert proc.returncode == 0, _explain(proc, fake)
    assert word in proc.stdout, _explain(proc, fake)
    assert len(fake.model_calls) >= 2, _explain(proc, fake)
    assert [a["kind"] for a in fake.answers][:2] == [call_kind, "answer"]
    first = fake.model_calls[0]
    assert first["path"] == "/v1/responses"
    assert first["headers"]["authorization"] == f"Bearer {KEY}"
    body = first["body"]
    assert body["model"] == model and body["stream"] is True and body["store"] is False
    later = fake.model_calls[1]["body"]["input"]
    output_type = call_kind + "_output" if call_kind == "function_call" else "custom_tool_call_output"
    assert [i["type"] for i in later[-2:]] == [call_kind, output_type]
    assert word in json.dumps(later[-1]["output"])
    if call_kind == "function_call":
        assert fake.answers[0]["item"]["name"] == "exec_command"
        assert "exec_command" in {t.get("name") for t in body["tools"]}
        _maybe_save("codex", first)
    else:
        assert "tools" not in body and body["input"][0]["type"] == "additional_tools"
        _maybe_save("codex", first, "first_request_code_mode.json")
