"""The foundation through the real OpenAI SDK: an OpenAI-compatible upstream on loopback."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.spec import validate

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
         {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}]


def client(base: str, suffix: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=base + suffix, api_key="anything", max_retries=0)


@pytest.mark.parametrize("suffix", ["/", "/v1", "/api", "/v1/"])
def test_chat_non_streaming_every_base_url_style(gateway, fake_openai, suffix):
    c = client(gateway, suffix)
    resp = c.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert resp.choices[0].message.content == "Hello from fake-openai: hi"
    assert resp.model == "openai/gpt-4o-mini"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.completion_tokens == 7
    fake, _ = fake_openai
    assert fake.requests[-1]["body"]["model"] == "gpt-4o-mini"
    assert fake.requests[-1]["headers"]["authorization"] == "Bearer sk-upstream-test"


def test_response_conforms_to_spec_and_has_gateway_headers(gateway):
    r = httpx.post(gateway + "/v1/chat/completions", headers={"x-request-id": "trace-123"},
                   json={"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "spec"}]})
    assert r.status_code == 200
    body = r.json()
    validate("CreateChatCompletionResponse", body)
    assert body["choices"][0]["message"]["refusal"] is None
    assert body["choices"][0]["logprobs"] is None
    assert r.headers["x-request-id"] == "trace-123"
    assert 0 < float(r.headers["x-skylane-overhead-ms"]) < 5000  # time the gateway itself took
    assert float(r.headers["x-skylane-cost-usd"]) > 0


def test_unknown_fields_pass_through_untouched(gateway, fake_openai):
    httpx.post(gateway + "/v1/chat/completions", json={
        "model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}],
        "service_tier": "flex", "prediction": {"type": "content", "content": "abc"}, "seed": 7,
        "models": ["openai/gpt-4o-mini"]})
    body = fake_openai[0].requests[-1]["body"]
    assert body["service_tier"] == "flex" and body["prediction"] == {"type": "content", "content": "abc"}
    assert body["seed"] == 7 and "models" not in body


def test_alias_resolves(gateway, fake_openai):
    resp = client(gateway).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}])
    assert resp.model == "gpt-4o-mini"
    assert fake_openai[0].requests[-1]["body"]["model"] == "gpt-4o-mini"


@pytest.mark.parametrize("suffix", ["/", "/v1", "/api"])
def test_streaming_chunks(gateway, fake_openai, suffix):
    c = client(gateway, suffix)
    stream = c.chat.completions.create(model="openai/gpt-4o-mini", stream=True,
                                       stream_options={"include_usage": True},
                                       messages=[{"role": "user", "content": "stream please"}])
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "Hello from fake-openai: stream please"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 7
    finals = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
    assert finals[-1] == "stop" and all(f is None for f in finals[:-1])
    assert {ch.id for ch in chunks} == {chunks[0].id}
    assert all(ch.model == "openai/gpt-4o-mini" for ch in chunks)
    # the upstream was asked for usage
    assert fake_openai[0].requests[-1]["body"]["stream_options"] == {"include_usage": True}


def test_stream_without_include_usage_has_no_usage_chunk_but_upstream_reports_it(gateway, fake_openai):
    with httpx.stream("POST", gateway + "/v1/chat/completions", json={
            "model": "openai/gpt-4o-mini", "stream": True,
            "messages": [{"role": "user", "content": "raw"}]}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    payloads = [json.loads(ln[6:]) for ln in lines[:-1]]
    for p in payloads:
        validate("CreateChatCompletionStreamResponse", p)
        assert p["choices"], "no usage chunk without include_usage"
        assert "usage" not in p
    assert fake_openai[0].requests[-1]["body"]["stream_options"]["include_usage"] is True


def test_tools_non_streaming_and_streaming(gateway):
    c = client(gateway)
    resp = c.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "tools2"}],
                                     tools=TOOLS)
    calls = resp.choices[0].message.tool_calls
    assert [t.function.name for t in calls] == ["get_weather", "get_time"]
    assert resp.choices[0].finish_reason == "tool_calls"
    stream = c.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "tool"}],
                                       tools=TOOLS, stream=True)
    args = ""
    names = []
    finish = None
    for ch in stream:
        for tc in ch.choices[0].delta.tool_calls or []:
            assert tc.index == 0
            if tc.function.name:
                names.append(tc.function.name)
            args += tc.function.arguments or ""
        finish = ch.choices[0].finish_reason or finish
    assert names == ["get_weather"] and json.loads(args) == {"city": "Paris0"} and finish == "tool_calls"


def test_json_mode(gateway):
    resp = client(gateway).chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "json"}],
        response_format={"type": "json_object"})
    assert json.loads(resp.choices[0].message.content)["answer"] == 42


@pytest.mark.parametrize("status,exc", [(400, openai.BadRequestError), (429, openai.RateLimitError),
                                        (500, openai.APIStatusError), (503, openai.APIStatusError)])
def test_upstream_errors_map_to_openai_errors(gateway, status, exc):
    with pytest.raises(exc) as info:
        client(gateway).chat.completions.create(model="openai/gpt-4o",
                                                messages=[{"role": "user", "content": f"error:{status}"}])
    expected = {400: 400, 429: 429, 500: 502, 503: 503}[status]
    assert info.value.status_code == expected
    body = info.value.response.json()
    validate("ErrorResponse", body)
    assert "sk-upstream-test" not in info.value.response.text


def test_upstream_auth_failure_does_not_leak_key(gateway_factory, fake_openai):
    base = gateway_factory(OPENAI_API_KEY="sk-wrong-secret-value", OPENAI_BASE_URL=fake_openai[1])
    r = httpx.post(base + "/v1/chat/completions",
                   json={"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_auth_failed"
    assert "sk-wrong" not in r.text and "sk-up" not in r.text


def test_mid_stream_error_becomes_error_event(gateway):
    with pytest.raises(openai.APIError) as info:
        for _ in client(gateway).chat.completions.create(
                model="openai/gpt-4o", stream=True, messages=[{"role": "user", "content": "midstream"}]):
            pass
    assert "error" in str(info.value).lower()


def test_default_model_used_when_missing(gateway_factory, fake_openai):
    base = gateway_factory(OPENAI_API_KEY="sk-upstream-test", OPENAI_BASE_URL=fake_openai[1],
                           SKYLANE_DEFAULT_MODEL="openai/gpt-4o-mini")
    r = httpx.post(base + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "d"}]})
    assert r.status_code == 200 and r.json()["model"] == "openai/gpt-4o-mini"


def test_integral_float_integers_reach_the_provider_as_integers(gateway, fake_openai):
    r = httpx.post(gateway + "/v1/chat/completions", json={"model": "openai/gpt-4o-mini", "max_tokens": 50.0,
                                                           "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text
    sent = fake_openai[0].requests[-1]["body"]["max_tokens"]
    assert sent == 50 and isinstance(sent, int)
