"""The gateway's errors and the OpenAI error envelope.

    SkylaneError                      (500 api_error)           base: status, type, code, param, provider
    ├── InvalidRequest                (400 invalid_request_error)
    │   └── UnsupportedParameter      (400 invalid_request_error, code unsupported_parameter)
    ├── AuthenticationFailed          (401 authentication_error)
    ├── InsufficientCredits           (402 insufficient_credits)
    ├── PermissionDenied              (403 permission_error)
    ├── NotFound                      (404 not_found_error)
    │   └── ModelNotFound             (404 invalid_request_error, code model_not_found)
    ├── PayloadTooLarge               (413 invalid_request_error)
    ├── RateLimited                   (429 rate_limit_error)          carries Retry-After
    ├── UpstreamError                 (502 upstream_error)            a provider failed or answered garbage
    │   ├── UpstreamRateLimited       (429 rate_limit_error)
    │   ├── UpstreamUnavailable       (503 service_unavailable)       overloaded / circuit open
    │   └── UpstreamTimeout           (504 timeout)
    └── GatewayMisconfigured          (500 api_error)

Adapters raise these; the HTTP layer renders them with `envelope()`. Messages never carry
provider keys, internal hostnames or stack traces: every message passes `redact.redact()` here,
so upstream text quoted in a message loses any key or credential it contains.
"""

from __future__ import annotations

from typing import Any

from skylane.core.redact import redact

__all__ = [
    "AuthenticationFailed",
    "GatewayMisconfigured",
    "InsufficientCredits",
    "InvalidRequest",
    "ModelNotFound",
    "ModelNotPriced",
    "MonthlyBudgetExceeded",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "SkylaneError",
    "UnsupportedParameter",
    "UpstreamError",
    "UpstreamRateLimited",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "envelope",
]


class SkylaneError(Exception):
    status: int = 500
    type: str = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        provider: str | None = None,
        retry_after: float | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        retryable: bool | None = None,
    ) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.provider = provider
        self.retry_after = retry_after
        self.headers = dict(headers or {})
        self._retryable = retryable

    @property
    def retryable(self) -> bool:
        """Whether another attempt (same or fallback model) may succeed."""
        if self._retryable is not None:
            return self._retryable
        return self._default_retryable()

    def _default_retryable(self) -> bool:
        return False

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.retry_after is not None:
            headers["retry-after"] = str(max(1, int(-(-self.retry_after // 1))))
        return headers

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, message={self.message!r})"


class InvalidRequest(SkylaneError):
    status = 400
    type = "invalid_request_error"


class UnsupportedParameter(InvalidRequest):
    code = "unsupported_parameter"


class AuthenticationFailed(SkylaneError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class InsufficientCredits(SkylaneError):
    status = 402
    type = "insufficient_credits"
    code = "insufficient_credits"


class MonthlyBudgetExceeded(InsufficientCredits):
    """The key reached its monthly spend cap (resets on the 1st of the next UTC month)."""

    code = "monthly_budget_exceeded"


class ModelNotPriced(InsufficientCredits):
    """A key with credits or a monthly budget asked for a model the catalog has no price for."""

    code = "model_not_priced"


class PermissionDenied(SkylaneError):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class NotFound(SkylaneError):
    status = 404
    type = "not_found_error"


class ModelNotFound(NotFound):
    type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLarge(SkylaneError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(SkylaneError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(SkylaneError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"

    def _default_retryable(self) -> bool:
        return self.status >= 500 or self.status in (408, 409, 429)


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "upstream_rate_limited"


class UpstreamUnavailable(UpstreamError):
    status = 503
    type = "service_unavailable"
    code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout"
    code = "upstream_timeout"


class GatewayMisconfigured(SkylaneError):
    status = 500
    type = "api_error"
    code = "gateway_misconfigured"


def envelope(err: SkylaneError) -> dict[str, Any]:
    """The OpenAI error body: {"error": {"message", "type", "param", "code"}}."""
    body: dict[str, Any] = {
        "message": err.message,
        "type": err.type,
        "param": err.param,
        "code": err.code,
    }
    if err.provider:
        body["provider"] = err.provider
    return {"error": body}
