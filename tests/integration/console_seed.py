"""Seeded usage for the console tests: the aggregate items settle writes (accounts/usage_agg.py) and
the per-key ledger rows, written in bulk with BatchWriteItem (25 items a call, a few threads)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from skylane.accounts.limits import ledger_sk
from skylane.accounts.usage_agg import HOUR_TTL, day_pk, hour_pk, shard


@dataclass
class Seeded:
    """What was written, summed the way the overview shows it."""

    requests: int = 0
    errors: int = 0
    tokens: int = 0
    cost_micros: int = 0
    items: int = 0
    by_key: dict[str, int] = field(default_factory=dict)  # cost micros per key
    requests_by_day: list[int] = field(default_factory=list)  # [today, yesterday, ...]


def _put(pk: str, sk: str, counts: dict[str, int], ttl: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": {"S": pk}, "sk": {"S": sk}, **{k: {"N": str(v)} for k, v in counts.items()}}
    if ttl is not None:
        item["ttl"] = {"N": str(ttl)}
    return {"PutRequest": {"Item": item}}


def _chunks(items: list[dict[str, Any]], n: int = 25) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def seed_usage(client: Any, table: str, key_ids: list[str], models: list[str], days: int, now: float,
               hours: int = 24, ledger: bool = True) -> Seeded:
    """For each key and day (the last `days` UTC days, today included): one model's usage, varied by
    key and day; today's usage is also spread over the last `hours` hour items. Deterministic."""
    end = datetime.fromtimestamp(now, UTC)
    seeded = Seeded()
    writes: list[dict[str, Any]] = []
    for d in range(days):
        day = (end - timedelta(days=d)).strftime("%Y-%m-%d")
        seeded.requests_by_day.append(0)
        for i, key_id in enumerate(key_ids):
            model = models[(i + d) % len(models)]
            requests = 1 + (i * 7 + d * 3) % 20
            errors = (i + d) % 3 == 0 and 1 or 0
            prompt, completion = requests * 100, requests * 20
            cost = requests * (1000 + i % 50)
            counts = {"requests": requests, "errors": errors, "prompt_tokens": prompt,
                      "completion_tokens": completion, "cost_micros": cost}
            writes.append(_put(day_pk(day, shard(key_id)), f"{key_id}#{model}", counts))
            if ledger:
                writes.append(_put(f"key#{key_id}", ledger_sk(day, model), {
                    "requests": requests, "prompt_tokens": prompt, "completion_tokens": completion,
                    "cached_tokens": 0, "cost_micros": cost}))
            seeded.requests += requests
            seeded.requests_by_day[d] += requests
            seeded.errors += errors
            seeded.tokens += prompt + completion
            seeded.cost_micros += cost
            seeded.by_key[key_id] = seeded.by_key.get(key_id, 0) + cost
            if d == 0 and hours:
                hour = (end - timedelta(hours=(i % hours))).strftime("%Y-%m-%dT%H")
                writes.append(_put(hour_pk(hour, shard(key_id)), f"{key_id}#{model}", counts,
                                   ttl=int(now) + HOUR_TTL))
    seeded.items = len(writes)

    def write(batch: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {table: batch}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, _chunks(writes)))
    return seeded
