"""Key format, hashing, header extraction, allow-lists, the LRU cache and the authenticator (moto)."""

from __future__ import annotations

import asyncio
import hashlib
import time

import boto3
import pytest
from moto import mock_aws

from skylane.accounts.factory import build_gate
from skylane.accounts.keys import (
    INVALID_KEY,
    KEY_PREFIX,
    DynamoAuthenticator,
    KeyRecord,
    RecordCache,
    extract_key,
    format_key,
    hash_secret,
    model_allowed,
    new_key,
    parse_key,
)
from skylane.accounts.store import KeyStoreMisconfigured, create_tables
from skylane.cli.keys import create_key, revoke_key
from skylane.core.errors import AuthenticationFailed, PermissionDenied
from skylane.core.settings import Settings

ENV = {"SKYLANE_AUTH": "enabled", "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
       "AWS_SECRET_ACCESS_KEY": "testing", "SKYLANE_KEYS_TABLE": "unit-keys", "SKYLANE_LIMITS_TABLE": "unit-limits"}


# ---- format --------------------------------------------------------------------------------------------


def test_new_keys_are_well_formed_random_and_parse_back():
    seen = set()
    for _ in range(200):
        key_id, secret = new_key()
        key = format_key(key_id, secret)
        assert key.startswith(KEY_PREFIX) and len(key_id) == 12 and len(secret) == 43
        assert key_id.isalnum() and key_id.islower() or key_id.isdigit()
        assert secret.isalnum() and secret.isascii()
        assert parse_key(key) == (key_id, secret)
        seen.add(secret)
    assert len(seen) == 200


@pytest.mark.parametrize("key", [
    "", "sk-abc", "sk-skylane-", "sk-skylane-abc", "sk-skylane-abc-", "sk-skylane--secret",
    "sk-skylane-ABC-secret", "sk-skylane-ab_c-secret", "sk-skylane-abc-sec ret", "sk-skylane-abc-sec-ret",
    "sk-skylane-abc-" + "x" * 300, "sk-skylane-abc-sécret",
])
def test_malformed_keys_do_not_parse(key):
    assert parse_key(key) is None


def test_only_the_sha256_of_the_secret_is_kept():
    record = KeyRecord(key_id="abc", secret_hash=hash_secret("s3cret"))
    assert record.secret_hash == hashlib.sha256(b"s3cret").hexdigest()
    assert "s3cret" not in repr(record.to_item()) and "secret_hash" not in record.public()


@pytest.mark.parametrize("headers,expected", [
    ({"authorization": "Bearer sk-skylane-a-b"}, "sk-skylane-a-b"),
    ({"authorization": "bearer   sk-skylane-a-b  "}, "sk-skylane-a-b"),
    ({"x-api-key": "sk-skylane-a-b"}, "sk-skylane-a-b"),
    ({"x-api-key": "Bearer sk-skylane-a-b"}, "sk-skylane-a-b"),
    ({"authorization": "Bearer placeholder", "x-api-key": "sk-skylane-a-b"}, "sk-skylane-a-b"),
    ({"authorization": "Bearer sk-skylane-a-b", "x-api-key": "sk-skylane-c-d"}, "sk-skylane-a-b"),
    ({"authorization": "Basic dXNlcjpwYXNz"}, None),
    ({"authorization": "Bearer"}, None),
    ({}, None),
    ({"authorization": "Bearer other"}, "other"),
])
def test_key_extraction_from_both_headers(headers, expected):
    assert extract_key(headers) == expected


@pytest.mark.parametrize("patterns,model,allowed", [
    ((), "openai/gpt-4o", True),
    (("openai/*",), "openai/gpt-4o", True),
    (("openai/*",), "anthropic/claude-sonnet-4", False),
    (("anthropic/claude-sonnet-*",), "anthropic/claude-sonnet-4-5", True),
    (("anthropic/claude-sonnet-*",), "anthropic/claude-opus-4", False),
    (("openai/gpt-4o",), "openai/gpt-4o-mini", False),
    (("OpenAI/*",), "openai/gpt-4o", False),  # case-sensitive, like model ids
    (("groq/*", "openai/gpt-4o-mini"), "openai/gpt-4o-mini", True),
])
def test_model_allow_list_patterns(patterns, model, allowed):
    assert model_allowed(patterns, model) is allowed


# ---- cache ---------------------------------------------------------------------------------------------------


def test_cache_expires_entries_and_is_bounded_lru():
    now = [100.0]
    cache = RecordCache(size=3, clock=lambda: now[0])
    records = {i: KeyRecord(key_id=str(i), secret_hash="h") for i in range(5)}
    for i in range(3):
        cache.put(str(i), records[i], ttl=5)
    assert cache.get("0") is records[0]  # 0 becomes most recent
    cache.put("3", records[3], ttl=5)  # evicts 1, the least recently used
    assert len(cache) == 3 and cache.get("1") is not None and cache.get("1") is not records[1]
    assert cache.get("0") is records[0] and cache.get("3") is records[3]
    cache.put("none", None, ttl=1)
    assert cache.get("none") is None  # a cached negative answer
    now[0] += 1.01
    assert cache.get("none") is not None  # expired: a miss (the sentinel), not a cached None
    now[0] += 4
    assert cache.get("0") is not records[0]
    cache.put("z", records[4], ttl=0)  # ttl 0 disables caching
    assert cache.get("z") is not records[4]


# ---- the authenticator against moto ----------------------------------------------------------------------------


@pytest.fixture
def aws():
    with mock_aws():
        settings = Settings.from_env(ENV)
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client, settings)
        yield settings, client


def _auth(settings: Settings, client, **env) -> DynamoAuthenticator:
    if env:
        settings = Settings.from_env({**ENV, **env})
    return DynamoAuthenticator(settings, client=client)


async def test_authenticate_caches_and_shares_one_read(aws):
    settings, client = aws
    key, record = create_key(client, settings, "unit", rpm=None, tpm=None)
    auth = _auth(settings, client)
    principals = await asyncio.gather(*(auth.authenticate({"authorization": f"Bearer {key}"}) for _ in range(20)))
    assert {p.key_id for p in principals} == {record.key_id}
    assert auth.reads == 1  # concurrent misses share a single GetItem
    await auth.authenticate({"x-api-key": key})
    assert auth.reads == 1  # cached: no read on the hot path


async def test_same_401_for_unknown_revoked_expired_and_wrong_secret(aws):
    settings, client = aws
    auth = _auth(settings, client, SKYLANE_AUTH_CACHE_TTL="0", SKYLANE_AUTH_NEGATIVE_CACHE_TTL="0")
    good, _ = create_key(client, settings, "good")
    revoked, rec = create_key(client, settings, "revoked")
    revoke_key(client, settings, rec.key_id)
    expired, _ = create_key(client, settings, "expired", expires_at=int(time.time()) - 1)
    wrong = good[:-1] + ("A" if good[-1] != "A" else "B")
    for key in ("sk-skylane-nosuchkey-" + "a" * 43, revoked, expired, wrong, "garbage"):
        with pytest.raises(AuthenticationFailed) as exc:
            await auth.authenticate({"authorization": f"Bearer {key}"})
        assert exc.value.message == INVALID_KEY and exc.value.status == 401 and exc.value.code == "invalid_api_key"
    with pytest.raises(AuthenticationFailed) as exc:
        await auth.authenticate({})
    assert exc.value.code == "missing_api_key"
    assert (await auth.authenticate({"authorization": f"Bearer {good}"})).key_id == good.split("-")[2]


async def test_negative_results_are_cached_briefly(aws):
    settings, client = aws
    auth = _auth(settings, client, SKYLANE_AUTH_NEGATIVE_CACHE_TTL="60")
    unknown = "sk-skylane-unknownid-" + "a" * 43
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate({"authorization": f"Bearer {unknown}"})
    assert auth.reads == 1


async def test_revocation_is_seen_after_the_cache_ttl(aws):
    settings, client = aws
    now = [0.0]
    auth = DynamoAuthenticator(Settings.from_env({**ENV, "SKYLANE_AUTH_CACHE_TTL": "5"}), client=client,
                               clock=lambda: now[0])
    key, rec = create_key(client, settings, "k")
    await auth.authenticate({"authorization": f"Bearer {key}"})
    revoke_key(client, settings, rec.key_id)
    now[0] = 4.9
    await auth.authenticate({"authorization": f"Bearer {key}"})  # still cached
    now[0] = 5.1
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate({"authorization": f"Bearer {key}"})


async def test_check_model_and_may_use(aws):
    settings, client = aws
    key, _ = create_key(client, settings, "k", models=["openai/*"])
    auth = _auth(settings, client)
    principal = await auth.authenticate({"authorization": f"Bearer {key}"})
    auth.check_model(principal, "openai/gpt-4o")
    with pytest.raises(PermissionDenied) as exc:
        auth.check_model(principal, "anthropic/claude-sonnet-4")
    assert exc.value.status == 403 and exc.value.param == "model"
    assert auth.may_use(principal, "openai/o3-mini") and not auth.may_use(principal, "gemini/gemini-2.5-pro")


async def test_missing_table_is_a_clear_misconfiguration(aws):
    settings, client = aws
    auth = _auth(settings, client, SKYLANE_KEYS_TABLE="missing-table")
    with pytest.raises(KeyStoreMisconfigured) as exc:
        await auth.authenticate({"authorization": "Bearer sk-skylane-abc-" + "a" * 43})
    assert exc.value.status == 500 and "missing-table" not in exc.value.message
    assert "missing-table" in exc.value.detail and "skylane tables create" in exc.value.detail


def test_build_gate_picks_the_dynamodb_implementations():
    gate = build_gate(Settings.from_env(ENV))
    assert gate.enabled and type(gate.auth).__name__ == "DynamoAuthenticator"
    assert type(gate.limits).__name__ == "DynamoLimiter"
    assert not build_gate(Settings.from_env({"SKYLANE_AUTH": "disabled"})).enabled
