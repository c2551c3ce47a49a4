"""The Gemini adapter's pure translations, on plain data and on recorded-shape payloads."""

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
    UnsupportedParameter,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    envelope,
)
from skylane.core.request import parse_request
from skylane.providers.base import CallContext, Media
from skylane.providers.gemini import ADAPTER, FINISH_REASONS, GeminiStream, build_body, gemini_usage
from skylane.transport.sse import SSEEvent, decode_sse
from tests.conftest import make_settings
from tests.helpers import PNG_B64 as PNG
from tests.spec import validate

DATA = Path(__file__).resolve().parents[1] / "data" / "gemini"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                         "additionalProperties": False}}},
         {"type": "function", "function": {"name": "get_time"}}]


def target(model: str = "gemini/gemini-2.5-flash"):
    return load_catalog(make_settings(GEMINI_API_KEY="k")).target(model)


def no_video_target():
    t = target()
    from dataclasses import replace

    return replace(t, model=replace(t.model, video=False), requested="gemini/no-video")


def request(**body: Any):
    body.setdefault("model", "gemini/gemini-2.5-flash")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return parse_request(body)


def ctx(**kw: Any) -> CallContext:
    return CallContext(api_key="gk", base_url="https://generativelanguage.googleapis.com", **kw)


async def body_for(**body: Any) -> dict[str, Any]:
    return await build_body(request(**body), target(body.get("model", "gemini/gemini-2.5-flash")), ctx())


# ---- requests --------------------------------------------------------------------------------


async def test_roles_system_merge_and_consecutive_contents():
    b = await body_for(messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": "deux"},
        {"role": "user", "content": "three"},
    ])
    assert b["systemInstruction"] == {"parts": [{"text": "Be brief.\n\nAnswer in French."}]}
    assert b["contents"] == [
        {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
        {"role": "model", "parts": [{"text": "deux"}]},
        {"role": "user", "parts": [{"text": "three"}]},
    ]
    assert "generationConfig" not in b and "tools" not in b


async def test_generation_config_mapping():
    b = await body_for(temperature=0.3, top_p=0.9, max_tokens=50, max_completion_tokens=100, stop="END", n=2,
                       seed=7, presence_penalty=0.5, frequency_penalty=-0.5, top_k=20, user="u1",
                       metadata={"a": "b"}, parallel_tool_calls=False, stream_options={"include_usage": True},
                       logprobs=True, top_logprobs=3)
    assert b["generationConfig"] == {
        "temperature": 0.3, "topP": 0.9, "maxOutputTokens": 100, "candidateCount": 2, "seed": 7,
        "presencePenalty": 0.5, "frequencyPenalty": -0.5, "topK": 20, "stopSequences": ["END"],
        "responseLogprobs": True, "logprobs": 3}


@pytest.mark.parametrize("fmt,expected", [
    ({"type": "text"}, None),
    ({"type": "json_object"}, {"responseMimeType": "application/json"}),
    ({"type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": {
        "type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}}},
     {"responseMimeType": "application/json", "responseJsonSchema": {
         "type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}}),
])
async def test_response_format(fmt, expected):
    b = await body_for(response_format=fmt)
    assert b.get("generationConfig") == expected


@pytest.mark.parametrize("effort,model,expected", [
    ("low", "gemini/gemini-2.5-flash", {"thinkingBudget": 1024, "includeThoughts": True}),
    ("none", "gemini/gemini-2.5-flash", {"thinkingBudget": 0}),
    ("high", "gemini/gemini-3-pro-preview", {"thinkingLevel": "high", "includeThoughts": True}),
    ("medium", "gemini/gemini-3-pro-preview", {"thinkingLevel": "high", "includeThoughts": True}),  # clamped
    ("none", "gemini/gemini-3-pro-preview", {"thinkingLevel": "low"}),  # cannot be off: the lowest level
])
async def test_reasoning_effort(effort, model, expected):
    b = await body_for(model=model, reasoning_effort=effort)
    assert b["generationConfig"]["thinkingConfig"] == expected


@pytest.mark.parametrize("extra,param", [
    ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
])
async def test_unsupported_parameters_are_400(extra, param):
    with pytest.raises(InvalidRequest) as exc:
        await body_for(**extra)
    assert exc.value.status == 400 and exc.value.param == param
    if param != "reasoning_effort":
        assert isinstance(exc.value, UnsupportedParameter) and exc.value.code == "unsupported_parameter"


async def test_tools_and_tool_choice():
    b = await body_for(tools=TOOLS, tool_choice="required")
    assert b["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather for a city",
         "parametersJsonSchema": TOOLS[0]["function"]["parameters"]},
        {"name": "get_time"}]}]
    assert b["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    for choice, fcc in [("auto", {"mode": "AUTO"}), ("none", {"mode": "NONE"}),
                        ({"type": "function", "function": {"name": "get_time"}},
                         {"mode": "ANY", "allowedFunctionNames": ["get_time"]})]:
        b = await body_for(tools=TOOLS, tool_choice=choice)
        assert b["toolConfig"] == {"functionCallingConfig": fcc}


def tool_history(result: str, model_args: str = '{"city": "Paris"}') -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "weather in Paris and time?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": model_args}},
            {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": result},
        {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "noon"}]},
        {"role": "user", "content": "thanks"},
    ]


async def test_tool_history_recovers_names_and_merges_turns():
    b = await body_for(tools=TOOLS, messages=tool_history('{"temp": 21, "sky": "clear"}'))
    assert b["contents"] == [
        {"role": "user", "parts": [{"text": "weather in Paris and time?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                                    {"functionCall": {"name": "get_time", "args": {}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21, "sky": "clear"}}},
            {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}},
            {"text": "thanks"}]},
    ]


async def test_tool_result_that_is_not_a_json_object_is_wrapped():
    b = await body_for(messages=tool_history("[1, 2]"))
    assert b["contents"][2]["parts"][0]["functionResponse"]["response"] == {"content": "[1, 2]"}


async def test_unknown_tool_call_id_is_named():
    msgs = tool_history("x")
    msgs[2]["tool_call_id"] = "call_zzz"
    with pytest.raises(InvalidRequest) as exc:
        await body_for(messages=msgs)
    assert exc.value.param == "messages[2].tool_call_id" and "call_zzz" in exc.value.message


async def test_bad_tool_arguments_are_400():
    with pytest.raises(InvalidRequest):
        await body_for(messages=tool_history("x", model_args="[1]"))


async def test_gemini3_replayed_calls_carry_the_signature_sentinel():
    b = await body_for(model="gemini/gemini-3-pro-preview", messages=tool_history("x"))
    calls = b["contents"][1]["parts"]
    assert calls[0]["thoughtSignature"] == "skip_thought_signature_validator"
    assert "thoughtSignature" not in calls[1]
    b = await body_for(messages=tool_history("x"))
    assert all("thoughtSignature" not in p for p in b["contents"][1]["parts"])


async def test_media_parts():
    fetched: list[str] = []

    async def fetch(url: str) -> Media:
        fetched.append(url)
        return Media(b"GIF89a", "image/gif")

    req = request(messages=[{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}},
        {"type": "video_url", "video_url": {"url": "gs://bucket/cat.mp4"}},
        {"type": "image_url", "image_url": {"url": "https://generativelanguage.googleapis.com/v1beta/files/abc"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.gif"}},
        {"type": "video_url", "video_url": {"url": "https://www.youtube.com/watch?v=9hE5-98ZeCg"}},
        {"type": "input_audio", "input_audio": {"data": base64.b64encode(b"RIFF").decode(), "format": "wav"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERg=="}},
    ]}])
    b = await build_body(req, target(), ctx(fetch_media=fetch))
    parts = b["contents"][0]["parts"]
    assert parts[0] == {"text": "look"}
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": PNG}}
    assert parts[2] == {"fileData": {"fileUri": "gs://bucket/cat.mp4", "mimeType": "video/mp4"}}
    assert parts[3] == {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}}
    assert parts[4] == {"inlineData": {"mimeType": "image/gif", "data": base64.b64encode(b"GIF89a").decode()}}
    assert parts[5] == {"fileData": {"fileUri": "https://www.youtube.com/watch?v=9hE5-98ZeCg"}}
    assert parts[6] == {"inlineData": {"mimeType": "audio/wav", "data": base64.b64encode(b"RIFF").decode()}}
    assert parts[7] == {"inlineData": {"mimeType": "application/pdf", "data": "JVBERg=="}}
    assert fetched == ["https://example.com/a.gif"]


async def test_video_refused_for_a_model_without_video():
    req = request(messages=[{"role": "user", "content": [
        {"type": "video_url", "video_url": {"url": "https://www.youtube.com/watch?v=x"}}]}])
    with pytest.raises(InvalidRequest) as exc:
        await build_body(req, no_video_target(), ctx())
    assert exc.value.status == 400 and "gemini/no-video" in exc.value.message


async def test_only_system_messages_is_400():
    with pytest.raises(InvalidRequest):
        await body_for(messages=[{"role": "system", "content": "x"}])


async def test_build_request_url_and_headers():
    t = target()
    r = await ADAPTER.build_request(request(), t, ctx())
    assert r.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    assert r.headers["x-goog-api-key"] == "gk" and "gk" not in r.url
    r = await ADAPTER.build_request(request(stream=True), t, ctx())
    assert r.url.endswith("/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    odd = target("gemini/../x?key=1")
    r = await ADAPTER.build_request(request(), odd, ctx())
    assert r.url == "https://generativelanguage.googleapis.com/v1beta/models/..%2Fx%3Fkey%3D1:generateContent"


# ---- answers ---------------------------------------------------------------------------------


def fixture(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def test_parse_response_tool_calls_and_usage():
    resp = ADAPTER.parse_response(fixture("response_tool_call.json"), request(), target())
    choice = resp["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    msg = choice["message"]
    assert msg["content"] == "I'll check both cities."
    calls = msg["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_weather"]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": "Paris"},
                                                                         {"city": "Lyon", "unit": "celsius"}]
    assert calls[0]["id"].startswith("call_") and calls[0]["id"] != calls[1]["id"]
    assert resp["usage"] == {"prompt_tokens": 84, "completion_tokens": 36 + 67, "total_tokens": 187,
                             "prompt_tokens_details": {"cached_tokens": 32},
                             "completion_tokens_details": {"reasoning_tokens": 67}}
    assert resp["id"] == "chatcmpl-kQJhaOuvEbGGz7IPw7a-sAs"
    validate("CreateChatCompletionResponse", resp)


def cand(parts: list[dict[str, Any]] | None, reason: str | None = "STOP", **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"finishReason": reason, **extra}
    if parts is not None:
        c["content"] = {"parts": parts, "role": "model"}
    return c


@pytest.mark.parametrize("reason,parts,expected", [
    ("STOP", [{"text": "hi"}], "stop"),
    ("STOP", [{"functionCall": {"name": "f", "args": {}}}], "tool_calls"),
    ("MAX_TOKENS", [{"text": "hi"}], "length"),
    ("FINISH_REASON_UNSPECIFIED", [{"text": "hi"}], "stop"),
    ("SOMETHING_NEW", [{"text": "hi"}], "stop"),
    *[(r, None, "content_filter") for r in ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
                                            "LANGUAGE", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "OTHER")],
])
def test_finish_reasons(reason, parts, expected):
    resp = ADAPTER.parse_response({"candidates": [cand(parts, reason)]}, request(), target())
    assert resp["choices"][0]["finish_reason"] == expected
    validate("CreateChatCompletionResponse", resp)


def test_finish_table_covers_documented_reasons():
    assert {"STOP", "MAX_TOKENS", "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
            "LANGUAGE", "OTHER"} <= set(FINISH_REASONS)


@pytest.mark.parametrize("reason", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"])
def test_unusable_answers_raise_retryable_502(reason):
    with pytest.raises(UpstreamError) as exc:
        ADAPTER.parse_response({"candidates": [cand(None, reason)]}, request(), target())
    assert exc.value.status == 502 and exc.value.retryable and reason in exc.value.message


def test_thought_parts_are_skipped_and_candidates_ordered():
    data = {"candidates": [
        cand([{"text": "second"}], index=1),
        cand([{"text": "planning...", "thought": True}, {"text": "first"}, {"text": "", "thoughtSignature": "x"}]),
    ], "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5}}
    resp = ADAPTER.parse_response(data, request(n=2), target())
    assert [(c["index"], c["message"]["content"]) for c in resp["choices"]] == [(0, "first"), (1, "second")]
    assert resp["usage"]["completion_tokens"] == 2
    assert resp["usage"]["completion_tokens_details"] == {"reasoning_tokens": 0}


def test_blocked_prompt_answers_content_filter():
    data = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}}
    resp = ADAPTER.parse_response(data, request(), target())
    assert resp["choices"] == [{"index": 0, "message": {"role": "assistant", "content": None, "refusal": None},
                                "finish_reason": "content_filter", "logprobs": None}]
    assert resp["usage"]["prompt_tokens"] == 5 and resp["usage"]["completion_tokens"] == 0
    validate("CreateChatCompletionResponse", resp)


def test_no_candidates_and_no_block_is_an_upstream_error():
    with pytest.raises(UpstreamError):
        ADAPTER.parse_response({"usageMetadata": {}}, request(), target())


def test_logprobs():
    data = {"candidates": [cand([{"text": "Hi!"}], logprobsResult={
        "topCandidates": [{"candidates": [{"token": "Hi", "tokenId": 1, "logProbability": -0.1},
                                          {"token": "Hey", "tokenId": 2, "logProbability": -2.5}]},
                          {"candidates": [{"token": "!", "tokenId": 3, "logProbability": -0.01}]}],
        "chosenCandidates": [{"token": "Hi", "tokenId": 1, "logProbability": -0.1},
                             {"token": "!", "tokenId": 3, "logProbability": -0.01}]})]}
    resp = ADAPTER.parse_response(data, request(logprobs=True, top_logprobs=2), target())
    lp = resp["choices"][0]["logprobs"]
    assert [e["token"] for e in lp["content"]] == ["Hi", "!"]
    assert lp["content"][0]["top_logprobs"][1] == {"token": "Hey", "logprob": -2.5, "bytes": list(b"Hey")}
    validate("CreateChatCompletionResponse", resp)


def test_usage_none_when_not_reported():
    assert gemini_usage(None) is None
    assert gemini_usage({"promptTokenCount": 4, "totalTokenCount": 4}) == {
        "prompt_tokens": 4, "completion_tokens": 0, "total_tokens": 4,
        "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}


# ---- streams ---------------------------------------------------------------------------------


async def events_of(name: str) -> list[SSEEvent]:
    raw = (DATA / name).read_bytes()

    async def pieces():
        for i in range(0, len(raw), 37):  # arbitrary splits, CRLF halves included
            yield raw[i:i + 37]

    return [e async for e in decode_sse(pieces())]


def run(translator: GeminiStream, events: list[SSEEvent]) -> list[dict[str, Any]]:
    chunks = []
    for e in events:
        assert not translator.done
        chunks.extend(translator.feed(e))
    return chunks


def finish_as_client_sees(chunks: list[dict[str, Any]]) -> None:
    for c in chunks:
        validate("CreateChatCompletionStreamResponse",
                 {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "m", **c})


async def test_stream_text():
    t = GeminiStream("gemini")
    chunks = run(t, await events_of("stream_text.sse"))
    finish_as_client_sees(chunks)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant"
    assert all("role" not in d for d in deltas[1:])
    assert "".join(d.get("content") or "" for d in deltas) == "The sky is blue because of Rayleigh scattering."
    finishes = [c["choices"][0]["finish_reason"] for c in chunks]
    assert finishes[-1] == "stop" and all(f is None for f in finishes[:-1])
    assert t.done
    assert t.usage == {"prompt_tokens": 9, "completion_tokens": 12 + 514, "total_tokens": 535,
                       "prompt_tokens_details": {"cached_tokens": 0},
                       "completion_tokens_details": {"reasoning_tokens": 514}}


async def test_stream_tool_calls_dense_indexes():
    t = GeminiStream("gemini")
    chunks = run(t, await events_of("stream_tools.sse"))
    finish_as_client_sees(chunks)
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert [tc["index"] for tc in calls] == [0, 1]
    assert [tc["function"]["name"] for tc in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
    assert calls[1]["function"]["arguments"] == "{}"
    assert all(tc["id"].startswith("call_") and tc["type"] == "function" for tc in calls)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert t.done and t.usage["prompt_tokens_details"] == {"cached_tokens": 16}


def ev(obj: dict[str, Any]) -> SSEEvent:
    return SSEEvent("message", json.dumps(obj))


def test_stream_parallel_calls_in_one_event_and_two_candidates():
    t = GeminiStream("gemini")
    out = t.feed(ev({"candidates": [
        cand([{"functionCall": {"name": "a", "args": {"x": 1}}}, {"functionCall": {"name": "b"}}], None, index=0),
        cand([{"text": "plain"}], None, index=1)]}))
    assert [tc["index"] for tc in out[0]["choices"][0]["delta"]["tool_calls"]] == [0, 1]
    assert out[1]["choices"][0]["index"] == 1 and out[1]["choices"][0]["delta"]["role"] == "assistant"
    out = t.feed(ev({"candidates": [cand([], "STOP", index=0)]}))
    assert out[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert not t.done  # candidate 1 is still open
    out = t.feed(ev({"candidates": [cand([{"text": "!"}], "STOP", index=1)]}))
    assert out[-1]["choices"][0] == {"index": 1, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert t.done


def test_stream_thought_only_events_emit_nothing():
    t = GeminiStream("gemini")
    assert t.feed(ev({"candidates": [cand([{"text": "hmm", "thought": True}], None)]})) == []
    out = t.feed(ev({"candidates": [cand([{"text": "Hi"}], None)]}))
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hi"}


def test_stream_blocked_prompt():
    t = GeminiStream("gemini")
    out = t.feed(ev({"promptFeedback": {"blockReason": "SAFETY"},
                     "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3}}))
    assert out[0]["choices"][0]["finish_reason"] == "content_filter"
    assert t.done and t.usage["prompt_tokens"] == 3


def test_stream_error_event_raises_mapped_error():
    t = GeminiStream("gemini")
    t.feed(ev({"candidates": [cand([{"text": "partial"}], None)]}))
    with pytest.raises(UpstreamError) as exc:
        t.feed(ev({"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}))
    assert exc.value.status == 502 and "internal error" in exc.value.message
    with pytest.raises(UpstreamRateLimited):
        GeminiStream("gemini").feed(ev({"error": {"code": 429, "message": "slow", "status": "RESOURCE_EXHAUSTED"}}))
    with pytest.raises(UpstreamError) as exc:
        GeminiStream("gemini").feed(ev({"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}))
    assert exc.value.status == 502
    with pytest.raises(UpstreamError):
        GeminiStream("gemini").feed(SSEEvent("message", "not json"))


def test_stream_malformed_function_call_raises():
    with pytest.raises(UpstreamError):
        GeminiStream("gemini").feed(ev({"candidates": [cand(None, "MALFORMED_FUNCTION_CALL")]}))


# ---- errors ----------------------------------------------------------------------------------


def test_map_error_429_with_retry_info():
    err = ADAPTER.map_error(429, (DATA / "error_429.json").read_bytes(), {}, "gemini")
    assert isinstance(err, UpstreamRateLimited) and err.status == 429 and err.retry_after == 7.0
    assert err.response_headers()["retry-after"] == "7"
    assert "exceeded your current quota" in err.message


def test_map_error_fractional_retry_delay_and_header_fallback():
    body = json.dumps({"error": {"code": 429, "message": "m", "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]}}).encode()
    assert ADAPTER.map_error(429, body, {}, "gemini").retry_after == 1.5
    body = json.dumps({"error": {"code": 429, "message": "m", "status": "RESOURCE_EXHAUSTED"}}).encode()
    assert ADAPTER.map_error(429, body, {"retry-after": "3"}, "gemini").retry_after == 3.0


def test_map_error_invalid_key_does_not_leak_and_is_502():
    err = ADAPTER.map_error(400, (DATA / "error_api_key.json").read_bytes(), {}, "gemini")
    assert err.status == 502 and err.code == "upstream_auth_failed" and not err.retryable
    assert "API key not valid" not in json.dumps(envelope(err))


@pytest.mark.parametrize("status,rpc,cls,out", [
    (400, "INVALID_ARGUMENT", InvalidRequest, 400),
    (400, "FAILED_PRECONDITION", InvalidRequest, 400),
    (403, "PERMISSION_DENIED", UpstreamError, 502),
    (401, "UNAUTHENTICATED", UpstreamError, 502),
    (404, "NOT_FOUND", ModelNotFound, 404),
    (503, "UNAVAILABLE", UpstreamUnavailable, 503),
    (504, "DEADLINE_EXCEEDED", UpstreamTimeout, 504),
    (500, "INTERNAL", UpstreamError, 502),
])
def test_map_error_by_status(status, rpc, cls, out):
    body = json.dumps({"error": {"code": status, "message": f"secret-ish {rpc} text", "status": rpc}}).encode()
    err = ADAPTER.map_error(status, body, {}, "gemini")
    assert isinstance(err, cls) and err.status == out
    if out == 400:
        assert err.message == f"secret-ish {rpc} text"
    if rpc in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
        assert "secret-ish" not in err.message


def test_map_error_non_json_body():
    err = ADAPTER.map_error(502, b"<html>bad gateway</html>", {}, "gemini")
    assert err.status == 502 and "<html>" not in err.message
