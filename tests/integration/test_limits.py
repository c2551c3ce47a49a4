"""Rate limits, credits and the usage ledger against DynamoDB Local, through the real gateway."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from skylane.cli.keys import update_key
from skylane.core.catalog import load_catalog
from skylane.core.settings import Settings
from tests.conftest import UPSTREAM_KEY
from tests.fakes.server import serve
from tests.helpers import wait_for
from tests.spec import validate

USER = [{"role": "user", "content": "hi"}]
BODY = {"model": "openai/gpt-4o-mini", "messages": USER}
RESET = re.compile(r"^(\d+ms|\d+(\.\d+)?s)$")


# ---- a slow OpenAI-format upstream (answers after a delay; streams chunk by chunk) ------------------


class SlowOpenAI:
    """OpenAI chat completions wire format, slowly: `delay` before a JSON answer, `gap` between
    stream chunks (`chunks` of them). Notes when a stream's client went away."""

    def __init__(self, delay: float = 0.0, gap: float = 0.05, chunks: int = 60) -> None:
        self.delay, self.gap, self.chunks = delay, gap, chunks
        self.disconnected = 0
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    @staticmethod
    def usage(body: dict[str, Any], completion: int) -> dict[str, Any]:
        prompt = sum(len(json.dumps(m)) for m in body["messages"]) // 4
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        base = {"id": "chatcmpl-slow", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            await asyncio.sleep(self.delay)
            return JSONResponse({**base, "object": "chat.completion", "choices": [{
                "index": 0, "message": {"role": "assistant", "content": "slow answer", "refusal": None},
                "logprobs": None, "finish_reason": "stop"}], "usage": self.usage(body, 5)})
        include = bool((body.get("stream_options") or {}).get("include_usage"))

        async def events() -> Any:
            def ev(choices: list[dict[str, Any]], **extra: Any) -> bytes:
                data = {**base, "object": "chat.completion.chunk", "choices": choices, **extra}
                return f"data: {json.dumps(data)}\n\n".encode()

            try:
                yield ev([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
                for i in range(self.chunks):
                    await asyncio.sleep(self.gap)
                    yield ev([{"index": 0, "delta": {"content": f"word{i} "}, "finish_reason": None}])
                yield ev([{"index": 0, "delta": {}, "finish_reason": "stop"}])
                if include:
                    yield ev([], usage=self.usage(body, self.chunks))
                yield b"data: [DONE]\n\n"
            except BaseException:
                self.disconnected += 1
                raise

        return StreamingResponse(events(), media_type="text/event-stream")


@pytest.fixture
def slow_upstream() -> Iterator[Callable[..., tuple[SlowOpenAI, str]]]:
    from contextlib import ExitStack

    with ExitStack() as stack:
        def start(**kw: Any) -> tuple[SlowOpenAI, str]:
            fake = SlowOpenAI(**kw)
            return fake, stack.enter_context(serve(fake.app)) + "/v1"

        yield start


# ---- helpers -------------------------------------------------------------------------------------------


def fresh_window(needed: float = 15.0) -> None:
    """Sleep into the next minute if fewer than `needed` seconds are left in this one."""
    left = 60 - time.time() % 60
    if left < needed:
        time.sleep(left + 0.2)


def n(item: dict[str, Any] | None, attr: str) -> int:
    return int(item[attr]["N"]) if item and attr in item else 0


def price(model: str, usage: dict[str, Any]) -> int:
    info = load_catalog(Settings.from_env({})).lookup(model)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return info.cost_micros(usage["prompt_tokens"], usage["completion_tokens"], cached)


def sdk(base: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def ledger(tables: Any, key_id: str) -> list[dict[str, Any]]:
    return tables.limits_items(key_id, "usage#")


# ---- RPM ----------------------------------------------------------------------------------------------------


async def test_200_concurrent_requests_at_50_rpm_exactly_50_succeed(auth_gateway, make_key, dynamo_tables):
    gw = auth_gateway()
    k = make_key(rpm=50)
    fresh_window(20)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        results = await asyncio.gather(*(
            client.post(gw + "/v1/chat/completions", headers=k.headers, json=BODY) for _ in range(200)))
    statuses = Counter(r.status_code for r in results)
    assert statuses == {200: 50, 429: 150}
    ok = [r for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code == 429]
    # every success knows its place in the window: remaining counts are exactly 49..0
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == list(range(50))
    for r in refused:
        validate("ErrorResponse", r.json())
        assert r.json()["error"]["type"] == "rate_limit_error"
        assert r.json()["error"]["message"].startswith("Rate limit reached for requests per minute: limit 50")
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert r.headers["x-ratelimit-limit-requests"] == "50"
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        assert RESET.match(r.headers["x-ratelimit-reset-requests"])
    # refused requests counted nothing; the window is in the item key, with a TTL for cleanup
    windows = dynamo_tables.limits_items(k.key_id, "rate#")
    assert len(windows) == 1 and n(windows[0], "requests") == 50
    window = int(windows[0]["sk"]["S"].split("#")[1])
    assert abs(window - time.time() // 60) <= 1
    assert n(windows[0], "ttl") > (window + 1) * 60
    rows = wait_for(lambda: [r for r in ledger(dynamo_tables, k.key_id) if n(r, "requests") == 50])
    assert rows, ledger(dynamo_tables, k.key_id)


def test_rate_limit_headers_on_success_and_on_429_through_the_sdk(auth_gateway, make_key):
    gw = auth_gateway()
    k = make_key(rpm=2, tpm=50_000)
    fresh_window(10)
    with sdk(gw, k.key) as c:
        raw = c.chat.completions.with_raw_response.create(model="openai/gpt-4o-mini", messages=USER, max_tokens=100)
        assert raw.parse().choices[0].message.content == "Hello from fake-openai: hi"
        h = raw.headers
        assert h["x-ratelimit-limit-requests"] == "2" and h["x-ratelimit-remaining-requests"] == "1"
        assert h["x-ratelimit-limit-tokens"] == "50000"
        assert 0 < 50_000 - int(h["x-ratelimit-remaining-tokens"]) < 200  # ~ prompt estimate + max_tokens
        assert RESET.match(h["x-ratelimit-reset-requests"]) and RESET.match(h["x-ratelimit-reset-tokens"])
        stream = c.chat.completions.with_raw_response.create(model="openai/gpt-4o-mini", messages=USER, stream=True,
                                                            max_tokens=100)
        assert stream.headers["x-ratelimit-remaining-requests"] == "0"
        assert "".join(ch.choices[0].delta.content or "" for ch in stream.parse() if ch.choices)
        with pytest.raises(openai.RateLimitError) as exc:
            c.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)
    r = exc.value.response
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.headers["x-ratelimit-remaining-requests"] == "0" and r.headers["x-ratelimit-limit-tokens"] == "50000"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"


def test_tpm_reserved_up_front_refused_when_it_does_not_fit_and_reconciled(auth_gateway, make_key, dynamo_tables):
    gw = auth_gateway()
    k = make_key(tpm=3000)
    fresh_window(15)
    big = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 4000}], "max_tokens": 100}
    # a request larger than the whole budget: refused at once, nothing counted
    r = httpx.post(gw + "/v1/chat/completions", headers=k.headers, json={**BODY, "max_tokens": 5000})
    assert r.status_code == 429 and "Request too large for tokens per minute" in r.json()["error"]["message"]
    assert r.headers["x-ratelimit-limit-tokens"] == "3000" and "retry-after" in r.headers
    assert dynamo_tables.limits_items(k.key_id, "rate#") == []
    used = 0
    for _ in range(2):
        r = httpx.post(gw + "/v1/chat/completions", headers=k.headers, json=big)
        assert r.status_code == 200
        used += r.json()["usage"]["total_tokens"]
    r = httpx.post(gw + "/v1/chat/completions", headers=k.headers, json=big)
    assert r.status_code == 429
    assert r.json()["error"]["message"].startswith("Rate limit reached for tokens per minute: limit 3000")
    assert int(r.headers["x-ratelimit-remaining-tokens"]) < 1105
    # reconciled to the real usage once the answers settled (reserved ~1105 each, used ~1014)
    window = wait_for(lambda: [w for w in dynamo_tables.limits_items(k.key_id, "rate#") if n(w, "tokens") == used])
    assert window and n(window[0], "requests") == 2


# ---- credits ----------------------------------------------------------------------------------------------------


def test_credits_are_debited_at_catalog_prices_and_402_at_zero(auth_gateway, make_key, dynamo_tables):
    gw = auth_gateway()
    k = make_key(credits_micros=1_000_000)
    r = httpx.post(gw + "/v1/chat/completions", headers=k.headers,
                   json={"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "price me"}]})
    assert r.status_code == 200
    cost = price("openai/gpt-4o", r.json()["usage"])
    assert cost > 0 and r.headers["x-skylane-cost-usd"] == f"{cost / 1_000_000:.6f}"
    item = wait_for(lambda: (i := dynamo_tables.key_item(k.key_id)) and n(i, "spent_micros") == cost and i)
    assert item and n(item, "credits_micros") == 1_000_000 - cost

    poor = make_key(credits_micros=1)
    assert httpx.post(gw + "/v1/chat/completions", headers=poor.headers, json=BODY).status_code == 200
    assert wait_for(lambda: n(dynamo_tables.key_item(poor.key_id), "credits_micros") <= 0)
    time.sleep(0.05)
    r = httpx.post(gw + "/v1/chat/completions", headers=poor.headers, json=BODY)
    assert r.status_code == 402
    validate("ErrorResponse", r.json())
    assert r.json()["error"]["message"] == "Insufficient credits"
    assert r.json()["error"]["type"] == "insufficient_credits"
    with sdk(gw, poor.key) as c, pytest.raises(openai.APIStatusError) as exc:
        c.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)
    assert exc.value.status_code == 402

    empty = make_key(credits_micros=0, rpm=10)
    r = httpx.post(gw + "/v1/chat/completions", headers=empty.headers, json={**BODY, "stream": True})
    assert r.status_code == 402 and r.json()["error"]["message"] == "Insufficient credits"
    assert dynamo_tables.limits_items(empty.key_id) == []  # nothing counted for it


def test_top_up_reaches_the_gateway_within_the_cache_ttl(auth_gateway, make_key, dynamo_tables):
    gw = auth_gateway(SKYLANE_AUTH_CACHE_TTL="0.5")
    k = make_key(credits_micros=0)
    assert httpx.post(gw + "/v1/chat/completions", headers=k.headers, json=BODY).status_code == 402
    update_key(dynamo_tables.client, dynamo_tables.settings, k.key_id, add_credits_micros=2_000_000)
    time.sleep(0.6)
    assert httpx.post(gw + "/v1/chat/completions", headers=k.headers, json=BODY).status_code == 200


async def test_concurrent_overspend_is_bounded_by_the_requests_in_flight(
        gateway_factory, slow_upstream, make_key, dynamo_tables):
    fake, url = slow_upstream(delay=1.0)
    gw = gateway_factory(SKYLANE_AUTH="enabled", OPENAI_API_KEY=UPSTREAM_KEY, OPENAI_BASE_URL=url,
                         **dynamo_tables.env)
    body = {"model": "openai/gpt-4o", "messages": USER}
    probe = make_key()
    r = httpx.post(gw + "/v1/chat/completions", headers=probe.headers, json=body)
    cost = price("openai/gpt-4o", r.json()["usage"])
    k = make_key(credits_micros=2 * cost + 1)  # enough for two answers and a bit
    async with httpx.AsyncClient(timeout=30) as client:
        # ten at once: all are admitted while the balance is positive (each answer takes 1 s)
        first = await asyncio.gather(*(client.post(gw + "/v1/chat/completions", headers=k.headers, json=body)
                                       for _ in range(10)))
        assert [x.status_code for x in first] == [200] * 10
        item = wait_for(lambda: (i := dynamo_tables.key_item(k.key_id)) and n(i, "spent_micros") == 10 * cost and i)
        assert item, dynamo_tables.key_item(k.key_id)
        # overspend = the eight answers that were already in flight, no more; every debit landed
        assert n(item, "credits_micros") == 2 * cost + 1 - 10 * cost
        time.sleep(0.05)
        later = await asyncio.gather(*(client.post(gw + "/v1/chat/completions", headers=k.headers, json=body)
                                       for _ in range(10)))
        assert [x.status_code for x in later] == [402] * 10
    assert n(dynamo_tables.key_item(k.key_id), "spent_micros") == 10 * cost
    rows = ledger(dynamo_tables, k.key_id)
    assert len(rows) == 1 and n(rows[0], "requests") == 10 and n(rows[0], "cost_micros") == 10 * cost


# ---- the usage ledger --------------------------------------------------------------------------------------------


def test_ledger_counts_streamed_requests_from_the_providers_real_usage(auth_gateway, make_key, dynamo_tables,
                                                                      fake_openai):
    gw = auth_gateway()
    k = make_key()
    with sdk(gw, k.key) as c:
        # the client does not ask for usage; the gateway still gets it from the provider
        chunks = list(c.chat.completions.create(model="openai/gpt-4o-mini", messages=USER, stream=True))
        assert all(ch.usage is None for ch in chunks)
        sent = fake_openai[0].requests[-1]["body"]
        assert sent["stream_options"] == {"include_usage": True}
        expected_prompt = sum(len(json.dumps(m)) for m in sent["messages"]) // 4
        resp = c.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)
    assert resp.usage.prompt_tokens == expected_prompt
    rows = wait_for(lambda: [r for r in ledger(dynamo_tables, k.key_id) if n(r, "requests") == 2])
    assert rows, ledger(dynamo_tables, k.key_id)
    row = rows[0]
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert row["sk"]["S"] == f"usage#{day}#openai/gpt-4o-mini"
    assert n(row, "prompt_tokens") == 2 * expected_prompt
    assert n(row, "completion_tokens") == 14
    usage = {"prompt_tokens": expected_prompt, "completion_tokens": 7}
    assert n(row, "cost_micros") == 2 * price("openai/gpt-4o-mini", usage)


async def test_ledger_and_tpm_count_a_stream_the_client_abandoned(gateway_factory, slow_upstream, make_key,
                                                                  dynamo_tables):
    fake, url = slow_upstream(gap=0.05, chunks=200)
    gw = gateway_factory(SKYLANE_AUTH="enabled", OPENAI_API_KEY=UPSTREAM_KEY, OPENAI_BASE_URL=url,
                         **dynamo_tables.env)
    k = make_key(tpm=100_000, credits_micros=1_000_000)
    fresh_window(15)
    async with httpx.AsyncClient(timeout=30) as client:
        body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "a long story " * 50}],
                "stream": True, "max_tokens": 1000}
        async with client.stream("POST", gw + "/v1/chat/completions", headers=k.headers, json=body) as r:
            assert r.status_code == 200
            seen = 0
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    seen += 1
                if seen >= 4:
                    break  # the client goes away mid-stream
    assert wait_for(lambda: fake.disconnected == 1, 5)  # the gateway closed the upstream too
    rows = wait_for(lambda: ledger(dynamo_tables, k.key_id))
    assert rows and n(rows[0], "requests") == 1
    assert n(rows[0], "prompt_tokens") > 100 and n(rows[0], "completion_tokens") > 0  # estimated, never zero
    assert n(rows[0], "cost_micros") > 0
    item = wait_for(lambda: (i := dynamo_tables.key_item(k.key_id)) and n(i, "spent_micros") > 0 and i)
    assert item and n(item, "spent_micros") == n(rows[0], "cost_micros")
    # the TPM reservation (prompt estimate + 1000) was reconciled down to what was counted
    windows = wait_for(lambda: [w for w in dynamo_tables.limits_items(k.key_id, "rate#")
                                if n(w, "tokens") == n(rows[0], "prompt_tokens") + n(rows[0], "completion_tokens")])
    assert windows, dynamo_tables.limits_items(k.key_id, "rate#")


def test_a_failed_request_returns_its_reserved_tokens(auth_gateway, make_key, dynamo_tables):
    gw = auth_gateway()
    k = make_key(rpm=10, tpm=100_000)
    fresh_window(10)
    r = httpx.post(gw + "/v1/chat/completions", headers=k.headers,
                   json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "error:400"}]})
    assert r.status_code == 400
    assert r.headers["x-ratelimit-remaining-requests"] == "9"  # headers on errors too
    windows = wait_for(lambda: [w for w in dynamo_tables.limits_items(k.key_id, "rate#") if n(w, "tokens") == 0])
    assert windows and n(windows[0], "requests") == 1
    assert ledger(dynamo_tables, k.key_id) == []


@pytest.mark.parametrize("stream", [False, True])
def test_settle_inline_bills_before_the_answer_ends(auth_gateway, make_key, dynamo_tables, stream):
    """SKYLANE_SETTLE_INLINE (on by default on Lambda, where the instance may freeze as soon as the
    body is sent): credits, the ledger and the TPM reconcile are written before the response ends."""
    gw = auth_gateway(SKYLANE_SETTLE_INLINE="true")
    k = make_key(credits_micros=1_000_000)
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "bill me now"}], "stream": stream,
            "stream_options": {"include_usage": True} if stream else None}
    with httpx.stream("POST", gw + "/v1/chat/completions", headers=k.headers, json=body) as r:
        assert r.status_code == 200
        raw = r.read()
    usage = (json.loads(raw) if not stream else
             [json.loads(ln[6:]) for ln in raw.decode().splitlines() if ln.startswith("data: {")][-1])["usage"]
    cost = price("openai/gpt-4o", usage)
    item = dynamo_tables.key_item(k.key_id)  # read at once: no waiting
    assert n(item, "spent_micros") == cost and n(item, "credits_micros") == 1_000_000 - cost
    ledger = dynamo_tables.limits_items(k.key_id, "usage#")
    assert len(ledger) == 1 and n(ledger[0], "prompt_tokens") == usage["prompt_tokens"]
