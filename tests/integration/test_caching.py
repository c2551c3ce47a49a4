"""Prompt caching and the providers' input rules through the gateway: the real openai SDK → Skylane →
the Anthropic / Bedrock / OpenAI-compatible fakes (which refuse what the providers refuse)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from skylane.core.catalog import load_catalog
from skylane.providers import bedrock
from tests.conftest import UPSTREAM_KEY, make_settings
from tests.fakes.anthropic_upstream import CACHE_CREATION, CACHE_READ, FakeAnthropic
from tests.fakes.bedrock_eventstream import CACHE_WRITE, FakeBedrock
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.server import serve
from tests.helpers import AWS_ENV as AWS
from tests.helpers import stream_chat

pytestmark = pytest.mark.integration

ANT_KEY = "sk-ant-upstream-test"
GEM_KEY = "gemini-upstream-test"
ANTHROPIC = "anthropic/claude-sonnet-4-5-20250929"
BEDROCK_CLAUDE = "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
NOVA = "bedrock/amazon.nova-pro-v1:0"
MISTRAL = "mistral/mistral-small-latest"
EPHEMERAL = {"type": "ephemeral"}
TOOLS = [{"type": "function", "cache_control": EPHEMERAL, "function": {
    "name": "weather.get now", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
CACHED_PROMPT = [
    {"role": "system", "content": [{"type": "text", "text": "A long policy. " * 20, "cache_control": EPHEMERAL}]},
    {"role": "user", "content": [{"type": "text", "text": "the question",
                                  "prompt_cache_breakpoint": {"mode": "explicit", "ttl": "30m"}}]},
]


@pytest.fixture(scope="module")
def fakes(fake_openai) -> Iterator[dict[str, Any]]:
    ant, bed, gem = FakeAnthropic(ANT_KEY), FakeBedrock(), FakeGemini(GEM_KEY)
    bed.install(bedrock.get_client(make_settings(**AWS)))
    with serve(ant.app) as ant_url, serve(gem.app) as gem_url:
        yield {"anthropic": ant, "bedrock": bed, "gemini": gem, "ant_url": ant_url, "gem_url": gem_url,
               "openai": fake_openai[0], "openai_url": fake_openai[1]}


@pytest.fixture(scope="module")
def gw(gateway_factory, fakes) -> str:
    return gateway_factory(ANTHROPIC_API_KEY=ANT_KEY, ANTHROPIC_BASE_URL=fakes["ant_url"],
                           MISTRAL_API_KEY=UPSTREAM_KEY, MISTRAL_BASE_URL=fakes["openai_url"],
                           OPENAI_API_KEY=UPSTREAM_KEY, OPENAI_BASE_URL=fakes["openai_url"],
                           GEMINI_API_KEY=GEM_KEY, GEMINI_BASE_URL=fakes["gem_url"],
                           SKYLANE_MAX_ATTEMPTS="1", SKYLANE_BREAKER_FAILURES="100000", **AWS)


@pytest.fixture(scope="module")
def client(gw) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw + "/v1", api_key="x", max_retries=0) as sdk:  # its pool closed after the module
        yield sdk


def ant_sent(fakes: dict[str, Any]) -> dict[str, Any]:
    return fakes["anthropic"].requests[-1]["body"]


def bed_sent(fakes: dict[str, Any]) -> dict[str, Any]:
    return fakes["bedrock"].last()["body"]


def micros(model: str, prompt: int, output: int, read: int, write: int) -> int:
    """The exact cost from the catalog row's list prices (USD per 1M tokens = micro-dollars per token)."""
    m = load_catalog(make_settings()).lookup(model)
    assert m.cached_input_price is not None and m.cache_write_price is not None
    return round((prompt - read - write) * m.input_price + read * m.cached_input_price
                 + write * m.cache_write_price + output * m.output_price)


# ---- cache breakpoints and their price ---------------------------------------------------------


def test_anthropic_cache_control_and_cost(gw, fakes):
    r = httpx.post(gw + "/v1/chat/completions", json={"model": ANTHROPIC, "messages": CACHED_PROMPT,
                                                      "tools": TOOLS})
    assert r.status_code == 200, r.text
    sent = ant_sent(fakes)
    assert sent["system"][0]["cache_control"] == EPHEMERAL
    # OpenAI's prompt_cache_breakpoint (a minimum lifetime) asks for the 1-hour tier
    assert sent["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert sent["tools"][0]["cache_control"] == EPHEMERAL
    u = fakes["anthropic"].usages[-1]
    usage = r.json()["usage"]
    prompt = u["input_tokens"] + CACHE_READ + CACHE_CREATION
    assert usage["prompt_tokens"] == prompt
    assert usage["prompt_tokens_details"] == {"cached_tokens": CACHE_READ, "cache_write_tokens": CACHE_CREATION}
    expected = micros(ANTHROPIC, prompt, u["output_tokens"], CACHE_READ, CACHE_CREATION)
    assert r.headers["x-skylane-cost-usd"] == f"{expected / 1_000_000:.6f}"
    assert usage["cost"] == round(expected / 1_000_000, 6)


def test_anthropic_streamed_cost(gw, fakes):
    r, events = stream_chat(gw, {"model": ANTHROPIC, "messages": CACHED_PROMPT,
                                 "stream_options": {"include_usage": True}})
    assert r.status_code == 200
    usage = events[-2]["usage"]
    u = fakes["anthropic"].usages[-1]
    expected = micros(ANTHROPIC, usage["prompt_tokens"], u["output_tokens"], CACHE_READ, CACHE_CREATION)
    assert usage["cost"] == round(expected / 1_000_000, 6) > 0


@pytest.mark.parametrize("stream", [False, True])
def test_bedrock_cache_points_and_cost(gw, fakes, stream):
    messages = [*CACHED_PROMPT, {"role": "assistant", "content": "noted", "cache_control": EPHEMERAL},
                {"role": "user", "content": "again"}]
    body: dict[str, Any] = {"model": BEDROCK_CLAUDE, "messages": messages, "tools": TOOLS}
    if stream:
        r, events = stream_chat(gw, {**body, "stream_options": {"include_usage": True}})
        usage = events[-2]["usage"]
    else:
        r = httpx.post(gw + "/v1/chat/completions", json=body)
        usage = r.json()["usage"]
    assert r.status_code == 200
    sent = bed_sent(fakes)
    point = {"cachePoint": {"type": "default"}}
    assert sent["system"][1] == point
    assert sent["messages"][0]["content"][1] == {"cachePoint": {"type": "default", "ttl": "1h"}}
    assert sent["messages"][1]["content"] == [{"text": "noted"}, point]
    assert sent["toolConfig"]["tools"][1] == point
    assert usage["prompt_tokens_details"] == {"cached_tokens": 3, "cache_write_tokens": CACHE_WRITE}
    expected = micros(BEDROCK_CLAUDE, usage["prompt_tokens"], 7, 3, CACHE_WRITE)
    assert usage["cost"] == round(expected / 1_000_000, 6)
    if not stream:
        assert r.headers["x-skylane-cost-usd"] == f"{expected / 1_000_000:.6f}"


def test_bedrock_model_without_caching_gets_no_cache_point(client, fakes):
    client.chat.completions.create(model="bedrock/meta.llama3-1-70b-instruct-v1:0", messages=CACHED_PROMPT)
    assert not any("cachePoint" in b for b in bed_sent(fakes).get("system", []))


def test_openai_gets_the_breakpoint_unchanged(client, fakes):
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=CACHED_PROMPT, prompt_cache_key="k1")
    sent = fakes["openai"].requests[-1]["body"]
    assert sent["messages"][1]["content"][0]["prompt_cache_breakpoint"] == {"mode": "explicit", "ttl": "30m"}
    assert sent["prompt_cache_key"] == "k1"


# ---- the providers' rules ------------------------------------------------------------------------


@pytest.mark.parametrize("model", [ANTHROPIC, BEDROCK_CLAUDE])
def test_temperature_and_top_p_only_temperature_sent(client, fakes, model):
    resp = client.chat.completions.create(model=model, temperature=0.3, top_p=0.9,
                                          messages=[{"role": "user", "content": "hi"}])
    assert resp.choices[0].message.content.startswith("Hello from fake-")
    if model == ANTHROPIC:
        assert ant_sent(fakes)["temperature"] == 0.3 and "top_p" not in ant_sent(fakes)
    else:
        assert bed_sent(fakes)["inferenceConfig"]["temperature"] == 0.3
        assert "topP" not in bed_sent(fakes)["inferenceConfig"]


@pytest.mark.parametrize("model", [ANTHROPIC, BEDROCK_CLAUDE])
def test_tool_names_with_dots_and_spaces_round_trip(client, gw, fakes, model):
    messages = [{"role": "user", "content": "tool please"}]
    resp = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    call = resp.choices[0].message.tool_calls[0]
    assert call.function.name == "weather.get now"
    wire = (ant_sent(fakes)["tools"][0]["name"] if model == ANTHROPIC
            else bed_sent(fakes)["toolConfig"]["tools"][0]["toolSpec"]["name"])
    assert wire.startswith("weather_get_now_")
    r, events = stream_chat(gw, {"model": model, "messages": messages, "tools": TOOLS})
    names = [tc["function"]["name"] for e in events if isinstance(e, dict) and e.get("choices")
             for tc in e["choices"][0]["delta"].get("tool_calls") or () if "name" in tc.get("function", {})]
    assert names == ["weather.get now"]
    # the history with the client's name goes back under the wire name
    follow = [*messages, resp.choices[0].message.model_dump(exclude_none=True),
              {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    assert client.chat.completions.create(model=model, messages=follow, tools=TOOLS).choices[0].message.content \
        == "Tool said: sunny"


def test_whitespace_parts_dropped_and_prefill_trimmed(client, fakes):
    resp = client.chat.completions.create(model=ANTHROPIC, messages=[
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "  \n "}]},
        {"role": "assistant", "content": "Sure, "}])
    assert resp.choices[0].message.content is not None
    sent = ant_sent(fakes)["messages"]
    assert sent[0]["content"] == [{"type": "text", "text": "hi"}]
    assert sent[1]["content"] == [{"type": "text", "text": "Sure,"}]
    client.chat.completions.create(model=BEDROCK_CLAUDE, messages=[
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "   "}]}])
    assert bed_sent(fakes)["messages"][0]["content"] == [{"text": "hi"}]


def test_top_k_forwarded(client, fakes):
    client.chat.completions.create(model=ANTHROPIC, messages=[{"role": "user", "content": "hi"}],
                                   extra_body={"top_k": 5})
    assert ant_sent(fakes)["top_k"] == 5
    client.chat.completions.create(model=BEDROCK_CLAUDE, messages=[{"role": "user", "content": "hi"}],
                                   extra_body={"top_k": 7})
    assert bed_sent(fakes)["additionalModelRequestFields"] == {"top_k": 7}
    client.chat.completions.create(model=NOVA, messages=[{"role": "user", "content": "hi"}],
                                   extra_body={"top_k": 9})
    assert bed_sent(fakes)["additionalModelRequestFields"] == {"inferenceConfig": {"topK": 9}}


def test_refusal_in_message_refusal(client):
    msg = client.chat.completions.create(model=ANTHROPIC, messages=[{"role": "user", "content": "refuse"}]) \
        .choices[0].message
    assert msg.content is None and msg.refusal == "Truncated answer"


@pytest.mark.parametrize("model", [ANTHROPIC, BEDROCK_CLAUDE])
def test_refusal_only_history_message_kept(client, fakes, model):
    client.chat.completions.create(model=model, messages=[
        {"role": "user", "content": "something"}, {"role": "assistant", "content": None, "refusal": "I can't."},
        {"role": "user", "content": "ok then hi"}])
    if model == ANTHROPIC:
        assert ant_sent(fakes)["messages"][1] == {"role": "assistant", "content": [{"type": "text",
                                                                                    "text": "I can't."}]}
    else:
        assert bed_sent(fakes)["messages"][1] == {"role": "assistant", "content": [{"text": "I can't."}]}


def test_mistral_row_no_stream_options_and_usage_chunk(gw, fakes):
    r, events = stream_chat(gw, {"model": MISTRAL, "messages": [{"role": "user", "content": "hi"}],
                                 "max_completion_tokens": 20, "stream_options": {"include_usage": True}})
    assert r.status_code == 200
    sent = fakes["openai"].requests[-1]["body"]
    assert "stream_options" not in sent and "max_completion_tokens" not in sent and sent["max_tokens"] == 20
    assert events[-1] == "[DONE]" and events[-2]["choices"] == []
    assert events[-2]["usage"]["completion_tokens"] > 0 and events[-2]["usage"]["estimated"] is True


def test_passthrough_stream_keeps_top_level_fields(gw):
    r, events = stream_chat(gw, {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    chunks = [e for e in events if isinstance(e, dict)]
    assert chunks and all(c.get("system_fingerprint") == "fp_fake" for c in chunks)


def test_gs_image_urls_go_to_gemini_as_file_data_and_are_refused_elsewhere(client, fakes):
    image = {"type": "image_url", "image_url": {"url": "gs://bucket/cat.png"}}
    resp = client.chat.completions.create(model="gemini/gemini-2.5-flash", messages=[
        {"role": "user", "content": [{"type": "text", "text": "what is it"}, image]}])
    assert resp.choices[0].message.content == "I see an image (image/png, gs://bucket/cat.png)"
    assert fakes["gemini"].requests[-1]["body"]["contents"][0]["parts"][1] == {
        "fileData": {"fileUri": "gs://bucket/cat.png", "mimeType": "image/png"}}
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=ANTHROPIC, messages=[{"role": "user", "content": [image]}])
