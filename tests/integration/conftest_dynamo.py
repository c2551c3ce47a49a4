"""DynamoDB Local fixtures (imported by tests/integration/conftest.py).

    dynamodb_local      one DynamoDB Local per test session (in memory), started on first use
    dynamo_env          AWS_* variables pointing boto3 (gateway, CLI) at it
    dynamo_tables       a fresh pair of keys/limits tables for one test (.env has the table names too)
    make_key            make_key(name=..., rpm=..., tpm=..., credits_micros=..., models=...) -> NewKey
    auth_gateway        auth_gateway(**env) -> base URL of a gateway with auth ENABLED on those tables,
                        the openai provider pointed at the fake OpenAI upstream
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from skylane.accounts.keys import KeyRecord
from skylane.accounts.store import create_tables, dynamodb_client
from skylane.cli.keys import create_key
from skylane.core.settings import Settings
from tests.dynamodb_local import DynamoDBLocal

__all__ = ["NewKey", "Tables", "auth_gateway", "dynamo_env", "dynamo_tables", "dynamodb_local", "make_key"]


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    with DynamoDBLocal() as ddb:
        yield ddb


@pytest.fixture(scope="session")
def dynamo_env(dynamodb_local: DynamoDBLocal) -> dict[str, str]:
    return dynamodb_local.env()


@dataclass
class Tables:
    keys: str
    limits: str
    env: dict[str, str]  # AWS_* and SKYLANE_*_TABLE
    settings: Settings
    client: Any

    def scan(self, table: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in self.client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            items.extend(page.get("Items", []))
        return items

    def key_item(self, key_id: str) -> dict[str, Any]:
        return self.client.get_item(TableName=self.keys, Key={"pk": {"S": key_id}}, ConsistentRead=True)["Item"]

    def limits_items(self, key_id: str, prefix: str = "") -> list[dict[str, Any]]:
        values = {":pk": {"S": f"key#{key_id}"}}
        condition = "pk = :pk"
        if prefix:
            values[":p"] = {"S": prefix}
            condition += " AND begins_with(sk, :p)"
        resp = self.client.query(TableName=self.limits, ConsistentRead=True, KeyConditionExpression=condition,
                                 ExpressionAttributeValues=values)
        return resp["Items"]


@pytest.fixture
def dynamo_tables(dynamo_env: dict[str, str]) -> Iterator[Tables]:
    suffix = uuid.uuid4().hex[:10]
    env = {**dynamo_env, "SKYLANE_KEYS_TABLE": f"test-keys-{suffix}", "SKYLANE_LIMITS_TABLE": f"test-limits-{suffix}",
           "SKYLANE_RESPONSES_TABLE": f"test-responses-{suffix}"}
    settings = Settings.from_env(env)
    client = dynamodb_client(settings)
    create_tables(client, settings)
    yield Tables(keys=settings.keys_table, limits=settings.limits_table, env=env, settings=settings, client=client)
    for name in (settings.keys_table, settings.limits_table, settings.responses_table):
        try:
            client.delete_table(TableName=name)
        except Exception:  # noqa: S110 (best effort; the in-memory database goes away with the session)
            pass


@dataclass
class NewKey:
    key: str
    key_id: str
    record: KeyRecord
    headers: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def make_key(dynamo_tables: Tables) -> Callable[..., NewKey]:
    def make(name: str = "test", **fields: Any) -> NewKey:
        fields.setdefault("rpm", None)
        fields.setdefault("tpm", None)
        key, record = create_key(dynamo_tables.client, dynamo_tables.settings, name, **fields)
        return NewKey(key=key, key_id=record.key_id, record=record, headers={"authorization": f"Bearer {key}"})

    return make


@pytest.fixture
def auth_gateway(gateway_factory: Callable[..., str], fake_openai: Any, dynamo_tables: Tables) -> Callable[..., str]:
    from tests.conftest import UPSTREAM_KEY

    def start(**env: str) -> str:
        merged = {"SKYLANE_AUTH": "enabled", "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake_openai[1],
                  **dynamo_tables.env, **env}
        return gateway_factory(**merged)

    return start
