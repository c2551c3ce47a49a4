"""Claude Code itself through Skylane (auth on, DynamoDB Local, a real Skylane key), to an Anthropic model
(native: tests/fakes/scripted_anthropic.py) and to an OpenAI-compatible model (translated:
tests/fakes/scripted_chat.py). The agent reads a file holding a random word with its Read tool and
reports the word; the ledger shows both model calls with their tokens and cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.agents import claude_binary, run_claude_code
from tests.fakes.scripted_anthropic import ScriptedAnthropic
from tests.fakes.scripted_chat import ScriptedChat
from tests.fakes.server import serve

pytestmark = pytest.mark.integration

PROMPT = "What is the secret word in notes.txt? Read the file and answer with the word."
UPSTREAM = "sk-upstream-claude-code"


def _n(item: dict[str, Any], attr: str) -> int:
    return int(item[attr]["N"]) if attr in item else 0


def _ledger(tables: Any, key_id: str, model: str, calls: int) -> dict[str, Any]:
    """The key's ledger row for `model` today, once it counts `calls` requests (settlement is async)."""
    end = time.monotonic() + 10
    rows: list[dict[str, Any]] = []
    while time.monotonic() < end:
        rows = [r for r in tables.limits_items(key_id, "usage#") if r["sk"]["S"].endswith("#" + model)]
        if rows and _n(rows[0], "requests") >= calls:
            return rows[0]
        time.sleep(0.1)
    raise AssertionError(f"no ledger row with {calls} requests for {model}: {rows}")


def _explain(proc: Any, fake: Any) -> str:
    return (f"rc={proc.returncode}\nstdout={proc.stdout[-2000:]}\nstderr={proc.stderr[-3000:]}\n"
            f"answers={[a['kind'] for a in fake.answers]}")


@pytest.mark.parametrize("auth_header", ["x-api-key", "authorization"])
def test_claude_code_to_an_anthropic_model_natively(secret_file: tuple[Path, str], gateway_factory: Any,
                                                   make_key: Callable[..., Any], dynamo_tables: Any,
                                                   auth_header: str) -> None:
    claude_binary()
    path, word = secret_file
    fake = ScriptedAnthropic(str(path))
    key = make_key(name="claude-code")
    with serve(fake.app) as upstream:
        gw = gateway_factory(SKYLANE_AUTH="enabled", ANTHROPIC_API_KEY=UPSTREAM, ANTHROPIC_BASE_URL=upstream,
                             **dynamo_tables.env)
        # ANTHROPIC_AUTH_TOKEN makes Claude Code send `Authorization: Bearer` instead of x-api-key
        extra = {"ANTHROPIC_AUTH_TOKEN": key.key} if auth_header == "authorization" else {}
        proc = run_claude_code(gw, key.key, PROMPT, "claude-opus-4-8", path.parent, timeout=90, extra_env=extra)
    assert proc.returncode == 0, _explain(proc, fake)
    assert word in proc.stdout, _explain(proc, fake)
    kinds = [a["kind"] for a in fake.answers if a["kind"] != "side"]
    assert kinds[:2] == ["tool_use", "answer"], _explain(proc, fake)
    first = fake.model_calls[0]
    assert first["headers"]["x-api-key"] == UPSTREAM  # the Skylane key stayed at the gateway
    assert "authorization" not in first["headers"]
    assert first["body"]["model"] == "claude-opus-4-8" and first["body"]["stream"] is True
    assert "context-management-2025-06-27" in first["headers"]["anthropic-beta"]
    row = _ledger(dynamo_tables, key.key_id, "anthropic/claude-opus-4-8", 2)
    assert _n(row, "prompt_tokens") > 0 and _n(row, "completion_tokens") > 0 and _n(row, "cost_micros") > 0


def test_claude_code_to_an_openai_compatible_model_translated(secret_file: tuple[Path, str], gateway_factory: Any,
                                                             make_key: Callable[..., Any],
                                                             dynamo_tables: Any) -> None:
    claude_binary()
    path, word = secret_file
    model = "openai/gpt-5-mini"
    fake = ScriptedChat(str(path), UPSTREAM)
    key = make_key(name="claude-code-bridged")
    with serve(fake.app) as upstream:
        gw = gateway_factory(SKYLANE_AUTH="enabled", OPENAI_API_KEY=UPSTREAM, OPENAI_BASE_URL=upstream + "/v1",
                             **dynamo_tables.env)
        # its side calls (titles, checks) use the "small fast" model: the same one here
        extra = {"ANTHROPIC_SMALL_FAST_MODEL": model, "ANTHROPIC_DEFAULT_HAIKU_MODEL": model}
        proc = run_claude_code(gw, key.key, PROMPT, model, path.parent, timeout=90, extra_env=extra)
    assert proc.returncode == 0, _explain(proc, fake)
    assert word in proc.stdout, _explain(proc, fake)
    assert [a["kind"] for a in fake.answers if a["kind"] != "side"][:2] == ["tool_use", "answer"]
    first = fake.model_calls[0]["body"]
    assert first["model"] == "gpt-5-mini" and first["stream"] is True
    assert "Read" in {t["function"]["name"] for t in first["tools"]}
    second = fake.model_calls[1]["body"]["messages"]
    assert any(m["role"] == "tool" and word in str(m["content"]) for m in second)
    row = _ledger(dynamo_tables, key.key_id, model, 2)
    assert _n(row, "prompt_tokens") > 0 and _n(row, "completion_tokens") > 0 and _n(row, "cost_micros") > 0
