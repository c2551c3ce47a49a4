"""The Responses API through the gateway: the official openai SDK's `responses` → Skylane → fakes.

openai/* is served natively (POST /v1/responses of the fake OpenAI, relayed event for event);
anthropic/*, gemini/* and bedrock/* are bridged through the internal request and their adapters.
Stored responses (store: true) live in DynamoDB Local; stream events and Response objects are
validated against OpenAI's OpenAPI document.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from skylane.accounts.store import create_tables, dynamodb_client
from skylane.core.settings import Settings
from skylane.providers import bedrock
from tests.conftest import UPSTREAM_KEY, make_settings
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.bedrock_eventstream import FakeBedrock
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.server import serve
from tests.helpers import AWS_ENV as AWS
from tests.spec import validate, validate_response_event

NATIVE = "openai/gpt-4o-mini"
BRIDGED = ["anthropic/claude-sonnet-4-20250514", "gemini/gemini-2.5-flash",
           "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0"]
MODELS = [NATIVE, *BRIDGED]
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}, "strict": True}
PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


@pytest.fixture(scope="module")
def fakes(fake_openai: Any, responses_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    anthropic, gemini = FakeAnthropic("sk-ant-upstream-test"), FakeGemini("gemini-upstream-test")
    fb = FakeBedrock()
    fb.install(bedrock.get_client(make_settings(**{**responses_env, **AWS})))
    with serve(anthropic.app) as a_url, serve(gemini.app) as g_url:
        yield {"openai": fake_openai, "anthropic": (anthropic, a_url), "gemini": (gemini, g_url), "bedrock": fb}


@pytest.fixture(scope="module")
def responses_env(dynamo_env: dict[str, str]) -> dict[str, str]:
    """Tables (keys, limits, responses) of this module in DynamoDB Local."""
    suffix = uuid.uuid4().hex[:8]
    env = {**dynamo_env, "SKYLANE_KEYS_TABLE": f"rk-{suffix}", "SKYLANE_LIMITS_TABLE": f"rl-{suffix}",
           "SKYLANE_RESPONSES_TABLE": f"rr-{suffix}"}
    settings = Settings.from_env(env)
    create_tables(dynamodb_client(settings), settings)
    return env


@pytest.fixture(scope="module")
def gw(gateway_factory: Any, fakes: dict[str, Any], responses_env: dict[str, str]) -> str:
    return gateway_factory(
        OPENAI_API_KEY=UPSTREAM_KEY, OPENAI_BASE_URL=fakes["openai"][1],
        ANTHROPIC_API_KEY="sk-ant-upstream-test", ANTHROPIC_BASE_URL=fakes["anthropic"][1],
        GEMINI_API_KEY="gemini-upstream-test", GEMINI_BASE_URL=fakes["gemini"][1],
        SKYLANE_MAX_ATTEMPTS="1", SKYLANE_BREAKER_FAILURES="100000", **{**responses_env, **AWS})


@pytest.fixture(scope="module")
def client(gw: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw + "/v1", api_key="x", max_retries=0)


def upstream_bodies(fakes: dict[str, Any], model: str) -> list[dict[str, Any]]:
    provider = model.split("/", 1)[0]
    fake = fakes[provider] if provider == "bedrock" else fakes[provider][0]
    return [r["body"] if "body" in r else r for r in fake.requests]


def sse_events(gw: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The raw stream events (each validated against the OpenAPI document's ResponseStreamEvent)."""
    events = []
    with httpx.stream("POST", gw + "/v1/responses", json={**body, "stream": True}, timeout=30) as r:
        assert r.status_code == 200, r.read()
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                event = json.loads(line[6:])
                assert event["type"] == name
                validate_response_event(event)
                events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    return events


@pytest.mark.parametrize("model", MODELS)
def test_text(client: openai.OpenAI, gw: str, model: str) -> None:
    r = client.responses.create(model=model, input="hi there", store=False)
    assert r.status == "completed"
    assert r.output_text.startswith("Hello from fake-") and "hi there" in r.output_text
    assert r.model == model
    assert r.usage is not None and r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    raw = httpx.post(gw + "/v1/responses", json={"model": model, "input": "hi", "store": False,
                                                 "instructions": "Be brief."}, timeout=30)
    assert raw.status_code == 200
    validate("Response", raw.json())
    assert raw.json()["instructions"] == "Be brief."


def test_native_passthrough_body(client: openai.OpenAI, fakes: dict[str, Any]) -> None:
    r = client.responses.create(model=NATIVE, input=[{"role": "user", "content": "hi"}], store=False,
                                include=["reasoning.encrypted_content"], prompt_cache_key="k1",
                                reasoning={"effort": "low", "summary": "auto"}, max_output_tokens=100)
    sent = fakes["openai"][0].requests[-1]
    assert sent["path"] == "/v1/responses"
    assert sent["body"]["model"] == "gpt-4o-mini" and sent["body"]["store"] is False
    assert sent["body"]["include"] == ["reasoning.encrypted_content"] and sent["body"]["prompt_cache_key"] == "k1"
    assert sent["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert r.usage is not None and r.usage.input_tokens_details.cached_tokens == 2
    assert r.usage.output_tokens_details.reasoning_tokens == 3


@pytest.mark.parametrize("model", MODELS)
def test_stream(client: openai.OpenAI, gw: str, model: str) -> None:
    events = sse_events(gw, {"model": model, "input": "hi stream", "store": False})
    kinds = [e["type"] for e in events]
    assert kinds[-1] == "response.completed"
    for k in ("response.output_item.added", "response.content_part.added", "response.output_text.delta",
              "response.output_text.done", "response.content_part.done", "response.output_item.done"):
        assert k in kinds, k
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == text and "hi stream" in text
    assert final["usage"]["output_tokens"] > 0 and final["model"] == model
    with client.responses.stream(model=model, input="hi sdk", store=False) as stream:
        for _ in stream:
            pass
        done = stream.get_final_response()
    assert "hi sdk" in done.output_text


def _tool_loop(client: openai.OpenAI, model: str, stream: bool) -> tuple[Any, Any]:
    def create(**kw: Any) -> Any:
        if not stream:
            return client.responses.create(model=model, tools=[WEATHER], store=False, **kw)
        with client.responses.stream(model=model, tools=[WEATHER], store=False, **kw) as s:
            for _ in s:
                pass
            return s.get_final_response()

    first = create(input=[{"role": "user", "content": "tool"}])
    calls = [o for o in first.output if o.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments)["city"].startswith("Paris")
    history = [{"role": "user", "content": "tool"}, *[o.model_dump(exclude_none=True) for o in first.output],
               {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}]
    second = create(input=history)
    return calls[0], second


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("model", MODELS)
def test_function_tool_loop(client: openai.OpenAI, fakes: dict[str, Any], model: str, stream: bool) -> None:
    call, second = _tool_loop(client, model, stream)
    assert "Tool said: sunny" in second.output_text
    if model == NATIVE:
        sent = fakes["openai"][0].requests[-1]["body"]["input"]
        assert sent[-1] == {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}


@pytest.mark.parametrize("model", MODELS)
def test_structured_output(client: openai.OpenAI, model: str) -> None:
    r = client.responses.create(model=model, input="json", store=False,
                                text={"format": {"type": "json_schema", "name": "person", "schema": PERSON,
                                                 "strict": True}})
    assert isinstance(json.loads(r.output_text), dict)


@pytest.mark.parametrize("model", MODELS)
def test_previous_response_id_retrieve_delete(client: openai.OpenAI, fakes: dict[str, Any], model: str) -> None:
    first = client.responses.create(model=model, input="first turn")
    assert first.store is True
    second = client.responses.create(model=model, input="second turn", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert "second turn" in second.output_text
    sent = json.dumps(upstream_bodies(fakes, model)[-1])
    assert "first turn" in sent and first.output_text.replace('"', "") in sent.replace('\\"', "")
    # streamed, continuing the continuation
    with client.responses.stream(model=model, input="third turn", previous_response_id=second.id) as s:
        for _ in s:
            pass
        third = s.get_final_response()
    sent = json.dumps(upstream_bodies(fakes, model)[-1])
    assert "first turn" in sent and "second turn" in sent and "third turn" in third.output_text
    got = client.responses.retrieve(third.id)
    assert got.id == third.id and got.output_text == third.output_text
    items = client.responses.input_items.list(third.id, order="asc")
    texts = json.dumps([i.model_dump() for i in items.data])
    assert "first turn" in texts and "third turn" in texts
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=model, input="again", previous_response_id=first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(first.id)


def test_store_false_keeps_nothing(client: openai.OpenAI) -> None:
    r = client.responses.create(model=BRIDGED[0], input="hi", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)


def test_paths_and_errors(gw: str) -> None:
    for path in ("/responses", "/api/responses", "/v1/responses"):
        r = httpx.post(gw + path, json={"model": BRIDGED[0], "input": "hi", "store": False}, timeout=30)
        assert r.status_code == 200 and r.json()["object"] == "response"
    r = httpx.get(gw + "/v1/responses/resp_missing", timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "response_not_found"
    r = httpx.post(gw + "/v1/responses", content=b"{nope", timeout=10)
    assert r.status_code == 400 and "error" in r.json()


def test_builtin_tools(client: openai.OpenAI, fakes: dict[str, Any]) -> None:
    search = {"type": "file_search", "vector_store_ids": ["vs_1"]}
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model=BRIDGED[0], input="hi", tools=[search], store=False)
    assert "file_search" in exc.value.message
    # natively, OpenAI runs it: passed through untouched
    client.responses.create(model=NATIVE, input="hi", tools=[search], store=False)
    assert fakes["openai"][0].requests[-1]["body"]["tools"] == [search]
    # web_search (which Codex always offers) is dropped for bridged targets
    r = client.responses.create(model=BRIDGED[0], input="hi", tools=[{"type": "web_search"}, WEATHER], store=False)
    assert r.status == "completed"
    sent = fakes["anthropic"][0].requests[-1]["body"]
    assert [t["name"] for t in sent["tools"]] == ["get_weather"]


def test_incomplete(client: openai.OpenAI) -> None:
    for model in (NATIVE, BRIDGED[0]):
        r = client.responses.create(model=model, input="length", store=False, max_output_tokens=16)
        assert r.status == "incomplete"
        assert r.incomplete_details is not None and r.incomplete_details.reason == "max_output_tokens"


def test_bridged_reasoning_is_a_reasoning_item(client: openai.OpenAI, gw: str) -> None:
    model = "gemini/gemini-2.5-flash"  # the fake's "thoughts": a thought part before the answer
    think = {"summary": "auto", "effort": "low"}  # the effort turns the provider's thoughts on
    r = client.responses.create(model=model, input="thoughts", store=False, reasoning=think)
    kinds = [o.type for o in r.output]
    assert kinds == ["reasoning", "message"]
    assert r.output[0].summary[0].text == "Let me think about this secretly."
    events = sse_events(gw, {"model": model, "input": "thoughts", "store": False, "reasoning": think})
    kinds = [e["type"] for e in events]
    assert kinds.index("response.reasoning_summary_part.added") < kinds.index(
        "response.reasoning_summary_text.delta") < kinds.index("response.output_text.delta")
    assert events[-1]["response"]["output"][0]["type"] == "reasoning"
