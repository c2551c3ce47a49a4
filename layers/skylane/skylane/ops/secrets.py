"""Provider keys from one Secrets Manager secret (JSON object of env-style names → values).

Read through Powertools Parameters when the app is built (the Lambda init phase) and then again every
`REFRESH` seconds in a background thread, so a rotated key reaches warm instances without a request
ever waiting on Secrets Manager; only used when `SKYLANE_SECRET_ID` is set. A failed read is logged
(the error's type, never the secret) and retried after `RETRY` seconds instead of being remembered
for the instance's lifetime. Environment variables always win, so local runs need no secret.

`SecretEnv(settings)` is the catalog's `ProviderEnv`: `get(name, default)`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from skylane.core.settings import Settings

__all__ = ["REFRESH", "RETRY", "SecretEnv", "clear_cache", "secret_value"]

REFRESH = 300.0  # seconds a secret read is used before it is read again
RETRY = 30.0  # seconds before a failed read is tried again

_log = logging.getLogger("skylane")
_cache: dict[str, tuple[float, dict[str, str], bool]] = {}  # secret id → (expires at, values, read ok)
_lock = threading.Lock()
_refreshing: set[str] = set()


def _read(secret_id: str) -> tuple[dict[str, str], bool]:
    try:
        from aws_lambda_powertools.utilities import parameters

        raw = parameters.get_secret(secret_id, max_age=int(REFRESH))
        data = json.loads(raw.decode() if isinstance(raw, bytes) else raw) if isinstance(raw, str | bytes) else raw
    except Exception as exc:  # a missing secret must not take the gateway down
        _log.error("could not read provider secret", extra={"fields": {"error": type(exc).__name__}})
        return {}, False
    if not isinstance(data, dict):
        _log.error("provider secret is not a JSON object", extra={"fields": {"error": type(data).__name__}})
        return {}, False
    return {str(k): str(v) for k, v in data.items() if v is not None}, True


def _read_now(secret_id: str) -> dict[str, str]:
    with _lock:  # one read per instance however many callers ask at once
        hit = _cache.get(secret_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        values, ok = _read(secret_id)
        _cache[secret_id] = (time.monotonic() + (REFRESH if ok else RETRY), values, ok)
        return values


def _refresh(secret_id: str) -> None:
    try:
        values, ok = _read(secret_id)
        with _lock:
            if ok:
                _cache[secret_id] = (time.monotonic() + REFRESH, values, True)
            else:  # keep serving the last good values; try again later
                old = _cache.get(secret_id)
                _cache[secret_id] = (time.monotonic() + RETRY, old[1] if old else {}, bool(old and old[2]))
    finally:
        _refreshing.discard(secret_id)


def _load(secret_id: str) -> dict[str, str]:
    hit = _cache.get(secret_id)
    if hit is None or not hit[2]:
        # nothing good read yet (start-up, or the secret was missing): read now, at most every RETRY s
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return _read_now(secret_id)
    if hit[0] <= time.monotonic() and secret_id not in _refreshing:
        # stale: refresh in the background, serve the values in hand meanwhile
        _refreshing.add(secret_id)
        threading.Thread(target=_refresh, args=(secret_id,), name="skylane-secret", daemon=True).start()
    return hit[1]


def secret_value(settings: Settings, name: str) -> str | None:
    if not settings.secret_id:
        return None
    return _load(settings.secret_id).get(name)


class SecretEnv:
    """Provider variables: the environment first, then the secret (read at construction)."""

    def __init__(self, settings: Settings) -> None:
        self._env = settings.env
        self._secret_id = settings.secret_id
        if self._secret_id:
            _load(self._secret_id)  # at start-up, not in a request

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self._env.get(name)
        if value:
            return value
        if self._secret_id:
            return _load(self._secret_id).get(name) or default
        return default


def clear_cache() -> None:
    """Forget what was read (tests)."""
    _cache.clear()
