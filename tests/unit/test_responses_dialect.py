"""The Responses dialect on plain data: parsing items, rendering streams, reasoning round trips."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skylane.core.errors import InvalidRequest
from skylane.dialects.responses import RESPONSES
from skylane.dialects.responses_parse import decode_reasoning, encode_reasoning, parse, to_chat
from skylane.dialects.responses_render import ResponsesStream
from skylane.pipeline.contract import CallView
from tests.spec import validate, validate_response_event

SIGNED = [{"type": "reasoning.text", "text": "thinking...", "signature": "sig-abc", "format": "anthropic-claude-v1",
           "index": 0}]
RESPONSES_ENC = encode_reasoning(SIGNED)


def _events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if block.strip():
            name, data = block.split("\n", 1)
            event = json.loads(data.removeprefix("data: "))
            assert name == f"event: {event['type']}"
            validate_response_event(event)
            out.append(event)
    return out


def _chunk(**delta: Any) -> dict[str, Any]:
    finish = delta.pop("finish", None)
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_items_become_chat_messages() -> None:
    body = {"model": "anthropic/claude-sonnet-4-20250514", "instructions": "Be brief.", "input": [
        {"role": "developer", "content": "dev note"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"},
                                                        {"type": "input_image", "image_url": "https://x/y.png"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hmm"}],
         "encrypted_content": RESPONSES_ENC},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "calling"}]},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "42"}],
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}, {"type": "web_search"}],
        "text": {"format": {"type": "json_schema", "name": "p", "schema": {"type": "object"}}},
        "reasoning": {"effort": "high", "summary": "auto"}, "max_output_tokens": 99, "store": False}
    chat, problems = to_chat(body)
    assert problems == []
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["system", "developer", "user", "assistant", "tool"]
    assistant = chat["messages"][3]
    assert assistant["content"] == "calling" and assistant["tool_calls"][0]["id"] == "call_1"
    assert assistant["reasoning_details"] == SIGNED and assistant["reasoning_content"] == "hmm"
    assert chat["tools"] == [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert chat["response_format"]["json_schema"]["name"] == "p"
    assert chat["reasoning_effort"] == "high" and chat["max_completion_tokens"] == 99
    req = parse(dict(body), None)
    assert req.wire["store"] is False and req.messages[4].role == "tool"


def test_what_bridging_cannot_serve_is_listed() -> None:
    _, problems = to_chat({"model": "m", "input": [{"type": "item_reference", "id": "x"}],
                           "tools": [{"type": "code_interpreter"}]})
    assert problems == ["input item type 'item_reference'", "tool 'code_interpreter'"]
    with pytest.raises(InvalidRequest):
        parse({"model": "m", "input": [{"role": "wizard", "content": "x"}]}, None)
    with pytest.raises(InvalidRequest):
        parse({"model": "m", "input": "x", "background": True}, None)


def test_stream_with_reasoning_text_and_tool_calls() -> None:
    req = parse({"model": "anthropic/claude-sonnet-4-20250514", "input": "hi", "stream": True}, None)
    r = ResponsesStream(CallView("anthropic/claude-sonnet-4-20250514", req))
    raw = r.chunk(_chunk(role="assistant", reasoning_content="thinking..."))
    raw += r.chunk(_chunk(reasoning_details=[{"type": "reasoning.text", "text": "", "signature": "sig-abc",
                                              "format": "anthropic-claude-v1", "index": 0}]))
    raw += r.chunk(_chunk(content="Hel")) + r.chunk(_chunk(content="lo"))
    raw += r.chunk(_chunk(tool_calls=[{"index": 0, "id": "call_9", "type": "function",
                                       "function": {"name": "f", "arguments": '{"a":'}}]))
    raw += r.chunk(_chunk(tool_calls=[{"index": 0, "function": {"arguments": "1}"}}], finish="tool_calls"))
    raw += r.end({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                  "completion_tokens_details": {"reasoning_tokens": 2}})
    events = _events(raw)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.reasoning_summary_part.added"]
    assert "response.reasoning_summary_text.delta" in kinds and kinds[-1] == "response.completed"
    final = events[-1]["response"]
    validate("Response", final)
    reasoning, message, call = final["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "thinking..."}]
    assert decode_reasoning(reasoning["encrypted_content"])[0]["signature"] == "sig-abc"
    assert message["content"][0]["text"] == "Hello"
    assert call == {"id": call["id"], "type": "function_call", "status": "completed", "call_id": "call_9",
                    "name": "f", "arguments": '{"a":1}'}
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == 2
    # the client sends the items back: reasoning restored on the assistant turn, ids kept
    chat, _ = to_chat({"model": "m", "input": [{"role": "user", "content": "hi"}, *final["output"],
                                              {"type": "function_call_output", "call_id": "call_9", "output": "ok"}]})
    assistant = chat["messages"][1]
    assert assistant["reasoning_details"][0]["signature"] == "sig-abc"
    assert assistant["tool_calls"][0]["id"] == "call_9" and assistant["content"] == "Hello"


def test_answer_incomplete_and_error_events() -> None:
    req = parse({"model": "gemini/gemini-2.5-flash", "input": "hi"}, None)
    view = CallView("gemini/gemini-2.5-flash", req)
    body = RESPONSES.answer({"choices": [{"index": 0, "finish_reason": "length", "message": {
        "role": "assistant", "content": "Once"}}], "usage": {"prompt_tokens": 3, "completion_tokens": 1,
                                                             "total_tokens": 4}}, view)
    validate("Response", body)
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    r = ResponsesStream(view)
    events = _events(r.chunk(_chunk(content="x")) + r.error(InvalidRequest("boom")))
    assert [e["type"] for e in events][-2:] == ["error", "response.failed"]
    assert events[-1]["response"]["error"]["message"] == "boom"
