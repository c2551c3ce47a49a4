"""Tenant isolation: two keys on one gateway (auth on, DynamoDB Local). Each key sees only its own usage,
spends only its own credits, is counted only against its own limits, sees only the models its allow-list
permits, and no endpoint gives one key another key's data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from tests.spec import validate

MINI, FULL = "openai/gpt-4o-mini", "openai/gpt-4o"


def n(item: dict[str, Any], attr: str) -> int:
    return int(Decimal(item[attr]["N"])) if attr in item else 0


def usage_cli(env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SKYLANE_"))}
    clean.update({"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                  "AWS_EC2_METADATA_DISABLED": "true", **env})
    proc = subprocess.run([sys.executable, "-m", "skylane.cli", "usage", "--since", "1d", "--json", *args],
                          env=clean, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def chat(gw: str, headers: dict[str, str], model: str, text: str = "hi", **extra: Any) -> httpx.Response:
    return httpx.post(gw + "/v1/chat/completions", headers=headers, timeout=30,
                      json={"model": model, "messages": [{"role": "user", "content": text}], **extra})


@pytest.fixture
def two(auth_gateway, make_key):
    gw = auth_gateway(SKYLANE_SETTLE_INLINE="true")  # billed before the answer: no waiting in assertions
    a = make_key("tenant a", rpm=50, tpm=100_000, credits_micros=1_000_000, models=[MINI])
    b = make_key("tenant b", rpm=70, tpm=200_000, credits_micros=2_000_000, models=[FULL])
    return gw, a, b


def test_each_key_sees_only_its_own_usage_and_spends_only_its_own_credits(two, dynamo_tables):
    gw, a, b = two
    costs_a = []
    for i in range(3):
        r = chat(gw, a.headers, MINI, f"a{i}")
        assert r.status_code == 200
        costs_a.append(round(float(r.headers["x-skylane-cost-usd"]) * 1_000_000))
        assert r.headers["x-ratelimit-limit-requests"] == "50"  # A's limits, not B's
    r = chat(gw, b.headers, FULL, "b0", stream=True)
    assert r.status_code == 200 and r.headers["x-ratelimit-limit-requests"] == "70"

    rows_a = usage_cli(dynamo_tables.env, "--key", a.key_id)
    rows_b = usage_cli(dynamo_tables.env, "--key", b.key_id)
    assert {r["key_id"] for r in rows_a} == {a.key_id} and {r["model"] for r in rows_a} == {MINI}
    assert sum(r["requests"] for r in rows_a) == 3
    assert {r["key_id"] for r in rows_b} == {b.key_id} and {r["model"] for r in rows_b} == {FULL}
    assert sum(r["requests"] for r in rows_b) == 1
    everyone = usage_cli(dynamo_tables.env)
    assert {r["key_id"] for r in everyone} == {a.key_id, b.key_id}  # the operator's view has both

    item_a, item_b = dynamo_tables.key_item(a.key_id), dynamo_tables.key_item(b.key_id)
    assert n(item_a, "spent_micros") == sum(costs_a) > 0
    assert n(item_a, "credits_micros") == 1_000_000 - sum(costs_a)
    spent_b = n(item_b, "spent_micros")
    assert spent_b > 0 and n(item_b, "credits_micros") == 2_000_000 - spent_b
    # the limits table: every counter and ledger row of a key lives under that key's partition
    for key, other in ((a, b), (b, a)):
        items = dynamo_tables.limits_items(key.key_id)
        assert items and all(other.key_id not in json.dumps(i) for i in items)


def test_one_key_running_dry_does_not_touch_the_other(auth_gateway, make_key, dynamo_tables):
    gw = auth_gateway(SKYLANE_SETTLE_INLINE="true", SKYLANE_AUTH_CACHE_TTL="0")
    poor = make_key("poor", credits_micros=1, models=[MINI])
    rich = make_key("rich", credits_micros=5_000_000, models=[MINI])
    assert chat(gw, poor.headers, MINI).status_code == 200  # the last request a balance may start
    r = chat(gw, poor.headers, MINI)
    assert r.status_code == 402
    validate("ErrorResponse", r.json())
    before = n(dynamo_tables.key_item(rich.key_id), "credits_micros")
    for _ in range(2):
        assert chat(gw, rich.headers, MINI).status_code == 200
    assert chat(gw, poor.headers, MINI).status_code == 402
    assert n(dynamo_tables.key_item(rich.key_id), "credits_micros") < before
    assert n(dynamo_tables.key_item(poor.key_id), "credits_micros") <= 0


def test_rate_limits_are_per_key(auth_gateway, make_key):
    gw = auth_gateway()
    busy = make_key("busy", rpm=2, models=[MINI])
    calm = make_key("calm", rpm=2, models=[MINI])
    assert [chat(gw, busy.headers, MINI).status_code for _ in range(3)] == [200, 200, 429]
    assert [chat(gw, calm.headers, MINI).status_code for _ in range(2)] == [200, 200]


def test_models_endpoints_show_only_what_the_key_may_use(two):
    gw, a, b = two
    every = {m["id"] for m in httpx.get(gw + "/v1/models").json()["data"]}  # no key: the catalog
    assert {MINI, FULL} <= every and len(every) > 2
    for key, mine, theirs in ((a, MINI, FULL), (b, FULL, MINI)):
        for headers in (key.headers, {"x-api-key": key.key}):
            listed = httpx.get(gw + "/v1/models", headers=headers).json()
            validate("ListModelsResponse", listed)
            assert [m["id"] for m in listed["data"]] == [mine]
            chat_models = httpx.get(gw + "/v1/chat/models", headers=headers).json()["data"]
            assert [m["name"] for m in chat_models] == [mine]
            assert httpx.get(f"{gw}/v1/models/{mine}", headers=headers).json()["id"] == mine
            hidden = httpx.get(f"{gw}/v1/models/{theirs}", headers=headers)
            assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "model_not_found"
            alias = theirs.split("/", 1)[1]  # gpt-4o / gpt-4o-mini are catalog aliases
            assert httpx.get(f"{gw}/models/{alias}", headers=headers).status_code == 404
        with openai.OpenAI(base_url=gw + "/v1", api_key=key.key, max_retries=0) as sdk:
            assert [m.id for m in sdk.models.list()] == [mine]
    bad = httpx.get(gw + "/v1/models", headers={"authorization": f"Bearer {a.key[:-1]}X"})
    assert bad.status_code == 401  # a wrong key is refused, not treated as anonymous


def test_a_key_cannot_use_or_fall_back_to_the_other_keys_models(two, fake_openai):
    gw, a, b = two
    r = chat(gw, a.headers, FULL)
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    with openai.OpenAI(base_url=gw + "/v1", api_key=b.key, max_retries=0) as sdk, \
            pytest.raises(openai.PermissionDeniedError):
        sdk.chat.completions.create(model=MINI, messages=[{"role": "user", "content": "x"}])
    # a fallback list naming B's model: the failed primary is not retried on a model A may not use
    fake = fake_openai[0]
    seen = len(fake.requests)
    r = chat(gw, a.headers, MINI, "error:500", models=[FULL])
    assert r.status_code == 502
    assert {req["body"]["model"] for req in fake.requests[seen:]} == {"gpt-4o-mini"}


def test_no_endpoint_reads_another_keys_data(two):
    gw, a, b = two
    probes = ["/v1/usage", "/v1/keys", f"/v1/keys/{b.key_id}", f"/v1/usage/{b.key_id}", "/v1/credits",
              "/v1/dashboard/billing/usage", "/v1/organization/usage/completions", "/v1/me", "/admin",
              f"/v1/models/../keys/{b.key_id}", f"/v1/chat/completions/{b.key_id}", "/v1/chat/completions"]
    for path in probes:
        for method in ("GET", "POST", "DELETE"):
            r = httpx.request(method, gw + path, headers=a.headers)
            if (method, path) == ("GET", "/v1/usage"):  # the calling key's own rows (issue 14), never B's
                assert r.status_code == 200 and r.json()["key_id"] == a.key_id
                assert all(row.get("key_id", a.key_id) == a.key_id for row in r.json()["data"])
                assert b.key_id not in r.text
                continue
            assert r.status_code in (400, 404, 405), (method, path, r.status_code)
            assert b.key_id not in r.text.replace(r.request.url.path, "")  # only echoed as the path asked for
            validate("ErrorResponse", r.json())


def test_keys_cannot_be_mixed(two, dynamo_tables):
    gw, a, b = two
    secret_a = a.key.rsplit("-", 1)[1]
    for headers in ({"authorization": f"Bearer sk-skylane-{b.key_id}-{secret_a}"},
                    {"x-api-key": f"sk-skylane-{b.key_id}-{secret_a}"},
                    {"authorization": f"Bearer sk-skylane-{a.key_id}{b.key_id}-{secret_a}"}):
        r = chat(gw, headers, FULL)
        assert r.status_code == 401 and r.json()["error"]["message"] == "Incorrect API key provided."
    # both headers at once: exactly one key (the Bearer one) is charged, never both
    spent_b = n(dynamo_tables.key_item(b.key_id), "spent_micros")
    r = chat(gw, {**a.headers, "x-api-key": b.key}, MINI)
    assert r.status_code == 200 and r.headers["x-ratelimit-limit-requests"] == "50"
    assert n(dynamo_tables.key_item(b.key_id), "spent_micros") == spent_b
    assert n(dynamo_tables.key_item(a.key_id), "spent_micros") > 0
    assert chat(gw, {**a.headers, "x-api-key": b.key}, FULL).status_code == 403  # A's rights, not B's
