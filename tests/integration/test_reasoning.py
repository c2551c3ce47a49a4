"""Reasoning through the gateway: the real openai SDK → Skylane → fakes of Anthropic, Gemini and Bedrock
that enforce the providers' signature rules (tests/fakes/*). Two-turn tool loops with reasoning on,
streamed and not; the reasoning text reaches the client as `reasoning_content`; the signed blocks come
back from `reasoning_details` or from the tool-call id alone; a client that drops them gets the
provider's 400, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from skylane.providers import bedrock
from tests.conftest import make_settings
from tests.fakes.anthropic_upstream import THINKING_TEXT, FakeAnthropic
from tests.fakes.bedrock_eventstream import THINKING_TEXT as BEDROCK_THINKING
from tests.fakes.bedrock_eventstream import FakeBedrock
from tests.fakes.gemini_upstream import SKIP, THOUGHT_TEXT, FakeGemini, thought_signature
from tests.fakes.server import serve
from tests.helpers import AWS_ENV as AWS

pytestmark = pytest.mark.integration

ANT_KEY = "sk-ant-upstream-test"
GEM_KEY = "gemini-upstream-test"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
ANTHROPIC = "anthropic/claude-sonnet-4-5-20250929"  # budget thinking
ADAPTIVE = "anthropic/claude-opus-4-6"  # adaptive thinking + effort
GEMINI_25 = "gemini/gemini-2.5-flash"
GEMINI_3 = "gemini/gemini-3-pro-preview"
BEDROCK_CLAUDE = "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
NOVA_2 = "bedrock/us.amazon.nova-2-pro-v1:0"


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Any]]:
    ant, gem, bed = FakeAnthropic(ANT_KEY), FakeGemini(GEM_KEY), FakeBedrock()
    bed.install(bedrock.get_client(make_settings(**AWS)))
    with serve(ant.app) as ant_url, serve(gem.app) as gem_url:
        yield {"anthropic": ant, "gemini": gem, "bedrock": bed, "ant_url": ant_url, "gem_url": gem_url}


@pytest.fixture(scope="module")
def client(gateway_factory, fakes) -> Iterator[openai.OpenAI]:
    gw = gateway_factory(ANTHROPIC_API_KEY=ANT_KEY, ANTHROPIC_BASE_URL=fakes["ant_url"], GEMINI_API_KEY=GEM_KEY,
                         GEMINI_BASE_URL=fakes["gem_url"], SKYLANE_MAX_ATTEMPTS="1",
                         SKYLANE_BREAKER_FAILURES="100000", **AWS)
    with openai.OpenAI(base_url=gw + "/v1", api_key="x", max_retries=0) as sdk:  # its pool closed after the module
        yield sdk


def first_turn(client: openai.OpenAI, model: str, stream: bool) -> tuple[dict[str, Any], str]:
    """(the assistant message as a client appends it to the history, the reasoning text it saw)."""
    kwargs: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "tool: weather in Paris?"}],
                              "tools": TOOLS, "reasoning_effort": "low"}
    if not stream:
        resp = client.chat.completions.create(**kwargs)
        assert resp.choices[0].finish_reason == "tool_calls"
        msg = resp.choices[0].message.model_dump(exclude_none=True)
        return msg, str(msg.get("reasoning_content") or "")
    reasoning, details, calls = "", [], {}
    finish = None
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta.model_dump(exclude_none=True)
        reasoning += delta.get("reasoning_content") or ""
        details.extend(delta.get("reasoning_details") or [])
        for tc in delta.get("tool_calls") or ():
            call = calls.setdefault(tc["index"], {"id": "", "type": "function",
                                                  "function": {"name": "", "arguments": ""}})
            call["id"] = tc.get("id") or call["id"]
            call["function"]["name"] += (tc.get("function") or {}).get("name") or ""
            call["function"]["arguments"] += (tc.get("function") or {}).get("arguments") or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and calls
    # a streaming client keeps the tool calls (ids included) and the text; the signature items arrived too
    assert any(d.get("signature") or d.get("data") for d in details), details
    return {"role": "assistant", "content": None, "tool_calls": [calls[i] for i in sorted(calls)]}, reasoning


def second_turn(client: openai.OpenAI, model: str, assistant: dict[str, Any], stream: bool) -> str:
    messages = [{"role": "user", "content": "tool: weather in Paris?"}, assistant,
                {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"], "content": "sunny"}]
    kwargs: dict[str, Any] = {"model": model, "messages": messages, "tools": TOOLS, "reasoning_effort": "low"}
    if not stream:
        return client.chat.completions.create(**kwargs).choices[0].message.content or ""
    return "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **kwargs)
                   if c.choices)


def drop_reasoning(assistant: dict[str, Any]) -> dict[str, Any]:
    """What a client that rebuilds the message from its own types sends: no reasoning, plain ids."""
    calls = [{**c, "id": c["id"].split("__sk")[0]} for c in assistant["tool_calls"]]
    return {"role": "assistant", "content": assistant.get("content"), "tool_calls": calls}


# ---- Anthropic ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", [ANTHROPIC, ADAPTIVE])
def test_anthropic_tool_loop_with_thinking(client, fakes, model, stream):
    assistant, reasoning = first_turn(client, model, stream)
    assert reasoning == THINKING_TEXT
    sent = fakes["anthropic"].requests[-1]["body"]
    if model == ANTHROPIC:
        assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024} and sent["max_tokens"] > 1024
    else:
        assert sent["thinking"] == {"type": "adaptive"} and sent["output_config"] == {"effort": "low"}
    if not stream:
        assert assistant["reasoning_details"][0]["format"] == "anthropic-claude-v1"
    assert second_turn(client, model, assistant, stream) == "Tool said: sunny"
    replayed = fakes["anthropic"].requests[-1]["body"]["messages"][1]["content"][0]
    assert replayed["type"] == "thinking" and replayed["thinking"] == THINKING_TEXT and replayed["signature"]


def test_anthropic_id_only_client_passes(client, fakes):
    assistant, _ = first_turn(client, ANTHROPIC, stream=False)
    kept = {"role": "assistant", "content": None, "tool_calls": assistant["tool_calls"]}  # no reasoning_details
    assert second_turn(client, ANTHROPIC, kept, stream=False) == "Tool said: sunny"
    assert fakes["anthropic"].requests[-1]["body"]["messages"][1]["content"][0]["type"] == "thinking"


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_dropped_signature_gets_the_providers_400(client, stream):
    assistant, _ = first_turn(client, ANTHROPIC, stream=False)
    with pytest.raises(openai.BadRequestError) as exc:
        second_turn(client, ANTHROPIC, drop_reasoning(assistant), stream)
    assert exc.value.status_code == 400 and "Expected `thinking` or `redacted_thinking`" in exc.value.message


def test_reasoning_text_hidden_unless_asked(client):
    resp = client.chat.completions.create(model=ANTHROPIC, tools=TOOLS,
                                          messages=[{"role": "user", "content": "tool: weather?"}])
    msg = resp.choices[0].message.model_dump()
    assert "reasoning_content" not in msg and msg["tool_calls"][0]["id"] == "toolu_fake0"


def test_level_a_model_cannot_do_is_400_naming_the_parameter(client, fakes):
    before = len(fakes["anthropic"].requests)
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="anthropic/claude-3-5-haiku-20241022", reasoning_effort="high",
                                       messages=[{"role": "user", "content": "hi"}])
    assert exc.value.body["param"] == "reasoning_effort" and len(fakes["anthropic"].requests) == before


# ---- Gemini ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", [GEMINI_25, GEMINI_3])
def test_gemini_tool_loop_with_thoughts(client, fakes, model, stream):
    assistant, reasoning = first_turn(client, model, stream)
    assert reasoning == THOUGHT_TEXT
    config = fakes["gemini"].requests[-1]["body"]["generationConfig"]["thinkingConfig"]
    assert config["includeThoughts"] is True
    assert ("thinkingLevel" in config) == (model == GEMINI_3) and ("thinkingBudget" in config) == (model == GEMINI_25)
    assert second_turn(client, model, assistant, stream) == "Tool said: sunny"
    call = fakes["gemini"].requests[-1]["body"]["contents"][1]["parts"][-1]
    assert call["thoughtSignature"] == thought_signature("get_weather")


def test_gemini_3_id_only_client_passes(client, fakes):
    assistant, _ = first_turn(client, GEMINI_3, stream=False)
    kept = {"role": "assistant", "content": None, "tool_calls": assistant["tool_calls"]}
    assert second_turn(client, GEMINI_3, kept, stream=False) == "Tool said: sunny"
    assert fakes["gemini"].requests[-1]["body"]["contents"][1]["parts"][-1]["thoughtSignature"] == \
        thought_signature("get_weather")


def test_gemini_3_history_without_signature_sends_the_documented_sentinel(client, fakes):
    assistant, _ = first_turn(client, GEMINI_3, stream=False)
    assert second_turn(client, GEMINI_3, drop_reasoning(assistant), stream=False) == "Tool said: sunny"
    assert fakes["gemini"].requests[-1]["body"]["contents"][1]["parts"][-1]["thoughtSignature"] == SKIP


def test_gemini_3_foreign_signature_gets_the_providers_400(client):
    assistant, _ = first_turn(client, GEMINI_3, stream=False)
    forged = drop_reasoning(assistant)
    forged["reasoning_details"] = [{"type": "reasoning.encrypted", "data": "Zm9yZ2Vk", "format": "google-gemini-v1",
                                    "id": forged["tool_calls"][0]["id"], "index": 0}]
    with pytest.raises(openai.BadRequestError) as exc:
        second_turn(client, GEMINI_3, forged, stream=False)
    assert "Function call is missing a thought_signature" in exc.value.message


# ---- Bedrock -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_bedrock_claude_tool_loop_with_thinking(client, fakes, stream):
    assistant, reasoning = first_turn(client, BEDROCK_CLAUDE, stream)
    assert reasoning == BEDROCK_THINKING
    sent = fakes["bedrock"].last()["body"]
    assert sent["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert sent["inferenceConfig"]["maxTokens"] > 1024
    if not stream:
        assert assistant["reasoning_details"][0]["format"] == "bedrock-converse-v1"
    assert second_turn(client, BEDROCK_CLAUDE, assistant, stream) == "Tool said: sunny"
    replayed = fakes["bedrock"].last()["body"]["messages"][1]["content"][0]
    assert replayed["reasoningContent"]["reasoningText"]["text"] == BEDROCK_THINKING


def test_bedrock_id_only_client_passes(client, fakes):
    assistant, _ = first_turn(client, BEDROCK_CLAUDE, stream=False)
    kept = {"role": "assistant", "content": None, "tool_calls": assistant["tool_calls"]}
    assert second_turn(client, BEDROCK_CLAUDE, kept, stream=False) == "Tool said: sunny"
    sent = fakes["bedrock"].last()["body"]["messages"][1]
    assert "reasoningContent" in sent["content"][0]
    assert sent["content"][-1]["toolUse"]["toolUseId"] == "tooluse_fake0"  # the original id goes upstream


@pytest.mark.parametrize("stream", [False, True])
def test_bedrock_dropped_signature_gets_the_providers_400(client, stream):
    assistant, _ = first_turn(client, BEDROCK_CLAUDE, stream=False)
    with pytest.raises(openai.BadRequestError) as exc:
        second_turn(client, BEDROCK_CLAUDE, drop_reasoning(assistant), stream)
    assert "Expected `thinking` or `redacted_thinking`" in exc.value.message


def test_nova_2_reasoning_config(client, fakes):
    resp = client.chat.completions.create(model=NOVA_2, reasoning_effort="xhigh",
                                          messages=[{"role": "user", "content": "think"}])
    assert resp.choices[0].message.content == "Hello from fake-bedrock: think"
    assert fakes["bedrock"].last()["body"]["additionalModelRequestFields"] == {
        "reasoningConfig": {"type": "enabled", "maxReasoningEffort": "high"}}  # clamped to the row's levels
