"""API keys against DynamoDB Local, through the real gateway over HTTP and the OpenAI SDK."""

from __future__ import annotations

import io
import json
import logging
import time

import httpx
import openai
import pytest

from skylane.cli.keys import revoke_key, update_key
from tests.spec import validate

USER = [{"role": "user", "content": "hi"}]
BODY = {"model": "openai/gpt-4o-mini", "messages": USER}


def sdk(base: str, key: str, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, **kw)


def test_bearer_and_x_api_key_both_work_with_the_openai_sdk(auth_gateway, make_key):
    gw = auth_gateway()
    k = make_key()
    with sdk(gw, k.key) as c:
        resp = c.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)
        assert resp.choices[0].message.content == "Hello from fake-openai: hi"
        chunks = list(c.chat.completions.create(model="openai/gpt-4o-mini", messages=USER, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from fake-openai: hi"
    # Hatz-style header; the SDK still sends its own (placeholder) Bearer token
    with sdk(gw, "placeholder", default_headers={"X-API-Key": k.key}) as c:
        resp = c.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)
        assert resp.choices[0].message.content == "Hello from fake-openai: hi"
    # and with nothing but X-API-Key (plain HTTP)
    r = httpx.post(gw + "/v1/chat/completions", headers={"x-api-key": k.key}, json=BODY)
    assert r.status_code == 200


def test_missing_key_is_401_authentication_error(auth_gateway):
    gw = auth_gateway()
    r = httpx.post(gw + "/v1/chat/completions", json=BODY)
    assert r.status_code == 401
    validate("ErrorResponse", r.json())
    err = r.json()["error"]
    assert err["type"] == "authentication_error" and err["code"] == "missing_api_key"
    assert "Authorization: Bearer" in err["message"] and "X-API-Key" in err["message"]
    r = httpx.post(gw + "/v1/chat/completions", headers={"authorization": "Bearer"}, json=BODY)
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    with sdk(gw, "sk-placeholder") as c, pytest.raises(openai.AuthenticationError):
        c.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)


def test_unknown_revoked_expired_and_wrong_secret_get_the_same_401(auth_gateway, make_key, dynamo_tables):
    gw = auth_gateway(SKYLANE_AUTH_CACHE_TTL="0", SKYLANE_AUTH_NEGATIVE_CACHE_TTL="0")
    good = make_key()
    revoked = make_key()
    revoke_key(dynamo_tables.client, dynamo_tables.settings, revoked.key_id)
    expired = make_key(expires_at=int(time.time()) - 10)
    wrong_secret = good.key[:-4] + ("AAAA" if not good.key.endswith("AAAA") else "BBBB")
    unknown = "sk-skylane-zzzzzzzzzzzz-" + "A" * 43
    bodies = []
    for key in (unknown, revoked.key, expired.key, wrong_secret, "sk-not-ours", "sk-skylane-bad"):
        r = httpx.post(gw + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json=BODY)
        assert r.status_code == 401, key
        validate("ErrorResponse", r.json())
        bodies.append(r.json())
        assert key not in r.text
    assert all(b == bodies[0] for b in bodies)
    assert bodies[0]["error"] == {"message": "Incorrect API key provided.", "type": "authentication_error",
                                  "param": None, "code": "invalid_api_key"}
    assert httpx.post(gw + "/v1/chat/completions", headers=good.headers, json=BODY).status_code == 200


def test_model_allow_list_gives_403_and_filters_the_models_listing(auth_gateway, make_key):
    gw = auth_gateway()
    k = make_key(models=["openai/gpt-4o-mini", "anthropic/claude-sonnet-*"])
    with sdk(gw, k.key) as c:
        _allow_list_checks(c)
    wildcard = make_key(models=["openai/*"])
    with sdk(gw, wildcard.key) as c:
        assert c.chat.completions.create(model="openai/gpt-4o", messages=USER).model


def _allow_list_checks(c: openai.OpenAI) -> None:
    assert c.chat.completions.create(model="openai/gpt-4o-mini", messages=USER).choices[0].message.content
    assert c.chat.completions.create(model="gpt-4o-mini", messages=USER).model == "gpt-4o-mini"  # alias → allowed id
    with pytest.raises(openai.PermissionDeniedError) as exc:
        c.chat.completions.create(model="openai/gpt-4o", messages=USER)
    assert exc.value.status_code == 403
    body = exc.value.response.json()
    validate("ErrorResponse", body)
    assert body["error"]["type"] == "permission_error" and body["error"]["param"] == "model"
    ids = {m.id for m in c.models.list()}
    assert "openai/gpt-4o-mini" in ids and "openai/gpt-4o" not in ids


def test_revoked_key_keeps_working_only_for_the_cache_ttl(auth_gateway, make_key, dynamo_tables):
    gw = auth_gateway(SKYLANE_AUTH_CACHE_TTL="1.5")
    k = make_key()
    assert httpx.post(gw + "/v1/chat/completions", headers=k.headers, json=BODY).status_code == 200
    revoke_key(dynamo_tables.client, dynamo_tables.settings, k.key_id)
    revoked_at = time.monotonic()
    # served from the instance's cache: no DynamoDB read on the hot path
    assert httpx.post(gw + "/v1/chat/completions", headers=k.headers, json=BODY).status_code == 200
    while time.monotonic() - revoked_at < 1.6:
        time.sleep(0.1)
    r = httpx.post(gw + "/v1/chat/completions", headers=k.headers, json=BODY)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    # un-revoking works the same way (after the negative/positive cache runs out)
    update_key(dynamo_tables.client, dynamo_tables.settings, k.key_id, revoked=False)
    time.sleep(1.6)
    assert httpx.post(gw + "/v1/chat/completions", headers=k.headers, json=BODY).status_code == 200


def test_missing_tables_give_a_clear_error_without_internals(auth_gateway):
    gw = auth_gateway(SKYLANE_KEYS_TABLE="no-such-table", SKYLANE_LIMITS_TABLE="no-such-limits")
    r = httpx.post(gw + "/v1/chat/completions", headers={"authorization": "Bearer sk-skylane-abc-" + "x" * 43},
                   json=BODY)
    assert r.status_code == 500
    validate("ErrorResponse", r.json())
    assert r.json()["error"]["code"] == "key_store_misconfigured"
    assert r.json()["error"]["message"] == "The gateway's key store is not set up."
    assert "no-such-table" not in r.text and "127.0.0.1" not in r.text and "Traceback" not in r.text


class _WithFields(logging.Formatter):
    """Every log record with its structured fields (what the gateway's JSON lines carry)."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record) + " " + json.dumps(record.__dict__.get("fields"), default=str)


def test_no_plaintext_key_in_dynamodb_or_logs(auth_gateway, make_key, dynamo_tables):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(_WithFields())
    names = ["", "skylane", "botocore", "boto3", "urllib3", "uvicorn", "uvicorn.error", "httpx"]
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        gw = auth_gateway(SKYLANE_LOG_LEVEL="DEBUG")
        k = make_key(credits_micros=5_000_000, rpm=100, tpm=100_000, models=["openai/gpt-4o-mini"])
        with sdk(gw, k.key) as c:
            c.chat.completions.create(model="openai/gpt-4o-mini", messages=USER)
            list(c.chat.completions.create(model="openai/gpt-4o-mini", messages=USER, stream=True))
            with pytest.raises(openai.PermissionDeniedError):
                c.chat.completions.create(model="openai/gpt-4o", messages=USER)
            with pytest.raises(openai.NotFoundError):
                c.chat.completions.create(model="nosuch/x", messages=USER)
        httpx.post(gw + "/v1/chat/completions", headers={"x-api-key": k.key}, json=BODY)
        httpx.post(gw + "/v1/chat/completions", headers={"x-api-key": k.key[:-1] + "Q"}, json=BODY)
        httpx.get(gw + "/v1/models", headers=k.headers)
        time.sleep(0.3)  # background settle
    finally:
        for lg, (level, _) in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
    logs = stream.getvalue()
    # the capture saw the gateway's request lines (with the key id) and boto3's DynamoDB calls
    assert f'"key_id": "{k.key_id}"' in logs and "UpdateItem" in logs and "GetItem" in logs
    secret = k.key.rsplit("-", 1)[1]
    assert k.key not in logs and secret not in logs
    items = dynamo_tables.scan(dynamo_tables.keys) + dynamo_tables.scan(dynamo_tables.limits)
    assert len(items) >= 3  # the key, a rate window, a ledger row
    dump = repr(items)
    assert secret not in dump and k.key not in dump
    key_item = dynamo_tables.key_item(k.key_id)
    assert set(key_item) >= {"pk", "secret_hash", "name", "created_at", "revoked", "rpm", "tpm", "credits_micros",
                             "spent_micros"}
    import hashlib

    assert key_item["secret_hash"]["S"] == hashlib.sha256(secret.encode()).hexdigest()
