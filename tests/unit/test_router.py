"""Router.run's decisions (retries, fallbacks, breakers, budget) and the stream opening logic, with fake
callables: no servers, so each decision is tested on its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from skylane.core.catalog import Target, load_catalog
from skylane.core.errors import InvalidRequest, SkylaneError, UpstreamError, UpstreamRateLimited, UpstreamTimeout
from skylane.core.settings import Settings
from skylane.pipeline.attempt import Timing, open_stream
from skylane.pipeline.router import BUDGET_EXHAUSTED, Router, budget_exhausted
from skylane.providers.base import Adapter, CallContext, StreamTranslator
from skylane.transport.base import Transport, UpstreamRequest

ENV = {"SKYLANE_AUTH": "disabled", "OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k",
       "SKYLANE_RETRY_BASE_DELAY": "0", "SKYLANE_RETRY_MAX_DELAY": "1", "SKYLANE_MAX_ATTEMPTS": "3",
       "SKYLANE_BREAKER_FAILURES": "2", "SKYLANE_BREAKER_WINDOW": "30", "SKYLANE_BREAKER_COOLDOWN": "30"}


def _router(**env: str) -> tuple[Router, list[Target]]:
    settings = Settings.from_env({**ENV, **env})
    catalog = load_catalog(settings)
    router = Router(catalog, settings, {})
    return router, [catalog.target("openai/gpt-4o-mini"), catalog.target("anthropic/claude-sonnet-4-20250514")]


class Script:
    """A fake attempt: per target, a list of outcomes (an exception to raise or a value to return)."""

    def __init__(self, outcomes: dict[str, list[Any]]) -> None:
        self.outcomes = outcomes
        self.calls: list[str] = []

    async def __call__(self, target: Target) -> Any:
        self.calls.append(target.model.id)
        outcome = self.outcomes[target.model.id].pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def _far() -> float:
    return time.monotonic() + 60


async def test_a_retryable_failure_is_retried_on_the_same_target() -> None:
    router, targets = _router()
    script = Script({targets[0].model.id: [UpstreamError("boom", provider="openai"), "answer"]})
    assert await router.run(targets, script, _far()) == "answer"
    assert script.calls == [targets[0].model.id] * 2
    assert router.attempts_header() == "openai/gpt-4o-mini;502, openai/gpt-4o-mini;ok"


async def test_attempts_exhausted_fall_back_to_the_next_target() -> None:
    router, targets = _router(SKYLANE_BREAKER_FAILURES="100")
    err = UpstreamError("boom", provider="openai")
    script = Script({targets[0].model.id: [err, err, err], targets[1].model.id: ["from anthropic"]})
    assert await router.run(targets, script, _far()) == "from anthropic"
    assert script.calls == [targets[0].model.id] * 3 + [targets[1].model.id]


async def test_a_callers_error_is_returned_at_once_without_fallback() -> None:
    router, targets = _router()
    script = Script({targets[0].model.id: [InvalidRequest("bad field", param="x")]})
    with pytest.raises(InvalidRequest):
        await router.run(targets, script, _far())
    assert script.calls == [targets[0].model.id]
    assert router.breaker(targets[0]).state == "closed"  # the provider answered: not its failure


async def test_a_long_retry_after_skips_waiting_and_falls_back() -> None:
    router, targets = _router(SKYLANE_BREAKER_FAILURES="100")
    slow = UpstreamRateLimited("slow down", provider="openai", retry_after=30)
    script = Script({targets[0].model.id: [slow], targets[1].model.id: ["ok"]})
    started = time.monotonic()
    assert await router.run(targets, script, _far()) == "ok"
    assert time.monotonic() - started < 1  # did not sleep 30 s
    assert script.calls == [targets[0].model.id, targets[1].model.id]


async def test_the_breaker_opens_and_skips_the_target() -> None:
    router, targets = _router(SKYLANE_MAX_ATTEMPTS="1")
    err = UpstreamError("boom", provider="openai")
    first = targets[:1]
    for _ in range(2):
        with pytest.raises(UpstreamError):
            await router.run(first, Script({first[0].model.id: [err]}), _far())
    script = Script({first[0].model.id: ["never called"]})
    with pytest.raises(SkylaneError) as info:
        await router.run(first, script, _far())
    assert info.value.code == "circuit_open" and info.value.status == 503
    assert info.value.retry_after is not None and info.value.retry_after > 0
    assert script.calls == []


async def test_budget_exhaustion_is_never_retried() -> None:
    router, targets = _router()
    script = Script({targets[0].model.id: [budget_exhausted()]})
    with pytest.raises(UpstreamTimeout) as info:
        await router.run(targets, script, _far())
    assert info.value.code == BUDGET_EXHAUSTED
    assert script.calls == [targets[0].model.id]
    assert router.breaker(targets[0]).state == "closed"


async def test_a_stream_verdict_waits_for_the_end() -> None:
    router, targets = _router(SKYLANE_MAX_ATTEMPTS="1")
    first = targets[:1]
    for _ in range(2):
        assert await router.run(first, Script({first[0].model.id: ["stream"]}), _far(), verdict_later=True)
        router.stream_ended("failed")  # the provider broke the stream after it started
    assert router.breaker(first[0]).state == "open"


# ---- opening a stream ---------------------------------------------------------------------------


class _Events(Transport):
    def __init__(self, events: list[Any], delay: float = 0.0) -> None:
        self.events = events
        self.delay = delay

    def stream(self, request: UpstreamRequest, ctx: Any) -> AsyncIterator[Any]:
        async def gen() -> AsyncIterator[Any]:
            for e in self.events:
                await asyncio.sleep(self.delay)
                yield e
        return gen()


class _Echo(StreamTranslator):
    """Each event is a chunk dict already; "end" finishes the stream."""

    def feed(self, event: Any) -> list[dict[str, Any]]:
        if event == "end":
            self.done = True
            return []
        return [event]


def _adapter(transport: Transport) -> Adapter:
    adapter = Adapter()
    adapter.transport = transport
    return adapter


def _chunk(**delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


async def _open(events: list[Any], delay: float = 0.0, **env: str) -> Any:
    settings = Settings.from_env({**ENV, **env})
    target = load_catalog(settings).target("openai/gpt-4o-mini")
    ctx = CallContext(api_key="k", base_url="", settings=settings)
    request = UpstreamRequest(url="", headers={}, body={})
    return await open_stream(_adapter(_Events(events, delay)), target, request, _Echo(), ctx, settings, Timing(),
                             _far())


async def test_the_stream_opens_at_the_first_substantive_chunk() -> None:
    handle = await _open([_chunk(role="assistant"), _chunk(content="Hi"), _chunk(content=" there"), "end"])
    assert [c["choices"][0]["delta"] for c in handle.pending] == [{"role": "assistant"}, {"content": "Hi"}]
    rest = [c async for c in handle.chunks()]
    assert [c["choices"][0]["delta"] for c in rest] == [{"role": "assistant"}, {"content": "Hi"},
                                                        {"content": " there"}]


async def test_a_stream_closed_before_answering_is_a_retryable_error() -> None:
    with pytest.raises(UpstreamError) as info:
        await _open([_chunk(role="assistant")])
    assert "closed the stream before answering" in info.value.message
    assert info.value.retryable


async def test_no_first_token_in_time_is_a_timeout() -> None:
    with pytest.raises(UpstreamTimeout) as info:
        await _open([_chunk(content="late")], delay=0.5, SKYLANE_FIRST_TOKEN_TIMEOUT="0.1")
    assert info.value.code != BUDGET_EXHAUSTED
