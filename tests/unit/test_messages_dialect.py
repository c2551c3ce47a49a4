"""The Messages dialect's pure parts on plain data: Messages -> internal request, internal chunks -> events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skylane.core.errors import InvalidRequest, RateLimited, UpstreamUnavailable
from skylane.dialects.anthropic_parse import parse_messages
from skylane.dialects.anthropic_render import MessagesStream, error_body, error_status
from skylane.dialects.base import CallView
from skylane.providers.anthropic_native import AnthropicRelay, native_usage_of
from skylane.transport.sse import SSEEvent

CLAUDE_CODE_BODY: dict[str, Any] = {
    "model": "openai/gpt-5", "max_tokens": 64000, "stream": True,
    "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
    "thinking": {"type": "adaptive", "display": "omitted"}, "output_config": {"effort": "high"},
    "metadata": {"user_id": "user-1"}, "context_management": {"edits": []},
    "tools": [{"name": "Read", "description": "Read a file", "input_schema": {"type": "object"}},
              {"type": "web_search_20250305", "name": "web_search"}],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Read notes.txt"}]},
        {"role": "system", "content": [{"type": "text", "text": "mid-conversation note"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I will read it.", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/x"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                {"type": "text", "text": "secret"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
            {"type": "text", "text": "and?", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
    ],
}


def test_claude_codes_body_translates_to_the_internal_request() -> None:
    req = parse_messages(json.dumps(CLAUDE_CODE_BODY).encode(), None)
    assert req.wire == CLAUDE_CODE_BODY  # kept whole for native passthrough
    raw = req.raw
    assert raw["max_completion_tokens"] == 64000 and raw["stream"] is True and raw["user"] == "user-1"
    assert raw["reasoning_effort"] == "high" and raw["parallel_tool_calls"] is False
    assert [t["function"]["name"] for t in raw["tools"]] == ["Read"]  # the server tool is dropped
    roles = [m["role"] for m in raw["messages"]]
    assert roles == ["system", "user", "system", "assistant", "tool", "user"]
    assert raw["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assistant = raw["messages"][3]
    assert assistant["tool_calls"][0]["function"] == {"name": "Read", "arguments": '{"file_path": "/x"}'}
    assert assistant["reasoning_content"] == "I will read it."
    assert assistant["reasoning_details"] == [
        {"type": "reasoning.text", "text": "I will read it.", "signature": "sig-1", "format": "anthropic-claude-v1",
         "index": 0},
        {"type": "reasoning.encrypted", "data": "opaque", "format": "anthropic-claude-v1", "index": 1}]
    assert raw["messages"][4] == {"role": "tool", "tool_call_id": "toolu_1", "content": "secret"}
    last = raw["messages"][5]["content"]
    assert last[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert last[1] == {"type": "text", "text": "and?", "cache_control": {"type": "ephemeral", "ttl": "1h"}}


@pytest.mark.parametrize(("body", "message"), [
    ({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "max_tokens: Field required"),
    ({"model": "m", "max_tokens": 5, "messages": []}, "messages: at least one message is required"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "bot", "content": "x"}]}, "messages.0.role"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "x"}},
     "tool_choice.type"),
])
def test_bad_bodies_are_400s(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_messages(json.dumps(body).encode(), None)
    assert info.value.message.startswith(message)


def _events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in raw.decode().strip().split("\n\n"):
        name, data = frame.split("\n")
        out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_stream_renders_reasoning_text_and_tools_with_dense_indexes() -> None:
    req = parse_messages(b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}', None)
    r = MessagesStream(CallView("m", req))
    raw = b"".join([
        r.chunk(_chunk({"role": "assistant", "reasoning_content": "Think"})),
        r.chunk(_chunk({"reasoning_details": [{"type": "reasoning.text", "text": "", "signature": "S",
                                               "format": "anthropic-claude-v1", "index": 0}]})),
        r.chunk(_chunk({"content": "Hi"})),
        r.chunk(_chunk({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "f", "arguments": ""}}]})),
        r.chunk(_chunk({"tool_calls": [{"index": 1, "id": "call_b", "function": {"name": "g", "arguments": '{"x"'}}]})),
        r.chunk(_chunk({"tool_calls": [{"index": 1, "function": {"arguments": ": 1}"}}]}, "tool_calls")),
        r.end({"prompt_tokens": 30, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 10,
                                                                                      "cache_write_tokens": 5}}),
    ])
    events = _events(raw)
    assert events[0][0] == "message_start" and events[0][1]["message"]["usage"]["input_tokens"] > 0
    starts = [(d["index"], d["content_block"]["type"]) for n, d in events if n == "content_block_start"]
    assert starts == [(0, "thinking"), (1, "text"), (2, "tool_use"), (3, "tool_use")]
    deltas = [(d["index"], d["delta"]) for n, d in events if n == "content_block_delta"]
    assert (0, {"type": "thinking_delta", "thinking": "Think"}) in deltas
    assert (0, {"type": "signature_delta", "signature": "S"}) in deltas
    assert (2, {"type": "input_json_delta", "partial_json": "{}"}) in deltas  # empty input is still JSON
    assert "".join(d["partial_json"] for i, d in deltas if i == 3) == '{"x": 1}'
    assert [d["index"] for n, d in events if n == "content_block_stop"] == [0, 1, 2, 3]
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"] == {"input_tokens": 15, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 10,
                              "output_tokens": 7}
    assert events[-1][0] == "message_stop"


def test_errors_use_anthropics_types_and_statuses() -> None:
    overloaded = UpstreamUnavailable("busy")
    assert error_status(overloaded) == 529 and error_body(overloaded)["error"]["type"] == "overloaded_error"
    limited = RateLimited("slow down", retry_after=3)
    assert error_body(limited) == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}


def test_native_relay_is_byte_exact_and_reads_usage() -> None:
    relay = AnthropicRelay("anthropic", lambda obj: RateLimited("x"))
    start = '{"type":"message_start","message":{"usage":{"input_tokens":3,"cache_read_input_tokens":4,' \
            '"cache_creation_input_tokens":2,"output_tokens":1}}}'
    assert relay.feed(SSEEvent("message_start", start)) == [b"event: message_start\ndata: " + start.encode() + b"\n\n"]
    relay.feed(SSEEvent("message_delta", '{"type":"message_delta","delta":{},"usage":{"output_tokens":9}}'))
    relay.feed(SSEEvent("message_stop", '{"type":"message_stop"}'))
    assert relay.done
    assert relay.usage == native_usage_of({"input_tokens": 3, "cache_read_input_tokens": 4,
                                           "cache_creation_input_tokens": 2, "output_tokens": 9})
    assert relay.usage["prompt_tokens"] == 9 and relay.usage["completion_tokens"] == 9
    with pytest.raises(RateLimited):
        relay.feed(SSEEvent("error", '{"type":"error","error":{"type":"rate_limit_error","message":"x"}}'))


def test_integral_floats_are_integers() -> None:
    body = {"model": "m", "max_tokens": 64.0, "thinking": {"type": "enabled", "budget_tokens": 2048.0},
            "messages": [{"role": "user", "content": "hi"}]}
    req = parse_messages(json.dumps(body).encode(), None)
    assert req.raw["max_completion_tokens"] == 64 and req.raw["reasoning_effort"] == "low"
