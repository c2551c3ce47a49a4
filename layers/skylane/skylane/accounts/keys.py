"""API keys: format, hashing, the key record, and the cached DynamoDB authenticator.

A key is `sk-skylane-<key id>-<secret>`: the id (12 lower-case letters and digits) is public
and names the key everywhere (CLI, logs, usage); the secret (43 letters and digits, ~256 bits)
is shown once at creation. Only `sha256(secret)` (hex) is stored, in the keys table item whose
partition key is the id. A presented key is checked by hashing its secret and comparing with
`hmac.compare_digest`. Unknown, revoked and expired keys get the same 401.

Lookups are cached per process (an LRU of key records by id): positive entries for
`SKYLANE_AUTH_CACHE_TTL` seconds, unknown ids for `SKYLANE_AUTH_NEGATIVE_CACHE_TTL`, at most
`SKYLANE_AUTH_CACHE_SIZE` entries. Concurrent misses for one id share a single read.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import hashlib
import hmac
import secrets
import string
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from skylane.accounts.gate import Principal
from skylane.accounts.store import KeyStoreMisconfigured, KeyStoreUnavailable, call, dynamodb_client, map_error
from skylane.core.errors import AuthenticationFailed, PermissionDenied
from skylane.core.settings import Settings
from skylane.ops.observe import logger

__all__ = [
    "KEY_PREFIX",
    "DynamoAuthenticator",
    "KeyRecord",
    "extract_key",
    "format_key",
    "hash_secret",
    "model_allowed",
    "new_key",
    "parse_key",
]

KEY_PREFIX = "sk-skylane-"
ID_ALPHABET = string.ascii_lowercase + string.digits
SECRET_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 12
SECRET_LENGTH = 43

INVALID_KEY = "Incorrect API key provided."
MISSING_KEY = (
    "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
)
_DUMMY_HASH = hashlib.sha256(b"skylane-no-such-key").hexdigest()


# ---- key format --------------------------------------------------------------------------------


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def format_key(key_id: str, secret: str) -> str:
    return f"{KEY_PREFIX}{key_id}-{secret}"


def new_key() -> tuple[str, str]:
    """A fresh (key id, secret) pair from the OS's CSPRNG."""
    key_id = "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))
    secret = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    return key_id, secret


def _valid_id(key_id: str) -> bool:
    return 0 < len(key_id) <= 64 and all(c in ID_ALPHABET for c in key_id)


def parse_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    if not key.startswith(KEY_PREFIX) or len(key) > 256:
        return None
    key_id, sep, secret = key[len(KEY_PREFIX):].partition("-")
    if not sep or not _valid_id(key_id) or not secret or not secret.isascii() or not secret.isalnum():
        return None
    return key_id, secret


def extract_key(headers: Mapping[str, str]) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-API-Key: <key>`.

    When both are sent, the one that looks like a Skylane key wins (an OpenAI SDK configured
    with `X-API-Key` still sends a placeholder Bearer token); if both do, Bearer wins."""
    candidates = []
    scheme, _, value = (headers.get("authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        candidates.append(value.strip())
    value = (headers.get("x-api-key") or "").strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    if value:
        candidates.append(value)
    for candidate in candidates:
        if candidate.startswith(KEY_PREFIX):
            return candidate
    return candidates[0] if candidates else None


def model_allowed(patterns: tuple[str, ...] | None, model_id: str) -> bool:
    """fnmatch-style allow-list (`openai/*`, `anthropic/claude-sonnet-*`); empty means all."""
    if not patterns:
        return True
    return any(fnmatch.fnmatchcase(model_id, p) for p in patterns)


# ---- the key record ------------------------------------------------------------------------------


def _num(item: Mapping[str, Any], name: str) -> int | None:
    v = item.get(name)
    if v is None or "N" not in v:
        return None
    return int(Decimal(v["N"]))


@dataclass(slots=True)
class KeyRecord:
    """One key as stored (the secret only as its hash). Money in micro-dollars."""

    key_id: str
    secret_hash: str
    name: str = ""
    created_at: int = 0
    expires_at: int | None = None
    revoked: bool = False
    rpm: int | None = None  # None: unlimited
    tpm: int | None = None
    models: tuple[str, ...] = ()
    credits_micros: int | None = None  # None: unlimited
    spent_micros: int = 0
    admin: bool = False  # may use the admin API and the console (`skylane keys create --admin`)
    monthly_budget_micros: int | None = None  # spend cap per UTC month; None: no cap
    # this process's view of the month's spend (limits table item month#<YYYY-MM>), not stored on the key
    month: str = ""
    month_spent_micros: int = 0
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def billed(self) -> bool:
        """The key pays for what it uses (a credit balance or a monthly budget): unpriced models are refused."""
        return self.credits_micros is not None or self.monthly_budget_micros is not None

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (time.time() if now is None else now) >= self.expires_at

    def usable(self, now: float | None = None) -> bool:
        return not self.revoked and not self.expired(now)

    @property
    def status(self) -> str:
        return "revoked" if self.revoked else "expired" if self.expired() else "active"

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> KeyRecord:
        models = tuple(v["S"] for v in item.get("models", {}).get("L", []) if "S" in v)
        return cls(
            key_id=item["pk"]["S"],
            secret_hash=item.get("secret_hash", {}).get("S", ""),
            name=item.get("name", {}).get("S", ""),
            created_at=_num(item, "created_at") or 0,
            expires_at=_num(item, "expires_at"),
            revoked=bool(item.get("revoked", {}).get("BOOL", False)),
            rpm=_num(item, "rpm"),
            tpm=_num(item, "tpm"),
            models=models,
            credits_micros=_num(item, "credits_micros"),
            spent_micros=_num(item, "spent_micros") or 0,
            monthly_budget_micros=_num(item, "monthly_budget_micros"),
            admin=bool(item.get("admin", {}).get("BOOL", False)),
        )

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": self.key_id},
            "secret_hash": {"S": self.secret_hash},
            "name": {"S": self.name},
            "created_at": {"N": str(self.created_at)},
            "revoked": {"BOOL": self.revoked},
            "spent_micros": {"N": str(self.spent_micros)},
        }
        if self.expires_at is not None:
            item["expires_at"] = {"N": str(self.expires_at)}
        if self.rpm is not None:
            item["rpm"] = {"N": str(self.rpm)}
        if self.tpm is not None:
            item["tpm"] = {"N": str(self.tpm)}
        if self.models:
            item["models"] = {"L": [{"S": p} for p in self.models]}
        if self.credits_micros is not None:
            item["credits_micros"] = {"N": str(self.credits_micros)}
        if self.monthly_budget_micros is not None:
            item["monthly_budget_micros"] = {"N": str(self.monthly_budget_micros)}
        if self.admin:
            item["admin"] = {"BOOL": True}
        return item

    def public(self) -> dict[str, Any]:
        """What the CLI shows (never the hash)."""
        return {
            "key_id": self.key_id,
            "name": self.name,
            "status": self.status,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked": self.revoked,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "models": list(self.models),
            "credits_usd": None if self.credits_micros is None else self.credits_micros / 1_000_000,
            "spent_usd": self.spent_micros / 1_000_000,
            "monthly_budget_usd": (None if self.monthly_budget_micros is None
                                   else self.monthly_budget_micros / 1_000_000),
            "admin": self.admin,
        }


# ---- the cache -------------------------------------------------------------------------------------

_MISS = object()


class RecordCache:
    """A bounded LRU of key id → (record or None, expiry on the monotonic clock)."""

    def __init__(self, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = max(1, size)
        self.clock = clock
        self._data: OrderedDict[str, tuple[KeyRecord | None, float]] = OrderedDict()

    def get(self, key_id: str) -> Any:
        entry = self._data.get(key_id)
        if entry is None:
            return _MISS
        if entry[1] <= self.clock():
            del self._data[key_id]
            return _MISS
        self._data.move_to_end(key_id)
        return entry[0]

    def put(self, key_id: str, record: KeyRecord | None, ttl: float) -> None:
        if ttl <= 0:
            self._data.pop(key_id, None)
            return
        self._data[key_id] = (record, self.clock() + ttl)
        self._data.move_to_end(key_id)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


# ---- the authenticator -------------------------------------------------------------------------------


class DynamoAuthenticator:
    def __init__(self, settings: Settings, client: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.table = settings.keys_table
        self._client = client
        self.cache = RecordCache(settings.auth_cache_size, clock)
        self._inflight: dict[str, asyncio.Future[KeyRecord | None]] = {}
        self.reads = 0  # DynamoDB reads made (for tests and the benchmark)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = dynamodb_client(self.settings)
        return self._client

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        key = extract_key(headers)
        if key is None:
            raise AuthenticationFailed(MISSING_KEY, code="missing_api_key")
        parsed = parse_key(key)
        if parsed is None:
            raise AuthenticationFailed(INVALID_KEY)
        key_id, secret = parsed
        record = await self.lookup(key_id)
        ok = hmac.compare_digest(hash_secret(secret), record.secret_hash if record else _DUMMY_HASH)
        if record is None or not ok or not record.usable():
            raise AuthenticationFailed(INVALID_KEY)
        return Principal(key_id=key_id, record=record)

    def check_model(self, principal: Principal, model_id: str) -> None:
        record = principal.record
        if record is not None and not model_allowed(record.models, model_id):
            raise PermissionDenied(f"This API key may not use the model '{model_id}'.", param="model")

    def may_use(self, principal: Principal, model_id: str) -> bool:
        record = principal.record
        return record is None or model_allowed(record.models, model_id)

    async def lookup(self, key_id: str) -> KeyRecord | None:
        """The key record (None for an unknown id), from the cache or one shared read."""
        hit = self.cache.get(key_id)
        if hit is not _MISS:
            return hit  # type: ignore[no-any-return]
        task = self._inflight.get(key_id)
        if task is None:
            # one read per id however many requests wait for it; a waiter that goes away
            # (client disconnect) does not cancel the read for the others
            task = asyncio.ensure_future(self._load(key_id))
            self._inflight[key_id] = task
            task.add_done_callback(functools.partial(self._done, key_id))
        return await asyncio.shield(task)

    def _done(self, key_id: str, task: asyncio.Future[KeyRecord | None]) -> None:
        self._inflight.pop(key_id, None)
        if not task.cancelled():
            task.exception()  # mark retrieved; awaiting callers still get it

    async def _load(self, key_id: str) -> KeyRecord | None:
        record = await self._fetch(key_id)
        ttl = self.settings.auth_cache_ttl if record else self.settings.auth_negative_cache_ttl
        self.cache.put(key_id, record, ttl)
        return record

    async def _fetch(self, key_id: str) -> KeyRecord | None:
        self.reads += 1
        try:
            resp = await call(self.client.get_item, TableName=self.table, Key={"pk": {"S": key_id}},
                              ConsistentRead=True)
        except Exception as exc:
            err = map_error(exc, self.table)
            if isinstance(err, KeyStoreUnavailable | KeyStoreMisconfigured):
                logger.warning("key lookup failed", extra={"fields": {"key_id": key_id, "error": err.detail}})
            raise err from None
        item = resp.get("Item")
        return KeyRecord.from_item(item) if item else None
