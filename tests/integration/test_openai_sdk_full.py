"""The OpenAI Python SDK, unchanged, against Skylane: every feature people use, with an
OpenAI-compatible model (passed through) and an Anthropic model (translated both ways)."""

from __future__ import annotations

import base64
import json

import openai
import pytest
from pydantic import BaseModel

from tests.helpers import png
from tests.integration._clients import MODELS, PROVIDERS, TOOLS, greeting, two_provider_gateway
from tests.spec import validate


@pytest.fixture(scope="module")
def stack(gateway_factory, fake_openai):
    with two_provider_gateway(gateway_factory, fake_openai) as s:
        yield s


@pytest.fixture(scope="module")
def client(stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base + "/v1", api_key="sk-anything", max_retries=0)


@pytest.fixture(params=PROVIDERS)
def provider(request) -> str:
    return request.param


@pytest.fixture
def model(provider) -> str:
    return MODELS[provider]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_chat(client, stack, provider, model):
    resp = client.chat.completions.create(model=model, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi there"}])
    validate("CreateChatCompletionResponse", resp.to_dict())
    assert resp.object == "chat.completion"
    assert resp.model == model
    msg = resp.choices[0].message
    assert msg.role == "assistant" and msg.content == greeting(provider, "hi there")
    assert msg.tool_calls is None and msg.refusal is None
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    sent = stack.fake(provider).requests[-1]["body"]
    if provider == "anthropic":
        # translated: the system message moved to the top level, max_tokens filled in
        assert sent["model"] == "claude-sonnet-4-20250514"
        assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi there"}]}] or \
            sent["messages"] == [{"role": "user", "content": "hi there"}]
        assert "Be brief." in json.dumps(sent["system"])
        assert sent["max_tokens"] > 0
        # cache reads are reported as OpenAI's cached tokens
        assert resp.usage.prompt_tokens_details.cached_tokens > 0
    else:
        assert sent["model"] == "gpt-4o-mini" and sent["messages"][0]["role"] == "system"


def test_with_raw_response_headers(client, model):
    raw = client.chat.completions.with_raw_response.create(model=model, messages=user("headers"))
    assert raw.http_request.url.path == "/v1/chat/completions"
    assert raw.headers["x-request-id"]
    assert 0 < float(raw.headers["x-skylane-overhead-ms"]) < 5000
    assert raw.parse().choices[0].message.content.endswith(": headers")


def test_streaming(client, provider, model):
    stream = client.chat.completions.create(model=model, messages=user("stream me"), stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    for ch in chunks:
        validate("CreateChatCompletionStreamResponse", ch.to_dict())
        assert ch.object == "chat.completion.chunk" and ch.model == model
    assert len({ch.id for ch in chunks}) == 1
    with_choices = [ch for ch in chunks if ch.choices]
    assert with_choices[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in with_choices)
    assert text == greeting(provider, "stream me")
    assert len([ch for ch in with_choices if ch.choices[0].delta.content]) > 1, "streamed in pieces"
    finishes = [ch.choices[0].finish_reason for ch in with_choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage.completion_tokens > 0
    if provider == "anthropic":
        assert usage_chunk.usage.prompt_tokens_details.cached_tokens > 0


def test_streaming_without_usage_has_no_usage_chunk(client, provider, model):
    chunks = list(client.chat.completions.create(model=model, messages=user("plain"), stream=True))
    assert all(ch.choices for ch in chunks)
    assert all(ch.usage is None for ch in chunks)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == greeting(provider, "plain")


def test_stream_helper_accumulates(client, provider, model):
    with client.chat.completions.stream(model=model, messages=user("helper")) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == greeting(provider, "helper")
    assert final.choices[0].finish_reason == "stop"


def test_tools_round_trip(client, model):
    messages: list = user("tool: what is the weather in Paris?")
    resp = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris0"}
    assert call.id
    # answer the call: the provider sees the result and replies to it
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24C"}]
    resp2 = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    assert resp2.choices[0].message.content == "Tool said: sunny, 24C"
    assert resp2.choices[0].finish_reason == "stop"


def test_tools_streaming(client, model):
    stream = client.chat.completions.create(model=model, messages=user("tool please"), tools=TOOLS,
                                            tool_choice="auto", stream=True)
    calls: dict[int, dict] = {}
    finish = None
    for ch in stream:
        validate("CreateChatCompletionStreamResponse", ch.to_dict())
        for tc in ch.choices[0].delta.tool_calls or []:
            slot = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
            if tc.id:
                assert slot["id"] is None, "id only on the first delta of a call"
                slot["id"] = tc.id
            if tc.function and tc.function.name:
                slot["name"] = tc.function.name
            slot["arguments"] += (tc.function.arguments or "") if tc.function else ""
        finish = ch.choices[0].finish_reason or finish
    assert list(calls) == [0]
    assert calls[0]["id"] and calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris0"}
    assert finish == "tool_calls"


def test_parallel_tools(client, model):
    resp = client.chat.completions.create(model=model, messages=user("tools2 weather and time"), tools=TOOLS)
    calls = resp.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris0"}, {"city": "Paris1"}]
    assert len({c.id for c in calls}) == 2
    # both results go back in one turn
    messages = user("tools2 weather and time") + [resp.choices[0].message.model_dump(exclude_none=True)]
    messages += [{"role": "tool", "tool_call_id": c.id, "content": f"result {i}"} for i, c in enumerate(calls)]
    resp2 = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    assert resp2.choices[0].message.content == "Tool said: result 1"


def test_parallel_tools_streaming_dense_indexes(client, model):
    # the Anthropic fake puts a text block first, so its tool_use blocks sit at content indexes 1 and 2:
    # OpenAI clients must still see tool-call indexes 0 and 1
    with client.chat.completions.stream(model=model, messages=user("tools2 both"), tools=TOOLS) as stream:
        indexes = {tc.index for ev in stream if ev.type == "chunk"
                   for tc in (ev.chunk.choices[0].delta.tool_calls or [] if ev.chunk.choices else [])}
        final = stream.get_final_completion()
    assert indexes == {0, 1}
    calls = final.choices[0].message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris0"}), ("get_time", {"city": "Paris1"})]
    assert final.choices[0].finish_reason == "tool_calls"


def test_json_mode(client, model):
    resp = client.chat.completions.create(model=model, messages=user("json please"),
                                          response_format={"type": "json_object"})
    assert json.loads(resp.choices[0].message.content) == {"answer": 42}
    assert resp.choices[0].finish_reason == "stop"


class Answer(BaseModel):
    answer: int


def test_json_schema_parse_with_pydantic(client, stack, provider, model):
    completion = client.chat.completions.parse(model=model, messages=user("json: the answer"),
                                               response_format=Answer)
    msg = completion.choices[0].message
    assert isinstance(msg.parsed, Answer) and msg.parsed.answer == 42
    assert msg.tool_calls in (None, [])  # a forced tool used for structure is not shown as a call
    assert completion.choices[0].finish_reason == "stop"
    sent = stack.fake(provider).requests[-1]["body"]
    if provider == "openai":
        assert sent["response_format"]["type"] == "json_schema"
        assert sent["response_format"]["json_schema"]["name"] == "Answer"


def test_json_schema_parse_streaming(client, model):
    with client.chat.completions.stream(model=model, messages=user("json streamed"),
                                        response_format=Answer) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == Answer(answer=42)


def test_vision_data_url(client, stack, provider, model):
    image = png()
    url = "data:image/png;base64," + base64.b64encode(image).decode()
    resp = client.chat.completions.create(model=model, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": url, "detail": "low"}}]}])
    assert resp.choices[0].message.content == f"I see an image (image/png, {len(image)} bytes)"
    if provider == "anthropic":
        sent = stack.anthropic.requests[-1]["body"]["messages"][-1]["content"]
        [img] = [b for b in sent if b["type"] == "image"]
        assert img["source"] == {"type": "base64", "media_type": "image/png",
                                 "data": base64.b64encode(image).decode()}


def test_models_list_and_retrieve(client):
    ids = [m.id for m in client.models.list()]
    assert MODELS["openai"] in ids and MODELS["anthropic"] in ids
    assert not any(i.startswith(("groq/", "gemini/")) for i in ids), "only configured providers"
    m = client.models.retrieve(MODELS["anthropic"])
    assert m.id == MODELS["anthropic"] and m.object == "model" and m.owned_by


# ---- errors arrive as the SDK's own exception types -----------------------------------------


def test_not_found_error(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nosuch/model", messages=user("x"))
    assert info.value.status_code == 404
    assert info.value.code == "model_not_found"
    assert info.value.message.endswith("Model not found: nosuch/model")


def test_bad_request_error_names_the_param(client, model):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=user("x"), temperature=7)
    assert info.value.status_code == 400 and info.value.param == "temperature"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=[])
    assert info.value.body["message"] == "Messages array cannot be empty"


def test_upstream_bad_request_is_bad_request(client, model):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=user("error:400"))
    assert info.value.status_code == 400
    assert "fake failure 400" in info.value.message


def test_rate_limit_error(client, model):
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=model, messages=user("error:429"))
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "1"
    assert info.value.type == "rate_limit_error"


def test_upstream_server_error(client, model):
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=model, messages=user("error:500"))
    assert info.value.status_code >= 500


def test_error_in_a_started_stream_raises(client, model):
    stream = client.chat.completions.create(model=model, messages=user("midstream"), stream=True)
    seen = ""
    with pytest.raises(openai.APIError) as info:
        for ch in stream:
            seen += ch.choices[0].delta.content or "" if ch.choices else ""
    assert seen == "partial"
    assert info.value.message


def test_sdk_retries_are_the_clients_business(stack, model):
    """With the SDK's default retries on, a 429 is retried by the SDK and still raises RateLimitError."""
    c = openai.OpenAI(base_url=stack.base + "/v1", api_key="x", max_retries=1)
    fake = stack.fake(model.split("/")[0])
    before = len(fake.requests)
    with pytest.raises(openai.RateLimitError):
        c.chat.completions.create(model=model, messages=user("error:429"))
    assert len(fake.requests) - before == 2


# ---- with auth on (DynamoDB Local): the key's own errors ------------------------------------


@pytest.fixture
def authed(auth_gateway, stack):
    """A gateway with auth enabled on fresh tables; both providers pointed at this module's fakes."""
    a = stack.anthropic_env
    return auth_gateway(ANTHROPIC_API_KEY=a["ANTHROPIC_API_KEY"], ANTHROPIC_BASE_URL=a["ANTHROPIC_BASE_URL"],
                        SKYLANE_MAX_ATTEMPTS="1")


def test_authentication_error(authed, make_key, provider, model):
    good = make_key("sdk")
    ok = openai.OpenAI(base_url=authed + "/v1", api_key=good.key, max_retries=0)
    assert ok.chat.completions.create(model=model, messages=user("authed")).choices[0].message.content == \
        greeting(provider, "authed")
    altered = good.key[:-1] + ("Y" if good.key.endswith("Z") else "Z")  # really another secret
    for bad in ("sk-skylane-nosuchkey0000-" + "x" * 43, "not-a-skylane-key", altered):
        c = openai.OpenAI(base_url=authed + "/v1", api_key=bad, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as info:
            c.chat.completions.create(model=model, messages=user("x"))
        assert info.value.status_code == 401
        assert bad not in info.value.message
        with pytest.raises(openai.AuthenticationError):
            list(c.chat.completions.create(model=model, messages=user("x"), stream=True))


def test_permission_denied_error(authed, make_key, provider, model):
    other = "anthropic/*" if provider == "openai" else "openai/*"
    key = make_key("narrow", models=[other])
    c = openai.OpenAI(base_url=authed + "/v1", api_key=key.key, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as info:
        c.chat.completions.create(model=model, messages=user("x"))
    assert info.value.status_code == 403
    assert model not in [m.id for m in c.models.list()], "a key lists only the models it may use"


def test_key_rate_limit_is_a_rate_limit_error(authed, make_key, model):
    key = make_key("slow", rpm=1)
    c = openai.OpenAI(base_url=authed + "/v1", api_key=key.key, max_retries=0)
    c.chat.completions.create(model=model, messages=user("first"))
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model=model, messages=user("second"))
    assert info.value.status_code == 429
    assert int(info.value.response.headers["retry-after"]) >= 1
