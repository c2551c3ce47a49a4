"""Rate limits, credits and the usage ledger, in DynamoDB.

Before the upstream call (the hot path), at most ONE conditional write:

    limits table  pk "key#<id>"  sk "rate#<epoch minute>"
    UpdateItem  SET ttl = if_not_exists(ttl, :ttl)  ADD requests :1, tokens :reserved
    Condition   (attribute_not_exists(requests) OR requests < :rpm)
                AND (attribute_not_exists(tokens) OR tokens <= :tpm - :reserved)
    ReturnValues UPDATED_NEW  /  ReturnValuesOnConditionCheckFailure ALL_OLD

so the RPM and TPM checks are atomic together, a refused request counts nothing, and both the
success and the refusal know the current counts without a second read (the x-ratelimit-*
headers). Windows are fixed calendar minutes and part of the item key; `ttl` only cleans up.
Credits are checked against the key record cached by auth.py (no read): a key at or below
zero gets 402.

After the answer (`settle`, off the critical path, streams and disconnects included):
TPM reconciled (ADD real - reserved to the same window), credits debited atomically on the
key item (ADD credits_micros -cost, spent_micros +cost; the new balance updates the cached
record), and the usage ledger item `usage#<YYYY-MM-DD>#<model id>` (UTC day) gets ADDs. The
three writes run concurrently; a failure is logged, never raised into the response.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from skylane.accounts.gate import Principal, Reservation
from skylane.accounts.keys import KeyRecord
from skylane.accounts.store import call, dynamodb_client, error_code, map_error
from skylane.accounts.usage_agg import record_usage
from skylane.core.errors import InsufficientCredits, MonthlyBudgetExceeded, RateLimited, SkylaneError
from skylane.core.settings import Settings
from skylane.ops.observe import logger

__all__ = ["WINDOW_SECONDS", "DynamoLimiter", "format_reset", "ledger_sk", "month_of", "month_sk", "next_month",
           "rate_sk"]

WINDOW_SECONDS = 60
COUNTER_TTL = 2 * 3600  # counters are deleted (eventually) two hours after their window
INSUFFICIENT = "Insufficient credits"


def rate_sk(window: int) -> str:
    return f"rate#{window}"


def ledger_sk(day: str, model_id: str) -> str:
    return f"usage#{day}#{model_id}"


def month_sk(month: str) -> str:
    """The key's spend in one UTC month (`YYYY-MM`): a new month is a new item, so the cap resets by key."""
    return f"month#{month}"


def month_of(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m")


def next_month(now: float) -> datetime:
    """The 1st of the next UTC month, 00:00 (when a monthly budget resets)."""
    t = datetime.fromtimestamp(now, UTC)
    return datetime(t.year + t.month // 12, t.month % 12 + 1, 1, tzinfo=UTC)


def format_reset(seconds: float) -> str:
    """A duration the way OpenAI writes it in x-ratelimit-reset-*: 20ms, 1.5s, 6m0s."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def _count(attrs: dict[str, Any] | None, name: str) -> int:
    if not attrs or name not in attrs:
        return 0
    return int(attrs[name]["N"])


class DynamoLimiter:
    def __init__(self, settings: Settings, client: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.table = settings.limits_table
        self.keys_table = settings.keys_table
        self._client = client
        self.clock = clock
        self.writes_before_upstream = 0  # conditional writes made by reserve() (tests, benchmark)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = dynamodb_client(self.settings)
        return self._client

    # ---- before the call ---------------------------------------------------------------------------

    async def reserve(self, principal: Principal, tokens: int) -> Reservation:
        record: KeyRecord | None = principal.record
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        if record is None:
            return Reservation(principal=principal, tokens=0, window=window)
        if record.credits_micros is not None and record.credits_micros <= 0:
            raise InsufficientCredits(INSUFFICIENT)
        if record.monthly_budget_micros is not None:
            await self._check_month(record, now)
        if record.rpm is None and record.tpm is None:
            return Reservation(principal=principal, tokens=0, window=window)
        reset = (window + 1) * WINDOW_SECONDS - now
        tokens = max(0, int(tokens)) if record.tpm is not None else 0
        if record.tpm is not None and tokens > record.tpm:
            raise RateLimited(
                f"Request too large for tokens per minute: it may use {tokens} tokens (prompt estimate plus "
                f"max tokens) and the key allows {record.tpm}. Lower max_tokens or the prompt size.",
                retry_after=reset, headers=self._headers(record, 0, 0, reset),
            )
        names = {"#r": "requests", "#t": "tokens", "#ttl": "ttl"}
        values: dict[str, Any] = {
            ":one": {"N": "1"},
            ":tok": {"N": str(tokens)},
            ":ttl": {"N": str((window + 1) * WINDOW_SECONDS + COUNTER_TTL)},
        }
        conditions = []
        if record.rpm is not None:
            conditions.append("(attribute_not_exists(#r) OR #r < :rpm)")
            values[":rpm"] = {"N": str(record.rpm)}
        if record.tpm is not None:
            conditions.append("(attribute_not_exists(#t) OR #t <= :room)")
            values[":room"] = {"N": str(record.tpm - tokens)}
        self.writes_before_upstream += 1
        try:
            resp = await call(
                self.client.update_item,
                TableName=self.table,
                Key={"pk": {"S": f"key#{record.key_id}"}, "sk": {"S": rate_sk(window)}},
                UpdateExpression="SET #ttl = if_not_exists(#ttl, :ttl) ADD #r :one, #t :tok",
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except Exception as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise self._store_error(exc, self.table, record) from None
            old = getattr(exc, "response", {}).get("Item")
            used_r, used_t = _count(old, "requests"), _count(old, "tokens")
            raise self._refusal(record, used_r, used_t, tokens, reset) from None
        attrs = resp.get("Attributes")
        headers = self._headers(record, _count(attrs, "requests"), _count(attrs, "tokens"), reset)
        return Reservation(principal=principal, tokens=tokens, window=window, headers=headers)

    async def _check_month(self, record: KeyRecord, now: float) -> None:
        """402 once this month's spend reached the cap. The spend is read once per cached record
        and month (a new month is a new item); settles keep it current within this process."""
        month = month_of(now)
        if record.month != month:
            resp = await call(self.client.get_item, TableName=self.table, ConsistentRead=True,
                              Key={"pk": {"S": f"key#{record.key_id}"}, "sk": {"S": month_sk(month)}})
            record.month, record.month_spent_micros = month, _count(resp.get("Item"), "cost_micros")
        cap = record.monthly_budget_micros
        if cap is not None and record.month_spent_micros >= cap:
            reset = next_month(now).strftime("%Y-%m-%d %H:%M UTC")
            raise MonthlyBudgetExceeded(
                f"Monthly budget reached: this key may spend ${cap / 1_000_000:.2f} per month and has spent "
                f"${record.month_spent_micros / 1_000_000:.6f} in {month}. It resets on {reset}.")

    def _refusal(self, record: KeyRecord, used_r: int, used_t: int, tokens: int, reset: float) -> RateLimited:
        headers = self._headers(record, used_r, used_t, reset)
        wait = format_reset(reset)
        if record.rpm is not None and used_r >= record.rpm:
            message = (f"Rate limit reached for requests per minute: limit {record.rpm}, used {used_r}. "
                       f"Try again in {wait}.")
        else:
            message = (f"Rate limit reached for tokens per minute: limit {record.tpm}, used {used_t}, "
                       f"requested {tokens}. Try again in {wait}.")
        return RateLimited(message, retry_after=reset, headers=headers)

    @staticmethod
    def _headers(record: KeyRecord, used_r: int, used_t: int, reset: float) -> dict[str, str]:
        h: dict[str, str] = {}
        if record.rpm is not None:
            h["x-ratelimit-limit-requests"] = str(record.rpm)
            h["x-ratelimit-remaining-requests"] = str(max(0, record.rpm - used_r))
            h["x-ratelimit-reset-requests"] = format_reset(reset)
        if record.tpm is not None:
            h["x-ratelimit-limit-tokens"] = str(record.tpm)
            h["x-ratelimit-remaining-tokens"] = str(max(0, record.tpm - used_t))
            h["x-ratelimit-reset-tokens"] = format_reset(reset)
        return h

    @staticmethod
    def _store_error(exc: BaseException, table: str, record: KeyRecord) -> SkylaneError:
        err = map_error(exc, table)
        logger.warning("limits write failed",
                       extra={"fields": {"key_id": record.key_id, "error": getattr(err, "detail", err.message)}})
        return err

    # ---- after the call ------------------------------------------------------------------------------

    async def settle(
        self, reservation: Reservation, model_id: str, usage: dict[str, Any] | None, cost_micros: int
    ) -> None:
        if reservation.settled:
            return
        reservation.settled = True
        record: KeyRecord | None = reservation.principal.record
        if record is None:
            return
        usage = usage or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        cost = max(0, int(cost_micros))
        jobs = [self._ledger(record, model_id, prompt, completion, cached, cost),
                record_usage(self.client, self.table, record.key_id, model_id, self.clock(), prompt=prompt,
                             completion=completion, cost_micros=cost, error=reservation.failed)]
        if reservation.tokens and prompt + completion != reservation.tokens:
            jobs.append(self._adjust_tokens(record, reservation.window, prompt + completion - reservation.tokens))
        if cost:
            jobs.append(self._charge(record, cost))
            jobs.append(self._month_spend(record, cost))
        await self._run_all(record, jobs)

    async def release(self, reservation: Reservation, model_id: str | None = None) -> None:
        """The request failed before any answer: give back its reserved tokens (the request
        itself stays counted, as with OpenAI) and count an error in the usage aggregates."""
        if reservation.settled:
            return
        reservation.settled = True
        record: KeyRecord | None = reservation.principal.record
        if record is None:
            return
        jobs = [self._adjust_tokens(record, reservation.window, -reservation.tokens)] if reservation.tokens else []
        if model_id:
            jobs.append(record_usage(self.client, self.table, record.key_id, model_id, self.clock(), error=True))
        if jobs:
            await self._run_all(record, jobs)

    async def _run_all(self, record: KeyRecord, jobs: list[Any]) -> None:
        for result in await asyncio.gather(*jobs, return_exceptions=True):
            if isinstance(result, BaseException):
                err = map_error(result)
                logger.error("usage accounting failed", extra={"fields": {
                    "key_id": record.key_id, "error": getattr(err, "detail", type(result).__name__)}})

    async def _adjust_tokens(self, record: KeyRecord, window: int, delta: int) -> None:
        await call(
            self.client.update_item,
            TableName=self.table,
            Key={"pk": {"S": f"key#{record.key_id}"}, "sk": {"S": rate_sk(window)}},
            UpdateExpression="SET #ttl = if_not_exists(#ttl, :ttl) ADD #t :d",
            ExpressionAttributeNames={"#t": "tokens", "#ttl": "ttl"},
            ExpressionAttributeValues={":d": {"N": str(delta)},
                                       ":ttl": {"N": str((window + 1) * WINDOW_SECONDS + COUNTER_TTL)}},
        )

    async def _ledger(self, record: KeyRecord, model_id: str, prompt: int, completion: int, cached: int,
                      cost: int) -> None:
        day = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%d")
        await call(
            self.client.update_item,
            TableName=self.table,
            Key={"pk": {"S": f"key#{record.key_id}"}, "sk": {"S": ledger_sk(day, model_id)}},
            UpdateExpression="ADD #r :one, prompt_tokens :p, completion_tokens :c, cached_tokens :k, cost_micros :m",
            ExpressionAttributeNames={"#r": "requests"},
            ExpressionAttributeValues={":one": {"N": "1"}, ":p": {"N": str(prompt)}, ":c": {"N": str(completion)},
                                       ":k": {"N": str(cached)}, ":m": {"N": str(cost)}},
        )

    async def _month_spend(self, record: KeyRecord, cost: int) -> None:
        month = month_of(self.clock())
        resp = await call(
            self.client.update_item,
            TableName=self.table,
            Key={"pk": {"S": f"key#{record.key_id}"}, "sk": {"S": month_sk(month)}},
            UpdateExpression="ADD #r :one, cost_micros :m",
            ExpressionAttributeNames={"#r": "requests"},
            ExpressionAttributeValues={":one": {"N": "1"}, ":m": {"N": str(cost)}},
            ReturnValues="UPDATED_NEW",
        )
        spent = _count(resp.get("Attributes"), "cost_micros")
        if record.month != month:
            record.month, record.month_spent_micros = month, spent
        else:  # settles finish in any order: the spend only goes up
            record.month_spent_micros = max(record.month_spent_micros, spent)

    async def _charge(self, record: KeyRecord, cost: int) -> None:
        """Debit atomically; the cached record learns the new balance. The cached record says
        whether the key has a balance; if that changed since, the other form is tried."""
        first = record.credits_micros is not None
        for limited in (first, not first):
            values = {":c": {"N": str(cost)}}
            if limited:
                expression = "ADD credits_micros :neg, spent_micros :c"
                condition = "attribute_exists(pk) AND attribute_exists(credits_micros)"
                values[":neg"] = {"N": str(-cost)}
            else:
                expression = "ADD spent_micros :c"
                condition = "attribute_exists(pk) AND attribute_not_exists(credits_micros)"
            try:
                resp = await call(
                    self.client.update_item,
                    TableName=self.keys_table,
                    Key={"pk": {"S": record.key_id}},
                    UpdateExpression=expression,
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                    ReturnValues="UPDATED_NEW",
                )
            except Exception as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
                continue
            attrs = resp.get("Attributes", {})
            if limited:
                # settles finish in any order: within one cached record the balance only goes down
                # (a top-up reaches the instance with the next read of the record)
                balance = _count(attrs, "credits_micros")
                record.credits_micros = balance if record.credits_micros is None else min(record.credits_micros,
                                                                                          balance)
            else:
                record.credits_micros = None
            record.spent_micros = max(record.spent_micros, _count(attrs, "spent_micros"))
            return
        # neither matched: the key was deleted meanwhile; nothing to debit
