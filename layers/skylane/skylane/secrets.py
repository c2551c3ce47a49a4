"""Provider keys from one Secrets Manager secret (JSON object of env-style names → values).

Read once per Lambda instance through Powertools Parameters (cached); only used when
`SKYLANE_SECRET_ID` is set. Environment variables always win, so local runs need no secret.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["secret_value"]

_log = logging.getLogger("skylane")
_cache: dict[str, dict[str, str]] = {}


def _load(secret_id: str) -> dict[str, str]:
    if secret_id in _cache:
        return _cache[secret_id]
    values: dict[str, str] = {}
    try:
        from aws_lambda_powertools.utilities import parameters

        raw = parameters.get_secret(secret_id, max_age=300)
        data = json.loads(raw) if isinstance(raw, str) else raw
        if isinstance(data, dict):
            values = {str(k): str(v) for k, v in data.items() if v is not None}
        else:
            _log.error("provider secret is not a JSON object", extra={"secret_id": secret_id})
    except Exception as exc:  # a missing secret must not take the gateway down
        _log.error("could not read provider secret", extra={"secret_id": secret_id, "error": type(exc).__name__})
    _cache[secret_id] = values
    return values


def secret_value(settings: Settings, name: str) -> str | None:
    if not settings.secret_id:
        return None
    return _load(settings.secret_id).get(name)
