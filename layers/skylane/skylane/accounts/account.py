"""A key's own view of itself: its limits, balance, budget and spend, and its ledger rows.

Served by `GET /v1/key` and `GET /v1/usage` (http/account.py) for the key that calls them, and only
for it: every read is keyed by the caller's authenticated key id. Never the secret or its hash.
Reads: the key item (consistent, so a balance is exact), the month item `month#<YYYY-MM>`, and the
key's ledger rows `usage#<day>#<model>` (one query on its own partition).
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from skylane.accounts.admin import get_key, usage_rows
from skylane.accounts.keys import KeyRecord
from skylane.accounts.limits import DynamoLimiter, month_of, month_sk, next_month
from skylane.accounts.store import call
from skylane.core.errors import InvalidRequest

__all__ = ["DEFAULT_SINCE", "SINCE_PATTERN", "key_summary", "key_usage_rows", "parse_since"]

DEFAULT_SINCE = "30d"
_RELATIVE = re.compile(r"^([0-9]{1,4})d$")
# what `since` takes, exactly (the OpenAPI document states the same pattern): a number of days, or a
# calendar date (February 29 is not taken: use 03-01)
SINCE_PATTERN = (r"^([0-9]{1,4}d|[1-9][0-9]{3}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])"
                 r"|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8])))$")
_SINCE = re.compile(SINCE_PATTERN)


def _usd(micros: int | None) -> float | None:
    return None if micros is None else micros / 1_000_000


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_since(text: str | None, now: float) -> str:
    """The first UTC day (YYYY-MM-DD) of `since`: `7d` (today and the 6 days before) or a date."""
    text = DEFAULT_SINCE if text is None else text
    if not _SINCE.match(text):
        raise InvalidRequest(f"Invalid 'since': {text[:40]!r}. Use a date (2025-01-31) or a number of days such "
                             "as 7d.", param="since")
    today = datetime.fromtimestamp(now, UTC).date()
    m = _RELATIVE.match(text)
    if m:
        days = max(1, int(m.group(1)))
        return (today - timedelta(days=days - 1)).isoformat()
    return text


async def key_summary(limiter: DynamoLimiter, key_id: str) -> dict[str, Any]:
    """GET /v1/key: the calling key as stored now, with its spend today and this month."""
    now = limiter.clock()
    today = datetime.fromtimestamp(now, UTC).date().isoformat()
    month = month_of(now)
    settings = limiter.settings
    record_job = call(get_key, client=limiter.client, settings=settings, key_id=key_id)
    month_job = call(limiter.client.get_item, TableName=limiter.table, ConsistentRead=True,
                     Key={"pk": {"S": f"key#{key_id}"}, "sk": {"S": month_sk(month)}})
    today_job = call(usage_rows, client=limiter.client, settings=settings, key_id=key_id, since=today,
                     until=today)
    record, month_item, today_rows = await asyncio.gather(record_job, month_job, today_job)
    if record is None:  # deleted since it was authenticated
        record = KeyRecord(key_id=key_id, secret_hash="")
    month_micros = int((month_item.get("Item") or {}).get("cost_micros", {}).get("N", "0"))
    today_usd = round(sum(r["cost_usd"] for r in today_rows), 6)
    return {
        "object": "key",
        "key_id": record.key_id,
        "name": record.name,
        "status": record.status,
        "created_at": _iso(record.created_at),
        "expires_at": _iso(record.expires_at),
        "limits": {"rpm": record.rpm, "tpm": record.tpm},
        "credits_usd": _usd(record.credits_micros),
        "monthly_budget_usd": _usd(record.monthly_budget_micros),
        "monthly_budget_resets_at": next_month(now).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "spend": {"today_usd": today_usd, "month_usd": month_micros / 1_000_000, "month": month,
                  "total_usd": record.spent_micros / 1_000_000},
        "models": list(record.models),
    }


async def key_usage_rows(limiter: DynamoLimiter, key_id: str, since: str | None) -> dict[str, Any]:
    """GET /v1/usage: the calling key's ledger rows (per UTC day and model) since a day."""
    first = parse_since(since, limiter.clock())
    rows = await call(usage_rows, client=limiter.client, settings=limiter.settings, key_id=key_id, since=first)
    data = [{k: v for k, v in row.items() if k != "key_id"} for row in rows]
    data.sort(key=lambda r: (r["day"], r["model"]))
    return {"object": "list", "key_id": key_id, "since": first, "data": data}
