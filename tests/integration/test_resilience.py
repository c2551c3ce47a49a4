"""Resilience through real HTTP: a fault-injecting upstream on loopback, the real gateway, the
real OpenAI SDK (and httpx where headers and raw SSE matter).

Each test starts its own gateway (own breakers) against `FaultyUpstream`, whose behaviour is
picked by the upstream model name (`faulty/503` → "503"). Two providers, `faulty` and `backup`,
point at the same fake; an operator catalog (SKYLANE_CATALOG in tmp_path) defines fallbacks.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import LogLines
from tests.fakes.faulty_upstream import FaultyUpstream, running
from tests.helpers import stream_chat
from tests.spec import validate

KEY = "sk-faulty-test"
USER = [{"role": "user", "content": "hi"}]


# ---- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FaultyUpstream]:
    with running(name="faulty", key=KEY) as f:
        yield f


_sdk_clients: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _clean(fake: FaultyUpstream) -> Iterator[None]:
    fake.reset()
    yield
    while _sdk_clients:  # close their connection pools now, not whenever they are collected
        _sdk_clients.pop().close()


PROVIDERS = {
    name: {"protocol": "openai", "display_name": name.title(), "key_env": f"{name.upper()}_API_KEY",
           "base_url_env": f"{name.upper()}_BASE_URL", "passthrough": True, "stream_usage": True}
    for name in ("faulty", "backup", "dead")
}


def _model(model_id: str, upstream: str, fallbacks: list[str] | None = None) -> dict[str, Any]:
    return {"id": model_id, "upstream_id": upstream, "pricing": {"input": 1.0, "output": 2.0},
            "fallbacks": fallbacks or []}


@pytest.fixture
def make_gateway(gateway_factory: Callable[..., str], fake: FaultyUpstream, tmp_path: Path,
                 logs: LogLines) -> Callable[..., str]:
    """make_gateway(models=[...], **env) → base URL of a gateway in front of the fake."""
    counter = iter(range(1000))

    def make(models: list[dict[str, Any]] | None = None, **env: str) -> str:
        path = tmp_path / f"catalog{next(counter)}.json"
        path.write_text(json.dumps({"providers": PROVIDERS, "models": models or []}))
        base = {
            "SKYLANE_CATALOG": str(path), "SKYLANE_LOG_LEVEL": "INFO",
            "FAULTY_API_KEY": KEY, "FAULTY_BASE_URL": fake.url, "BACKUP_API_KEY": KEY, "BACKUP_BASE_URL": fake.url,
            "SKYLANE_CONNECT_TIMEOUT": "1", "SKYLANE_FIRST_TOKEN_TIMEOUT": "3", "SKYLANE_IDLE_TIMEOUT": "3",
            "SKYLANE_TOTAL_TIMEOUT": "10", "SKYLANE_MAX_ATTEMPTS": "3", "SKYLANE_RETRY_BASE_DELAY": "0.01",
            "SKYLANE_RETRY_MAX_DELAY": "2", "SKYLANE_BREAKER_FAILURES": "100",
        }
        base.update(env)
        return gateway_factory(**base)

    return make


def sdk(gw: str, timeout: float = 20) -> openai.OpenAI:
    client = openai.OpenAI(base_url=gw + "/v1", api_key="x", max_retries=0, timeout=timeout)
    _sdk_clients.append(client)
    return client


def post(gw: str, body: dict[str, Any], timeout: float = 20, **headers: str) -> httpx.Response:
    return httpx.post(gw + "/v1/chat/completions", json=body, timeout=timeout, headers=headers)


def sse(gw: str, body: dict[str, Any], timeout: float = 20) -> tuple[httpx.Response, list[Any]]:
    """A raw streaming request: the response and its decoded `data:` payloads ("[DONE]" kept)."""
    return stream_chat(gw, body, timeout)


def attempts(resp: Any) -> list[str]:
    raw = resp.headers.get("x-skylane-attempts", "")
    return [a.strip() for a in raw.split(",")] if raw else []


def assert_error_event(events: list[Any], code: str | None = None) -> dict[str, Any]:
    assert events, "no events"
    assert "[DONE]" not in events
    last = events[-1]
    assert isinstance(last, dict) and "error" in last, last
    validate("ErrorResponse", last)
    if code is not None:
        assert last["error"]["code"] == code, last
    for ev in events[:-1]:
        validate("CreateChatCompletionStreamResponse", ev)
    return last["error"]


# ---- retries ---------------------------------------------------------------------------------------


def test_retry_then_success(make_gateway, fake):
    gw = make_gateway()
    fake.program("r1", ["500", "503"])
    raw = sdk(gw).chat.completions.with_raw_response.create(model="faulty/seq-r1", messages=USER)
    resp = raw.parse()
    assert resp.choices[0].message.content == "Hello from fake-faulty: hi"
    assert resp.model == "faulty/seq-r1"
    assert fake.count("seq-r1") == 3
    assert attempts(raw) == ["faulty/seq-r1;502", "faulty/seq-r1;503", "faulty/seq-r1;ok"]
    validate("CreateChatCompletionResponse", raw.http_response.json())


def test_retry_then_success_streaming(make_gateway, fake):
    gw = make_gateway()
    fake.program("r2", ["drop", "garbage", "ok"])
    text = "".join(c.choices[0].delta.content or "" for c in sdk(gw).chat.completions.create(
        model="faulty/seq-r2", messages=USER, stream=True) if c.choices)
    assert text == "Hello from fake-faulty: hi"
    # the fake records an outcome once it has written the whole answer, which may be just after the
    # gateway passed it on: wait for the record, then check it
    fake.wait_for(lambda: "pending" not in [r.outcome for r in fake.served("seq-r2")])
    assert [r.outcome for r in fake.served("seq-r2")] == ["drop", "garbage", "ok"]


def test_gives_up_after_max_attempts(make_gateway, fake):
    gw = make_gateway(SKYLANE_MAX_ATTEMPTS="2")
    r = post(gw, {"model": "faulty/503", "messages": USER})
    assert r.status_code == 503
    validate("ErrorResponse", r.json())
    assert r.json()["error"]["type"] == "service_unavailable"
    assert fake.count("503") == 2
    assert attempts(r) == ["faulty/503;503", "faulty/503;503"]


def test_no_retry_nor_fallback_on_caller_error(make_gateway, fake):
    gw = make_gateway(models=[_model("faulty/bad", "400", ["backup/ok"])])
    with pytest.raises(openai.BadRequestError) as info:
        sdk(gw).chat.completions.create(model="faulty/bad", messages=USER)
    assert info.value.status_code == 400
    assert fake.count("400") == 1
    assert fake.count("ok") == 0  # the fallback was not tried either


def test_retry_after_is_honoured(make_gateway, fake):
    gw = make_gateway()
    fake.program("ra", ["429+ra-1"])
    t0 = time.monotonic()
    resp = sdk(gw).chat.completions.create(model="faulty/seq-ra", messages=USER)
    assert resp.choices[0].message.content.startswith("Hello from fake-faulty")
    first, second = fake.served("seq-ra")
    assert second.t_start - first.t_start >= 1.0  # waited the full Retry-After, not the 10 ms backoff
    assert time.monotonic() - t0 < 3


def test_retry_after_longer_than_max_delay_skips_to_fallback(make_gateway, fake):
    gw = make_gateway(models=[_model("faulty/busy", "429+ra-30", ["backup/ok"])])
    t0 = time.monotonic()
    raw = sdk(gw).chat.completions.with_raw_response.create(model="faulty/busy", messages=USER)
    assert time.monotonic() - t0 < 2
    assert raw.parse().model == "backup/ok"
    assert attempts(raw) == ["faulty/busy;429", "backup/ok;ok"]
    assert fake.count("429+ra-30") == 1


def test_retry_after_longer_than_max_delay_is_passed_on(make_gateway, fake):
    gw = make_gateway()
    t0 = time.monotonic()
    with pytest.raises(openai.RateLimitError) as info:
        sdk(gw).chat.completions.create(model="faulty/429+ra-30", messages=USER)
    assert time.monotonic() - t0 < 2
    assert info.value.response.headers["retry-after"] == "30"
    validate("ErrorResponse", info.value.response.json())
    assert fake.count("429+ra-30") == 1


# ---- fallbacks --------------------------------------------------------------------------------------


def test_fallback_via_request_models(make_gateway, fake):
    gw = make_gateway(SKYLANE_MAX_ATTEMPTS="2")
    raw = sdk(gw).chat.completions.with_raw_response.create(
        model="faulty/503", messages=USER, extra_body={"models": ["backup/ok"]})
    resp = raw.parse()
    assert resp.model == "backup/ok"
    assert resp.choices[0].message.content == "Hello from fake-faulty: hi"
    assert attempts(raw) == ["faulty/503;503", "faulty/503;503", "backup/ok;ok"]
    assert "models" not in fake.served("ok")[0].body  # the gateway-only field is not sent upstream


def test_fallback_via_catalog(make_gateway, fake, logs):
    gw = make_gateway(models=[_model("faulty/primary", "500", ["backup/secondary"]),
                              _model("backup/secondary", "ok")], SKYLANE_MAX_ATTEMPTS="1")
    raw = sdk(gw).chat.completions.with_raw_response.create(model="faulty/primary", messages=USER)
    assert raw.parse().model == "backup/secondary"
    assert attempts(raw) == ["faulty/primary;502", "backup/secondary;ok"]
    line = logs.wait()[-1]
    assert line["status"] == 200 and line["provider"] == "backup"
    assert line["attempts"] == "faulty/primary;502, backup/secondary;ok"


def test_fallback_via_catalog_streaming(make_gateway, fake):
    gw = make_gateway(models=[_model("faulty/primary", "hang", ["backup/secondary"]),
                              _model("backup/secondary", "ok")],
                      SKYLANE_MAX_ATTEMPTS="1", SKYLANE_FIRST_TOKEN_TIMEOUT="0.3")
    r, events = sse(gw, {"model": "faulty/primary", "messages": USER,
                         "stream_options": {"include_usage": True}})
    assert r.status_code == 200
    assert attempts(r) == ["faulty/primary;504", "backup/secondary;ok"]
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    for c in chunks:
        validate("CreateChatCompletionStreamResponse", c)
    assert {c["model"] for c in chunks} == {"backup/secondary"}
    assert chunks[-1]["usage"]["completion_tokens"] == 4  # "Hello from fake-faulty: hi"


# ---- circuit breakers ---------------------------------------------------------------------------------


def test_breaker_opens_then_503_with_retry_after_then_half_opens(make_gateway, fake):
    gw = make_gateway(SKYLANE_MAX_ATTEMPTS="1", SKYLANE_BREAKER_FAILURES="2", SKYLANE_BREAKER_COOLDOWN="1")
    for _ in range(2):
        assert post(gw, {"model": "faulty/500", "messages": USER}).status_code == 502
    t_open = time.monotonic()
    r = post(gw, {"model": "faulty/500", "messages": USER})
    assert r.status_code == 503
    err = r.json()["error"]
    validate("ErrorResponse", r.json())
    assert err["code"] == "circuit_open" and "circuit open" in err["message"]
    assert r.headers["retry-after"] == "1"
    assert attempts(r) == ["faulty/500;circuit-open"]
    assert fake.count("500") == 2  # the open breaker kept the request away from the provider
    time.sleep(max(0.0, 1.05 - (time.monotonic() - t_open)))
    r = post(gw, {"model": "faulty/500", "messages": USER})  # half-open: the trial goes through, fails
    assert r.status_code == 502 and fake.count("500") == 3
    r = post(gw, {"model": "faulty/500", "messages": USER})  # ...and the breaker is open again
    assert r.status_code == 503 and fake.count("500") == 3


def test_breaker_skips_to_fallback_and_closes_after_a_good_trial(make_gateway, fake):
    gw = make_gateway(models=[_model("faulty/flaky", "seq-brk", ["backup/ok"])],
                      SKYLANE_MAX_ATTEMPTS="1", SKYLANE_BREAKER_FAILURES="2", SKYLANE_BREAKER_COOLDOWN="0.5")
    fake.program("brk", ["500", "500"])  # then it recovers
    c = sdk(gw).chat.completions.with_raw_response
    for _ in range(2):
        raw = c.create(model="faulty/flaky", messages=USER)
        assert raw.parse().model == "backup/ok"
        assert attempts(raw) == ["faulty/flaky;502", "backup/ok;ok"]
    raw = c.create(model="faulty/flaky", messages=USER)
    assert raw.parse().model == "backup/ok"
    assert attempts(raw) == ["faulty/flaky;circuit-open", "backup/ok;ok"]
    assert fake.count("seq-brk") == 2
    time.sleep(0.6)
    raw = c.create(model="faulty/flaky", messages=USER)  # the trial succeeds: closed again
    assert raw.parse().model == "faulty/flaky" and attempts(raw) == []
    raw = c.create(model="faulty/flaky", messages=USER)
    assert raw.parse().model == "faulty/flaky"
    assert fake.count("seq-brk") == 4


async def test_half_open_lets_exactly_one_trial_through(make_gateway, fake):
    gw = make_gateway(models=[_model("faulty/flaky", "seq-one", ["backup/ok"])],
                      SKYLANE_MAX_ATTEMPTS="1", SKYLANE_BREAKER_FAILURES="1", SKYLANE_BREAKER_COOLDOWN="0.3")
    fake.program("one", ["500", "delay-0.8"])  # opens on the first failure; the trial is slow but good
    async with httpx.AsyncClient(base_url=gw, timeout=10) as client:
        body = {"model": "faulty/flaky", "messages": USER}
        r = await client.post("/v1/chat/completions", json=body)
        assert r.json()["model"] == "backup/ok"
        await asyncio.sleep(0.35)
        trial = asyncio.ensure_future(client.post("/v1/chat/completions", json=body))
        await asyncio.sleep(0.2)  # the trial is in flight now
        others = await asyncio.gather(*[client.post("/v1/chat/completions", json=body) for _ in range(5)])
        for o in others:
            assert o.status_code == 200 and o.json()["model"] == "backup/ok"
            assert attempts(o) == ["faulty/flaky;circuit-open", "backup/ok;ok"]
        r = await trial
        assert r.status_code == 200 and r.json()["model"] == "faulty/flaky"
    assert fake.count("seq-one") == 2  # the failure, then exactly one trial


def test_broken_streams_count_against_the_breaker(make_gateway, fake):
    gw = make_gateway(SKYLANE_MAX_ATTEMPTS="1", SKYLANE_BREAKER_FAILURES="2", SKYLANE_BREAKER_COOLDOWN="30")
    for _ in range(2):
        r, events = sse(gw, {"model": "faulty/cut", "messages": USER})
        assert r.status_code == 200
        assert_error_event(events)
    r, _ = sse(gw, {"model": "faulty/cut", "messages": USER})
    assert r.status_code == 503 and r.json()["error"]["code"] == "circuit_open"
    assert fake.count("cut") == 2


# ---- timeouts -----------------------------------------------------------------------------------------


@pytest.fixture
def unconnectable() -> Iterator[int]:
    """A loopback port whose listen backlog is full: SYNs are dropped, connects hang."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    time.sleep(0.05)
    try:
        yield port
    finally:
        for s in fillers:
            s.close()
        srv.close()


def test_connect_timeout(make_gateway, fake, unconnectable):
    gw = make_gateway(DEAD_API_KEY=KEY, DEAD_BASE_URL=f"http://127.0.0.1:{unconnectable}/v1",
                      SKYLANE_CONNECT_TIMEOUT="0.3", SKYLANE_MAX_ATTEMPTS="2", SKYLANE_FIRST_TOKEN_TIMEOUT="5")
    t0 = time.monotonic()
    r = post(gw, {"model": "dead/gpt", "messages": USER})
    elapsed = time.monotonic() - t0
    assert r.status_code == 504
    validate("ErrorResponse", r.json())
    assert "Could not connect to provider 'dead' within 0.3 s" in r.json()["error"]["message"]
    assert attempts(r) == ["dead/gpt;504", "dead/gpt;504"]
    assert 0.6 <= elapsed < 2.5
    # with a fallback, the answer comes from it
    raw = sdk(gw).chat.completions.with_raw_response.create(model="dead/gpt", messages=USER,
                                                            extra_body={"models": ["backup/ok"]})
    assert raw.parse().model == "backup/ok"


@pytest.mark.parametrize("stream", [False, True])
def test_first_token_timeout(make_gateway, fake, stream):
    gw = make_gateway(SKYLANE_FIRST_TOKEN_TIMEOUT="0.4", SKYLANE_MAX_ATTEMPTS="2")
    t0 = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        result = sdk(gw).chat.completions.create(model="faulty/hang", messages=USER, stream=stream)
        for _ in result:
            pass
    elapsed = time.monotonic() - t0
    assert info.value.status_code == 504  # nothing was streamed yet: a plain error response
    assert "did not start answering within 0.4 s" in info.value.message
    assert 0.8 <= elapsed < 2.5
    assert fake.count("hang") == 2
    # the gateway dropped both upstream connections
    assert fake.wait_for(lambda: all(r.client_gone for r in fake.served("hang")))


def test_first_token_means_content_not_the_role_chunk(make_gateway, fake):
    """A provider that sends only the role delta and then stalls is still retryable."""
    gw = make_gateway(SKYLANE_FIRST_TOKEN_TIMEOUT="0.4")
    fake.program("st0", ["stall-0"])
    text = "".join(c.choices[0].delta.content or "" for c in sdk(gw).chat.completions.create(
        model="faulty/seq-st0", messages=USER, stream=True) if c.choices)
    assert text == "Hello from fake-faulty: hi"
    # the fake records an outcome once it has written the whole answer, which may be just after the
    # gateway passed it on: wait for the record, then check it
    fake.wait_for(lambda: "pending" not in [r.outcome for r in fake.served("seq-st0")])
    assert [r.outcome for r in fake.served("seq-st0")] == ["stall", "ok"]


def test_idle_timeout_mid_stream(make_gateway, fake, logs):
    gw = make_gateway(SKYLANE_IDLE_TIMEOUT="0.4", SKYLANE_FIRST_TOKEN_TIMEOUT="5")
    t0 = time.monotonic()
    r, events = sse(gw, {"model": "faulty/stall-2", "messages": USER})
    elapsed = time.monotonic() - t0
    assert r.status_code == 200
    err = assert_error_event(events, "upstream_timeout")
    assert "stopped sending for 0.4 s" in err["message"]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"])
    assert text == "Hello from"
    assert 0.4 <= elapsed < 2.5
    assert fake.count("stall-2") == 1  # never retried once streaming began
    assert fake.wait_for(lambda: fake.served("stall-2")[0].client_gone)
    line = logs.wait()[-1]
    assert line["status"] == 504
    assert line["prompt_tokens"] > 0 and line["completion_tokens"] > 0  # usage so far is counted


def test_idle_timeout_is_separate_from_first_token(make_gateway, fake):
    gw = make_gateway(SKYLANE_IDLE_TIMEOUT="0.3", SKYLANE_FIRST_TOKEN_TIMEOUT="3")
    # a first token slower than the idle timeout is fine...
    text = "".join(c.choices[0].delta.content or "" for c in sdk(gw).chat.completions.create(
        model="faulty/delay-0.8", messages=USER, stream=True) if c.choices)
    assert text == "Hello from fake-faulty: hi"
    # ...and so are gaps shorter than it, however long the whole stream takes
    chunks = [c for c in sdk(gw).chat.completions.create(model="faulty/gap-0.15+words-8", messages=USER, stream=True)
              if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "w0 w1 w2 w3 w4 w5 w6 w7"


def test_total_budget_before_first_token(make_gateway, fake):
    gw = make_gateway(SKYLANE_TOTAL_TIMEOUT="1", SKYLANE_FIRST_TOKEN_TIMEOUT="30")
    t0 = time.monotonic()
    r = post(gw, {"model": "faulty/hang", "messages": USER})
    elapsed = time.monotonic() - t0
    assert r.status_code == 504 and r.json()["error"]["code"] == "budget_exhausted"
    validate("ErrorResponse", r.json())
    assert 0.9 <= elapsed < 1.8
    assert fake.count("hang") == 1


def test_total_budget_mid_stream(make_gateway, fake):
    gw = make_gateway(SKYLANE_TOTAL_TIMEOUT="1", SKYLANE_IDLE_TIMEOUT="5")
    t0 = time.monotonic()
    r, events = sse(gw, {"model": "faulty/gap-0.3+words-20", "messages": USER})
    elapsed = time.monotonic() - t0
    assert r.status_code == 200
    assert_error_event(events, "budget_exhausted")
    assert 2 <= len(events) < 8
    assert 0.9 <= elapsed < 1.8


def test_backoff_never_sleeps_past_the_budget(make_gateway, fake):
    # a Retry-After the gateway would honour (≤ max delay) but that ends past the budget
    gw = make_gateway(SKYLANE_TOTAL_TIMEOUT="1", SKYLANE_RETRY_MAX_DELAY="8")
    t0 = time.monotonic()
    r = post(gw, {"model": "faulty/429+ra-3", "messages": USER})
    assert time.monotonic() - t0 < 0.8
    assert r.status_code == 429 and r.headers["retry-after"] == "3"
    assert fake.count("429+ra-3") == 1


def test_lambda_deadline_ends_the_request_before_lambda_does(make_gateway, fake):
    gw = make_gateway(SKYLANE_TOTAL_TIMEOUT="600", SKYLANE_FIRST_TOKEN_TIMEOUT="60")
    ctx = {"request_id": "abc", "deadline": int((time.time() + 3.5) * 1000),
           "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:skylane"}
    t0 = time.monotonic()
    r = post(gw, {"model": "faulty/hang", "messages": USER}, **{"x-amzn-lambda-context": json.dumps(ctx)})
    elapsed = time.monotonic() - t0
    assert r.status_code == 504 and r.json()["error"]["code"] == "budget_exhausted"
    assert 1.0 <= elapsed < 2.5  # 3.5 s left, minus the 2 s margin for answering and settling


# ---- failures after streaming began ------------------------------------------------------------------


@pytest.mark.parametrize("fault,code", [("cut", "upstream_error"), ("midstream", None), ("eof", "upstream_error")])
def test_mid_stream_failure_ends_with_error_event(make_gateway, fake, logs, fault, code):
    gw = make_gateway()
    r, events = sse(gw, {"model": f"faulty/{fault}", "messages": USER})
    assert r.status_code == 200
    err = assert_error_event(events, code)
    assert KEY not in json.dumps(err) and "Traceback" not in json.dumps(err)
    assert fake.count(fault) == 1  # never retried after the first byte
    line = logs.wait()[-1]
    assert line["status"] >= 500
    assert line["prompt_tokens"] > 0 and line["completion_tokens"] > 0


def test_mid_stream_cut_through_the_sdk(make_gateway, fake):
    gw = make_gateway()
    got = []
    with pytest.raises(openai.APIError):
        for c in sdk(gw).chat.completions.create(model="faulty/cut-3", messages=USER, stream=True):
            if c.choices:
                got.append(c.choices[0].delta.content or "")
    assert "".join(got) == "Hello from fake-faulty:"
    assert fake.count("cut-3") == 1


def test_cut_before_any_content_is_retried(make_gateway, fake):
    gw = make_gateway()
    fake.program("c0", ["cut-0"])  # only the role chunk went out: nothing reached the client
    r, events = sse(gw, {"model": "faulty/seq-c0", "messages": USER})
    assert events[-1] == "[DONE]"
    fake.wait_for(lambda: "pending" not in [x.outcome for x in fake.served("seq-c0")])
    assert [x.outcome for x in fake.served("seq-c0")] == ["cut", "ok"]


@pytest.mark.parametrize("stream", [False, True])
def test_garbage_is_retried_then_reported_cleanly(make_gateway, fake, stream):
    gw = make_gateway(SKYLANE_MAX_ATTEMPTS="2")
    r = post(gw, {"model": "faulty/garbage", "messages": USER, "stream": stream})
    assert r.status_code == 502
    validate("ErrorResponse", r.json())
    assert fake.count("garbage") == 2


# ---- client disconnects ---------------------------------------------------------------------------------


def test_client_disconnect_mid_stream_cancels_upstream_and_records_usage(make_gateway, fake, logs):
    gw = make_gateway()
    body = {"model": "faulty/gap-0.2+words-100", "messages": USER, "stream": True}
    received = 0
    with httpx.stream("POST", gw + "/v1/chat/completions", json=body, timeout=10) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                received += 1
                if received == 4:
                    break
    t_left = time.monotonic()
    assert fake.wait_for(lambda: fake.served("gap-0.2+words-100")[0].client_gone, timeout=3)
    rec = fake.served("gap-0.2+words-100")[0]
    assert rec.t_end is not None and rec.t_end - t_left < 1.0  # promptly, not after 100 × 0.2 s
    assert not rec.complete
    line = logs.wait()[-1]
    assert line["status"] == 499
    assert line["prompt_tokens"] > 0 and line["completion_tokens"] >= 1


@pytest.mark.parametrize("stream", [False, True])
def test_client_disconnect_before_first_token_cancels_upstream(make_gateway, fake, logs, stream):
    gw = make_gateway(SKYLANE_FIRST_TOKEN_TIMEOUT="30", SKYLANE_TOTAL_TIMEOUT="60")
    with pytest.raises(httpx.ReadTimeout):
        post(gw, {"model": "faulty/hang", "messages": USER, "stream": stream}, timeout=0.5)
    t_left = time.monotonic()
    assert fake.wait_for(lambda: fake.served("hang") and fake.served("hang")[0].client_gone, timeout=3)
    assert fake.served("hang")[0].t_end - t_left < 1.0
    line = logs.wait()[-1]
    assert line["status"] == 499
    assert line["prompt_tokens"] > 0 and line["completion_tokens"] == 0
    assert fake.count("hang") == 1


def test_provider_refusing_the_gateway_key_falls_back_without_retrying(make_gateway, fake):
    gw = make_gateway(FAULTY_API_KEY="sk-wrong-secret")
    raw = sdk(gw).chat.completions.with_raw_response.create(model="faulty/ok", messages=USER,
                                                            extra_body={"models": ["backup/ok"]})
    assert raw.parse().model == "backup/ok"
    assert attempts(raw) == ["faulty/ok;502", "backup/ok;ok"]
    # the fake records an outcome once it has written the whole answer, which may be just after the
    # gateway passed it on: wait for the record, then check it
    fake.wait_for(lambda: "pending" not in [r.outcome for r in fake.served("ok")])
    assert [r.outcome for r in fake.served("ok")] == ["error:401", "ok"]  # one refusal, not three
    # without a fallback the client gets a clean 502 that does not echo the key
    r = post(gw, {"model": "faulty/ok", "messages": USER})
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_auth_failed"
    assert "sk-wrong" not in r.text


# ---- the same errors whichever HTTP client carries the call (transport/h1.py by default, httpx) -----


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: connections are refused
    return port


@pytest.mark.parametrize("transport", ["h1", "httpx"])
@pytest.mark.parametrize("stream", [False, True])
def test_connection_refused_is_503_on_both_transports(make_gateway, transport, stream):
    gw = make_gateway(DEAD_API_KEY=KEY, DEAD_BASE_URL=f"http://127.0.0.1:{_closed_port()}/v1",
                      SKYLANE_MAX_ATTEMPTS="1", SKYLANE_HTTP_TRANSPORT=transport)
    r = post(gw, {"model": "dead/gpt", "messages": USER, "stream": stream})
    assert r.status_code == 503
    validate("ErrorResponse", r.json())
    assert r.json()["error"]["message"] == "Could not connect to provider 'dead'."
    assert attempts(r) == ["dead/gpt;503"]


@pytest.fixture
def plain_http_port() -> Iterator[int]:
    """A server that answers anything, a TLS ClientHello included, with a plain HTTP 400 and closes."""
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        srv.close()


@pytest.mark.parametrize("transport", ["h1", "httpx"])
def test_tls_failure_is_503_on_both_transports(make_gateway, plain_http_port, transport):
    # https to a plain-HTTP server: the TLS handshake fails ("wrong version number")
    gw = make_gateway(DEAD_API_KEY=KEY, DEAD_BASE_URL=f"https://127.0.0.1:{plain_http_port}/v1",
                      SKYLANE_MAX_ATTEMPTS="1", SKYLANE_HTTP_TRANSPORT=transport)
    r = post(gw, {"model": "dead/gpt", "messages": USER})
    assert r.status_code == 503, r.text
    assert r.json()["error"]["message"] == "Could not connect to provider 'dead'."


@pytest.mark.parametrize("transport", ["h1", "httpx"])
def test_connect_timeout_is_504_on_both_transports(make_gateway, unconnectable, transport):
    gw = make_gateway(DEAD_API_KEY=KEY, DEAD_BASE_URL=f"http://127.0.0.1:{unconnectable}/v1",
                      SKYLANE_CONNECT_TIMEOUT="0.3", SKYLANE_MAX_ATTEMPTS="1", SKYLANE_HTTP_TRANSPORT=transport)
    r = post(gw, {"model": "dead/gpt", "messages": USER})
    assert r.status_code == 504
    assert "Could not connect to provider 'dead' within 0.3 s" in r.json()["error"]["message"]


@pytest.mark.parametrize("transport", ["h1", "httpx"])
def test_idle_timeout_mid_stream_on_both_transports(make_gateway, transport):
    gw = make_gateway(SKYLANE_IDLE_TIMEOUT="0.3", SKYLANE_HTTP_TRANSPORT=transport)
    r, events = stream_chat(gw, {"model": "faulty/stall-2", "messages": USER})
    assert r.status_code == 200
    assert events and isinstance(events[-1], dict) and "error" in events[-1]
    assert events[-1]["error"]["type"] == "timeout"
