"""Usage aggregates for the console and the admin API: written at settle time, read with queries.

Every settled or failed request of a key adds to two items of the limits table:

    pk "agg#day#<YYYY-MM-DD>#<shard>"     sk "<key id>#<model id>"   (kept: the history)
    pk "agg#hour#<YYYY-MM-DDTHH>#<shard>" sk "<key id>#<model id>"   (ttl: deleted after 3 days)
    ADD requests, errors, prompt_tokens, completion_tokens, cost_micros

`<shard>` is crc32(key id) mod SHARDS, so one key's items always land in the same shard and a
day's writes spread over SHARDS partition keys: DynamoDB allows about 1,000 writes per second per
partition key, so the aggregates take up to ~SHARDS × 1,000 settled requests per second (4,000
with the default 4) before writes throttle (a throttled aggregate write is logged, never fails
the request). Reading a period is a query per (day or hour, shard): 30 days = 120 queries run
concurrently, whatever the number of keys — never a scan. Key detail queries one shard per day
(`begins_with(sk, "<key id>#")`).
"""

from __future__ import annotations

import asyncio
import zlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from skylane.accounts.store import call

__all__ = ["PERIODS", "SHARDS", "buckets", "day_pk", "hour_pk", "key_activity", "key_usage", "overview", "record_usage",
           "shard"]

SHARDS = 4
HOUR_TTL = 3 * 86400
PERIODS = {"24h": ("hour", 24), "7d": ("day", 7), "30d": ("day", 30)}
METRICS = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost_micros")
SPLIT_TOP = 6  # series per split (the rest is "other")


def shard(key_id: str) -> int:
    return zlib.crc32(key_id.encode()) % SHARDS


def day_pk(day: str, n: int) -> str:
    return f"agg#day#{day}#{n}"


def hour_pk(hour: str, n: int) -> str:
    return f"agg#hour#{hour}#{n}"


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _hour(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H")


# ---- writing -------------------------------------------------------------------------------------


async def record_usage(client: Any, table: str, key_id: str, model_id: str, now: float, *, prompt: int = 0,
                       completion: int = 0, cost_micros: int = 0, error: bool = False) -> None:
    """Add one request to its day and hour aggregate items (two concurrent UpdateItems)."""
    n = shard(key_id)
    sk = f"{key_id}#{model_id}"
    values = {":one": {"N": "1"}, ":e": {"N": "1" if error else "0"}, ":p": {"N": str(max(0, prompt))},
              ":c": {"N": str(max(0, completion))}, ":m": {"N": str(max(0, cost_micros))}}
    adds = "ADD requests :one, errors :e, prompt_tokens :p, completion_tokens :c, cost_micros :m"
    hour_end = (int(now) // 3600 + 1) * 3600
    day = call(client.update_item, TableName=table, Key={"pk": {"S": day_pk(_day(now), n)}, "sk": {"S": sk}},
               UpdateExpression=adds, ExpressionAttributeValues=values)
    hour = call(client.update_item, TableName=table, Key={"pk": {"S": hour_pk(_hour(now), n)}, "sk": {"S": sk}},
                UpdateExpression="SET #ttl = if_not_exists(#ttl, :ttl) " + adds,
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={**values, ":ttl": {"N": str(hour_end + HOUR_TTL)}})
    for result in await asyncio.gather(day, hour, return_exceptions=True):
        if isinstance(result, BaseException):
            raise result


# ---- reading -------------------------------------------------------------------------------------


def buckets(period: str, now: float) -> tuple[str, list[str]]:
    """("hour" | "day", the bucket labels oldest first, ending with the current one)."""
    unit, count = PERIODS[period]
    end = datetime.fromtimestamp(now, UTC)
    if unit == "hour":
        return unit, [(end - timedelta(hours=i)).strftime("%Y-%m-%dT%H") for i in range(count - 1, -1, -1)]
    return unit, [(end - timedelta(days=i)).strftime("%Y-%m-%d") for i in range(count - 1, -1, -1)]


async def _query_all(client: Any, args: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        resp = await call(client.query, **args)
        items.extend(resp.get("Items", []))
        last = resp.get("LastEvaluatedKey")
        if not last:
            return items
        args = {**args, "ExclusiveStartKey": last}


def _row(bucket: str, item: dict[str, Any]) -> dict[str, Any]:
    key_id, _, model = item["sk"]["S"].partition("#")
    row: dict[str, Any] = {"bucket": bucket, "key_id": key_id, "model": model}
    for m in METRICS:
        v = item.get(m)
        row[m] = int(v["N"]) if v and "N" in v else 0
    return row


async def _rows(client: Any, table: str, unit: str, labels: list[str], key_id: str | None = None
                ) -> list[dict[str, Any]]:
    make_pk = hour_pk if unit == "hour" else day_pk
    jobs: list[Any] = []
    plan: list[str] = []
    shards = [shard(key_id)] if key_id else list(range(SHARDS))
    for label in labels:
        for n in shards:
            args: dict[str, Any] = {"TableName": table, "KeyConditionExpression": "pk = :pk",
                                    "ExpressionAttributeValues": {":pk": {"S": make_pk(label, n)}}}
            if key_id:
                args["KeyConditionExpression"] += " AND begins_with(sk, :k)"
                args["ExpressionAttributeValues"][":k"] = {"S": key_id + "#"}
            jobs.append(_query_all(client, args))
            plan.append(label)
    results = await asyncio.gather(*jobs)
    return [_row(label, item) for label, items in zip(plan, results, strict=True) for item in items]


def _totals(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    t = dict.fromkeys(METRICS, 0)
    for r in rows:
        for m in METRICS:
            t[m] += r[m]
    return t


def _public(t: dict[str, int]) -> dict[str, Any]:
    """Counters as the API shows them: tokens summed, money in USD, the error rate."""
    return {
        "requests": t["requests"],
        "errors": t["errors"],
        "error_rate": round(t["errors"] / t["requests"], 4) if t["requests"] else 0.0,
        "prompt_tokens": t["prompt_tokens"],
        "completion_tokens": t["completion_tokens"],
        "tokens": t["prompt_tokens"] + t["completion_tokens"],
        "cost_usd": t["cost_micros"] / 1_000_000,
    }


def _series(rows: list[dict[str, Any]], labels: list[str]) -> list[dict[str, Any]]:
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[r["bucket"]].append(r)
    return [{"bucket": label, **_public(_totals(by[label]))} for label in labels]


def _grouped(rows: list[dict[str, Any]], field: str) -> list[dict[str, Any]]:
    """Totals per key or per model, most spend (then most requests) first."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[r[field]].append(r)
    out = [{field: name, **_public(_totals(group))} for name, group in by.items()]
    return sorted(out, key=lambda g: (-g["cost_usd"], -g["requests"], g[field]))


def _split(rows: list[dict[str, Any]], field: str, labels: list[str], ranked: list[dict[str, Any]]
           ) -> list[dict[str, Any]]:
    """Per-bucket series of the top SPLIT_TOP keys or models, the rest summed as "other"."""
    top = [g[field] for g in ranked[:SPLIT_TOP]]
    names = {*top}
    index = {label: i for i, label in enumerate(labels)}
    series: dict[str, dict[str, list[float]]] = {}
    for name in [*top, *(["other"] if len(ranked) > SPLIT_TOP else [])]:
        series[name] = {m: [0] * len(labels) for m in ("requests", "errors", "tokens", "cost_usd")}
    for r in rows:
        s = series[r[field] if r[field] in names else "other"]
        i = index[r["bucket"]]
        s["requests"][i] += r["requests"]
        s["errors"][i] += r["errors"]
        s["tokens"][i] += r["prompt_tokens"] + r["completion_tokens"]
        s["cost_usd"][i] += r["cost_micros"] / 1_000_000
    return [{"name": name, "values": values} for name, values in series.items()]


async def overview(client: Any, table: str, period: str, now: float, top: int = 10) -> dict[str, Any]:
    """The console's overview for "24h" (by hour), "7d" or "30d" (by day)."""
    unit, labels = buckets(period, now)
    rows = await _rows(client, table, unit, labels)
    by_model = _grouped(rows, "model")
    by_key = _grouped(rows, "key_id")
    return {
        "period": period,
        "unit": unit,
        "buckets": labels,
        "totals": _public(_totals(rows)),
        "series": _series(rows, labels),
        "split": {"model": _split(rows, "model", labels, by_model), "key": _split(rows, "key_id", labels, by_key)},
        "top_models": by_model[:top],
        "top_keys": by_key[:top],
        "keys_with_usage": len(by_key),
    }


async def key_usage(client: Any, table: str, key_id: str, days: int, now: float) -> dict[str, Any]:
    """One key's usage by day and model over the last `days` days (one query per day)."""
    end = datetime.fromtimestamp(now, UTC)
    labels = [(end - timedelta(days=i)).strftime("%Y-%m-%d") for i in range(days - 1, -1, -1)]
    rows = await _rows(client, table, "day", labels, key_id=key_id)
    table_rows = [{"day": r["bucket"], "model": r["model"], **_public(r)} for r in rows]
    return {
        "days": labels,
        "totals": _public(_totals(rows)),
        "series": _series(rows, labels),
        "by_model": _grouped(rows, "model"),
        "rows": sorted(table_rows, key=lambda r: (r["day"], r["model"])),
    }


async def key_activity(client: Any, table: str, now: float) -> dict[str, dict[str, Any]]:
    """Per key: spend this UTC month (USD) and the last day (within 31 days) it made a request, from
    the day aggregates (at most 31 days × SHARDS queries, whatever the number of keys)."""
    end = datetime.fromtimestamp(now, UTC)
    month = end.strftime("%Y-%m")
    labels = [(end - timedelta(days=i)).strftime("%Y-%m-%d") for i in range(30, -1, -1)]
    out: dict[str, dict[str, Any]] = {}
    for r in await _rows(client, table, "day", labels):
        a = out.setdefault(r["key_id"], {"month_spent_usd": 0.0, "last_used": None, "requests_30d": 0})
        if r["bucket"].startswith(month):
            a["month_spent_usd"] += r["cost_micros"] / 1_000_000
        a["requests_30d"] += r["requests"]
        if r["requests"] and (a["last_used"] is None or r["bucket"] > a["last_used"]):
            a["last_used"] = r["bucket"]
    return out
