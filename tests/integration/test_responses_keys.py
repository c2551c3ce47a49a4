"""Stored responses with auth on (DynamoDB Local): each key sees only its own; the table's items."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.integration.conftest_dynamo import NewKey, Tables

MODEL = "openai/gpt-4o-mini"


@pytest.fixture
def gw(auth_gateway: Callable[..., str]) -> str:
    return auth_gateway()


def sdk(gw: str, key: NewKey) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw + "/v1", api_key=key.key, max_retries=0)


def test_a_key_never_sees_another_keys_response(gw: str, make_key: Callable[..., NewKey],
                                                dynamo_tables: Tables) -> None:
    alice, bob = make_key("alice"), make_key("bob")
    a, b = sdk(gw, alice), sdk(gw, bob)
    first = a.responses.create(model=MODEL, input="alice's secret turn")
    # stored under alice's key id, with a TTL
    items = dynamo_tables.scan(dynamo_tables.settings.responses_table)
    assert [(i["pk"]["S"], i["sk"]["S"]) for i in items] == [(alice.key_id, first.id)]
    assert int(items[0]["ttl"]["N"]) > 0 and "alice" not in str(items[0]["data"])  # compressed, not plain text
    for call in (lambda: b.responses.retrieve(first.id), lambda: b.responses.delete(first.id),
                 lambda: b.responses.input_items.list(first.id),
                 lambda: b.responses.create(model=MODEL, input="x", previous_response_id=first.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    assert a.responses.retrieve(first.id).output_text == first.output_text
    second = a.responses.create(model=MODEL, input="next", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    a.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        a.responses.retrieve(first.id)
    # the same ledger as chat: usage rows under alice's key (native usage read from the Response)
    usage = dynamo_tables.limits_items(alice.key_id, "usage#")
    assert usage and int(usage[0]["requests"]["N"]) >= 2 and int(usage[0]["prompt_tokens"]["N"]) > 0
    # no key: 401 in OpenAI's envelope
    r = httpx.get(gw + f"/v1/responses/{second.id}", timeout=10)
    assert r.status_code == 401 and r.json()["error"]["type"]


def test_store_true_without_a_table_is_a_clear_400(auth_gateway: Callable[..., str],
                                                   make_key: Callable[..., NewKey]) -> None:
    gw = auth_gateway(SKYLANE_RESPONSES_TABLE="no-such-table")
    key = make_key("carol")
    client = sdk(gw, key)
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model=MODEL, input="hi", store=True)
    assert exc.value.code == "store_unavailable" and "no-such-table" in exc.value.message
    # store absent: answered, not stored (the Response says so)
    r = client.responses.create(model=MODEL, input="hi")
    assert r.store is False and r.output_text
    body: dict[str, Any] = client.responses.create(model=MODEL, input="hi", store=False).model_dump()
    assert body["store"] is False
