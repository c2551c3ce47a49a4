"""Bedrock through the whole gateway: the openai SDK → Skylane → the REAL boto3 client → the fake.

The fake answers from botocore's `before-send` hook on the very client the gateway uses (the
process-wide client for these settings), so requests are validated and serialised by botocore and
answers go through botocore's own JSON and event-stream parsers.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import httpx
import openai
import pytest

from skylane.core.catalog import load_catalog
from skylane.core.request import parse_request
from skylane.providers import bedrock, get_adapter
from skylane.providers.base import CallContext
from tests.conftest import make_settings
from tests.fakes.bedrock_eventstream import FakeBedrock
from tests.helpers import AWS_ENV as AWS
from tests.helpers import PNG
from tests.spec import validate

# error cases are deliberate here: keep the circuit breakers (tested elsewhere) out of the way
NO_BREAKER = {"SKYLANE_BREAKER_FAILURES": "100000"}
CLAUDE = "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0"
NOVA = "bedrock/amazon.nova-pro-v1:0"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
         {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}]


@pytest.fixture(scope="module")
def fake() -> FakeBedrock:
    fake = FakeBedrock()
    fake.install(bedrock.get_client(make_settings(**AWS)))
    return fake


@pytest.fixture(scope="module")
def gw(gateway_factory, fake) -> str:
    return gateway_factory(**AWS, **NO_BREAKER)


@pytest.fixture(scope="module")
def gw_once(gateway_factory, fake) -> str:
    """The same provider, without gateway retries (so one upstream error is one answer)."""
    return gateway_factory(SKYLANE_MAX_ATTEMPTS="1", **AWS, **NO_BREAKER)


def sdk(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def test_text_completion(gw, fake):
    r = httpx.post(gw + "/v1/chat/completions", json={
        "model": CLAUDE, "messages": [{"role": "system", "content": "Be brief."}, *user("hi there")],
        "temperature": 0.2, "max_tokens": 64, "stop": ["###"]})
    assert r.status_code == 200, r.text
    body = r.json()
    validate("CreateChatCompletionResponse", body)
    assert body["model"] == CLAUDE
    choice = body["choices"][0]
    assert choice["message"]["content"] == "Hello from fake-bedrock: hi there"
    assert choice["finish_reason"] == "stop"
    sent = fake.last()
    assert sent["operation"] == "Converse" and sent["model"] == "anthropic.claude-3-5-sonnet-20241022-v2:0"
    assert sent["body"]["system"] == [{"text": "Be brief."}]
    assert sent["body"]["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.2, "stopSequences": ["###"]}
    # signed with the gateway's IAM credentials (SigV4), no API key
    assert sent["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    prompt = fake._usage(sent["body"])["inputTokens"] + 3
    usage = dict(body["usage"])
    cost = usage.pop("cost")  # what the key was charged: the header's number
    assert usage == {"prompt_tokens": prompt, "completion_tokens": 7, "total_tokens": prompt + 7,
                     "prompt_tokens_details": {"cached_tokens": 3}}
    assert float(r.headers["x-skylane-cost-usd"]) > 0 and cost == float(r.headers["x-skylane-cost-usd"])


def test_stream_usage_after_message_stop(gw, fake):
    with httpx.stream("POST", gw + "/v1/chat/completions", json={
            "model": CLAUDE, "stream": True, "stream_options": {"include_usage": True},
            "messages": user("stream me please")}) as r:
        assert r.status_code == 200
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[6:]) for ln in lines[:-1]]
    for c in chunks:
        validate("CreateChatCompletionStreamResponse", c)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello from fake-bedrock: stream me please"
    finals = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finals[-1] == "stop" and all(f is None for f in finals[:-1])
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    prompt = fake._usage(fake.last()["body"])["inputTokens"] + 3
    usage = dict(usage_chunk["usage"])
    cost = usage.pop("cost")
    assert usage == {"prompt_tokens": prompt, "completion_tokens": 7, "total_tokens": prompt + 7,
                     "prompt_tokens_details": {"cached_tokens": 3}}
    # claude-3-5-sonnet on Bedrock: 3 input, 0.3 cache read, 15 output (USD per 1M tokens)
    assert cost == round(round((prompt - 3) * 3 + 3 * 0.3 + 7 * 15) / 1_000_000, 6) > 0
    assert fake.last()["operation"] == "ConverseStream"


def test_stream_through_sdk_without_usage(gw):
    chunks = list(sdk(gw).chat.completions.create(model=NOVA, stream=True, messages=user("no usage")))
    assert all(ch.usage is None for ch in chunks) and chunks[-1].choices[0].finish_reason == "stop"


def test_image_data_url_sent_as_bytes(gw, fake):
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    resp = sdk(gw).chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": url}}]}])
    assert resp.choices[0].message.content == f"I see an image (image/png, {len(PNG)} bytes)"
    block = fake.last()["body"]["messages"][0]["content"][1]
    assert block["image"]["format"] == "png"
    assert base64.b64decode(block["image"]["source"]["bytes"]) == PNG  # botocore base64-encodes the blob


def test_image_url_to_private_address_refused_before_bedrock(gw, fake):
    before = len(fake.requests)
    with pytest.raises(openai.BadRequestError) as exc:
        sdk(gw).chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://169.254.169.254/latest/meta-data/x.png"}}]}])
    assert "Image URL refused" in exc.value.message and "link-local" in exc.value.message
    assert len(fake.requests) == before


def test_video_refused_for_claude_and_sent_to_nova(gw, fake):
    video = "data:video/mp4;base64," + base64.b64encode(b"\x00\x00\x00\x18ftypmp42").decode()
    content = [{"type": "text", "text": "watch"}, {"type": "video_url", "video_url": {"url": video}}]
    r = httpx.post(gw + "/v1/chat/completions", json={"model": CLAUDE, "messages": [
        {"role": "user", "content": content}]})
    assert r.status_code == 400 and CLAUDE in r.json()["error"]["message"]
    assert r.json()["error"]["code"] == "unsupported_parameter"
    r = httpx.post(gw + "/v1/chat/completions", json={"model": NOVA,
                                                      "messages": [{"role": "user", "content": content}]})
    assert r.status_code == 200
    assert fake.last()["body"]["messages"][0]["content"][1]["video"]["format"] == "mp4"


def test_tool_call(gw, fake):
    resp = sdk(gw).chat.completions.create(model=CLAUDE, messages=user("tool please"), tools=TOOLS,
                                           tool_choice="auto")
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    (call,) = choice.message.tool_calls
    assert call.id == "tooluse_fake0" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris0"}
    config = fake.last()["body"]["toolConfig"]
    assert config["toolChoice"] == {"auto": {}}
    assert config["tools"][0]["toolSpec"]["inputSchema"]["json"] == TOOLS[0]["function"]["parameters"]


def test_parallel_tool_calls(gw):
    resp = sdk(gw).chat.completions.create(model=CLAUDE, messages=user("tools2 please"), tools=TOOLS)
    calls = resp.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris0"}, {"city": "Paris1"}]
    raw = httpx.post(gw + "/v1/chat/completions", json={"model": CLAUDE, "messages": user("tools2 please"),
                                                         "tools": TOOLS}).json()
    validate("CreateChatCompletionResponse", raw)
    assert raw["choices"][0]["finish_reason"] == "tool_calls"


def test_parallel_tool_calls_stream(gw):
    stream = sdk(gw).chat.completions.create(model=CLAUDE, messages=user("tools2 please"), tools=TOOLS, stream=True,
                                             stream_options={"include_usage": True})
    calls: dict[int, dict[str, str]] = {}
    finish = None
    text = ""
    for ch in stream:
        if not ch.choices:
            assert ch.usage is not None and ch.usage.completion_tokens == 7
            continue
        delta = ch.choices[0].delta
        text += delta.content or ""
        for tc in delta.tool_calls or []:
            slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            slot["id"] += tc.id or ""
            slot["name"] += (tc.function.name or "") if tc.function else ""
            slot["arguments"] += (tc.function.arguments or "") if tc.function else ""
        finish = ch.choices[0].finish_reason or finish
    # Bedrock's blocks are 1 and 2 (after the text block); OpenAI indexes are dense from 0
    assert sorted(calls) == [0, 1]
    assert calls[0] == {"id": "tooluse_fake0", "name": "get_weather", "arguments": '{"city": "Paris0"}'}
    assert calls[1] == {"id": "tooluse_fake1", "name": "get_time", "arguments": '{"city": "Paris1"}'}
    assert text == "Let me check." and finish == "tool_calls"


def test_multi_turn_with_tool_results(gw, fake):
    first = sdk(gw).chat.completions.create(model=CLAUDE, messages=user("tools2 weather"), tools=TOOLS)
    msg = first.choices[0].message
    history = [*user("tools2 weather"), msg.model_dump(exclude_none=True)]
    for call, result in zip(msg.tool_calls, ["rainy in Paris0", "noon"], strict=True):
        history.append({"role": "tool", "tool_call_id": call.id, "content": result})
    second = sdk(gw).chat.completions.create(model=CLAUDE, messages=history, tools=TOOLS)
    assert second.choices[0].message.content == "Tool said: noon"
    sent = fake.last()["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    uses = [b["toolUse"] for b in sent[1]["content"] if "toolUse" in b]
    assert [u["toolUseId"] for u in uses] == ["tooluse_fake0", "tooluse_fake1"]
    assert uses[0]["input"] == {"city": "Paris0"}
    results = [b["toolResult"] for b in sent[2]["content"]]
    assert results == [{"toolUseId": "tooluse_fake0", "content": [{"text": "rainy in Paris0"}]},
                       {"toolUseId": "tooluse_fake1", "content": [{"text": "noon"}]}]


def test_tool_choice_none_with_history_sends_no_tool_config(gw, fake):
    history = [*user("tool now"), {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
               "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}}]},
               {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    resp = sdk(gw).chat.completions.create(model=CLAUDE, messages=history, tools=TOOLS, tool_choice="none")
    body = fake.last()["body"]
    assert "toolConfig" not in body
    assert "toolUse" not in json.dumps(body) and "toolResult" not in json.dumps(body)
    assert resp.choices[0].message.tool_calls is None


@pytest.mark.parametrize("fmt", [
    {"type": "json_object"},
    {"type": "json_schema", "json_schema": {"name": "answer", "schema": {
        "type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}}},
])
def test_json_mode(gw, fake, fmt):
    resp = sdk(gw).chat.completions.create(model=CLAUDE, messages=user("json please"), response_format=fmt)
    assert json.loads(resp.choices[0].message.content) == {"answer": 42}
    assert resp.choices[0].finish_reason == "stop" and resp.choices[0].message.tool_calls is None
    name = "json_response" if fmt["type"] == "json_object" else "answer"
    assert fake.last()["body"]["toolConfig"]["toolChoice"] == {"tool": {"name": name}}
    stream = sdk(gw).chat.completions.create(model=CLAUDE, messages=user("json please"), response_format=fmt,
                                             stream=True)
    chunks = [c for c in stream if c.choices]
    assert json.loads("".join(c.choices[0].delta.content or "" for c in chunks)) == {"answer": 42}
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_finish_reason_length(gw):
    resp = sdk(gw).chat.completions.create(model=CLAUDE, messages=user("length test"))
    assert resp.choices[0].finish_reason == "length"
    chunks = [c for c in sdk(gw).chat.completions.create(model=CLAUDE, messages=user("length test"), stream=True)]
    assert chunks[-1].choices[0].finish_reason == "length"


def test_exception_mid_stream_becomes_sse_error(gw):
    with httpx.stream("POST", gw + "/v1/chat/completions", json={
            "model": CLAUDE, "stream": True, "messages": user("midstream now")}) as r:
        assert r.status_code == 200
        lines = [ln for ln in r.iter_lines() if ln]
    assert json.loads(lines[0][6:])["choices"][0]["delta"] == {"role": "assistant", "content": "partial"}
    err = json.loads(lines[-1][6:])
    validate("ErrorResponse", err)
    assert err["error"]["type"] == "upstream_error" and "ModelStreamErrorException" in err["error"]["message"]
    assert "data: [DONE]" not in lines
    with pytest.raises(openai.APIError):
        list(sdk(gw).chat.completions.create(model=CLAUDE, stream=True, messages=user("midstream again")))


def test_throttling_is_429(gw_once, fake):
    before = len(fake.requests)
    r = httpx.post(gw_once + "/v1/chat/completions", json={"model": CLAUDE, "messages": user("error:429")})
    assert r.status_code == 429
    assert r.json()["error"]["type"] == "rate_limit_error" and r.json()["error"]["code"] == "upstream_rate_limited"
    assert r.headers["retry-after"] == "1"
    assert len(fake.requests) == before + 1  # boto3's own retries are off
    with pytest.raises(openai.RateLimitError):
        sdk(gw_once).chat.completions.create(model=CLAUDE, messages=user("error:429"), stream=True)


def test_throttling_event_before_first_chunk_is_retried_then_429(gw, fake):
    before = len(fake.requests)
    r = httpx.post(gw + "/v1/chat/completions", json={"model": CLAUDE, "stream": True,
                                                      "messages": user("throttle-stream")})
    assert r.status_code == 429 and r.json()["error"]["code"] == "upstream_rate_limited"
    assert len(fake.requests) - before == 3  # SKYLANE_MAX_ATTEMPTS (default 3): nothing was sent yet
    assert "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0;429" in r.headers["x-skylane-attempts"]


@pytest.mark.parametrize("status, expect, code", [
    (400, 400, "upstream_bad_request"), (403, 502, "upstream_auth_failed"), (404, 404, "model_not_found"),
    (408, 504, "upstream_timeout"), (503, 503, "upstream_unavailable"),
])
def test_http_errors_mapped(gw_once, status, expect, code):
    r = httpx.post(gw_once + "/v1/chat/completions", json={"model": CLAUDE, "messages": user(f"error:{status}")})
    assert r.status_code == expect
    err = r.json()["error"]
    assert err["code"] == code and err["provider"] == "bedrock"
    assert "arn:" not in err["message"] and "123456789012" not in err["message"]


def test_unsupported_parameter_400(gw, fake):
    before = len(fake.requests)
    with pytest.raises(openai.BadRequestError) as exc:
        sdk(gw).chat.completions.create(model=CLAUDE, messages=user("hi"), n=2)
    assert exc.value.code == "unsupported_parameter" and exc.value.param == "n"
    assert len(fake.requests) == before


def test_passthrough_model_id(gw, fake):
    resp = sdk(gw).chat.completions.create(model="bedrock/us.meta.llama3-3-70b-instruct-v1:0", messages=user("yo"))
    assert resp.choices[0].message.content == "Hello from fake-bedrock: yo"
    assert fake.last()["model"] == "us.meta.llama3-3-70b-instruct-v1:0"


def test_event_loop_free_while_stream_stalls_and_disconnect_closes_stream(gw, fake):
    closed_before = fake.closed_streams
    got_first = threading.Event()
    leave = threading.Event()
    texts: list[str] = []

    def consume() -> None:
        with httpx.Client(timeout=30) as client, client.stream("POST", gw + "/v1/chat/completions", json={
                "model": CLAUDE, "stream": True, "messages": user("stall here")}) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    texts.append(json.loads(line[6:])["choices"][0]["delta"].get("content") or "")
                    got_first.set()
                    leave.wait(10)
                    return  # leaving the block closes the connection mid-stream

    t = threading.Thread(target=consume)
    t.start()
    assert got_first.wait(10) and fake.stalled.wait(5)
    # the boto3 read is blocked in a worker thread; the event loop still answers
    t0 = time.perf_counter()
    for _ in range(5):
        assert httpx.get(gw + "/health", timeout=2).status_code == 200
    assert time.perf_counter() - t0 < 2
    other = sdk(gw).chat.completions.create(model=CLAUDE, messages=user("meanwhile"))
    assert other.choices[0].message.content == "Hello from fake-bedrock: meanwhile"
    assert texts == ["waiting"]
    leave.set()
    t.join(10)
    deadline = time.monotonic() + 10
    while fake.closed_streams == closed_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.closed_streams > closed_before, "the boto3 stream was not closed after the client left"


def test_stalled_stream_completes_when_released(gw, fake):
    result: dict[str, Any] = {}

    def consume() -> None:
        chunks = list(sdk(gw).chat.completions.create(model=CLAUDE, stream=True, messages=user("stall then go")))
        result["text"] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        result["finish"] = chunks[-1].choices[0].finish_reason

    t = threading.Thread(target=consume)
    t.start()
    assert fake.stalled.wait(10)
    assert httpx.get(gw + "/health", timeout=2).status_code == 200
    fake.release()
    t.join(10)
    assert result == {"text": "waiting done", "finish": "stop"}


# ---- the transport on its own ------------------------------------------------------------------


async def test_transport_closes_the_boto3_stream_when_the_iterator_is_closed():
    env = {"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "k2", "AWS_SECRET_ACCESS_KEY": "s2",
           "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "https://bedrock.internal.example:8443"}
    settings = make_settings(**env)
    client = bedrock.get_client(settings)
    assert bedrock.get_client(make_settings(**env)) is client  # one client per configuration, per process
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.endpoint_url == "https://bedrock.internal.example:8443"
    local = FakeBedrock()
    local.install(client)
    adapter = get_adapter("bedrock")
    target = load_catalog(settings).target(CLAUDE)
    ctx = CallContext(api_key=None, base_url="", settings=settings)
    request = await adapter.build_request(parse_request({"model": CLAUDE, "messages": user("hello")}), target, ctx)
    events = adapter.transport.stream(request, ctx)
    assert await anext(events) == {"messageStart": {"role": "assistant"}}
    await events.aclose()
    assert local.closed_streams == 1
    sent = local.last()
    assert sent["url"].startswith("https://bedrock.internal.example:8443/model/")
    assert "Credential=k2/" in sent["headers"]["authorization"] and "/eu-west-1/bedrock/" in \
        sent["headers"]["authorization"]
    data = await adapter.transport.complete(request, ctx)
    assert data["output"]["message"]["content"] == [{"text": "Hello from fake-bedrock: hello"}]
