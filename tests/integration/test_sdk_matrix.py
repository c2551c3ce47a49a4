"""Issue 4's acceptance script: ONE OpenAI SDK script, run unchanged against every protocol.

The gateway has four providers configured, each pointed at its local fake (OpenAI-compatible,
Anthropic, Gemini over loopback HTTP; Bedrock through the real boto3 client answered from its
before-send hook). The script below never mentions a provider except through MODEL.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import openai
import pytest

from skylane.providers import bedrock
from tests.conftest import UPSTREAM_KEY, make_settings
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.bedrock_eventstream import FakeBedrock
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.server import serve
from tests.helpers import AWS_ENV as AWS
from tests.helpers import PNG
from tests.spec import validate

MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-20250514",
    "bedrock": "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0",
    "gemini": "gemini/gemini-2.5-flash",
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "description": "Time in a city", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
]




@pytest.fixture(scope="module")
def gw(gateway_factory, fake_openai) -> str:
    anthropic, gemini = FakeAnthropic(UPSTREAM_KEY), FakeGemini(UPSTREAM_KEY)
    FakeBedrock().install(bedrock.get_client(make_settings(**AWS)))
    with serve(anthropic.app) as a_url, serve(gemini.app) as g_url:
        yield gateway_factory(
            OPENAI_API_KEY=UPSTREAM_KEY, OPENAI_BASE_URL=fake_openai[1],
            ANTHROPIC_API_KEY=UPSTREAM_KEY, ANTHROPIC_BASE_URL=a_url,
            GEMINI_API_KEY=UPSTREAM_KEY, GEMINI_BASE_URL=g_url,
            SKYLANE_BREAKER_FAILURES="100000", **AWS)


@pytest.fixture(params=list(MODELS), ids=list(MODELS))
def model(request) -> str:
    return MODELS[request.param]


@pytest.fixture
def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw + "/v1", api_key="anything", max_retries=0)


# ---- the script: the same for every model --------------------------------------------------


def test_text(client, model):
    r = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    validate("CreateChatCompletionResponse", json.loads(r.text))
    resp = r.parse()
    assert resp.model == model
    assert resp.choices[0].message.content.startswith("Hello from fake-") and resp.choices[0].message.content.endswith(
        ": hi")
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    assert float(r.headers["x-skylane-cost-usd"]) > 0


def test_stream(client, model):
    chunks = list(client.chat.completions.create(
        model=model, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "stream me"}]))
    for ch in chunks:
        validate("CreateChatCompletionStreamResponse", ch.model_dump(exclude_unset=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text.endswith(": stream me")
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
    assert finishes[-1] == "stop" and not any(finishes[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_tool_call(client, model):
    resp = client.chat.completions.create(model=model, tools=TOOLS,
                                          messages=[{"role": "user", "content": "tool please"}])
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.id and call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris0"}


@pytest.mark.parametrize("stream", [False, True])
def test_parallel_tools(client, model, stream):
    if not stream:
        resp = client.chat.completions.create(model=model, tools=TOOLS,
                                              messages=[{"role": "user", "content": "tools2 please"}])
        calls = [(c.function.name, json.loads(c.function.arguments)) for c in resp.choices[0].message.tool_calls]
        assert resp.choices[0].finish_reason == "tool_calls"
    else:
        acc: dict[int, dict[str, Any]] = {}
        finish = None
        for ch in client.chat.completions.create(model=model, tools=TOOLS, stream=True,
                                                 messages=[{"role": "user", "content": "tools2 please"}]):
            if not ch.choices:
                continue
            for tc in ch.choices[0].delta.tool_calls or []:
                slot = acc.setdefault(tc.index, {"name": "", "args": "", "id": None})
                slot["id"] = slot["id"] or tc.id
                slot["name"] += (tc.function.name or "") if tc.function else ""
                slot["args"] += (tc.function.arguments or "") if tc.function else ""
            finish = ch.choices[0].finish_reason or finish
        assert sorted(acc) == [0, 1], "tool-call indexes are dense from 0"
        assert all(s["id"] for s in acc.values())
        calls = [(acc[i]["name"], json.loads(acc[i]["args"])) for i in sorted(acc)]
        assert finish == "tool_calls"
    assert calls == [("get_weather", {"city": "Paris0"}), ("get_time", {"city": "Paris1"})]


def test_vision(client, model):
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    resp = client.chat.completions.create(model=model, messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url}}]}])
    assert resp.choices[0].message.content == f"I see an image (image/png, {len(PNG)} bytes)"


@pytest.mark.parametrize("kind", ["json_object", "json_schema"])
def test_json(client, model, kind):
    fmt: dict[str, Any] = {"type": "json_object"} if kind == "json_object" else {
        "type": "json_schema", "json_schema": {"name": "answer", "schema": {
            "type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}}}
    resp = client.chat.completions.create(model=model, response_format=fmt,
                                          messages=[{"role": "user", "content": "json please"}])
    assert json.loads(resp.choices[0].message.content) == {"answer": 42}
    assert resp.choices[0].finish_reason == "stop"


def test_multi_turn_with_tool_results(client, model):
    first = client.chat.completions.create(model=model, tools=TOOLS,
                                           messages=[{"role": "user", "content": "tools2 please"}])
    calls = first.choices[0].message.tool_calls
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "tools2 please"},
        {"role": "assistant", "content": None, "tool_calls": [c.model_dump() for c in calls]},
    ]
    for c in calls:
        messages.append({"role": "tool", "tool_call_id": c.id, "content": f"result of {c.function.name}"})
    resp = client.chat.completions.create(model=model, tools=TOOLS, messages=messages)
    assert resp.choices[0].message.content == "Tool said: result of get_time"
    assert resp.choices[0].finish_reason == "stop"


def test_length_finish(client, model):
    resp = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "length"}],
                                          max_tokens=5)
    assert resp.choices[0].finish_reason == "length"


def test_models_endpoints_list_every_provider_with_capabilities_and_prices(gw, model):
    ids = {m["id"] for m in httpx.get(gw + "/v1/models").json()["data"]}
    assert model in ids
    detail = httpx.get(gw + f"/v1/models/{model}").json()
    assert detail["id"] == model and detail["capabilities"]["tools"] is True
    assert detail["pricing"]["input_per_million_usd"] > 0 and detail["pricing"]["output_per_million_usd"] > 0
    chat = {m["name"]: m for m in httpx.get(gw + "/v1/chat/models").json()["data"]}
    assert chat[model]["vision"] is True and chat[model]["max_tokens"] > 0
