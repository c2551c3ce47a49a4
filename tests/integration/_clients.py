"""Shared by the client suites: a gateway with two providers behind it (the fake OpenAI and the
fake Anthropic, each on its own loopback port), the two models every client test runs with, the
tools they offer and a small image.

Every client test is parametrized over MODELS, so one run goes straight through (OpenAI-compatible)
and one through the Anthropic translation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.conftest import UPSTREAM_KEY
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import serve
from tests.helpers import SINGLE_ATTEMPT as CLIENT_ENV

MODELS = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-sonnet-4-20250514"}
PROVIDERS = list(MODELS)

# Gateway settings for client suites: one attempt per model (a fake 429 is not retried for a second)
# and a breaker that never opens (error tests must not leave a provider "failing" for later tests).

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME_TOOL = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TOOLS = [WEATHER_TOOL, TIME_TOOL]


@dataclass
class Stack:
    base: str  # the gateway's base URL (no /v1)
    openai: FakeOpenAI
    anthropic: FakeAnthropic
    anthropic_env: dict[str, str]  # ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL pointing at `anthropic`

    def fake(self, provider: str) -> FakeOpenAI | FakeAnthropic:
        return self.openai if provider == "openai" else self.anthropic


@contextmanager
def two_provider_gateway(gateway_factory: Callable[..., str], fake_openai: tuple[FakeOpenAI, str],
                         **env: str) -> Iterator[Stack]:
    anthropic = FakeAnthropic(UPSTREAM_KEY)
    with serve(anthropic.app) as anthropic_url:
        anthropic_env = {"ANTHROPIC_API_KEY": UPSTREAM_KEY, "ANTHROPIC_BASE_URL": anthropic_url}
        base = gateway_factory(OPENAI_API_KEY=UPSTREAM_KEY, OPENAI_BASE_URL=fake_openai[1],
                               **{**anthropic_env, **CLIENT_ENV, **env})
        yield Stack(base=base, openai=fake_openai[0], anthropic=anthropic, anthropic_env=anthropic_env)


def greeting(provider: str, text: str) -> str:
    """What the fakes answer to an ordinary user message."""
    return f"Hello from fake-{provider}: {text}"

