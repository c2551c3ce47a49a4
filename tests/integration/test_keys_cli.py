"""`skylane tables|keys|usage` as a user runs them: subprocesses against DynamoDB Local."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import httpx
import openai

USER = [{"role": "user", "content": "hi"}]


def cli_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SKYLANE_"))}
    # never pick up a developer's real AWS configuration
    env.update({"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true"})
    env.update(extra)
    return env


def skylane(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "skylane.cli", *args], env=cli_env(env), capture_output=True,
                          text=True, timeout=120)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_tables_create_is_idempotent_and_matches_the_definitions(dynamo_env):
    suffix = uuid.uuid4().hex[:8]
    env = {**dynamo_env, "SKYLANE_KEYS_TABLE": f"cli-keys-{suffix}", "SKYLANE_LIMITS_TABLE": f"cli-limits-{suffix}"}
    out = skylane(env, "tables", "create").stdout
    assert f"created  cli-keys-{suffix}" in out and f"created  cli-limits-{suffix}" in out
    assert "TTL on 'ttl'" in out
    again = skylane(env, "tables", "create").stdout
    assert f"exists   cli-keys-{suffix}" in again
    import boto3

    client = boto3.client("dynamodb", endpoint_url=dynamo_env["AWS_ENDPOINT_URL_DYNAMODB"], region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    ttl = client.describe_time_to_live(TableName=f"cli-limits-{suffix}")["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "ENABLED" and ttl["AttributeName"] == "ttl"
    table = client.describe_table(TableName=f"cli-limits-{suffix}")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                  {"AttributeName": "sk", "KeyType": "RANGE"}]


def test_key_lifecycle_through_the_cli_and_the_gateway(dynamo_tables, auth_gateway):
    env = dynamo_tables.env
    gw = auth_gateway(SKYLANE_AUTH_CACHE_TTL="0.3")
    created = skylane(env, "keys", "create", "--name", "ci bot", "--rpm", "5", "--tpm", "20000", "--credits", "1.50",
                      "--models", "openai/*", "--expires", "30d", "--json")
    data = json.loads(created.stdout)
    key, key_id = data["key"], data["key_id"]
    assert key.startswith(f"sk-skylane-{key_id}-") and data["name"] == "ci bot"
    assert data["rpm"] == 5 and data["tpm"] == 20000 and data["credits_usd"] == 1.5 and data["models"] == ["openai/*"]
    assert data["expires_at"] > time.time() + 29 * 86400
    human = skylane(env, "keys", "create", "--name", "human").stdout
    assert "API key (shown once, store it now): sk-skylane-" in human

    # both headers work with the OpenAI SDK
    with openai.OpenAI(base_url=gw + "/v1", api_key=key, max_retries=0) as c:
        resp = c.chat.completions.with_raw_response.create(model="openai/gpt-4o-mini", messages=USER)
        assert resp.headers["x-ratelimit-limit-requests"] == "5"
        assert resp.parse().choices[0].message.content == "Hello from fake-openai: hi"
    with openai.OpenAI(base_url=gw + "/v1", api_key="unused", max_retries=0,
                       default_headers={"X-API-Key": key}) as c:
        list(c.chat.completions.create(model="openai/gpt-4o", messages=USER, stream=True))

    listing = skylane(env, "keys", "list").stdout
    assert key_id in listing and "ci bot" in listing and "openai/*" in listing and "$1.49" in listing
    assert key not in listing and key.rsplit("-", 1)[1] not in listing
    assert {k["key_id"] for k in json.loads(skylane(env, "keys", "list", "--json").stdout)} >= {key_id}

    shown = skylane(env, "keys", "show", key_id).stdout
    assert "requests/min: 5" in shown and "status:       active" in shown

    updated = json.loads(skylane(env, "keys", "update", key_id, "--rpm", "7", "--add-credits", "2", "--all-models",
                                 "--json").stdout)
    assert updated["rpm"] == 7 and updated["models"] == []
    assert 3.49 < updated["credits_usd"] < 3.5  # 1.50 - what the two calls cost + 2.00
    assert updated["spent_usd"] > 0
    assert json.loads(skylane(env, "keys", "update", key_id, "--tpm", "unlimited", "--json").stdout)["tpm"] is None

    usage = skylane(env, "usage").stdout
    assert "openai/gpt-4o-mini" in usage and "openai/gpt-4o" in usage and key_id in usage
    rows = json.loads(skylane(env, "usage", "--key", key_id, "--since", "1d", "--json").stdout)
    assert {r["model"] for r in rows} == {"openai/gpt-4o-mini", "openai/gpt-4o"}
    assert all(r["requests"] == 1 and r["prompt_tokens"] > 0 and r["completion_tokens"] == 7 for r in rows)
    assert json.loads(skylane(env, "usage", "--key", key_id, "--since", "2999-01-01", "--json").stdout) == []

    revoked = skylane(env, "keys", "revoke", key_id).stdout
    assert f"revoked {key_id}" in revoked
    assert "status:       revoked" in skylane(env, "keys", "show", key_id).stdout
    assert key_id not in skylane(env, "keys", "list").stdout
    assert key_id in skylane(env, "keys", "list", "--all").stdout
    time.sleep(0.4)
    r = httpx.post(gw + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                   json={"model": "openai/gpt-4o-mini", "messages": USER})
    assert r.status_code == 401


def test_cli_errors_are_clear(dynamo_env, dynamo_tables):
    missing = {**dynamo_env, "SKYLANE_KEYS_TABLE": "nope-keys", "SKYLANE_LIMITS_TABLE": "nope-limits"}
    for args in (("keys", "list"), ("keys", "create", "--name", "x"), ("usage",)):
        proc = skylane(missing, *args, ok=False)
        assert proc.returncode == 2
        assert "does not exist" in proc.stderr and "skylane tables create" in proc.stderr
        assert "Traceback" not in proc.stderr
    no_creds = {k: v for k, v in dynamo_env.items() if not k.startswith("AWS_ACCESS_KEY_ID")
                and not k.startswith("AWS_SECRET")}
    proc = skylane(no_creds, "keys", "list", ok=False)
    assert proc.returncode == 2 and "No AWS credentials found" in proc.stderr and "Traceback" not in proc.stderr
    no_region = {k: v for k, v in dynamo_env.items() if k not in ("AWS_REGION", "AWS_ENDPOINT_URL_DYNAMODB")}
    proc = skylane(no_region, "keys", "list", ok=False)
    assert proc.returncode == 2 and "AWS_REGION" in proc.stderr
    proc = skylane({**dynamo_env, "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9"}, "keys", "list", ok=False)
    assert proc.returncode == 2 and "Could not reach" in proc.stderr
    env = dynamo_tables.env
    assert "no key with id 'nosuchkey'" in skylane(env, "keys", "show", "nosuchkey", ok=False).stderr
    assert "no key with id 'nosuchkey'" in skylane(env, "keys", "revoke", "nosuchkey", ok=False).stderr
    bad = skylane(env, "keys", "create", "--name", "x", "--rpm", "0", ok=False)
    assert bad.returncode == 2 and "unlimited" in bad.stderr  # argparse usage error
