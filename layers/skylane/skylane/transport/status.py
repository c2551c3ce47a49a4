"""Upstream HTTP statuses and Retry-After headers -> Skylane errors (by status, never by message text):
one rule for every adapter and transport."""

from __future__ import annotations

from collections.abc import Mapping

from skylane.core.errors import (
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    SkylaneError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = ["classify_status", "parse_retry_after"]


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    for name in ("retry-after-ms", "retry-after"):
        raw = headers.get(name)
        if raw:
            try:
                value = float(raw)
            except ValueError:
                continue
            return value / 1000 if name == "retry-after-ms" else value
    return None



def classify_status(
    status: int, message: str, *, provider: str, retry_after: float | None = None
) -> SkylaneError:
    """Map an upstream HTTP status to a Skylane error (by status, never by message text)."""
    if status in (401, 403):
        # never echo the provider's text: it may quote the key
        return UpstreamError(
            f"The gateway could not authenticate with provider '{provider}' (upstream {status}); "
            "check the provider key configured on the gateway.",
            provider=provider,
            code="upstream_auth_failed",
            retryable=False,
        )
    if status == 404:
        return ModelNotFound(f"Provider '{provider}' answered 404: {message}", provider=provider, param="model")
    if status == 408:
        return UpstreamTimeout(f"Provider '{provider}' timed out: {message}", provider=provider)
    if status == 413:
        return PayloadTooLarge(f"Provider '{provider}' refused the request as too large: {message}",
                               provider=provider)
    if status == 429:
        return UpstreamRateLimited(
            f"Provider '{provider}' is rate limiting requests: {message}", provider=provider, retry_after=retry_after
        )
    if 400 <= status < 500:
        return InvalidRequest(message, provider=provider, code="upstream_bad_request")
    if status in (503, 529):
        return UpstreamUnavailable(
            f"Provider '{provider}' is overloaded or unavailable: {message}", provider=provider,
            retry_after=retry_after,
        )
    if status == 504:
        return UpstreamTimeout(f"Provider '{provider}' timed out: {message}", provider=provider)
    return UpstreamError(f"Provider '{provider}' failed ({status}): {message}", provider=provider)
