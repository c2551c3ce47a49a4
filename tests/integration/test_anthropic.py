"""Anthropic through the gateway: the real OpenAI SDK → Skylane → a fake Anthropic on loopback."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.anthropic_upstream import CACHE_CREATION, CACHE_READ, FakeAnthropic
from tests.fakes.server import serve
from tests.helpers import PNG
from tests.helpers import SINGLE_ATTEMPT as ISOLATED
from tests.spec import validate

KEY = "sk-ant-upstream-test"
MODEL = "anthropic/claude-sonnet-4-20250514"
UPSTREAM_MODEL = "claude-sonnet-4-20250514"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
         {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}]


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeAnthropic, str]]:
    f = FakeAnthropic(KEY)
    with serve(f.app) as url:
        yield f, url


@pytest.fixture(scope="module")
def gw(gateway_factory, fake) -> str:
    return gateway_factory(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=fake[1], **ISOLATED)


@pytest.fixture
def upstream(fake):
    """The body of the last request the fake received."""
    return lambda: fake[0].requests[-1]["body"]


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def expected_usage(fake: FakeAnthropic) -> dict[str, Any]:
    """The OpenAI usage for what the fake last reported (PROTOCOLS.md: prompt includes cache tokens)."""
    u = fake.usages[-1]
    assert u["cache_creation_input_tokens"] == CACHE_CREATION and u["cache_read_input_tokens"] == CACHE_READ
    prompt = u["input_tokens"] + CACHE_CREATION + CACHE_READ
    return {"prompt_tokens": prompt, "completion_tokens": u["output_tokens"],
            "total_tokens": prompt + u["output_tokens"],
            "prompt_tokens_details": {"cached_tokens": CACHE_READ, "cache_write_tokens": CACHE_CREATION}}


def raw_stream(base: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The gateway's SSE payloads (each validated against the spec); asserts the [DONE] ending."""
    with httpx.stream("POST", base + "/v1/chat/completions", json={"stream": True, **body}) as r:
        assert r.status_code == 200, r.read()
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    payloads = [json.loads(ln[6:]) for ln in lines[:-1]]
    for p in payloads:
        validate("CreateChatCompletionStreamResponse", p)
    return payloads


# ---- text ------------------------------------------------------------------------------------


def test_text_completion(gw, fake, upstream):
    r = httpx.post(gw + "/v1/chat/completions", json={
        "model": MODEL, "max_tokens": 50, "user": "u-1",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi there"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    validate("CreateChatCompletionResponse", body)
    assert body["model"] == MODEL and body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello from fake-anthropic: hi there",
                                             "refusal": None}
    assert body["choices"][0]["finish_reason"] == "stop"
    sent = fake[0].requests[-1]
    assert sent["headers"]["x-api-key"] == KEY and sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["body"] == {"model": UPSTREAM_MODEL, "max_tokens": 50,
                            "system": [{"type": "text", "text": "Be brief."}],
                            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi there"}]}],
                            "metadata": {"user_id": "u-1"}}
    usage = dict(body["usage"])
    cost = usage.pop("cost")  # what the key was charged: the header's number
    assert usage == expected_usage(fake[0])
    assert float(r.headers["x-skylane-cost-usd"]) > 0 and cost == float(r.headers["x-skylane-cost-usd"])


def test_sdk_text_and_default_max_tokens(gw, upstream):
    resp = client(gw).chat.completions.create(model="claude-sonnet-4", messages=user("alias"))
    assert resp.choices[0].message.content == "Hello from fake-anthropic: alias"
    assert resp.model == "claude-sonnet-4"
    assert resp.usage.prompt_tokens_details.cached_tokens == CACHE_READ
    assert upstream()["max_tokens"] == 4096 and upstream()["model"] == UPSTREAM_MODEL


def test_streaming_text_with_usage(gw, fake, upstream):
    stream = client(gw).chat.completions.create(model=MODEL, stream=True, stream_options={"include_usage": True},
                                                messages=user("stream this please"))
    chunks = list(stream)
    assert upstream()["stream"] is True and "stream_options" not in upstream()
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from fake-anthropic: stream this please"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and all(f is None for f in finishes[:-1])
    last = chunks[-1]
    assert last.choices == []
    usage = last.usage.model_dump(exclude_none=True)
    cost = usage.pop("cost")
    assert usage == expected_usage(fake[0])
    u = fake[0].usages[-1]  # claude-sonnet-4 list prices: 3 input, 0.3 cache read, 3.75 cache write, 15 output
    micros = u["input_tokens"] * 3 + CACHE_READ * 0.3 + CACHE_CREATION * 3.75 + u["output_tokens"] * 15
    assert cost == round(round(micros) / 1_000_000, 6) > 0
    assert {c.id for c in chunks} == {chunks[0].id}


def test_raw_stream_conforms_without_usage_chunk(gw):
    payloads = raw_stream(gw, {"model": MODEL, "messages": user("raw")})
    assert all(p["choices"] and "usage" not in p for p in payloads)
    assert payloads[0]["choices"][0]["delta"]["role"] == "assistant"


# ---- images ----------------------------------------------------------------------------------


def test_image_data_url(gw, upstream):
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    resp = client(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url}}]}])
    assert resp.choices[0].message.content == f"I see an image (image/png, {len(PNG)} bytes)"
    source = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}
    assert upstream()["messages"][0]["content"][1] == {"type": "image", "source": source}


def test_image_https_url_is_passed_as_url_source(gw, upstream):
    resp = client(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert resp.choices[0].message.content == "I see an image (url, https://example.com/cat.png)"
    assert upstream()["messages"][0]["content"][0]["source"] == {"type": "url", "url": "https://example.com/cat.png"}


def test_video_is_refused_before_the_upstream(gw, fake):
    before = len(fake[0].requests)
    with pytest.raises(openai.BadRequestError) as info:
        client(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}}]}])
    assert MODEL in info.value.message and "video" in info.value.message
    assert len(fake[0].requests) == before


# ---- tools -----------------------------------------------------------------------------------


def test_one_tool_call(gw, upstream):
    resp = client(gw).chat.completions.create(model=MODEL, messages=user("tool please"), tools=TOOLS)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    [call] = choice.message.tool_calls
    assert call.id == "toolu_fake0" and call.type == "function"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris0"}
    assert upstream()["tools"][0] == {"name": "get_weather", "description": "Weather for a city",
                                      "input_schema": TOOLS[0]["function"]["parameters"]}


def test_parallel_tool_calls(gw):
    resp = client(gw).chat.completions.create(model=MODEL, messages=user("tools2 now"), tools=TOOLS)
    calls = resp.choices[0].message.tool_calls
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("toolu_fake0", "get_weather", {"city": "Paris0"}), ("toolu_fake1", "get_time", {"city": "Paris1"})]
    assert resp.choices[0].finish_reason == "tool_calls"


def test_parallel_tool_calls_streaming_have_dense_indexes(gw):
    payloads = raw_stream(gw, {"model": MODEL, "messages": user("tools2 stream"), "tools": TOOLS})
    deltas = [p["choices"][0]["delta"] for p in payloads]
    assert "".join(d.get("content") or "" for d in deltas) == "Let me check."
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    heads = [tc for tc in calls if "id" in tc]
    # upstream content blocks 1 and 2 (after the text block at 0) become tool indexes 0 and 1
    assert heads == [
        {"index": 0, "id": "toolu_fake0", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
        {"index": 1, "id": "toolu_fake1", "type": "function", "function": {"name": "get_time", "arguments": ""}}]
    args = ["", ""]
    for tc in calls:
        args[tc["index"]] += tc["function"]["arguments"]
    assert [json.loads(a) for a in args] == [{"city": "Paris0"}, {"city": "Paris1"}]
    assert payloads[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_sdk_streaming_tool_call(gw):
    stream = client(gw).chat.completions.create(model=MODEL, messages=user("tool stream"), tools=TOOLS, stream=True)
    names, args, finish = [], "", None
    for ch in stream:
        for tc in ch.choices[0].delta.tool_calls or []:
            assert tc.index == 0
            if tc.function.name:
                names.append(tc.function.name)
            args += tc.function.arguments or ""
        finish = ch.choices[0].finish_reason or finish
    assert names == ["get_weather"] and json.loads(args) == {"city": "Paris0"} and finish == "tool_calls"


def test_parallel_tool_calls_false(gw, upstream):
    resp = client(gw).chat.completions.create(model=MODEL, messages=user("tools2"), tools=TOOLS,
                                              parallel_tool_calls=False, tool_choice="required")
    assert len(resp.choices[0].message.tool_calls) == 1
    assert upstream()["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_tool_choice_none_and_named(gw, upstream):
    resp = client(gw).chat.completions.create(model=MODEL, messages=user("tool maybe"), tools=TOOLS,
                                              tool_choice="none")
    assert resp.choices[0].message.tool_calls is None and upstream()["tool_choice"] == {"type": "none"}
    resp = client(gw).chat.completions.create(
        model=MODEL, messages=user("anything"), tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert resp.choices[0].message.tool_calls[0].function.name == "get_time"
    assert upstream()["tool_choice"] == {"type": "tool", "name": "get_time"}


def test_multi_turn_with_tool_results(gw, upstream):
    c = client(gw)
    messages: list[dict[str, Any]] = [{"role": "system", "content": "S"}, *user("tools2 weather and time")]
    first = c.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    msg = first.choices[0].message
    messages.append(msg.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": msg.tool_calls[0].id, "content": "sunny"})
    messages.append({"role": "tool", "tool_call_id": msg.tool_calls[1].id, "content": "noon"})
    second = c.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "Tool said: noon"
    assert second.choices[0].finish_reason == "stop"
    sent = upstream()
    assert sent["system"] == [{"type": "text", "text": "S"}]
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "tools2 weather and time"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_fake0", "name": "get_weather", "input": {"city": "Paris0"}},
            {"type": "tool_use", "id": "toolu_fake1", "name": "get_time", "input": {"city": "Paris1"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_fake0", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "toolu_fake1", "content": "noon"}]},
    ]


def test_invalid_tool_arguments_are_400(gw, fake):
    before = len(fake[0].requests)
    r = httpx.post(gw + "/v1/chat/completions", json={"model": MODEL, "messages": [
        *user("x"), {"role": "assistant", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "get_time", "arguments": "{oops"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "r"}]})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "messages[1].tool_calls[0].function.arguments"
    validate("ErrorResponse", r.json())
    assert len(fake[0].requests) == before


# ---- JSON mode -------------------------------------------------------------------------------

SCHEMA = {"name": "answer", "schema": {"type": "object", "properties": {"answer": {"type": "integer"}},
                                       "required": ["answer"]}}


def test_json_schema_via_forced_tool(gw, upstream):
    resp = client(gw).chat.completions.create(model=MODEL, messages=user("json please"),
                                              response_format={"type": "json_schema", "json_schema": SCHEMA})
    assert json.loads(resp.choices[0].message.content) == {"answer": 42}
    assert resp.choices[0].finish_reason == "stop" and resp.choices[0].message.tool_calls is None
    assert upstream()["tool_choice"] == {"type": "tool", "name": "json_response"}
    assert upstream()["tools"][0]["input_schema"] == SCHEMA["schema"]


def test_json_object_streaming(gw):
    payloads = raw_stream(gw, {"model": MODEL, "messages": user("json stream"),
                               "response_format": {"type": "json_object"}})
    text = "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads)
    assert json.loads(text) == {"answer": 42}
    assert payloads[-1]["choices"][0]["finish_reason"] == "stop"


# ---- finish reasons --------------------------------------------------------------------------


@pytest.mark.parametrize("text,finish", [("length", "length"), ("refuse", "content_filter"),
                                         ("stopseq", "stop"), ("pause", "stop"), ("window", "length"),
                                         ("plain", "stop")])
@pytest.mark.parametrize("stream", [False, True])
def test_finish_reasons(gw, text, finish, stream):
    c = client(gw)
    if stream:
        chunks = list(c.chat.completions.create(model=MODEL, messages=user(text), stream=True, stop=["END"]))
        assert chunks[-1].choices[0].finish_reason == finish
    else:
        resp = c.chat.completions.create(model=MODEL, messages=user(text), stop=["END"])
        assert resp.choices[0].finish_reason == finish


# ---- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status,exc,expected", [
    (400, openai.BadRequestError, 400),
    (429, openai.RateLimitError, 429),
    (529, openai.InternalServerError, 503),
    (401, openai.InternalServerError, 502),
    (500, openai.InternalServerError, 502),
])
def test_upstream_errors(gw, status, exc, expected):
    with pytest.raises(exc) as info:
        client(gw).chat.completions.create(model=MODEL, messages=user(f"error:{status}"))
    assert info.value.status_code == expected
    body = info.value.response.json()
    validate("ErrorResponse", body)
    assert body["error"]["provider"] == "anthropic"
    assert KEY not in info.value.response.text
    if status == 400:
        assert body["error"]["message"] == "fake failure 400"
    if status == 429:
        assert info.value.response.headers["retry-after"] == "1"
    if status == 401:
        assert body["error"]["code"] == "upstream_auth_failed" and "fake failure" not in body["error"]["message"]
    if status == 529:
        assert body["error"]["type"] == "service_unavailable"


def test_overloaded_is_retried(gateway_factory, fake):
    base = gateway_factory(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=fake[1], SKYLANE_MAX_ATTEMPTS="2",
                           SKYLANE_BREAKER_FAILURES="1000")
    before = len(fake[0].requests)
    r = httpx.post(base + "/v1/chat/completions", json={"model": MODEL, "messages": user("error:529")})
    assert r.status_code == 503
    assert len(fake[0].requests) - before == 2
    assert r.headers["x-skylane-attempts"] == f"{MODEL};503, {MODEL};503"


def test_wrong_upstream_key_is_502_without_leaking(gateway_factory, fake):
    base = gateway_factory(ANTHROPIC_API_KEY="sk-ant-wrong-secret", ANTHROPIC_BASE_URL=fake[1], **ISOLATED)
    r = httpx.post(base + "/v1/chat/completions", json={"model": MODEL, "messages": user("x")})
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_auth_failed"
    assert "sk-ant-wrong" not in r.text and "x-api-key" not in r.text


def test_mid_stream_error_event(gw):
    received = ""
    with pytest.raises(openai.APIError) as info:
        for ch in client(gw).chat.completions.create(model=MODEL, stream=True, messages=user("midstream")):
            received += ch.choices[0].delta.content or ""
    assert received == "partial"
    assert "overloaded" in str(info.value).lower()


def test_mid_stream_error_raw_event(gw):
    with httpx.stream("POST", gw + "/v1/chat/completions",
                      json={"model": MODEL, "stream": True, "messages": user("midstream")}) as r:
        lines = [ln for ln in r.iter_lines() if ln]
    assert r.status_code == 200
    payloads = [json.loads(ln[6:]) for ln in lines]
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": "partial"}
    assert payloads[-1]["error"]["type"] == "service_unavailable"
    assert "data: [DONE]" not in lines


@pytest.mark.parametrize("extra,param", [({"n": 2}, "n"), ({"logprobs": True}, "logprobs"),
                                         ({"presence_penalty": 0.4}, "presence_penalty")])
def test_unsupported_parameters_never_reach_the_upstream(gw, fake, extra, param):
    before = len(fake[0].requests)
    r = httpx.post(gw + "/v1/chat/completions", json={"model": MODEL, "messages": user("x"), **extra})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == param and err["code"] == "unsupported_parameter"
    assert len(fake[0].requests) == before
