"""Key operations shared by the CLI (`skylane keys ...`, cli/keys.py) and the admin API (http/admin.py).

Every change is one conditional write on the key item (`attribute_exists(pk)` for updates,
`attribute_not_exists(pk)` for creation), so a deleted or unknown key is never recreated by an
update. The functions are synchronous boto3 calls (the admin API runs them on the DynamoDB thread
pool through `store.call`). The full key is returned once, by `create_key`, and never stored.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from skylane.accounts.keys import KeyRecord, format_key, hash_secret, new_key
from skylane.accounts.store import error_code
from skylane.core.settings import Settings

__all__ = [
    "DEFAULT_RPM",
    "DEFAULT_TPM",
    "UNCHANGED",
    "AdminError",
    "create_key",
    "get_key",
    "list_keys",
    "revoke_key",
    "update_key",
    "usage_rows",
]

DEFAULT_RPM = 60
DEFAULT_TPM = 100_000


class AdminError(ValueError):
    """A key operation that cannot be done as asked (unknown key, nothing to change); the message is
    safe to show to an operator."""


def create_key(
    client: Any,
    settings: Settings,
    name: str,
    *,
    rpm: int | None = DEFAULT_RPM,
    tpm: int | None = DEFAULT_TPM,
    credits_micros: int | None = None,
    monthly_budget_micros: int | None = None,
    models: Sequence[str] = (),
    expires_at: int | None = None,
    admin: bool = False,
) -> tuple[str, KeyRecord]:
    """A new key: returns (the full key, to be shown once; the stored record)."""
    for _ in range(5):
        key_id, secret = new_key()
        record = KeyRecord(
            key_id=key_id, secret_hash=hash_secret(secret), name=name, created_at=int(time.time()),
            expires_at=expires_at, rpm=rpm, tpm=tpm, models=tuple(models), credits_micros=credits_micros,
            monthly_budget_micros=monthly_budget_micros,
            admin=admin,
        )
        try:
            client.put_item(TableName=settings.keys_table, Item=record.to_item(),
                            ConditionExpression="attribute_not_exists(pk)")
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                continue  # an id collision (astronomically unlikely): draw again
            raise
        return format_key(key_id, secret), record
    raise AdminError("could not draw an unused key id")


def get_key(client: Any, settings: Settings, key_id: str) -> KeyRecord | None:
    item = client.get_item(TableName=settings.keys_table, Key={"pk": {"S": key_id}}, ConsistentRead=True).get("Item")
    return KeyRecord.from_item(item) if item else None


def list_keys(client: Any, settings: Settings) -> list[KeyRecord]:
    records: list[KeyRecord] = []
    for page in client.get_paginator("scan").paginate(TableName=settings.keys_table):
        records.extend(KeyRecord.from_item(item) for item in page.get("Items", []))
    return sorted(records, key=lambda r: (r.created_at, r.key_id))


def revoke_key(client: Any, settings: Settings, key_id: str) -> KeyRecord:
    return update_key(client, settings, key_id, revoked=True)


UNCHANGED: Any = object()  # update_key: leave this attribute as it is


def update_key(
    client: Any,
    settings: Settings,
    key_id: str,
    *,
    name: str | None = None,
    rpm: Any = UNCHANGED,  # int, or None for unlimited
    tpm: Any = UNCHANGED,
    credits_micros: Any = UNCHANGED,  # set the balance (None: unlimited)
    add_credits_micros: int | None = None,  # top up (or down) atomically
    monthly_budget_micros: Any = UNCHANGED,  # spend cap per UTC month (None: no cap)
    models: Sequence[str] | None = None,  # () clears the allow-list
    expires_at: Any = UNCHANGED,  # epoch seconds, or None for never
    revoked: bool | None = None,
) -> KeyRecord:
    sets: list[str] = []
    removes: list[str] = []
    adds: list[str] = []
    names: dict[str, str] = {}
    values: dict[str, Any] = {}

    def assign(attr: str, value: Any, encoded: dict[str, Any] | None) -> None:
        names[f"#{attr}"] = attr
        if value is None:
            removes.append(f"#{attr}")
        else:
            values[f":{attr}"] = encoded
            sets.append(f"#{attr} = :{attr}")

    if name is not None:
        assign("name", name, {"S": name})
    for attr, value in (("rpm", rpm), ("tpm", tpm), ("credits_micros", credits_micros), ("expires_at", expires_at),
                        ("monthly_budget_micros", monthly_budget_micros)):
        if value is not UNCHANGED:
            assign(attr, value, None if value is None else {"N": str(int(value))})
    if models is not None:
        assign("models", list(models) or None, {"L": [{"S": m} for m in models]})
    if revoked is not None:
        assign("revoked", revoked, {"BOOL": revoked})
    if add_credits_micros is not None:
        if credits_micros is not UNCHANGED:
            raise AdminError("give either a new balance or a top-up, not both")
        names["#credits_micros"] = "credits_micros"
        values[":topup"] = {"N": str(int(add_credits_micros))}
        adds.append("#credits_micros :topup")
    if not (sets or removes or adds):
        raise AdminError("nothing to update")
    expression = " ".join(part for part in (
        "SET " + ", ".join(sets) if sets else "",
        "REMOVE " + ", ".join(removes) if removes else "",
        "ADD " + ", ".join(adds) if adds else "",
    ) if part)
    args: dict[str, Any] = {
        "TableName": settings.keys_table,
        "Key": {"pk": {"S": key_id}},
        "UpdateExpression": expression,
        "ConditionExpression": "attribute_exists(pk)",
        "ExpressionAttributeNames": names,
        "ReturnValues": "ALL_NEW",
    }
    if values:
        args["ExpressionAttributeValues"] = values
    try:
        resp = client.update_item(**args)
    except Exception as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            raise AdminError(f"no key with id '{key_id}'") from None
        raise
    return KeyRecord.from_item(resp["Attributes"])


def usage_rows(
    client: Any, settings: Settings, key_id: str | None = None, since: str | None = None, until: str | None = None
) -> list[dict[str, Any]]:
    """Ledger rows (day, key_id, model, requests, tokens, cost) between two UTC days, inclusive."""
    low = f"usage#{since or '0000-00-00'}"
    high = f"usage#{until or '9999-99-99'}#\uffff"
    values = {":lo": {"S": low}, ":hi": {"S": high}}
    if key_id:
        values[":pk"] = {"S": f"key#{key_id}"}
        pages = client.get_paginator("query").paginate(
            TableName=settings.limits_table, KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues=values)
    else:
        pages = client.get_paginator("scan").paginate(
            TableName=settings.limits_table, FilterExpression="sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues=values)
    rows = []
    for page in pages:
        for item in page.get("Items", []):
            _, day, model = item["sk"]["S"].split("#", 2)

            def n(attr: str, item: dict[str, Any] = item) -> int:
                return int(Decimal(item[attr]["N"])) if attr in item else 0

            rows.append({
                "day": day, "key_id": item["pk"]["S"].removeprefix("key#"), "model": model,
                "requests": n("requests"), "prompt_tokens": n("prompt_tokens"),
                "completion_tokens": n("completion_tokens"), "cached_tokens": n("cached_tokens"),
                "cost_usd": n("cost_micros") / 1_000_000,
            })
    return sorted(rows, key=lambda r: (r["day"], r["key_id"], r["model"]))
