"""accounts/responses.py on moto: records split into chunk items under the 400 KB limit, per-key partitions."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator

import pytest
from moto import mock_aws

from skylane.accounts.responses import CHUNK_BYTES, MAX_CHUNKS, ResponseStore, ResponseTooLarge
from skylane.accounts.store import create_tables, dynamodb_client
from skylane.core.settings import Settings

ENV = {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t",
       "SKYLANE_RESPONSES_TABLE": "unit-responses"}


@pytest.fixture
def store() -> Iterator[ResponseStore]:
    settings = Settings.from_env(ENV)
    with mock_aws():
        create_tables(dynamodb_client(settings), settings, wait=False)
        yield ResponseStore(settings)


def test_large_record_round_trip_in_chunks(store: ResponseStore) -> None:
    blob = base64.b64encode(os.urandom(600_000)).decode()  # incompressible: several chunks
    record = {"response": {"id": "resp_big", "output": [{"type": "message", "text": blob}]}, "input": ["hi"]}
    assert len(store.encode(record)) >= 2

    async def run() -> None:
        assert await store.available()
        await store.put("key-a", "resp_big", record)
        assert await store.get("key-a", "resp_big") == record
        assert await store.get("key-b", "resp_big") is None  # another key's partition
        assert await store.get("key-a", "resp_bi") is None  # a prefix is not an id
        assert not await store.delete("key-b", "resp_big")
        assert await store.delete("key-a", "resp_big")
        assert await store.get("key-a", "resp_big") is None
        client = dynamodb_client(store.settings)
        assert client.scan(TableName=store.table)["Items"] == []  # every chunk went

    asyncio.run(run())


def test_too_large_is_refused_naming_the_limit(store: ResponseStore) -> None:
    record = {"input": base64.b64encode(os.urandom(MAX_CHUNKS * CHUNK_BYTES)).decode()}
    with pytest.raises(ResponseTooLarge) as exc:
        store.encode(record)
    assert exc.value.status == 400 and str(MAX_CHUNKS * CHUNK_BYTES) in exc.value.message
