"""Stored Responses API responses (`store: true`): DynamoDB, partitioned by key, with a TTL.

    table  SKYLANE_RESPONSES_TABLE (default skylane-responses; template.yaml's ResponsesTable)
    pk     the key id that created the response ("anonymous" when auth is disabled)
    sk     the response id ("<id>#<n>" for the record's later chunks)
    data   (B) a chunk of the zlib-compressed JSON record {"response": {...}, "input": [...]}
    n      (N, first item only) how many chunks the record has
    ttl    (N) epoch seconds: created + SKYLANE_RESPONSES_TTL_DAYS

A record is compressed and split into chunks under DynamoDB's 400 KB item limit (at most
MAX_CHUNKS of CHUNK_BYTES: records larger than that are refused with ResponseTooLarge). Reads
are one Query on (pk, begins_with(sk, id)): a key only ever sees its own partition, so another
key's response id reads as "not found".
"""

from __future__ import annotations

import json
import time
import zlib
from typing import Any

from skylane.accounts.store import call, dynamodb_client, map_error
from skylane.core.errors import InvalidRequest, SkylaneError
from skylane.core.settings import Settings

__all__ = ["ANONYMOUS_OWNER", "CHUNK_BYTES", "MAX_CHUNKS", "ResponseStore", "ResponseTooLarge"]

ANONYMOUS_OWNER = "anonymous"
CHUNK_BYTES = 350_000  # below DynamoDB's 400 KB item limit, with room for the keys
MAX_CHUNKS = 16  # about 5.6 MB compressed per stored response
PROBE_TTL = 60.0  # seconds a table-availability probe is trusted


def _valid_id(response_id: str) -> bool:
    """An id this store could have issued (never a chunk key; within DynamoDB's sort-key size)."""
    return bool(response_id) and "#" not in response_id and len(response_id) <= 200


class ResponseTooLarge(InvalidRequest):
    code = "response_too_large_to_store"


class ResponseStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table = settings.responses_table
        self._probe: tuple[float, bool] | None = None

    @staticmethod
    def owner(key_id: str | None) -> str:
        """The partition of a key's responses ("anonymous" when auth is disabled)."""
        return key_id or ANONYMOUS_OWNER

    def worth_checking(self, value: Any) -> bool:
        """Whether `value` might be too large to store (then `encode` it before the call)."""
        return len(str(value)) > CHUNK_BYTES

    def _client(self) -> Any:
        return dynamodb_client(self.settings)

    async def available(self) -> bool:
        """Whether the table can be reached (probed once a minute)."""
        now = time.monotonic()
        if self._probe is not None and now - self._probe[0] < PROBE_TTL:
            return self._probe[1]
        try:
            client = self._client()
            await call(client.describe_table, TableName=self.table)
            ok = True
        except Exception:
            ok = False
        self._probe = (now, ok)
        return ok

    @staticmethod
    def encode(record: dict[str, Any]) -> list[bytes]:
        """The record as compressed chunks; ResponseTooLarge when it needs more than MAX_CHUNKS."""
        blob = zlib.compress(json.dumps(record, separators=(",", ":")).encode(), 6)
        chunks = [blob[i:i + CHUNK_BYTES] for i in range(0, len(blob), CHUNK_BYTES)] or [b""]
        if len(chunks) > MAX_CHUNKS:
            raise ResponseTooLarge(
                f"The response and its input are too large to store ({len(blob)} bytes compressed; the limit is "
                f"{MAX_CHUNKS * CHUNK_BYTES} bytes, {MAX_CHUNKS} DynamoDB items of {CHUNK_BYTES} bytes). "
                "Send store: false, or a shorter input.", param="store")
        return chunks

    async def put(self, owner: str, response_id: str, record: dict[str, Any]) -> None:
        chunks = self.encode(record)
        ttl = int(time.time() + self.settings.responses_ttl_days * 86400)
        items = []
        for i, chunk in enumerate(chunks):
            item: dict[str, Any] = {"pk": {"S": owner}, "sk": {"S": response_id if i == 0 else f"{response_id}#{i}"},
                                    "data": {"B": chunk}, "ttl": {"N": str(ttl)}}
            if i == 0:
                item["n"] = {"N": str(len(chunks))}
            items.append(item)
        try:
            client = self._client()
            # later chunks first: a reader who finds the first item finds the whole record
            for start in range(1, len(items), 25):
                await self._batch(client, [{"PutRequest": {"Item": it}} for it in items[start:start + 25]])
            await call(client.put_item, TableName=self.table, Item=items[0])
        except Exception as exc:
            raise map_error(exc, self.table) from None

    async def _batch(self, client: Any, requests: list[dict[str, Any]]) -> None:
        pending = {self.table: requests}
        for _ in range(5):
            out = await call(client.batch_write_item, RequestItems=pending)
            pending = out.get("UnprocessedItems") or {}
            if not pending:
                return
        raise SkylaneError("The gateway could not finish writing a stored response.")

    async def _items(self, owner: str, response_id: str) -> list[dict[str, Any]]:
        client = self._client()
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table, "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :id)",
            "ExpressionAttributeValues": {":pk": {"S": owner}, ":id": {"S": response_id}}}
        while True:
            out = await call(client.query, **kwargs)
            items.extend(out.get("Items", []))
            last = out.get("LastEvaluatedKey")
            if not last:
                return items
            kwargs["ExclusiveStartKey"] = last

    async def get(self, owner: str, response_id: str) -> dict[str, Any] | None:
        """The stored record of `owner`'s response `response_id`, or None (missing, expired, another key's)."""
        if not _valid_id(response_id):
            return None
        try:
            items = await self._items(owner, response_id)
        except Exception as exc:
            raise map_error(exc, self.table) from None
        by_sk = {it["sk"]["S"]: it for it in items}
        head = by_sk.get(response_id)
        if head is None or int(head.get("ttl", {}).get("N", "0")) < time.time():
            return None
        n = int(head["n"]["N"])
        parts = [head] + [by_sk.get(f"{response_id}#{i}") for i in range(1, n)]
        if any(p is None for p in parts):
            return None
        blob = b"".join(bytes(p["data"]["B"]) for p in parts if p is not None)
        record: dict[str, Any] = json.loads(zlib.decompress(blob))
        return record

    async def delete(self, owner: str, response_id: str) -> bool:
        """Delete `owner`'s response; False when there was none."""
        if not _valid_id(response_id):
            return False
        try:
            items = await self._items(owner, response_id)
            if not any(it["sk"]["S"] == response_id for it in items):
                return False
            client = self._client()
            keys = [{"DeleteRequest": {"Key": {"pk": it["pk"], "sk": it["sk"]}}} for it in items]
            for start in range(0, len(keys), 25):
                await self._batch(client, keys[start:start + 25])
        except SkylaneError:
            raise
        except Exception as exc:
            raise map_error(exc, self.table) from None
        return True
