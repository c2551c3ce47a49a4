"""Skylane's settings: every `SKYLANE_*` variable is read here, once, into one object.

Provider keys and base URLs use the providers' conventional names (`OPENAI_API_KEY`,
`ANTHROPIC_BASE_URL`, ...) and are looked up through `Settings.env` so that a Secrets Manager
secret (`ops.secrets.SecretEnv`, read at start-up, never from request code) can supply them on Lambda.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["Settings", "get_settings", "reset_settings"]


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on", "enabled")


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return int(_float(env, name, default))


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (the first when unset); anything else refuses to start, naming the setting."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return choices[0]
    if raw not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


@dataclass(frozen=True)
class Settings:
    env: Mapping[str, str] = field(repr=False)
    auth_enabled: bool
    auth_cache_ttl: float
    auth_negative_cache_ttl: float
    auth_cache_size: int
    keys_table: str
    limits_table: str
    default_model: str | None
    catalog_path: str | None
    max_body_bytes: int
    default_max_tokens: int
    connect_timeout: float
    first_token_timeout: float
    idle_timeout: float
    total_timeout: float
    max_attempts: int
    retry_base_delay: float
    retry_max_delay: float
    breaker_failures: int
    breaker_window: float
    breaker_cooldown: float
    log_level: str
    log_content: bool
    cors_origins: tuple[str, ...]
    secret_id: str | None
    image_fetch_max_bytes: int
    image_fetch_timeout: float
    image_fetch_allow_http: bool
    settle_inline: bool
    http_transport: str = "h1"  # h1 (transport/h1.py) | httpx (httpcore)
    allow_unpriced: bool = False  # keys with credits or a monthly budget may use unpriced models
    responses_table: str = "skylane-responses"  # stored Responses API responses (store: true)
    responses_ttl_days: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e: Mapping[str, str] = dict(os.environ if env is None else env)
        auth = e.get("SKYLANE_AUTH", "enabled").strip().lower()
        if auth not in ("enabled", "disabled"):
            raise ValueError(f"SKYLANE_AUTH must be 'enabled' or 'disabled', got {auth!r}")
        cors = tuple(o.strip() for o in e.get("SKYLANE_CORS_ORIGINS", "").split(",") if o.strip())
        return cls(
            env=e,
            auth_enabled=auth == "enabled",
            auth_cache_ttl=_float(e, "SKYLANE_AUTH_CACHE_TTL", 5.0),
            auth_negative_cache_ttl=_float(e, "SKYLANE_AUTH_NEGATIVE_CACHE_TTL", 2.0),
            auth_cache_size=_int(e, "SKYLANE_AUTH_CACHE_SIZE", 10_000),
            keys_table=e.get("SKYLANE_KEYS_TABLE", "skylane-keys"),
            limits_table=e.get("SKYLANE_LIMITS_TABLE", "skylane-limits"),
            default_model=e.get("SKYLANE_DEFAULT_MODEL") or None,
            catalog_path=e.get("SKYLANE_CATALOG") or None,
            max_body_bytes=_int(e, "SKYLANE_MAX_BODY_BYTES", 6 * 1024 * 1024),
            default_max_tokens=_int(e, "SKYLANE_DEFAULT_MAX_TOKENS", 4096),
            connect_timeout=_float(e, "SKYLANE_CONNECT_TIMEOUT", 5.0),
            first_token_timeout=_float(e, "SKYLANE_FIRST_TOKEN_TIMEOUT", 60.0),
            idle_timeout=_float(e, "SKYLANE_IDLE_TIMEOUT", 60.0),
            total_timeout=_float(e, "SKYLANE_TOTAL_TIMEOUT", 600.0),
            max_attempts=_int(e, "SKYLANE_MAX_ATTEMPTS", 3),
            retry_base_delay=_float(e, "SKYLANE_RETRY_BASE_DELAY", 0.25),
            retry_max_delay=_float(e, "SKYLANE_RETRY_MAX_DELAY", 8.0),
            breaker_failures=_int(e, "SKYLANE_BREAKER_FAILURES", 5),
            breaker_window=_float(e, "SKYLANE_BREAKER_WINDOW", 30.0),
            breaker_cooldown=_float(e, "SKYLANE_BREAKER_COOLDOWN", 30.0),
            log_level=e.get("SKYLANE_LOG_LEVEL", e.get("LOG_LEVEL", "INFO")).upper(),
            log_content=_bool(e.get("SKYLANE_LOG_CONTENT"), False),
            cors_origins=cors,
            secret_id=e.get("SKYLANE_SECRET_ID") or None,
            image_fetch_max_bytes=_int(e, "SKYLANE_IMAGE_MAX_BYTES", 20 * 1024 * 1024),
            image_fetch_timeout=_float(e, "SKYLANE_IMAGE_FETCH_TIMEOUT", 10.0),
            image_fetch_allow_http=_bool(e.get("SKYLANE_IMAGE_ALLOW_HTTP"), False),
            # on Lambda the instance may freeze once the response is sent: settle before it
            settle_inline=_bool(e.get("SKYLANE_SETTLE_INLINE"), bool(e.get("AWS_LAMBDA_FUNCTION_NAME"))),
            http_transport=_choice(e, "SKYLANE_HTTP_TRANSPORT", ("h1", "httpx")),
            allow_unpriced=_bool(e.get("SKYLANE_ALLOW_UNPRICED"), False),
            responses_table=e.get("SKYLANE_RESPONSES_TABLE", "skylane-responses"),
            responses_ttl_days=_float(e, "SKYLANE_RESPONSES_TTL_DAYS", 30.0),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


def reset_settings() -> None:
    get_settings.cache_clear()
