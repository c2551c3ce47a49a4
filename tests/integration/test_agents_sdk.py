"""The OpenAI Agents SDK (openai-agents) with its default model API, Responses, through Skylane (auth on).

An agent with one function tool: the model (the fake OpenAI natively, the fake Anthropic bridged)
calls the tool, the SDK runs it and sends its output back, and the model answers from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from agents import (
    Agent,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_default_openai_api,
    set_default_openai_client,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.server import serve
from tests.integration.conftest_dynamo import NewKey

CALLS: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    CALLS.append(city)
    return f"sunny in {city}"


@pytest.fixture(scope="module")
def fake_anthropic() -> Iterator[tuple[FakeAnthropic, str]]:
    fake = FakeAnthropic("sk-ant-upstream-test")
    with serve(fake.app) as url:
        yield fake, url


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-20250514"])
def test_agent_with_a_function_tool(auth_gateway: Callable[..., str], make_key: Callable[..., NewKey],
                                    fake_openai: Any, fake_anthropic: tuple[FakeAnthropic, str], model: str) -> None:
    gw = auth_gateway(ANTHROPIC_API_KEY="sk-ant-upstream-test", ANTHROPIC_BASE_URL=fake_anthropic[1])
    key = make_key("agents")
    set_tracing_disabled(True)
    set_default_openai_api("responses")
    CALLS.clear()

    async def run() -> Any:
        client = AsyncOpenAI(base_url=gw + "/v1", api_key=key.key, max_retries=0)
        set_default_openai_client(client, use_for_tracing=False)
        # a bare "openai/..." name is the SDK's default provider (it strips the prefix); other
        # prefixes it would route elsewhere, so those get the default model class explicitly
        chosen: Any = model if model.startswith("openai/") else OpenAIResponsesModel(model, client)
        agent = Agent(name="weather", instructions="Use the tool.", tools=[get_weather], model=chosen)
        try:
            return await Runner.run(agent, "tool")
        finally:
            await client.close()

    result = asyncio.run(run())
    assert CALLS and CALLS[0].startswith("Paris")
    assert "Tool said: sunny in Paris" in str(result.final_output)
    if model.startswith("openai/"):
        sent = fake_openai[0].requests[-1]
        assert sent["path"] == "/v1/responses" and sent["body"]["input"][-1]["type"] == "function_call_output"
    else:
        sent = fake_anthropic[0].requests[-1]["body"]
        assert any(b.get("type") == "tool_result" for m in sent["messages"] if isinstance(m["content"], list)
                   for b in m["content"])
