"""LangChain's `ChatOpenAI`, pointed at Skylane by `base_url`, with an OpenAI-compatible model and an
Anthropic model: invoke, stream, bind_tools (plain and streamed), a tool-result round trip and
structured output."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from tests.integration._clients import MODELS, PROVIDERS, greeting, two_provider_gateway


@pytest.fixture(scope="module")
def stack(gateway_factory, fake_openai):
    with two_provider_gateway(gateway_factory, fake_openai) as s:
        yield s


@pytest.fixture(params=PROVIDERS)
def provider(request) -> str:
    return request.param


@pytest.fixture
def llm(stack, provider) -> ChatOpenAI:
    return ChatOpenAI(model=MODELS[provider], base_url=stack.base + "/v1", api_key="sk-anything", max_retries=0,
                      stream_usage=True)


class GetWeather(BaseModel):
    """Current weather for a city."""

    city: str = Field(description="The city")


class GetTime(BaseModel):
    """Local time in a city."""

    city: str


def test_invoke(llm, stack, provider):
    msg = llm.invoke([SystemMessage("Be brief."), HumanMessage("hello langchain")])
    assert isinstance(msg, AIMessage)
    assert msg.content == greeting(provider, "hello langchain")
    assert msg.response_metadata["finish_reason"] == "stop"
    assert msg.response_metadata["model_name"] == MODELS[provider]
    assert msg.usage_metadata["input_tokens"] > 0 and msg.usage_metadata["output_tokens"] > 0
    if provider == "anthropic":
        assert msg.usage_metadata["input_token_details"]["cache_read"] > 0
        assert "Be brief." in json.dumps(stack.anthropic.requests[-1]["body"]["system"])


def test_invoke_with_a_plain_string(llm, provider):
    assert llm.invoke("just text").content == greeting(provider, "just text")


def test_stream(llm, provider):
    chunks = list(llm.stream("stream from langchain"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert len([c for c in chunks if c.content]) > 1, "arrived in pieces"
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert full.content == greeting(provider, "stream from langchain")
    assert full.response_metadata.get("finish_reason") == "stop"
    assert full.usage_metadata and full.usage_metadata["output_tokens"] > 0


async def test_astream(llm, provider):
    text = ""
    async for c in llm.astream("async stream"):
        text += c.content
    assert text == greeting(provider, "async stream")


def test_batch(llm, provider):
    out = llm.batch(["one", "two"])
    assert [m.content for m in out] == [greeting(provider, "one"), greeting(provider, "two")]


def test_bind_tools_tool_call_and_result(llm):
    with_tools = llm.bind_tools([GetWeather, GetTime])
    question = HumanMessage("tool: weather in Paris?")
    msg = with_tools.invoke([question])
    assert msg.response_metadata["finish_reason"] == "tool_calls"
    [call] = msg.tool_calls
    assert call["name"] == "GetWeather" and call["args"] == {"city": "Paris0"} and call["id"]
    answer = with_tools.invoke([question, msg, ToolMessage("rainy", tool_call_id=call["id"])])
    assert answer.content == "Tool said: rainy"
    assert not answer.tool_calls


def test_bind_tools_parallel(llm):
    msg = llm.bind_tools([GetWeather, GetTime]).invoke("tools2 weather and time")
    assert [(c["name"], c["args"]) for c in msg.tool_calls] == [
        ("GetWeather", {"city": "Paris0"}), ("GetTime", {"city": "Paris1"})]


def test_bind_tools_streaming(llm):
    full = None
    for c in llm.bind_tools([GetWeather, GetTime]).stream("tools2 streamed"):
        full = c if full is None else full + c
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [
        ("GetWeather", {"city": "Paris0"}), ("GetTime", {"city": "Paris1"})]
    assert [c["index"] for c in full.tool_call_chunks] == [0, 1]


def test_bind_tools_forced_choice(llm, stack, provider):
    msg = llm.bind_tools([GetWeather, GetTime], tool_choice="GetWeather").invoke("tool forced")
    assert [c["name"] for c in msg.tool_calls] == ["GetWeather"]
    sent = stack.fake(provider).requests[-1]["body"]["tool_choice"]
    if provider == "anthropic":
        assert sent["type"] == "tool" and sent["name"] == "GetWeather"
    else:
        assert sent == {"type": "function", "function": {"name": "GetWeather"}}


class Answer(BaseModel):
    answer: int


@pytest.mark.parametrize("method", ["json_schema", "json_mode"])
def test_with_structured_output(llm, method):
    structured = llm.with_structured_output(Answer, method=method)
    assert structured.invoke("json: give the answer as JSON") == Answer(answer=42)


def test_with_structured_output_by_forced_tool(stack):
    """method="function_calling" forces a tool; translated to Anthropic's tool_choice {"type": "tool"}.
    (Only the Anthropic fake answers a forced tool with {"answer": 42}; the OpenAI path of forced
    tool_choice is covered by test_bind_tools_forced_choice.)"""
    llm = ChatOpenAI(model=MODELS["anthropic"], base_url=stack.base + "/v1", api_key="x", max_retries=0)
    structured = llm.with_structured_output(Answer, method="function_calling")
    assert structured.invoke("json: give the answer") == Answer(answer=42)
    assert stack.anthropic.requests[-1]["body"]["tool_choice"]["name"] == "Answer"
