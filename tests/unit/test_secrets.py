"""Provider keys from a Secrets Manager secret through Powertools Parameters (moto plays Secrets Manager)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from skylane.core.catalog import load_catalog
from skylane.core.settings import Settings
from skylane.ops import secrets


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", raising=False)
    secrets.clear_cache()
    parameters.clear_caches()
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")
    secrets.clear_cache()
    parameters.clear_caches()


def _settings(secret_id: str, **env: str) -> secrets.SecretEnv:
    """The provider variables a gateway built with these settings sees (what the catalog asks)."""
    return secrets.SecretEnv(Settings.from_env({"SKYLANE_AUTH": "disabled", "SKYLANE_SECRET_ID": secret_id, **env}))


def test_provider_keys_come_from_the_secret(aws: Any) -> None:
    arn = aws.create_secret(Name="skylane/providers", SecretString=json.dumps(
        {"OPENAI_API_KEY": "sk-from-secret", "ANTHROPIC_API_KEY": "sk-ant-from-secret"}))["ARN"]
    settings = _settings(arn)
    assert settings.get("OPENAI_API_KEY") == "sk-from-secret"
    assert settings.get("ANTHROPIC_API_KEY") == "sk-ant-from-secret"
    assert settings.get("GEMINI_API_KEY") is None
    assert settings.get("GEMINI_API_KEY", "fallback") == "fallback"
    # the catalog sees the providers the secret configures (what /v1/models lists)
    configured = {m.provider for m in load_catalog(Settings.from_env({"SKYLANE_AUTH": "disabled"}),
                                                   settings).configured_models()}
    assert {"openai", "anthropic"} <= configured and "gemini" not in configured


def test_environment_wins_over_the_secret(aws: Any) -> None:
    aws.create_secret(Name="skylane/p2", SecretString=json.dumps({"OPENAI_API_KEY": "sk-from-secret"}))
    settings = _settings("skylane/p2", OPENAI_API_KEY="sk-from-env")
    assert settings.get("OPENAI_API_KEY") == "sk-from-env"


def test_read_once_then_refreshed(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    aws.create_secret(Name="skylane/p3", SecretString=json.dumps({"OPENAI_API_KEY": "sk-one"}))
    settings = _settings("skylane/p3")
    assert settings.get("OPENAI_API_KEY") == "sk-one"
    aws.put_secret_value(SecretId="skylane/p3", SecretString=json.dumps({"OPENAI_API_KEY": "sk-two"}))
    assert settings.get("OPENAI_API_KEY") == "sk-one"  # cached for the instance: no read per request
    monkeypatch.setattr(secrets, "REFRESH", 0.0)
    secrets.clear_cache()
    parameters.clear_caches()
    assert settings.get("OPENAI_API_KEY") == "sk-two"  # a rotated key reaches warm instances


def test_a_missing_secret_is_logged_and_retried(aws: Any, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(secrets, "RETRY", 0.0)
    settings = _settings("skylane/not-yet")
    with caplog.at_level(logging.ERROR, logger="skylane"):
        assert settings.get("OPENAI_API_KEY") is None  # no exception: the gateway keeps serving
    record = next(r for r in caplog.records if r.getMessage() == "could not read provider secret")
    assert record.fields["error"]  # the error's type, nothing from the secret
    aws.create_secret(Name="skylane/not-yet", SecretString=json.dumps({"OPENAI_API_KEY": "sk-late"}))
    assert settings.get("OPENAI_API_KEY") == "sk-late"  # not remembered as missing forever


def test_a_secret_that_is_not_a_json_object(aws: Any, caplog: pytest.LogCaptureFixture) -> None:
    aws.create_secret(Name="skylane/plain", SecretString="sk-just-a-string")
    with caplog.at_level(logging.ERROR, logger="skylane"):
        assert _settings("skylane/plain").get("OPENAI_API_KEY") is None
    assert "sk-just-a-string" not in caplog.text


def test_no_secret_configured_reads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env({"SKYLANE_AUTH": "disabled"})
    assert settings.secret_id is None
    assert secrets.secret_value(settings, "OPENAI_API_KEY") is None


def test_a_stale_secret_is_refreshed_in_the_background(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    aws.create_secret(Name="skylane/p4", SecretString=json.dumps({"OPENAI_API_KEY": "sk-old"}))
    env = _settings("skylane/p4")  # read at start-up
    aws.put_secret_value(SecretId="skylane/p4", SecretString=json.dumps({"OPENAI_API_KEY": "sk-new"}))
    parameters.clear_caches()
    monkeypatch.setattr(secrets, "REFRESH", 0.0)
    secrets._cache["skylane/p4"] = (0.0, {"OPENAI_API_KEY": "sk-old"}, True)  # stale
    assert env.get("OPENAI_API_KEY") == "sk-old"  # a request never waits on Secrets Manager
    end = time.monotonic() + 5
    while env.get("OPENAI_API_KEY") != "sk-new" and time.monotonic() < end:
        time.sleep(0.01)
    assert env.get("OPENAI_API_KEY") == "sk-new"
