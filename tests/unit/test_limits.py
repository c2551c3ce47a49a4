"""The limiter against moto: one conditional write, headers, refusals, settle, credits, ledger.

(Concurrency and exactness are tested against DynamoDB Local in tests/integration/test_limits.py.)
"""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from skylane.accounts.gate import Principal
from skylane.accounts.keys import KeyRecord
from skylane.accounts.limits import DynamoLimiter, format_reset, ledger_sk, rate_sk
from skylane.accounts.store import create_tables
from skylane.cli.keys import create_key, update_key, usage_rows
from skylane.core.errors import InsufficientCredits, RateLimited
from skylane.core.settings import Settings

ENV = {"SKYLANE_AUTH": "enabled", "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
       "AWS_SECRET_ACCESS_KEY": "testing", "SKYLANE_KEYS_TABLE": "unit-keys", "SKYLANE_LIMITS_TABLE": "unit-limits"}
T0 = 1_800_000_000.0 - 1_800_000_000.0 % 60 + 15  # 15 s into a minute
USAGE = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
         "prompt_tokens_details": {"cached_tokens": 40}}


@pytest.mark.parametrize("seconds,text", [(0, "0ms"), (0.25, "250ms"), (1, "1s"), (1.5, "1.5s"), (45.1234, "45.123s"),
                                          (60, "1m0s"), (361, "6m1s")])
def test_reset_durations_are_written_like_openai(seconds, text):
    assert format_reset(seconds) == text


def test_item_keys():
    assert rate_sk(30_000_000) == "rate#30000000"
    assert ledger_sk("2026-01-02", "openai/gpt-4o") == "usage#2026-01-02#openai/gpt-4o"


@pytest.fixture
def env():
    with mock_aws():
        settings = Settings.from_env(ENV)
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client, settings)
        now = [T0]
        limiter = DynamoLimiter(settings, client=client, clock=lambda: now[0])
        yield settings, client, limiter, now


def principal(client, settings, **fields) -> Principal:
    fields.setdefault("rpm", None)
    fields.setdefault("tpm", None)
    _, record = create_key(client, settings, "unit", **fields)
    return Principal(key_id=record.key_id, record=record)


def window_item(client, settings, key_id: str, t: float = T0) -> dict:
    return client.get_item(TableName=settings.limits_table,
                           Key={"pk": {"S": f"key#{key_id}"}, "sk": {"S": rate_sk(int(t // 60))}}).get("Item", {})


async def test_rpm_counts_one_write_per_request_and_refuses_without_counting(env):
    settings, client, limiter, now = env
    p = principal(client, settings, rpm=3)
    remaining = []
    for _ in range(3):
        res = await limiter.reserve(p, 500)
        remaining.append(res.headers["x-ratelimit-remaining-requests"])
        assert res.headers["x-ratelimit-limit-requests"] == "3"
        assert res.headers["x-ratelimit-reset-requests"] == "45s"
        assert "x-ratelimit-limit-tokens" not in res.headers  # no TPM limit on this key
    assert remaining == ["2", "1", "0"]
    assert limiter.writes_before_upstream == 3
    with pytest.raises(RateLimited) as exc:
        await limiter.reserve(p, 500)
    err = exc.value
    assert err.status == 429 and err.type == "rate_limit_error"
    assert err.response_headers()["retry-after"] == "45"
    assert err.headers["x-ratelimit-remaining-requests"] == "0"
    assert err.message == "Rate limit reached for requests per minute: limit 3, used 3. Try again in 45s."
    item = window_item(client, settings, p.key_id)
    assert item["requests"]["N"] == "3" and int(item["ttl"]["N"]) > T0
    now[0] += 60  # the next window starts from zero
    assert (await limiter.reserve(p, 1)).headers["x-ratelimit-remaining-requests"] == "2"


async def test_tpm_reservation_fits_or_is_refused_and_settle_reconciles(env):
    settings, client, limiter, now = env
    p = principal(client, settings, tpm=1000)
    with pytest.raises(RateLimited) as exc:
        await limiter.reserve(p, 1001)
    assert "Request too large" in exc.value.message
    a = await limiter.reserve(p, 600)
    assert a.tokens == 600 and a.headers["x-ratelimit-remaining-tokens"] == "400"
    with pytest.raises(RateLimited) as exc:
        await limiter.reserve(p, 401)
    assert exc.value.headers["x-ratelimit-remaining-tokens"] == "400"
    assert "tokens per minute: limit 1000, used 600, requested 401" in exc.value.message
    await limiter.settle(a, "openai/gpt-4o", USAGE, 0)  # used 120 of the 600 reserved
    assert window_item(client, settings, p.key_id)["tokens"]["N"] == "120"
    b = await limiter.reserve(p, 880)
    assert b.headers["x-ratelimit-remaining-tokens"] == "0"
    await limiter.release(b)  # failed before any answer: tokens given back, the request stays counted
    item = window_item(client, settings, p.key_id)
    assert item["tokens"]["N"] == "120" and item["requests"]["N"] == "2"
    await limiter.release(b)  # idempotent
    assert window_item(client, settings, p.key_id)["tokens"]["N"] == "120"


async def test_unlimited_keys_cost_no_write_before_the_call(env):
    settings, client, limiter, now = env
    p = principal(client, settings)
    res = await limiter.reserve(p, 10_000_000)
    assert res.headers == {} and limiter.writes_before_upstream == 0
    await limiter.settle(res, "openai/gpt-4o", USAGE, 123)
    rows = usage_rows(client, settings, key_id=p.key_id)
    assert [(r["model"], r["requests"], r["prompt_tokens"], r["completion_tokens"], r["cached_tokens"],
             r["cost_usd"]) for r in rows] == [("openai/gpt-4o", 1, 100, 20, 40, 0.000123)]


async def test_credits_debited_atomically_and_402_at_or_below_zero(env):
    settings, client, limiter, now = env
    p = principal(client, settings, credits_micros=1000)
    res = await limiter.reserve(p, 10)
    await limiter.settle(res, "openai/gpt-4o", USAGE, 600)
    assert p.record.credits_micros == 400 and p.record.spent_micros == 600  # the cached record learned it
    res = await limiter.reserve(p, 10)
    await limiter.settle(res, "openai/gpt-4o", USAGE, 600)
    await limiter.settle(res, "openai/gpt-4o", USAGE, 600)  # a second settle is ignored
    assert p.record.credits_micros == -200
    item = client.get_item(TableName=settings.keys_table, Key={"pk": {"S": p.key_id}})["Item"]
    assert item["credits_micros"]["N"] == "-200" and item["spent_micros"]["N"] == "1200"
    with pytest.raises(InsufficientCredits) as exc:
        await limiter.reserve(p, 10)
    assert exc.value.status == 402 and exc.value.message == "Insufficient credits"
    assert exc.value.type == "insufficient_credits"
    zero = principal(client, settings, credits_micros=0, rpm=5)
    with pytest.raises(InsufficientCredits):
        await limiter.reserve(zero, 10)
    assert window_item(client, settings, zero.key_id) == {}  # refused before any counting
    rows = usage_rows(client, settings, key_id=p.key_id)
    assert rows[0]["requests"] == 2 and rows[0]["cost_usd"] == 0.0012


async def test_debit_follows_the_stored_key_when_the_cached_record_is_stale(env):
    settings, client, limiter, now = env
    p = principal(client, settings)  # cached as unlimited ...
    update_key(client, settings, p.key_id, credits_micros=5000)  # ... then given a balance
    await limiter.settle(await limiter.reserve(p, 1), "m/x", USAGE, 700)
    assert p.record.credits_micros == 4300
    q = principal(client, settings, credits_micros=5000)  # cached with a balance ...
    update_key(client, settings, q.key_id, credits_micros=None)  # ... then made unlimited
    await limiter.settle(await limiter.reserve(q, 1), "m/x", USAGE, 700)
    item = client.get_item(TableName=settings.keys_table, Key={"pk": {"S": q.key_id}})["Item"]
    assert "credits_micros" not in item and item["spent_micros"]["N"] == "700"
    assert q.record.credits_micros is None


async def test_settle_never_raises_into_the_response(env, caplog):
    settings, client, limiter, now = env
    record = KeyRecord(key_id="ghost", secret_hash="h", tpm=100, credits_micros=10)
    broken = DynamoLimiter(Settings.from_env({**ENV, "SKYLANE_LIMITS_TABLE": "no-such-table"}), client=client,
                           clock=lambda: now[0])
    res = await limiter.reserve(Principal(key_id="ghost", record=record), 50)
    await broken.settle(res, "openai/gpt-4o", USAGE, 5)  # logged, not raised
    assert res.settled


async def test_ledger_day_is_the_utc_day_of_settlement(env):
    settings, client, limiter, now = env
    p = principal(client, settings)
    now[0] = 1_767_225_599.0  # 2025-12-31 23:59:59 UTC
    await limiter.settle(await limiter.reserve(p, 1), "openai/gpt-4o", USAGE, 1)
    now[0] += 2
    await limiter.settle(await limiter.reserve(p, 1), "openai/gpt-4o", USAGE, 1)
    assert [r["day"] for r in usage_rows(client, settings, key_id=p.key_id)] == ["2025-12-31", "2026-01-01"]
    assert [r["day"] for r in usage_rows(client, settings, since="2026-01-01")] == ["2026-01-01"]
    assert [r["day"] for r in usage_rows(client, settings, until="2025-12-31")] == ["2025-12-31"]
