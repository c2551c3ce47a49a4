"""Provider keys from one Secrets Manager secret (JSON object of env-style names → values).

Read through Powertools Parameters, once per instance and then again every `REFRESH` seconds (so a
rotated key reaches warm instances); only used when `SKYLANE_SECRET_ID` is set. A failed read is
logged (the error's type, never the secret) and retried after `RETRY` seconds instead of being
remembered for the instance's lifetime. Environment variables always win, so local runs need no
secret.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from skylane.core.settings import Settings

__all__ = ["REFRESH", "RETRY", "clear_cache", "secret_value"]

REFRESH = 300.0  # seconds a secret read is used before it is read again
RETRY = 30.0  # seconds before a failed read is tried again

_log = logging.getLogger("skylane")
_cache: dict[str, tuple[float, dict[str, str]]] = {}  # secret id → (expires at, values)
_lock = threading.Lock()


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


def _load(secret_id: str) -> dict[str, str]:
    now = time.monotonic()
    hit = _cache.get(secret_id)
    if hit is not None and hit[0] > now:
        return hit[1]
    with _lock:  # one read per instance however many requests ask at once
        hit = _cache.get(secret_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        values, ok = _read(secret_id)
        _cache[secret_id] = (time.monotonic() + (REFRESH if ok else RETRY), values)
        return values


def secret_value(settings: Settings, name: str) -> str | None:
    if not settings.secret_id:
        return None
    return _load(settings.secret_id).get(name)


def clear_cache() -> None:
    """Forget what was read (tests)."""
    _cache.clear()
