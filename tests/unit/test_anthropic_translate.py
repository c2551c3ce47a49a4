"""The Anthropic adapter's pure translations: request building, response parsing, streams, errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from skylane.core.catalog import load_catalog
from skylane.core.errors import (
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    UnsupportedParameter,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from skylane.core.request import parse_request
from skylane.providers.anthropic import ADAPTER, FINISH_REASONS, JSON_TOOL, build_body
from skylane.providers.base import CallContext
from skylane.transport.sse import SSEEvent, decode_sse
from tests.conftest import make_settings
from tests.helpers import PNG_B64 as PNG
from tests.spec import validate

DATA = Path(__file__).resolve().parents[1] / "data" / "anthropic"
MODEL = "anthropic/claude-sonnet-4-20250514"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
         {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}]


def target(model: str = MODEL):
    return load_catalog(make_settings(ANTHROPIC_API_KEY="k")).target(model)


def req(**body: Any):
    body.setdefault("model", MODEL)
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return parse_request(body)


def build(**body: Any) -> dict[str, Any]:
    return build_body(req(**body), target(), 4096)


async def events(raw: bytes) -> list[SSEEvent]:
    async def pieces():
        for i in range(0, len(raw), 37):  # arbitrary cuts: framing must not matter
            yield raw[i:i + 37]
    return [e async for e in decode_sse(pieces())]


def feed_all(translator, evs: list[SSEEvent]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in evs:
        out.extend(translator.feed(e))
    return out


def sse(name: str, data: dict[str, Any]) -> SSEEvent:
    return SSEEvent(name, json.dumps({"type": name, **data}))


# ---- request -------------------------------------------------------------------------------


async def test_http_request_url_headers_and_required_fields():
    ctx = CallContext(api_key="sk-ant-x", base_url="https://api.anthropic.com", default_max_tokens=1234,
                      extra_headers={"anthropic-beta": "b1"})
    up = await ADAPTER.build_request(req(), target(), ctx)
    assert up.url == "https://api.anthropic.com/v1/messages"
    assert up.headers["x-api-key"] == "sk-ant-x"
    assert up.headers["anthropic-version"] == "2023-06-01"
    assert up.headers["content-type"] == "application/json"
    assert up.headers["anthropic-beta"] == "b1"
    assert "authorization" not in up.headers
    assert up.body == {"model": "claude-sonnet-4-20250514", "max_tokens": 1234,
                       "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}


def test_system_and_developer_merge_in_order_and_same_roles_merge():
    body = build(messages=[
        {"role": "system", "content": "S1"},
        {"role": "user", "content": "u1"},
        {"role": "developer", "content": [{"type": "text", "text": "D1"}]},
        {"role": "user", "content": [{"type": "text", "text": "u2"}, {"type": "text", "text": ""}]},
        {"role": "assistant", "content": "a1"},
        {"role": "assistant", "content": [{"type": "text", "text": "a2"}]},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "u3", "name": "bob"},
    ])
    assert body["system"] == [{"type": "text", "text": "S1"}, {"type": "text", "text": "D1"}]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "u1"}, {"type": "text", "text": "u2"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a1"}, {"type": "text", "text": "a2"}]},
        {"role": "user", "content": [{"type": "text", "text": "u3"}]},
    ]


def test_tool_calls_and_results_round_trip():
    body = build(tools=TOOLS, messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_A", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
            {"id": "call:9/x", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "toolu_A", "content": "rain"},
        {"role": "tool", "tool_call_id": "call:9/x", "content": [{"type": "text", "text": "noon"}]},
        {"role": "user", "content": "thanks"},
    ])
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "call_9_x", "name": "get_time", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_A", "content": "rain"},
            {"type": "tool_result", "tool_use_id": "call_9_x", "content": "noon"},
            {"type": "text", "text": "thanks"}]},
    ]
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather for a city",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in body


def test_tool_results_are_moved_to_the_front_of_their_user_turn():
    body = build(messages=[
        {"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [{"id": "t1", "type": "function",
                                              "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "user", "content": "also this"},
        {"role": "tool", "tool_call_id": "t1", "content": ""},
    ])
    assert body["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "t1"},
                                              {"type": "text", "text": "also this"}]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_bad_tool_arguments_are_400_naming_the_field(arguments):
    with pytest.raises(InvalidRequest) as exc:
        build(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
            {"id": "t", "type": "function", "function": {"name": "f", "arguments": arguments}}]}])
    assert exc.value.status == 400
    assert exc.value.param == "messages[1].tool_calls[0].function.arguments"


def test_images_data_url_and_https_url():
    body = build(messages=[{"role": "user", "content": [
        {"type": "text", "text": "what?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}])
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "what?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_image_jpg_alias_is_normalised():
    body = build(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/jpg;base64,{PNG}"}}]}])
    assert body["messages"][0]["content"][0]["source"]["media_type"] == "image/jpeg"


def test_pdf_file_becomes_a_document_block():
    pdf = base64.b64encode(b"%PDF-1.4 fake").decode()
    body = build(messages=[{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{pdf}"}}]}])
    assert body["messages"][0]["content"] == [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}}]


@pytest.mark.parametrize("part,error,param", [
    ({"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}}, InvalidRequest,
     "messages[0].content[0]"),
    ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, UnsupportedParameter,
     "messages[0].content[0]"),
    ({"type": "file", "file": {"file_id": "file-abc"}}, UnsupportedParameter, "messages[0].content[0]"),
    ({"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AAAA"}}, InvalidRequest,
     "messages[0].content[0]"),
])
def test_unsupported_content_is_400(part, error, param):
    with pytest.raises(error) as exc:
        build(messages=[{"role": "user", "content": [part]}])
    assert exc.value.status == 400 and exc.value.param == param


def test_video_error_names_the_model():
    with pytest.raises(InvalidRequest, match="claude-sonnet-4-20250514.*video"):
        build(messages=[{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "https://v/x"}}]}])


def test_sampling_parameters_stop_user_and_stream():
    body = build(temperature=0.2, top_p=0.9, stop="END", user="user-42", stream=True, max_completion_tokens=77,
                 max_tokens=5, seed=7, metadata={"a": "b"}, service_tier="flex", presence_penalty=0,
                 frequency_penalty=0, n=1, logprobs=False,
                 stream_options={"include_usage": True})
    assert body == {"model": "claude-sonnet-4-20250514", "max_tokens": 77,
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                    "temperature": 0.2, "stop_sequences": ["END"],  # top_p dropped: recent Claude refuse both
                    "metadata": {"user_id": "user-42"}, "stream": True}
    assert build(stop=["a", "b"], max_tokens=9)["stop_sequences"] == ["a", "b"]
    assert build(max_tokens=9)["max_tokens"] == 9


@pytest.mark.parametrize("extra,param", [
    ({"n": 2}, "n"), ({"logprobs": True}, "logprobs"), ({"top_logprobs": 3}, "top_logprobs"),
    ({"presence_penalty": 0.5}, "presence_penalty"), ({"frequency_penalty": -1}, "frequency_penalty"),
    ({"logit_bias": {"50256": -100}}, "logit_bias"), ({"modalities": ["text", "audio"]}, "modalities"),
])
def test_unsupported_parameters_are_named(extra, param):
    with pytest.raises(UnsupportedParameter) as exc:
        build(**extra)
    assert exc.value.param == param and exc.value.code == "unsupported_parameter"
    assert f"'{param}'" in exc.value.message


def test_temperature_above_one_is_rejected():
    with pytest.raises(InvalidRequest) as exc:
        build(temperature=1.5)
    assert exc.value.param == "temperature"


@pytest.mark.parametrize("choice,parallel,expected", [
    ("auto", None, {"type": "auto"}),
    ("required", None, {"type": "any"}),
    ("none", None, {"type": "none"}),
    ({"type": "function", "function": {"name": "get_time"}}, None, {"type": "tool", "name": "get_time"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ("none", False, {"type": "none"}),
    (None, True, None),
])
def test_tool_choice(choice, parallel, expected):
    extra: dict[str, Any] = {"tools": TOOLS}
    if choice is not None:
        extra["tool_choice"] = choice
    if parallel is not None:
        extra["parallel_tool_calls"] = parallel
    assert build(**extra).get("tool_choice") == expected


def test_tool_choice_without_tools_is_dropped():
    body = build(tool_choice="auto")
    assert "tool_choice" not in body and "tools" not in body


def test_json_schema_becomes_a_forced_tool():
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    body = build(response_format={"type": "json_schema", "json_schema": {"name": "result", "schema": schema}})
    assert body["tools"] == [{"name": JSON_TOOL, "description": "Answer with JSON matching the 'result' schema.",
                              "input_schema": schema}]
    assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL}
    obj = build(response_format={"type": "json_object"})
    assert obj["tools"][0]["input_schema"] == {"type": "object", "additionalProperties": True}
    assert build(response_format={"type": "text"}).get("tools") is None


def test_json_mode_with_real_tools_lets_the_model_pick_any():
    body = build(tools=TOOLS, response_format={"type": "json_object"})
    assert [t["name"] for t in body["tools"]] == ["get_weather", "get_time", JSON_TOOL]
    assert body["tool_choice"] == {"type": "any"}


def test_legacy_function_role_is_unsupported():
    with pytest.raises(UnsupportedParameter):
        build(messages=[{"role": "user", "content": "x"}, {"role": "function", "name": "f", "content": "y"}])


def test_only_empty_messages_is_400():
    with pytest.raises(InvalidRequest):
        build(messages=[{"role": "system", "content": "s"}, {"role": "user", "content": ""}])


# ---- response ------------------------------------------------------------------------------


def test_parse_recorded_message_with_thinking_text_and_tools():
    data = json.loads((DATA / "message_thinking_text_tools.json").read_text())
    resp = ADAPTER.parse_response(data, req(), target())
    validate("CreateChatCompletionResponse", resp)
    choice = resp["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Okay, let me check both."
    assert choice["message"]["tool_calls"] == [
        {"id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "San Francisco"}'}},
        {"id": "toolu_01WcJ8LJ5cmrBuVF1GCw4VDP", "type": "function",
         "function": {"name": "get_time", "arguments": '{"tz": "America/Los_Angeles"}'}},
    ]
    assert resp["usage"] == {"prompt_tokens": 472 + 30 + 1024, "completion_tokens": 89,
                             "total_tokens": 472 + 30 + 1024 + 89,
                             "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 30}}
    assert resp["model"] == MODEL


def message(content: list[dict[str, Any]], stop_reason: str | None = "end_turn") -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "content": content,
            "stop_reason": stop_reason, "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 4}}


@pytest.mark.parametrize("stop_reason", [*FINISH_REASONS, None, "something_new"])
def test_each_stop_reason(stop_reason):
    resp = ADAPTER.parse_response(message([{"type": "text", "text": "x"}], stop_reason), req(), target())
    expected = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
                "model_context_window_exceeded": "length", "tool_use": "tool_calls",
                "refusal": "content_filter"}.get(stop_reason, "stop")
    assert resp["choices"][0]["finish_reason"] == expected
    assert resp["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
                             "prompt_tokens_details": {"cached_tokens": 0}}
    validate("CreateChatCompletionResponse", resp)


def test_json_tool_answer_becomes_content():
    r = req(response_format={"type": "json_object"})
    data = message([{"type": "tool_use", "id": "toolu_1", "name": JSON_TOOL, "input": {"answer": 42}}], "tool_use")
    resp = ADAPTER.parse_response(data, r, target())
    assert json.loads(resp["choices"][0]["message"]["content"]) == {"answer": 42}
    assert resp["choices"][0]["finish_reason"] == "stop"
    assert "tool_calls" not in resp["choices"][0]["message"]
    # without JSON mode a tool named json_response is an ordinary tool call
    plain = ADAPTER.parse_response(data, req(), target())
    assert plain["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == JSON_TOOL


def test_empty_content_is_empty_string_and_error_body_raises():
    resp = ADAPTER.parse_response(message([]), req(), target())
    assert resp["choices"][0]["message"]["content"] == ""
    with pytest.raises(UpstreamUnavailable):
        ADAPTER.parse_response({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                               req(), target())
    with pytest.raises(UpstreamError):
        ADAPTER.parse_response({"type": "message"}, req(), target())


# ---- stream --------------------------------------------------------------------------------


async def test_recorded_stream_dense_tool_indexes_and_usage():
    raw = (DATA / "stream_thinking_text_tools.sse").read_bytes()
    tr = ADAPTER.stream_translator(req(stream=True), target())
    chunks = feed_all(tr, await events(raw))
    assert tr.done
    for c in chunks:
        validate("CreateChatCompletionStreamResponse",
                 {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": MODEL, **c})
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": "Okay, let me check"}
    assert all("role" not in d for d in deltas[1:])
    assert "".join(d.get("content") or "" for d in deltas) == "Okay, let me check both."
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert calls[0] == {"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}
    firsts = [tc for tc in calls if "id" in tc]
    assert [(tc["index"], tc["function"]["name"]) for tc in firsts] == [(0, "get_weather"), (1, "get_time")]
    args = {0: "", 1: ""}
    for tc in calls:
        if "id" not in tc:
            assert set(tc) == {"index", "function"}
        args[tc["index"]] += tc["function"]["arguments"]
    assert json.loads(args[0]) == {"city": "San Francisco"} and json.loads(args[1]) == {"tz": "America/Los_Angeles"}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks]
    assert finishes[-1] == "tool_calls" and all(f is None for f in finishes[:-1])
    assert tr.usage == {"prompt_tokens": 1526, "completion_tokens": 89, "total_tokens": 1615,
                        "prompt_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 30}}


def test_usage_comes_from_message_start_then_message_delta_never_invented():
    tr = ADAPTER.stream_translator(req(stream=True), target())
    assert tr.usage is None
    tr.feed(sse("message_start", {"message": {"id": "m", "type": "message", "role": "assistant", "content": [],
                                              "usage": {"input_tokens": 10, "cache_read_input_tokens": 4,
                                                        "output_tokens": 1}}}))
    assert tr.usage == {"prompt_tokens": 14, "completion_tokens": 1, "total_tokens": 15,
                        "prompt_tokens_details": {"cached_tokens": 4}}
    # older API versions send only output_tokens in message_delta: input counts are kept
    tr.feed(sse("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 30}}))
    assert tr.usage["prompt_tokens"] == 14 and tr.usage["completion_tokens"] == 30


@pytest.mark.parametrize("stop_reason,finish", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("refusal", "content_filter"), ("tool_use", "tool_calls"),
])
def test_stream_finish_reasons_and_empty_answer_carries_role(stop_reason, finish):
    tr = ADAPTER.stream_translator(req(stream=True), target())
    out = feed_all(tr, [sse("message_start", {"message": {"usage": {"input_tokens": 1, "output_tokens": 0}}}),
                        sse("ping", {}),
                        sse("message_delta", {"delta": {"stop_reason": stop_reason}, "usage": {"output_tokens": 2}}),
                        sse("message_stop", {})])
    assert tr.done
    assert out == [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                 "finish_reason": finish}]}]


def test_stream_tool_first_carries_role_on_the_tool_delta():
    tr = ADAPTER.stream_translator(req(stream=True), target())
    out = feed_all(tr, [
        sse("message_start", {"message": {"usage": {"input_tokens": 1, "output_tokens": 0}}}),
        sse("content_block_start", {"index": 0, "content_block": {"type": "tool_use", "id": "toolu_9",
                                                                   "name": "get_time", "input": {}}}),
        sse("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        sse("content_block_delta", {"index": 5, "delta": {"type": "text_delta", "text": "stray"}})])
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "tool_calls": [
        {"index": 0, "id": "toolu_9", "type": "function", "function": {"name": "get_time", "arguments": ""}}]}
    assert out[1]["choices"][0]["delta"] == {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}
    assert len(out) == 2  # a delta for a block that never started is ignored
    assert not tr.done


def test_stream_json_mode_streams_tool_input_as_content():
    tr = ADAPTER.stream_translator(req(stream=True, response_format={"type": "json_object"}), target())
    out = feed_all(tr, [
        sse("message_start", {"message": {"usage": {"input_tokens": 1, "output_tokens": 0}}}),
        sse("content_block_start", {"index": 0, "content_block": {"type": "tool_use", "id": "toolu_1",
                                                                   "name": JSON_TOOL, "input": {}}}),
        sse("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        sse("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"answer"'}}),
        sse("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": ": 42}"}}),
        sse("content_block_stop", {"index": 0}),
        sse("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        sse("message_stop", {})])
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in out)
    assert json.loads(text) == {"answer": 42}
    assert out[-1]["choices"][0]["finish_reason"] == "stop"
    assert not any("tool_calls" in c["choices"][0]["delta"] for c in out)


def test_stream_error_events():
    tr = ADAPTER.stream_translator(req(stream=True), target())
    tr.feed(sse("message_start", {"message": {"usage": {"input_tokens": 1, "output_tokens": 0}}}))
    # an error before any content produced no chunk: the attempt can still be retried
    with pytest.raises(UpstreamUnavailable) as exc:
        tr.feed(sse("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}))
    assert exc.value.status == 503 and exc.value.retryable
    with pytest.raises(UpstreamRateLimited):
        tr.feed(sse("error", {"error": {"type": "rate_limit_error", "message": "slow down"}}))
    with pytest.raises(UpstreamError) as bad:
        tr.feed(sse("error", {"error": {"type": "invalid_request_error", "message": "bad"}}))
    assert bad.value.status == 502
    with pytest.raises(UpstreamError):
        tr.feed(SSEEvent("message", "{not json"))


# ---- errors --------------------------------------------------------------------------------


def err(etype: str, message: str = "boom") -> bytes:
    return json.dumps({"type": "error", "error": {"type": etype, "message": message},
                       "request_id": "req_1"}).encode()


@pytest.mark.parametrize("status,etype,cls,out_status", [
    (400, "invalid_request_error", InvalidRequest, 400),
    (401, "authentication_error", UpstreamError, 502),
    (403, "permission_error", UpstreamError, 502),
    (404, "not_found_error", ModelNotFound, 404),
    (413, "request_too_large", PayloadTooLarge, 413),
    (429, "rate_limit_error", UpstreamRateLimited, 429),
    (500, "api_error", UpstreamError, 502),
    (504, "timeout_error", UpstreamTimeout, 504),
    (529, "overloaded_error", UpstreamUnavailable, 503),
    (500, "overloaded_error", UpstreamUnavailable, 503),
    (402, "billing_error", UpstreamError, 502),
])
def test_map_error(status, etype, cls, out_status):
    exc = ADAPTER.map_error(status, err(etype, "secret sk-ant-123 detail"), {"retry-after": "3"}, "anthropic")
    assert type(exc) is cls
    assert exc.status == out_status
    assert exc.provider == "anthropic"
    if status == 400:
        assert exc.message == "secret sk-ant-123 detail"
    if out_status == 502 and status != 500:
        assert "sk-ant" not in exc.message  # auth/billing messages are never echoed
    if status == 429:
        assert exc.retry_after == 3
    assert exc.retryable == (out_status in (429, 502, 503, 504) and etype not in (
        "authentication_error", "permission_error", "billing_error"))


def test_map_error_non_json_body():
    exc = ADAPTER.map_error(502, b"<html>bad gateway</html>", {}, "anthropic")
    assert exc.status == 502 and "HTTP 502" in exc.message
