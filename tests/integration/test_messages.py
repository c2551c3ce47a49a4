"""The Anthropic Messages API through Skylane: the official `anthropic` SDK -> the gateway -> loopback fakes.

Native (the body goes through as sent, events relayed): an Anthropic model (tests/fakes/anthropic_upstream.py)
and Claude on Bedrock (the REAL boto3 client answered by tests/fakes/bedrock_messages.py). Translated
(Messages -> the internal request -> the adapter -> Anthropic events): an OpenAI-compatible model
(tests/fakes/openai_upstream.py) and a Gemini model (tests/fakes/gemini_upstream.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from skylane.providers import bedrock
from tests.conftest import UPSTREAM_KEY, make_settings
from tests.fakes.anthropic_upstream import THINKING_TEXT, FakeAnthropic, sign
from tests.fakes.bedrock_messages import FakeBedrockMessages
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import serve
from tests.helpers import AWS_ENV as AWS

pytestmark = pytest.mark.integration

ANTHROPIC_KEY = "sk-ant-upstream"
GEMINI_KEY = "gemini-upstream-test"
NATIVE = "claude-sonnet-4-20250514"  # an alias of anthropic/claude-sonnet-4-20250514
BEDROCK = "bedrock/us.anthropic.claude-sonnet-4-20250514-v1:0"
OPENAI = "openai/gpt-5-mini"
GEMINI = "gemini/gemini-2.5-flash"
ALL = [NATIVE, BEDROCK, OPENAI, GEMINI]
GREETING = {NATIVE: "Hello from fake-anthropic", BEDROCK: "Hello from fake-anthropic", OPENAI: "Hello from fake-openai",
            GEMINI: "Hello from fake-gemini"}
TOOLS: list[Any] = [{"name": "get_weather", "description": "Weather for a city",
                     "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                      "required": ["city"]}}]


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Any]]:
    fa, fo, fg = FakeAnthropic(ANTHROPIC_KEY), FakeOpenAI(UPSTREAM_KEY), FakeGemini(GEMINI_KEY)
    fb = FakeBedrockMessages()
    fb.install(bedrock.get_client(make_settings(**AWS)))
    with serve(fa.app) as ua, serve(fo.app) as uo, serve(fg.app) as ug:
        yield {"anthropic": (fa, ua), "openai": (fo, uo + "/v1"), "gemini": (fg, ug), "bedrock": fb}


@pytest.fixture(scope="module")
def gw(gateway_factory: Any, fakes: dict[str, Any]) -> str:
    return gateway_factory(ANTHROPIC_API_KEY=ANTHROPIC_KEY, ANTHROPIC_BASE_URL=fakes["anthropic"][1],
                           OPENAI_API_KEY=UPSTREAM_KEY, OPENAI_BASE_URL=fakes["openai"][1],
                           GEMINI_API_KEY=GEMINI_KEY, GEMINI_BASE_URL=fakes["gemini"][1],
                           SKYLANE_MAX_ATTEMPTS="1", **AWS)


@pytest.fixture(scope="module")
def client(gw: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw, api_key="sk-skylane-unused", max_retries=0)


def _user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def _events(gw: str, body: dict[str, Any], path: str = "/v1/messages?beta=true") -> list[tuple[str, dict[str, Any]]]:
    with httpx.stream("POST", gw + path, json=body, headers={"anthropic-version": "2023-06-01"}, timeout=30) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    out = []
    for frame in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        data = json.loads(lines["data"])
        assert data["type"] == lines["event"]
        out.append((lines["event"], data))
    return out


@pytest.mark.parametrize("model", ALL)
def test_text(client: anthropic.Anthropic, model: str) -> None:
    msg = client.messages.create(model=model, max_tokens=100, system="Be brief.", messages=_user("hi there"))
    assert msg.type == "message" and msg.role == "assistant" and msg.model == model
    assert msg.content[0].type == "text" and msg.content[0].text.strip() == f"{GREETING[model]}: hi there"
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0


@pytest.mark.parametrize("model", ALL)
def test_stream(client: anthropic.Anthropic, model: str) -> None:
    with client.messages.stream(model=model, max_tokens=100, messages=_user("hi there")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.strip() == f"{GREETING[model]}: hi there"
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", [OPENAI, GEMINI])
def test_translated_stream_events_are_exact(gw: str, model: str) -> None:
    body = {"model": model, "max_tokens": 100, "stream": True, "tools": TOOLS,
            "messages": _user("tool please")}
    events = _events(gw, body)
    names = [n for n, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["usage"]["input_tokens"] > 0 and start["content"] == [] and start["model"] == model
    starts = [d for n, d in events if n == "content_block_start"]
    stops = [d["index"] for n, d in events if n == "content_block_stop"]
    assert [d["index"] for d in starts] == list(range(len(starts))) == stops  # dense, each closed
    tool = next(d for d in starts if d["content_block"]["type"] == "tool_use")
    args = "".join(d["delta"]["partial_json"] for n, d in events
                   if n == "content_block_delta" and d["index"] == tool["index"])
    assert json.loads(args) == {"city": "Paris0"}
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["input_tokens"] > 0 and delta["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", ALL)
def test_two_turn_tool_loop(client: anthropic.Anthropic, model: str, stream: bool) -> None:
    messages: list[Any] = _user("tool please")
    if stream:
        with client.messages.stream(model=model, max_tokens=200, tools=TOOLS, messages=messages) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(model=model, max_tokens=200, tools=TOOLS, messages=messages)
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"city": "Paris0"}
    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]}]
    second = client.messages.create(model=model, max_tokens=200, tools=TOOLS, messages=messages)
    assert second.content[-1].type == "text" and second.content[-1].text.strip() == "Tool said: sunny"
    assert second.stop_reason == "end_turn"


def _blocks(msg: Any) -> list[dict[str, Any]]:
    return [b.model_dump(exclude_none=True, exclude={"parsed_output"}) for b in msg.content]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", [NATIVE, BEDROCK])
def test_signed_thinking_round_trips_natively(client: anthropic.Anthropic, fakes: dict[str, Any], model: str,
                                              stream: bool) -> None:
    thinking: Any = {"type": "enabled", "budget_tokens": 2048}
    messages: list[Any] = _user("tool please")
    if stream:
        with client.messages.stream(model=model, max_tokens=4096, thinking=thinking, tools=TOOLS,
                                    messages=messages) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(model=model, max_tokens=4096, thinking=thinking, tools=TOOLS,
                                       messages=messages)
    block = first.content[0]
    assert block.type == "thinking" and block.thinking == THINKING_TEXT and block.signature == sign(THINKING_TEXT)
    use = next(b for b in first.content if b.type == "tool_use")
    result: Any = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]}
    second = client.messages.create(model=model, max_tokens=4096, thinking=thinking, tools=TOOLS,
                                    messages=[*messages, {"role": "assistant", "content": _blocks(first)}, result])
    assert second.content[-1].text.strip() == "Tool said: sunny"
    # without the signed thinking block the provider refuses the turn, and the client hears it in its envelope
    stripped = [b for b in _blocks(first) if b["type"] != "thinking"]
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model=model, max_tokens=4096, thinking=thinking, tools=TOOLS,
                               messages=[*messages, {"role": "assistant", "content": stripped}, result])
    assert info.value.body["type"] == "error"
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert "must start with a thinking block" in info.value.body["error"]["message"]
    if model == NATIVE:
        sent = fakes["anthropic"][0].requests[-1]
        assert sent["body"]["thinking"] == thinking  # as the client sent it
        assert sent["headers"]["x-api-key"] == ANTHROPIC_KEY


@pytest.mark.parametrize("model", [OPENAI, GEMINI])
def test_thinking_with_tools_translated(client: anthropic.Anthropic, fakes: dict[str, Any], model: str) -> None:
    """Thinking becomes reasoning_effort; the echoed thinking block (here unsigned: the fake gives none)
    and the tool loop go through."""
    thinking: Any = {"type": "enabled", "budget_tokens": 20000}
    first = client.messages.create(model=model, max_tokens=4096, thinking=thinking, tools=TOOLS,
                                   messages=_user("tool please"))
    use = next(b for b in first.content if b.type == "tool_use")
    history: list[Any] = [*_user("tool please"),
                          {"role": "assistant", "content": [
                              {"type": "thinking", "thinking": "I should call the tool.", "signature": "sig-x"},
                              *_blocks(first)]},
                          {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                        "content": [{"type": "text", "text": "sunny"}]}]}]
    second = client.messages.create(model=model, max_tokens=4096, thinking=thinking, tools=TOOLS, messages=history)
    assert second.content[-1].text.strip() == "Tool said: sunny"
    if model == OPENAI:
        sent = fakes["openai"][0].requests[-1]["body"]
        assert sent["reasoning_effort"] == "high"
        assert sent["messages"][-1] == {"role": "tool", "tool_call_id": use.id, "content": "sunny"}
        assert sent["messages"][1]["reasoning_content"] == "I should call the tool."


def test_gemini_thoughts_stream_as_thinking_blocks(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=GEMINI, max_tokens=500, thinking={"type": "enabled", "budget_tokens": 1024},
                                messages=_user("thoughts please")) as s:
        final = s.get_final_message()
    kinds = [b.type for b in final.content]
    assert kinds[0] == "thinking" and kinds[-1] == "text"
    assert final.content[0].thinking == "Let me think about this secretly."


@pytest.mark.parametrize("model", ALL)
def test_count_tokens(client: anthropic.Anthropic, gw: str, fakes: dict[str, Any], model: str) -> None:
    count = client.messages.count_tokens(model=model, messages=_user("hi there"), tools=TOOLS)
    assert count.input_tokens > 0
    r = httpx.post(gw + "/v1/messages/count_tokens", json={"model": model, "messages": _user("hi there")})
    assert r.status_code == 200
    if model == NATIVE:  # forwarded to Anthropic's count_tokens
        assert fakes["anthropic"][0].requests[-1]["path"] == "/v1/messages/count_tokens"
        assert "x-skylane-estimated" not in r.headers
    else:
        assert r.headers["x-skylane-estimated"] == "true"


def test_errors_in_anthropics_envelope(client: anthropic.Anthropic, gw: str) -> None:
    with pytest.raises(anthropic.InternalServerError) as overloaded:
        client.messages.create(model=NATIVE, max_tokens=10, messages=_user("error:529"))
    assert overloaded.value.status_code == 529
    assert overloaded.value.body["error"]["type"] == "overloaded_error"
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model=OPENAI, max_tokens=10, messages=_user("error:429"))
    assert limited.value.body["error"]["type"] == "rate_limit_error"
    assert limited.value.response.headers.get("retry-after")
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="nope/none", max_tokens=10, messages=_user("hi"))
    assert missing.value.body == {"type": "error", "error": {"type": "not_found_error",
                                                             "message": "Model not found: nope/none"}}
    r = httpx.post(gw + "/v1/messages", json={"model": NATIVE, "messages": _user("hi")})
    assert r.status_code == 400
    assert r.json() == {"type": "error", "error": {"type": "invalid_request_error",
                                                   "message": "max_tokens: Field required"}}
    r = httpx.post(gw + "/api/v1/messages", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    big = httpx.post(gw + "/v1/messages", content=b'{"x": "' + b"a" * 7_000_000 + b'"}')
    assert big.status_code == 413 and big.json()["error"]["type"] == "request_too_large"
    # before the dialect is known (an unknown path), errors stay OpenAI-shaped
    assert "error" in httpx.post(gw + "/v1/nothing", json={}).json()


def test_midstream_failure_is_an_error_event(gw: str) -> None:
    events = _events(gw, {"model": NATIVE, "max_tokens": 10, "stream": True, "messages": _user("midstream")})
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "overloaded_error"


def test_native_passthrough_keeps_the_body_and_headers(gw: str, fakes: dict[str, Any]) -> None:
    body = {"model": NATIVE, "max_tokens": 50, "messages": _user("hi there"), "metadata": {"user_id": "u-1"},
            "context_management": {"edits": []}, "top_k": 5}
    r = httpx.post(gw + "/v1/messages?beta=true", json=body,
                   headers={"anthropic-version": "2023-06-01", "anthropic-beta": "context-management-2025-06-27",
                            "x-api-key": "sk-skylane-client-key"})
    assert r.status_code == 200, r.text
    sent = fakes["anthropic"][0].requests[-1]
    assert sent["body"] == {**body, "model": "claude-sonnet-4-20250514"}
    assert sent["headers"]["anthropic-beta"] == "context-management-2025-06-27"
    assert sent["headers"]["x-api-key"] == ANTHROPIC_KEY  # the caller's key never travels upstream
    assert r.json()["model"] == NATIVE


def test_bedrock_native_body(client: anthropic.Anthropic, fakes: dict[str, Any]) -> None:
    with client.messages.stream(model=BEDROCK, max_tokens=64, messages=_user("hi there"),
                                extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"}) as s:
        s.get_final_message()
    rec = fakes["bedrock"].requests[-1]
    assert rec["operation"] == "InvokeModelWithResponseStream"
    assert rec["model"] == "us.anthropic.claude-sonnet-4-20250514-v1:0"
    assert rec["body"]["anthropic_version"] == "bedrock-2023-05-31"
    assert rec["body"]["anthropic_beta"] == ["interleaved-thinking-2025-05-14"]
    assert "model" not in rec["body"] and "stream" not in rec["body"]
