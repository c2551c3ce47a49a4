"""Bedrock Converse translation as pure data: requests, answers, stream events, errors, frames."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError, ParamValidationError, ReadTimeoutError

from skylane.core.catalog import load_catalog
from skylane.core.errors import (
    InvalidRequest,
    ModelNotFound,
    UnsupportedParameter,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from skylane.core.request import parse_request
from skylane.core.settings import Settings
from skylane.providers import get_adapter
from skylane.providers.base import CallContext, Media
from skylane.providers.bedrock import BedrockStream, build_converse, map_exception, parse_converse
from tests.fakes.bedrock_eventstream import encode_frame, event_frame, exception_frame
from tests.helpers import PNG

SETTINGS = Settings.from_env({"SKYLANE_AUTH": "disabled", "AWS_REGION": "us-east-1"})
CATALOG = load_catalog(SETTINGS)
CLAUDE = "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0"
NOVA = "bedrock/amazon.nova-pro-v1:0"
LLAMA = "bedrock/meta.llama3-1-70b-instruct-v1:0"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
         {"type": "function", "function": {"name": "get.time"}}]
ADAPTER = get_adapter("bedrock")


def req(model: str = CLAUDE, **body: Any):
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return parse_request({"model": model, **body}), CATALOG.target(model)


async def build(model: str = CLAUDE, fetched: list[str] | None = None, **body: Any) -> dict[str, Any]:
    async def fetch(url: str) -> Media:
        if fetched is not None:
            fetched.append(url)
        return Media(data=PNG, mime_type="image/png")

    r, t = req(model, **body)
    return await build_converse(r, t, CallContext(api_key=None, base_url="", default_max_tokens=321,
                                                  fetch_media=fetch))


# ---- requests -------------------------------------------------------------------------------------


async def test_basic_request_shape():
    kw = await build(messages=[{"role": "system", "content": "sys1"}, {"role": "developer", "content": "dev"},
                               {"role": "user", "content": "hi"}],
                     temperature=0.5, top_p=0.9, stop=["END", ""], max_completion_tokens=50, max_tokens=99,
                     seed=3, user="u1", parallel_tool_calls=False, service_tier="flex")
    assert kw == {
        "modelId": "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "system": [{"text": "sys1"}, {"text": "dev"}],
        # Claude takes one of temperature / top_p: temperature wins
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.5, "stopSequences": ["END"]},
    }


async def test_default_max_tokens_and_passthrough_model_id():
    kw = await build("bedrock/us.meta.llama3-3-70b-instruct-v1:0")
    assert kw["modelId"] == "us.meta.llama3-3-70b-instruct-v1:0"
    assert kw["inferenceConfig"] == {"maxTokens": 321}


async def test_same_roles_merged_and_empty_text_dropped():
    kw = await build(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": [
        {"type": "text", "text": "b"}, {"type": "text", "text": ""}]}, {"role": "assistant", "content": ""},
        {"role": "assistant", "content": "c"}, {"role": "system", "content": "late system"},
        {"role": "user", "content": "d"}])
    assert kw["messages"] == [{"role": "user", "content": [{"text": "a"}, {"text": "b"}]},
                              {"role": "assistant", "content": [{"text": "c"}]},
                              {"role": "user", "content": [{"text": "d"}]}]
    assert kw["system"] == [{"text": "late system"}]


async def test_system_only_is_refused():
    with pytest.raises(InvalidRequest):
        await build(messages=[{"role": "system", "content": "only"}])


async def test_images_data_url_and_fetched_url():
    fetched: list[str] = []
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    kw = await build(fetched=fetched, messages=[{"role": "user", "content": [
        {"type": "text", "text": "what"}, {"type": "image_url", "image_url": {"url": data_url, "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://img.example/cat.png"}}]}])
    blocks = kw["messages"][0]["content"]
    assert blocks[1] == {"image": {"format": "png", "source": {"bytes": PNG}}}
    assert blocks[2] == {"image": {"format": "png", "source": {"bytes": PNG}}}
    assert fetched == ["https://img.example/cat.png"]


async def test_image_type_and_vision_checked():
    bmp = "data:image/bmp;base64," + base64.b64encode(b"BM").decode()
    with pytest.raises(InvalidRequest) as exc:
        await build(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": bmp}}]}])
    assert "image/bmp" in exc.value.message and exc.value.param == "messages[0].content[0]"
    png = "data:image/png;base64," + base64.b64encode(PNG).decode()
    with pytest.raises(UnsupportedParameter) as exc:
        await build(LLAMA, messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": png}}]}])
    assert LLAMA in exc.value.message


async def test_video_only_for_nova():
    mp4 = "data:video/mp4;base64," + base64.b64encode(b"\x00\x00\x00\x18ftypmp42").decode()
    content = [{"type": "text", "text": "watch"}, {"type": "video_url", "video_url": {"url": mp4}}]
    kw = await build(NOVA, messages=[{"role": "user", "content": content}])
    assert kw["messages"][0]["content"][1] == {"video": {"format": "mp4", "source": {
        "bytes": b"\x00\x00\x00\x18ftypmp42"}}}
    kw = await build("bedrock/us.amazon.nova-lite-v1:0", messages=[{"role": "user", "content": content}])
    assert "video" in kw["messages"][0]["content"][1]
    for model in (CLAUDE, "bedrock/us.anthropic.claude-opus-4-v1:0"):
        with pytest.raises(UnsupportedParameter) as exc:
            await build(model, messages=[{"role": "user", "content": content}])
        assert model in exc.value.message and "video" in exc.value.message


async def test_documents_from_file_data():
    pdf = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.7").decode()
    kw = await build(messages=[{"role": "user", "content": [
        {"type": "file", "file": {"file_data": pdf, "filename": "Q3 report (final)!.pdf"}},
        {"type": "file", "file": {"file_data": base64.b64encode(b"a,b").decode(), "filename": "t.csv"}}]}])
    assert kw["messages"][0]["content"] == [
        {"document": {"format": "pdf", "name": "Q3 report (final)", "source": {"bytes": b"%PDF-1.7"}}},
        {"document": {"format": "csv", "name": "t", "source": {"bytes": b"a,b"}}}]
    with pytest.raises(UnsupportedParameter):
        await build(messages=[{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}])


@pytest.mark.parametrize("extra, param", [
    ({"n": 2}, "n"), ({"logprobs": True}, "logprobs"), ({"top_logprobs": 2}, "top_logprobs"),
    ({"logit_bias": {"1": 2}}, "logit_bias"), ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"frequency_penalty": 1}, "frequency_penalty"), ({"reasoning_effort": "low"}, "reasoning_effort"),
    ({"audio": {"voice": "x"}}, "audio"), ({"modalities": ["text", "audio"]}, "modalities"),
    ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
    ({"functions": [{"name": "f"}]}, "functions"),
])
async def test_unsupported_parameters_refused(extra, param):
    with pytest.raises(UnsupportedParameter) as exc:
        await build(**extra)
    assert exc.value.param == param and exc.value.status == 400 and exc.value.code == "unsupported_parameter"


async def test_harmless_parameters_accepted():
    kw = await build(n=1, logprobs=False, presence_penalty=0, frequency_penalty=0, modalities=["text"],
                     metadata={"a": "b"}, store=True, stream_options={"include_usage": True})
    assert set(kw) == {"modelId", "messages", "inferenceConfig"}


async def test_audio_input_refused():
    with pytest.raises(UnsupportedParameter):
        await build(messages=[{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}])


@pytest.mark.parametrize("choice, expected", [
    (None, None), ("auto", {"auto": {}}), ("required", {"any": {}}),
    ({"type": "function", "function": {"name": "get.time"}}, {"tool": {"name": "get_time_"}}),
])
async def test_tools_and_choice(choice, expected):
    body: dict[str, Any] = {"tools": TOOLS}
    if choice is not None:
        body["tool_choice"] = choice
    kw = await build(**body)
    tools = kw["toolConfig"]["tools"]
    assert tools[0] == {"toolSpec": {"name": "get_weather", "description": "Weather for a city",
                                     "inputSchema": {"json": TOOLS[0]["function"]["parameters"]}}}
    # dots are not allowed in Bedrock tool names: a stable, distinct name is sent instead
    assert tools[1]["toolSpec"]["name"].startswith("get_time_")
    assert tools[1]["toolSpec"]["inputSchema"] == {"json": {"type": "object", "properties": {}}}
    got = kw["toolConfig"].get("toolChoice")
    if expected is not None and "tool" in expected:
        assert got == {"tool": {"name": tools[1]["toolSpec"]["name"]}}
    else:
        assert got == expected


async def test_named_choice_must_exist():
    with pytest.raises(InvalidRequest):
        await build(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}})


HISTORY = [
    {"role": "user", "content": "tools2 weather"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
        {"id": "call/2 with spaces", "type": "function", "function": {"name": "get.time", "arguments": ""}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "rainy"},
    {"role": "tool", "tool_call_id": "call/2 with spaces", "content": [{"type": "text", "text": "noon"}]},
    {"role": "user", "content": "thanks"},
]


async def test_tool_history_becomes_tool_use_and_results():
    kw = await build(messages=HISTORY, tools=TOOLS)
    assistant, results = kw["messages"][1], kw["messages"][2]
    wire_time = kw["toolConfig"]["tools"][1]["toolSpec"]["name"]
    uses = [b["toolUse"] for b in assistant["content"]]
    assert uses[0] == {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Oslo"}}
    assert uses[1]["name"] == wire_time and uses[1]["input"] == {}
    assert uses[1]["toolUseId"].startswith("call_2_with_spaces_") and len(uses[1]["toolUseId"]) <= 64
    # both results in ONE user message (merged), then the next user text joins it
    assert results["role"] == "user"
    assert results["content"][0] == {"toolResult": {"toolUseId": "call_1", "content": [{"text": "rainy"}]}}
    assert results["content"][1]["toolResult"]["toolUseId"] == uses[1]["toolUseId"]
    assert results["content"][2] == {"text": "thanks"}
    assert len(kw["messages"]) == 3


@pytest.mark.parametrize("body", [{"tools": TOOLS, "tool_choice": "none"}, {}])
async def test_tool_history_without_tool_config_becomes_text(body):
    kw = await build(messages=HISTORY, **body)
    assert "toolConfig" not in kw
    flat = json.dumps(kw["messages"])
    assert "toolUse" not in flat and "toolResult" not in flat
    assert kw["messages"][1]["content"][0]["text"] == '[called tool get_weather with {"city": "Oslo"}]'
    assert kw["messages"][2]["content"][0]["text"] == "[result of tool call call_1: rainy]"


async def test_bad_tool_arguments_refused():
    bad = [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": "{oops"}}]}]
    with pytest.raises(InvalidRequest) as exc:
        await build(messages=bad, tools=TOOLS)
    assert exc.value.param == "messages[1].tool_calls[0].function.arguments"


async def test_json_schema_forces_a_tool():
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    kw = await build(response_format={"type": "json_schema", "json_schema": {"name": "result", "schema": schema}})
    assert kw["toolConfig"]["toolChoice"] == {"tool": {"name": "result"}}
    assert kw["toolConfig"]["tools"][0]["toolSpec"]["name"] == "result"
    assert kw["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": schema}
    kw = await build(response_format={"type": "json_object"})
    spec = kw["toolConfig"]["tools"][0]["toolSpec"]
    assert spec["name"] == "json_response" and spec["inputSchema"] == {"json": {"type": "object"}}
    assert "JSON" in spec["description"] and len(kw["toolConfig"]["tools"]) == 1
    assert kw["toolConfig"]["toolChoice"] == {"tool": {"name": "json_response"}}
    kw = await build(response_format={"type": "text"})
    assert "toolConfig" not in kw


async def test_json_mode_with_caller_tools_requires_some_tool():
    kw = await build(tools=TOOLS, response_format={"type": "json_object"})
    names = [t["toolSpec"]["name"] for t in kw["toolConfig"]["tools"]]
    assert names[0] == "get_weather" and names[-1] == "json_response"
    assert kw["toolConfig"]["toolChoice"] == {"any": {}}
    clash = [{"type": "function", "function": {"name": "json_response"}}]
    kw = await build(tools=clash, response_format={"type": "json_object"})
    names = [t["toolSpec"]["name"] for t in kw["toolConfig"]["tools"]]
    assert len(set(names)) == 2


# ---- answers --------------------------------------------------------------------------------------


def converse(content: list[dict[str, Any]], stop: str = "end_turn", **usage: int) -> dict[str, Any]:
    u = {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15, **usage}
    return {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
            "usage": u, "metrics": {"latencyMs": 1}}


@pytest.mark.parametrize("stop, finish", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("guardrail_intervened", "content_filter"),
    ("content_filtered", "content_filter"), ("something_new", "stop"),
])
def test_finish_reasons(stop, finish):
    r, t = req()
    out = parse_converse(converse([{"text": "x"}], stop), r, t)
    assert out["choices"][0]["finish_reason"] == finish
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "x", "refusal": None}


@pytest.mark.parametrize("stop", ["malformed_model_output", "malformed_tool_use"])
def test_malformed_output_is_an_upstream_error(stop):
    r, t = req()
    with pytest.raises(UpstreamError) as exc:
        parse_converse(converse([{"text": "x"}], stop), r, t)
    assert exc.value.status == 502 and exc.value.code == "upstream_malformed_output" and exc.value.retryable


def test_usage_counts_cache_tokens_in_the_prompt():
    r, t = req()
    out = parse_converse(converse([{"text": "x"}], cacheReadInputTokens=30, cacheWriteInputTokens=4,
                                  totalTokens=49), r, t)
    assert out["usage"] == {"prompt_tokens": 44, "completion_tokens": 5, "total_tokens": 49,
                            "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 4}}
    out = parse_converse(converse([{"text": "x"}]), r, t)
    assert out["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


def test_tool_calls_answer():
    r, t = req(tools=TOOLS)
    content = [{"text": "Checking."},
               {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather", "input": {"city": "Oslo"}}},
               {"toolUse": {"toolUseId": "tooluse_b", "name": "get_time_x", "input": {}}}]
    out = parse_converse(converse(content, "tool_use"), r, t)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking."
    assert choice["message"]["tool_calls"][0] == {"id": "tooluse_a", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    assert choice["message"]["tool_calls"][1]["function"]["arguments"] == "{}"


async def test_renamed_tool_comes_back_with_its_own_name():
    kw = await build(tools=TOOLS)
    wire = kw["toolConfig"]["tools"][1]["toolSpec"]["name"]
    r, t = req(tools=TOOLS)
    out = parse_converse(converse([{"toolUse": {"toolUseId": "t1", "name": wire, "input": {}}}], "tool_use"), r, t)
    assert out["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get.time"
    assert out["choices"][0]["message"]["content"] is None


def test_json_tool_answer_becomes_content():
    r, t = req(response_format={"type": "json_object"})
    out = parse_converse(converse([{"toolUse": {"toolUseId": "t", "name": "json_response",
                                                "input": {"answer": 42}}}], "tool_use"), r, t)
    choice = out["choices"][0]
    assert json.loads(choice["message"]["content"]) == {"answer": 42}
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]


def test_answer_without_message_is_an_error():
    r, t = req()
    with pytest.raises(UpstreamError):
        parse_converse({"output": {}, "stopReason": "end_turn"}, r, t)


# ---- streams --------------------------------------------------------------------------------------


def translator(**body: Any) -> BedrockStream:
    r, t = req(**body)
    s = ADAPTER.stream_translator(r, t)
    assert isinstance(s, BedrockStream)
    return s


def run(s: BedrockStream, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in events:
        assert not s.done, "events after the end"
        out.extend(s.feed(e))
    return out


META = {"metadata": {"usage": {"inputTokens": 9, "outputTokens": 4, "totalTokens": 13, "cacheReadInputTokens": 2},
                     "metrics": {"latencyMs": 3}}}


def test_text_stream_holds_finish_until_metadata():
    s = translator()
    out = run(s, [{"messageStart": {"role": "assistant"}},
                  {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Hel"}}},
                  {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "lo"}}},
                  {"contentBlockStop": {"contentBlockIndex": 0}}])
    assert [c["choices"][0]["delta"] for c in out] == [{"role": "assistant", "content": "Hel"}, {"content": "lo"}]
    assert s.feed({"messageStop": {"stopReason": "end_turn"}}) == [] and not s.done
    last = s.feed(META)
    assert s.done and last == [{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}]}]
    assert s.usage == {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15,
                       "prompt_tokens_details": {"cached_tokens": 2}}
    assert s.finish() == []


def test_parallel_tool_calls_get_dense_indexes():
    s = translator(tools=TOOLS)
    events = [{"messageStart": {"role": "assistant"}},
              {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Sure."}}},
              {"contentBlockStop": {"contentBlockIndex": 0}}]
    for block, (tid, name, args) in enumerate([("a", "get_weather", '{"city":"X"}'), ("b", "get_weather", "")],
                                              start=1):
        events.append({"contentBlockStart": {"contentBlockIndex": block, "start": {"toolUse": {
            "toolUseId": tid, "name": name}}}})
        if args:
            events += [{"contentBlockDelta": {"contentBlockIndex": block, "delta": {"toolUse": {"input": args[:4]}}}},
                       {"contentBlockDelta": {"contentBlockIndex": block, "delta": {"toolUse": {"input": args[4:]}}}}]
        events.append({"contentBlockStop": {"contentBlockIndex": block}})
    events += [{"messageStop": {"stopReason": "tool_use"}}, META]
    out = run(s, events)
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in out if "tool_calls" in c["choices"][0]["delta"]]
    assert calls[0] == {"index": 0, "id": "a", "type": "function", "function": {"name": "get_weather",
                                                                                 "arguments": ""}}
    assert [c["index"] for c in calls] == [0, 0, 0, 1, 1]
    assert "".join(c["function"]["arguments"] for c in calls if c["index"] == 0) == '{"city":"X"}'
    assert "".join(c["function"]["arguments"] for c in calls if c["index"] == 1) == "{}"  # no input → {}
    assert out[-1]["choices"][0]["finish_reason"] == "tool_calls" and s.done


def test_json_tool_stream_is_content():
    s = translator(response_format={"type": "json_object"})
    out = run(s, [{"messageStart": {"role": "assistant"}},
                  {"contentBlockStart": {"contentBlockIndex": 0, "start": {"toolUse": {
                      "toolUseId": "t", "name": "json_response"}}}},
                  {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '{"answer"'}}}},
                  {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"toolUse": {"input": ": 42}"}}}},
                  {"contentBlockStop": {"contentBlockIndex": 0}}, {"messageStop": {"stopReason": "tool_use"}}, META])
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "content": '{"answer"'}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in out) == '{"answer": 42}'
    assert out[-1]["choices"][0]["finish_reason"] == "stop"


def test_empty_answer_still_carries_the_role():
    s = translator()
    out = run(s, [{"messageStart": {"role": "assistant"}}, {"messageStop": {"stopReason": "max_tokens"}}, META])
    assert out == [{"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": "length",
                                 "logprobs": None}]}]


def test_stream_without_metadata_is_not_done_but_finish_flushes():
    s = translator()
    run(s, [{"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "x"}}},
            {"messageStop": {"stopReason": "end_turn"}}])
    assert not s.done and s.usage is None
    assert s.finish()[0]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("event, kind, status", [
    ("throttlingException", UpstreamRateLimited, 429), ("serviceUnavailableException", UpstreamUnavailable, 503),
    ("validationException", InvalidRequest, 400), ("modelStreamErrorException", UpstreamError, 502),
    ("internalServerException", UpstreamError, 502),
])
def test_exception_events(event, kind, status):
    s = translator()
    with pytest.raises(kind) as exc:
        s.feed({event: {"message": "boom"}})
    assert exc.value.status == status and "boom" in exc.value.message


def test_malformed_stop_in_stream_raises():
    s = translator()
    with pytest.raises(UpstreamError):
        s.feed({"messageStop": {"stopReason": "malformed_tool_use"}})


# ---- errors ---------------------------------------------------------------------------------------


def client_error(code: str, status: int | None, message: str = "msg", headers: dict[str, str] | None = None):
    resp: dict[str, Any] = {"Error": {"Code": code, "Message": message}}
    if status is not None:
        resp["ResponseMetadata"] = {"HTTPStatusCode": status, "HTTPHeaders": headers or {}}
    return ClientError(resp, "Converse")


@pytest.mark.parametrize("code, status, kind, expect", [
    ("ThrottlingException", 429, UpstreamRateLimited, 429),
    ("ServiceUnavailableException", 503, UpstreamUnavailable, 503),
    ("ModelNotReadyException", 429, UpstreamUnavailable, 503),
    ("ValidationException", 400, InvalidRequest, 400),
    ("ResourceNotFoundException", 404, ModelNotFound, 404),
    ("ModelTimeoutException", 408, UpstreamTimeout, 504),
    ("ModelErrorException", 424, UpstreamError, 502),
    ("InternalServerException", 500, UpstreamError, 502),
    ("SomethingNew", 418, InvalidRequest, 400),
])
def test_client_errors_by_code(code, status, kind, expect):
    err = map_exception(client_error(code, status, headers={"retry-after": "2"}), "bedrock")
    assert isinstance(err, kind) and err.status == expect and err.provider == "bedrock"
    if expect == 429:
        assert err.retry_after == 2


@pytest.mark.parametrize("code", ["AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException"])
def test_credential_errors_do_not_leak(code):
    err = map_exception(client_error(code, 403, "User: arn:aws:sts::123456789012:assumed-role/r is not authorized"),
                        "bedrock")
    assert err.status == 502 and err.code == "upstream_auth_failed" and not err.retryable
    assert "arn:" not in err.message and "123456789012" not in err.message


def test_stream_error_and_transport_errors():
    err = map_exception(EventStreamError({"Error": {"Code": "modelStreamErrorException", "Message": "bad"}},
                                         "ConverseStream"), "bedrock")
    assert isinstance(err, UpstreamError) and err.status == 502
    assert isinstance(map_exception(ReadTimeoutError(endpoint_url="https://x"), "bedrock"), UpstreamTimeout)
    bad = map_exception(ParamValidationError(report="Invalid length for parameter x"), "bedrock")
    assert isinstance(bad, InvalidRequest)
    assert map_exception(RuntimeError("x"), "bedrock").status == 502


def test_http_map_error_reads_amzn_error_type():
    err = ADAPTER.map_error(429, b'{"message": "slow down"}', {
        "x-amzn-errortype": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "retry-after": "1"}, "bedrock")
    assert isinstance(err, UpstreamRateLimited) and err.retry_after == 1 and "slow down" in err.message
    err = ADAPTER.map_error(403, b'{"message": "arn:aws:iam::1:role/x denied"}',
                            {"x-amzn-errortype": "AccessDeniedException:http://x/"}, "bedrock")
    assert err.status == 502 and "arn:" not in err.message


# ---- the test fake's frames are what botocore's decoder accepts ----------------------------------


def test_frames_decode_with_botocore():
    buf = EventStreamBuffer()
    buf.add_data(event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}})
                 + exception_frame("throttlingException", {"message": "slow"}))
    first, second = list(buf)
    assert first.headers == {":event-type": "contentBlockDelta", ":content-type": "application/json",
                             ":message-type": "event"}
    assert json.loads(first.payload) == {"contentBlockIndex": 0, "delta": {"text": "hi"}}
    assert second.headers[":exception-type"] == "throttlingException"
    corrupt = bytearray(encode_frame({":message-type": "event"}, b"{}"))
    corrupt[-1] ^= 0xFF
    bad = EventStreamBuffer()
    bad.add_data(bytes(corrupt))
    with pytest.raises(Exception, match="(?i)checksum|crc"):
        list(bad)


# ---- reasoning and caching (bedrock_reasoning.py) -------------------------------------------------

THINKER = "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"


async def test_redacted_and_signed_reasoning_out_and_back_through_the_id():
    r, t = req(THINKER, reasoning_effort="medium", tools=TOOLS)
    out = parse_converse(converse([
        {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "c2ln"}}},
        {"reasoningContent": {"redactedContent": b"\x00secret"}},
        {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {}}}], "tool_use"), r, t)
    msg = out["choices"][0]["message"]
    assert msg["reasoning_content"] == "hmm"
    assert msg["reasoning_details"] == [
        {"type": "reasoning.text", "text": "hmm", "signature": "c2ln", "format": "bedrock-converse-v1", "index": 0},
        {"type": "reasoning.encrypted", "data": base64.b64encode(b"\x00secret").decode(),
         "format": "bedrock-converse-v1", "index": 1}]
    call_id = msg["tool_calls"][0]["id"]
    assert call_id.startswith("tooluse_1__skth_")
    history = [{"role": "user", "content": "q"},
               {"role": "assistant", "content": None, "tool_calls": msg["tool_calls"]},
               {"role": "tool", "tool_call_id": call_id, "content": "sunny"}]
    sent = (await build(THINKER, reasoning_effort="medium", tools=TOOLS, messages=history))["messages"][1]["content"]
    assert sent[:2] == [{"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "c2ln"}}},
                        {"reasoningContent": {"redactedContent": b"\x00secret"}}]
    assert sent[2]["toolUse"]["toolUseId"] == "tooluse_1"


def test_reasoning_hidden_without_reasoning_effort():
    r, t = req(THINKER)
    out = parse_converse(converse([{"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "s"}}},
                                   {"text": "hi"}]), r, t)
    assert "reasoning_content" not in out["choices"][0]["message"]


async def test_thinking_budget_and_sampling_rules():
    kw = await build(THINKER, reasoning_effort="high", temperature=0.5, top_p=0.9, top_k=3)
    assert kw["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 24576}}
    assert kw["inferenceConfig"] == {"maxTokens": 24576 + 321}  # no sampling knobs while thinking
    kw = await build(THINKER, reasoning_effort="low", max_tokens=4000)
    assert kw["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 1024
    assert kw["inferenceConfig"] == {"maxTokens": 4000}
    with pytest.raises(InvalidRequest) as exc:  # no room for the minimum budget
        await build(THINKER, reasoning_effort="low", max_tokens=1000)
    assert exc.value.param == "reasoning_effort"
    kw = await build(THINKER, temperature=0.5, top_p=0.9, top_k=3)  # thinking off: temperature wins
    assert kw["inferenceConfig"] == {"maxTokens": 321, "temperature": 0.5}
    assert kw["additionalModelRequestFields"] == {"top_k": 3}


async def test_nova_2_none_disables_reasoning():
    kw = await build("bedrock/us.amazon.nova-2-pro-v1:0", reasoning_effort="none")
    assert kw["additionalModelRequestFields"] == {"reasoningConfig": {"type": "disabled"}}


def test_one_hour_cache_writes():
    r, t = req(THINKER)
    out = parse_converse(converse([{"text": "x"}], cacheReadInputTokens=2, cacheWriteInputTokens=9,
                                  cacheDetails=[{"ttl": "1h", "inputTokens": 6}, {"ttl": "5m", "inputTokens": 3}]),
                         r, t)
    assert out["usage"]["prompt_tokens"] == 21
    assert out["usage"]["prompt_tokens_details"] == {"cached_tokens": 2, "cache_write_tokens": 3,
                                                     "cache_write_1h_tokens": 6}


def test_stream_reasoning_deltas():
    r, t = req(THINKER, reasoning_effort="low", tools=TOOLS)
    s = get_adapter("bedrock").stream_translator(r, t)
    out = []
    for ev in ({"messageStart": {"role": "assistant"}},
               {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "th"}}}},
               {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "sg"}}}},
               {"contentBlockStop": {"contentBlockIndex": 0}},
               {"contentBlockStart": {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tu1",
                                                                                    "name": "get_weather"}}}}):
        out.extend(s.feed(ev))
    deltas = [c["choices"][0]["delta"] for c in out]
    assert deltas[0]["reasoning_content"] == "th"
    assert deltas[1]["reasoning_details"] == [{"type": "reasoning.text", "text": "", "signature": "sg",
                                               "format": "bedrock-converse-v1", "index": 0}]
    assert deltas[2]["tool_calls"][0]["id"].startswith("tu1__skth_")
