"""Soak: 2,000 requests through the real gateway with 20% injected upstream faults.

Setup: auth ENABLED on DynamoDB Local (the real rate-limit counters, usage ledger and credits);
one `FaultyUpstream` in `chaos` mode (each upstream request fails with probability 0.2, with a
fault drawn from 500 / 503 / 429 / dropped connection / garbage / hang / cut / stall / missing
[DONE] / mid-stream error); model `faulty/primary` falls back to `backup/secondary` (same
chaos). Half the requests stream. httpx.AsyncClient at moderate concurrency.

Asserted:
- every request ends in a success (the right answer for *that* request, spec-valid) or a clean
  OpenAI-format error (an HTTP error with an ErrorResponse body, or an SSE error event that
  closes the stream), and none takes longer than its budget (SKYLANE_TOTAL_TIMEOUT + slack);
- the faults were really injected (≈20% of upstream requests) and fallbacks really served;
- counters match what was served: one log line per request with the status the client saw;
  the rate counters counted every request; the ledger's requests/tokens/cost equal the sum of
  the settled requests' usage (and, for successes, the usage the client received, which is the
  usage the fake served for that request); the reconciled TPM counter equals the ledger's
  tokens; the key's spend equals the ledger's cost.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.faulty_upstream import FaultyUpstream, running
from tests.spec import validate

N = 2000
CONCURRENCY = 24
BUDGET = 4.0
SLACK = 1.5  # scheduling slack on a shared 2-core machine
KEY = "sk-faulty-soak"

PROVIDERS = {
    name: {"protocol": "openai", "display_name": name.title(), "key_env": f"{name.upper()}_API_KEY",
           "base_url_env": f"{name.upper()}_BASE_URL", "passthrough": True, "stream_usage": True}
    for name in ("faulty", "backup")
}
MODELS = [
    {"id": "faulty/primary", "upstream_id": "chaos", "fallbacks": ["backup/secondary"],
     "pricing": {"input": 1.0, "output": 2.0}},
    {"id": "backup/secondary", "upstream_id": "chaos", "pricing": {"input": 1.0, "output": 2.0}},
]


@pytest.fixture
def chaos() -> Iterator[FaultyUpstream]:
    with running(name="faulty", key=KEY, chaos_rate=0.2, seed=20240601) as f:
        yield f


def _n(item: dict[str, Any], name: str) -> int:
    return int(item.get(name, {}).get("N", "0"))


async def _one(client: httpx.AsyncClient, i: int, headers: dict[str, str]) -> dict[str, Any]:
    stream = i % 2 == 1
    tag = f"soak-{i}"
    body: dict[str, Any] = {"model": "faulty/primary", "messages": [{"role": "user", "content": tag}]}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    out: dict[str, Any] = {"i": i, "tag": tag, "stream": stream}
    t0 = time.monotonic()
    # the budget counts from the request's first byte on the wire: this client, the gateway, the fakes and
    # boto3's threads share one process (one GIL), and on a slow machine the client's own pool wait before
    # sending (traced: up to ~4 s) is not the gateway's time
    sent: list[float] = []

    async def trace(event: str, info: Any) -> None:
        if event == "http11.send_request_headers.started" and not sent:
            sent.append(time.monotonic())

    ext = {"trace": trace}
    h = {**headers, "x-request-id": tag}
    try:
        if not stream:
            r = await client.post("/v1/chat/completions", json=body, headers=h, extensions=ext)
            out["status"] = r.status_code
            out["body"] = r.json()
        else:
            async with client.stream("POST", "/v1/chat/completions", json=body, headers=h, extensions=ext) as r:
                out["status"] = r.status_code
                if r.status_code != 200:
                    await r.aread()
                    out["body"] = r.json()
                else:
                    events: list[Any] = []
                    async for line in r.aiter_lines():
                        if line.startswith("data: "):
                            data = line[6:]
                            events.append(data if data == "[DONE]" else json.loads(data))
                    out["events"] = events
    except (httpx.HTTPError, ValueError) as exc:  # a hang, a broken connection, a body that is not JSON
        out["failure"] = f"{type(exc).__name__}: {exc}"
    out["latency"] = time.monotonic() - (sent[0] if sent else t0)
    out["client_latency"] = time.monotonic() - t0
    return out


def _classify(res: dict[str, Any], check_schema: bool) -> str:
    """ok | http_error | stream_error; raises AssertionError for anything unclean."""
    assert "failure" not in res, res
    expected = f"Hello from fake-faulty: {res['tag']}"
    if res["status"] != 200:
        body = res["body"]
        assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"]), body
        if check_schema:
            validate("ErrorResponse", body)
        assert res["status"] in (429, 502, 503, 504), res
        return "http_error"
    if not res["stream"]:
        body = res["body"]
        if check_schema:
            validate("CreateChatCompletionResponse", body)
        assert body["choices"][0]["message"]["content"] == expected, body
        assert body["model"] in ("faulty/primary", "backup/secondary")
        res["usage"] = body["usage"]
        return "ok"
    events = res["events"]
    assert events, res
    if events[-1] == "[DONE]":
        chunks = events[:-1]
        assert all("error" not in c for c in chunks), res
        if check_schema:
            for c in chunks:
                validate("CreateChatCompletionStreamResponse", c)
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert text == expected, res
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"], res
        res["usage"] = chunks[-1]["usage"]
        return "ok"
    last = events[-1]
    assert isinstance(last, dict) and "error" in last, f"stream ended without [DONE] or an error event: {res}"
    if check_schema:
        validate("ErrorResponse", last)
    assert all(isinstance(e, dict) and "error" not in e for e in events[:-1]), res
    return "stream_error"


async def test_soak_2000_requests_with_injected_faults(gateway_factory, chaos, logs, dynamo_tables, make_key,
                                                       tmp_path):
    catalog = tmp_path / "soak-catalog.json"
    catalog.write_text(json.dumps({"providers": PROVIDERS, "models": MODELS}))
    key = make_key("soak", rpm=1_000_000, tpm=10_000_000_000)  # counted, never reached
    gw = gateway_factory(
        SKYLANE_AUTH="enabled", **dynamo_tables.env, SKYLANE_CATALOG=str(catalog), SKYLANE_LOG_LEVEL="INFO",
        FAULTY_API_KEY=KEY, FAULTY_BASE_URL=chaos.url, BACKUP_API_KEY=KEY, BACKUP_BASE_URL=chaos.url,
        SKYLANE_CONNECT_TIMEOUT="1", SKYLANE_FIRST_TOKEN_TIMEOUT="1", SKYLANE_IDLE_TIMEOUT="0.5",
        SKYLANE_TOTAL_TIMEOUT=str(BUDGET), SKYLANE_MAX_ATTEMPTS="2", SKYLANE_RETRY_BASE_DELAY="0.01",
        SKYLANE_RETRY_MAX_DELAY="0.1", SKYLANE_BREAKER_FAILURES="5", SKYLANE_BREAKER_WINDOW="10",
        SKYLANE_BREAKER_COOLDOWN="0.5",
    )
    sem = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    t_start = time.monotonic()
    async with httpx.AsyncClient(base_url=gw, timeout=BUDGET + 10, limits=limits) as client:

        async def bounded(i: int) -> dict[str, Any]:
            async with sem:
                return await _one(client, i, key.headers)

        results = await asyncio.gather(*[bounded(i) for i in range(N)])
    wall = time.monotonic() - t_start

    # ---- every request: success or a clean error, within its budget --------------------------------
    sample = set(random.Random(7).sample(range(N), 200))
    kinds = Counter(_classify(res, res["i"] in sample) for res in results)
    slowest = max(results, key=lambda r: r["latency"])
    assert slowest["latency"] <= BUDGET + SLACK, slowest
    assert kinds["ok"] > 0.9 * N, kinds
    assert kinds["http_error"] + kinds["stream_error"] > 0, kinds  # some faults did get through, cleanly

    # ---- the faults were injected, and fallbacks answered -----------------------------------------
    served = chaos.served()
    injected = sum(1 for s in served if s.fault != "ok")
    assert 0.15 < injected / len(served) < 0.25, (injected, len(served))
    assert len({s.fault for s in served}) >= 10  # every kind of fault showed up
    answered_by = Counter(r["body"]["model"] for r in results if not r["stream"] and r["status"] == 200)
    assert answered_by["backup/secondary"] > 0 and answered_by["faulty/primary"] > 0

    # successes: the fake served that request completely, and the client got exactly its usage
    complete_by_tag: dict[str, list[Any]] = {}
    for s in served:
        if s.complete:
            complete_by_tag.setdefault(s.text, []).append(s)
    for res in results:
        if "usage" in res:
            fakes = complete_by_tag.get(res["tag"], [])
            assert fakes, res
            assert res["usage"]["completion_tokens"] == fakes[-1].usage["completion_tokens"]
            assert res["usage"]["prompt_tokens"] == fakes[-1].usage["prompt_tokens"]

    # ---- counters: log lines, rate-limit counters, ledger, spend ----------------------------------
    deadline = time.monotonic() + 15
    while len(logs.lines) < N and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # non-streaming requests settle just after their response
    await asyncio.sleep(0.3)
    by_id = {}
    for line in logs.lines:
        assert line["request_id"] not in by_id, f"two log lines for {line['request_id']}"
        by_id[line["request_id"]] = line
    assert len(by_id) == N
    settled_prompt = settled_completion = settled_requests = 0
    for res in results:
        line = by_id[res["tag"]]
        if res["status"] != 200:
            assert line["status"] == res["status"], (res, line)
            assert line["prompt_tokens"] is None  # released, not charged
            continue
        if "usage" in res:
            assert line["status"] == 200
            assert (line["prompt_tokens"], line["completion_tokens"]) == (
                res["usage"]["prompt_tokens"], res["usage"]["completion_tokens"])
        else:  # a stream that broke after it began: usage so far is still counted
            assert line["status"] >= 500
            assert line["prompt_tokens"] > 0
        settled_requests += 1
        settled_prompt += line["prompt_tokens"]
        settled_completion += line["completion_tokens"]

    items = dynamo_tables.limits_items(key.key_id)
    rate = [it for it in items if it["sk"]["S"].startswith("rate#")]
    ledger = [it for it in items if it["sk"]["S"].startswith("usage#")]
    assert sum(_n(it, "requests") for it in rate) == N  # every request was counted by the rate limiter
    assert {it["sk"]["S"].rsplit("#", 1)[1] for it in ledger} <= {"faulty/primary", "backup/secondary"}
    assert sum(_n(it, "requests") for it in ledger) == settled_requests
    assert sum(_n(it, "prompt_tokens") for it in ledger) == settled_prompt
    assert sum(_n(it, "completion_tokens") for it in ledger) == settled_completion
    # TPM reservations were reconciled to what was actually used (released requests give theirs back)
    assert sum(_n(it, "tokens") for it in rate) == settled_prompt + settled_completion
    spent = _n(dynamo_tables.key_item(key.key_id), "spent_micros")
    assert spent == sum(_n(it, "cost_micros") for it in ledger) > 0
    expected_cost = sum(line["cost_usd"] for line in by_id.values())
    assert abs(spent / 1_000_000 - expected_cost) < 1e-6

    print(f"\nsoak: {N} requests in {wall:.1f} s, outcomes {dict(kinds)}, upstream requests {len(served)} "
          f"({injected} faulted), slowest {slowest['latency']:.2f} s, answered by {dict(answered_by)}")
