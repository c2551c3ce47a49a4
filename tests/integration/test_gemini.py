"""Gemini through the gateway: the real openai SDK → Skylane → the fake Gemini API on loopback."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.server import serve
from tests.helpers import SINGLE_ATTEMPT as ENV
from tests.helpers import stream_chat
from tests.spec import validate

KEY = "gemini-upstream-test"
MODEL = "gemini/gemini-2.5-flash"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
         {"type": "function", "function": {"name": "get_time", "description": "Local time in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
# one attempt (a fake 429 is not retried) and a breaker that never opens


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeGemini, str]]:
    f = FakeGemini(KEY)
    with serve(f.app) as url:
        yield f, url


@pytest.fixture(scope="module")
def gw(gateway_factory, fake) -> str:
    return gateway_factory(GEMINI_API_KEY=KEY, GEMINI_BASE_URL=fake[1], **ENV)


@pytest.fixture(scope="module")
def client(gw) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw + "/v1", api_key="x", max_retries=0) as sdk:  # its pool closed after the module
        yield sdk


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def last(fake: tuple[FakeGemini, str]) -> dict[str, Any]:
    return fake[0].requests[-1]


def sse_chunks(gw: str, body: dict[str, Any]) -> tuple[httpx.Response, list[Any]]:
    """POST a streaming request with httpx; every data event parsed (the [DONE] marker kept as a string)."""
    return stream_chat(gw, body)


# ---- text and usage --------------------------------------------------------------------------


def test_text_answer_usage_and_wire_request(client, gw, fake):
    resp = client.chat.completions.create(model=MODEL, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi there"}],
        temperature=0.2, max_completion_tokens=64, stop=["END"])
    assert resp.choices[0].message.content == "Hello from fake-gemini: hi there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == MODEL and resp.id.startswith("chatcmpl-")
    rec = last(fake)
    assert rec["path"] == "/v1beta/models/gemini-2.5-flash:generateContent" and rec["query"] == {}
    assert rec["headers"]["x-goog-api-key"] == KEY and "authorization" not in rec["headers"]
    assert rec["body"]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert rec["body"]["contents"] == [{"role": "user", "parts": [{"text": "hi there"}]}]
    assert rec["body"]["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 64, "stopSequences": ["END"]}
    u = resp.usage
    prompt = max(8, len(json.dumps(rec["body"]["contents"])) // 4)
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (prompt, 7 + 5, prompt + 12)
    assert u.prompt_tokens_details.cached_tokens == 4
    assert u.completion_tokens_details.reasoning_tokens == 5


def test_raw_response_conforms_to_spec_and_is_priced(gw):
    r = httpx.post(gw + "/v1/chat/completions", json={"model": MODEL, "messages": user("spec")})
    assert r.status_code == 200
    validate("CreateChatCompletionResponse", r.json())
    assert float(r.headers["x-skylane-cost-usd"]) > 0


def test_thought_parts_never_reach_the_client(client):
    resp = client.chat.completions.create(model=MODEL, messages=user("thoughts please"))
    assert resp.choices[0].message.content == "Hello from fake-gemini: thoughts please"


def test_n_candidates(client, fake):
    resp = client.chat.completions.create(model=MODEL, messages=user("two answers"), n=2)
    assert [c.index for c in resp.choices] == [0, 1]
    assert all(c.message.content == "Hello from fake-gemini: two answers" for c in resp.choices)
    assert last(fake)["body"]["generationConfig"]["candidateCount"] == 2


# ---- streams ---------------------------------------------------------------------------------


def test_stream_with_usage(client, fake):
    chunks = list(client.chat.completions.create(model=MODEL, messages=user("stream this please"), stream=True,
                                                 stream_options={"include_usage": True}))
    rec = last(fake)
    assert rec["path"].endswith(":streamGenerateContent") and rec["query"] == {"alt": "sse"}
    assert "stream_options" not in rec["body"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from fake-gemini: stream this please"
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and all(f is None for f in finishes[:-1])
    assert chunks[-1].choices == []
    u = chunks[-1].usage
    prompt = max(8, len(json.dumps(rec["body"]["contents"])) // 4)
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (prompt, 12, prompt + 12)
    assert u.prompt_tokens_details.cached_tokens == 4 and u.completion_tokens_details.reasoning_tokens == 5
    assert len({c.id for c in chunks}) == 1


def test_stream_raw_chunks_conform_and_no_usage_chunk_unless_asked(gw):
    r, events = sse_chunks(gw, {"model": MODEL, "messages": user("raw stream")})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    for e in events[:-1]:
        validate("CreateChatCompletionStreamResponse", e)
        assert e["choices"] and "usage" not in e


# ---- media -----------------------------------------------------------------------------------


def test_image_data_url(client, fake):
    img = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
    url = "data:image/png;base64," + base64.b64encode(img).decode()
    resp = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url}}]}])
    assert resp.choices[0].message.content == f"I see an image (image/png, {len(img)} bytes)"
    parts = last(fake)["body"]["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(img).decode()}}


def test_youtube_video_becomes_file_data(client, fake):
    yt = "https://www.youtube.com/watch?v=9hE5-98ZeCg"
    resp = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "text", "text": "summarise"}, {"type": "video_url", "video_url": {"url": yt}}]}])
    assert yt in resp.choices[0].message.content
    assert last(fake)["body"]["contents"][0]["parts"][1] == {"fileData": {"fileUri": yt}}


# ---- tools -----------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt,names", [("tool please", ["get_weather"]),
                                          ("tools2 please", ["get_weather", "get_time"])])
def test_tool_calls(client, fake, prompt, names):
    resp = client.chat.completions.create(model=MODEL, messages=user(prompt), tools=TOOLS, tool_choice="auto")
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == names
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": f"Paris{i}"} for i in range(len(names))]
    assert len({c.id for c in calls}) == len(calls) and all(c.id.startswith("call_") for c in calls)
    body = last(fake)["body"]
    assert body["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == TOOLS[0]["function"]["parameters"]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


@pytest.mark.parametrize("prompt,count", [("tool please", 1), ("tools2 please", 2)])
def test_tool_calls_stream(client, gw, prompt, count):
    chunks = list(client.chat.completions.create(model=MODEL, messages=user(prompt), tools=TOOLS, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [d.index for d in deltas] == list(range(count))
    assert all(d.id and d.type == "function" for d in deltas)
    assert [json.loads(d.function.arguments) for d in deltas] == [{"city": f"Paris{i}"} for i in range(count)]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    _, raw = sse_chunks(gw, {"model": MODEL, "messages": user(prompt), "tools": TOOLS})
    for e in raw[:-1]:
        validate("CreateChatCompletionStreamResponse", e)


def test_multi_turn_with_tool_results(client, fake):
    first = client.chat.completions.create(model=MODEL, messages=user("tools2 now"), tools=TOOLS)
    calls = first.choices[0].message.tool_calls
    messages = [*user("tools2 now"), first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp": 21}'},
                {"role": "tool", "tool_call_id": calls[1].id, "content": "sunny"}]
    resp = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert resp.choices[0].message.content == "Tool said: sunny"
    contents = last(fake)["body"]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"] == [{"functionCall": {"name": "get_weather", "args": {"city": "Paris0"}}},
                                    {"functionCall": {"name": "get_time", "args": {"city": "Paris1"}}}]
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
        {"functionResponse": {"name": "get_time", "response": {"content": "sunny"}}}]


def test_tool_result_with_unknown_id_is_400(client):
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model=MODEL, messages=[
            *user("x"), {"role": "tool", "tool_call_id": "call_nope", "content": "r"}])
    assert exc.value.body["param"] == "messages[1].tool_call_id"


# ---- JSON mode -------------------------------------------------------------------------------


def test_json_object(client, fake):
    resp = client.chat.completions.create(model=MODEL, messages=user("json please"),
                                          response_format={"type": "json_object"})
    assert json.loads(resp.choices[0].message.content) == {"answer": 42}
    assert last(fake)["body"]["generationConfig"] == {"responseMimeType": "application/json"}


def test_json_schema(client, fake):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"],
              "additionalProperties": False}
    resp = client.chat.completions.create(model=MODEL, messages=user("json with schema"), response_format={
        "type": "json_schema", "json_schema": {"name": "answer", "strict": True, "schema": schema}})
    assert json.loads(resp.choices[0].message.content) == {"answer": 42}
    assert last(fake)["body"]["generationConfig"] == {"responseMimeType": "application/json",
                                                      "responseJsonSchema": schema}


def test_unsupported_parameter_is_400_before_the_upstream(client, fake):
    before = len(fake[0].requests)
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model=MODEL, messages=user("x"), logit_bias={"1": 5})
    assert exc.value.body["code"] == "unsupported_parameter" and exc.value.body["param"] == "logit_bias"
    assert len(fake[0].requests) == before


# ---- finish reasons --------------------------------------------------------------------------


@pytest.mark.parametrize("prompt,finish", [("length please", "length"), ("safety please", "content_filter"),
                                           ("blocked please", "content_filter")])
def test_finish_reasons(client, prompt, finish):
    resp = client.chat.completions.create(model=MODEL, messages=user(prompt))
    assert resp.choices[0].finish_reason == finish
    chunks = list(client.chat.completions.create(model=MODEL, messages=user(prompt), stream=True,
                                                 stream_options={"include_usage": True}))
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == finish
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0


def test_malformed_function_call_is_502(client):
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model=MODEL, messages=user("malformed"), tools=TOOLS)
    assert exc.value.status_code == 502


# ---- errors ----------------------------------------------------------------------------------


def test_400_passes_the_message(client):
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model=MODEL, messages=user("error:400"))
    assert "Invalid JSON payload" in exc.value.body["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_429_retry_info_becomes_retry_after(gw, stream):
    r = httpx.post(gw + "/v1/chat/completions", json={"model": MODEL, "messages": user("error:429:7"),
                                                     "stream": stream})
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    validate("ErrorResponse", r.json())
    assert r.json()["error"]["type"] == "rate_limit_error"


def test_429_through_the_sdk(client):
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model=MODEL, messages=user("error:429"))
    assert exc.value.response.headers["retry-after"] == "1"


def test_503(client):
    with pytest.raises(openai.InternalServerError) as exc:
        client.chat.completions.create(model=MODEL, messages=user("error:503"))
    assert exc.value.status_code == 503


def test_403_is_502_without_the_provider_text(client):
    with pytest.raises(openai.APIStatusError) as exc:
        client.chat.completions.create(model=MODEL, messages=user("error:403"))
    assert exc.value.status_code == 502
    assert "caller does not have permission" not in json.dumps(exc.value.body)


def test_wrong_gateway_key_is_502_and_never_leaks(gateway_factory, fake):
    gw = gateway_factory(GEMINI_API_KEY="wrong-key-123", GEMINI_BASE_URL=fake[1], **ENV)
    r = httpx.post(gw + "/v1/chat/completions", json={"model": MODEL, "messages": user("hi")})
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_auth_failed"
    assert "wrong-key-123" not in r.text and "API key not valid" not in r.text
    assert fake[0].requests[-1]["headers"]["x-goog-api-key"] == "wrong-key-123"


def test_midstream_error(client):
    stream = client.chat.completions.create(model=MODEL, messages=user("midstream please"), stream=True)
    got: list[str] = []
    with pytest.raises(openai.APIError) as exc:
        for c in stream:
            if c.choices:
                got.append(c.choices[0].delta.content or "")
    assert "".join(got) == "Hello"
    assert "internal error" in str(exc.value.message)


def test_midstream_error_raw(gw):
    r, events = sse_chunks(gw, {"model": MODEL, "messages": user("midstream")})
    assert r.status_code == 200
    assert events[-1] != "[DONE]"
    validate("ErrorResponse", events[-1])
