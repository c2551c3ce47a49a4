"""One call's record as it moves through the pipeline: who, what, which target, usage, cost; settle and
log exactly once."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from skylane.accounts.gate import Principal, Reservation
from skylane.core.catalog import Target
from skylane.core.redact import content_fields
from skylane.ops.observe import log_request
from skylane.pipeline.attempt import Timing
from skylane.pipeline.router import Router
from skylane.providers import get_adapter
from skylane.providers.base import CallContext, Media

if TYPE_CHECKING:
    from starlette.requests import Request

    from skylane.core.request import ChatRequest
    from skylane.pipeline.contract import Dialect
    from skylane.pipeline.state import AppState

__all__ = ["CLIENT_CLOSED_REQUEST", "Call"]

CLIENT_CLOSED_REQUEST = 499  # logged status of a request whose client went away (nginx's convention)


def _ms(seconds: float) -> str:
    return f"{max(0.0, seconds) * 1000:.2f}"


# never forwarded to a provider, whatever an adapter asks for
_PRIVATE_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization",
                              "x-goog-api-key", "host", "content-length", "connection", "transfer-encoding"})


def _forwardable(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() not in _PRIVATE_HEADERS}


class Call:
    """One request, whatever its dialect."""

    def __init__(self, state: AppState, request: Request, rid: str, dialect: Dialect) -> None:
        self.state = state
        self.request = request
        self.rid = rid
        self.dialect = dialect
        self.t0 = time.perf_counter()
        self.started = time.monotonic()
        self.timing = Timing()
        self.principal: Principal | None = None
        self.reservation: Reservation | None = None
        self.router = Router(state.catalog, state.settings, state.breakers)
        self.req: ChatRequest | None = None
        self.target: Target | None = None
        self.status = 200
        self.usage: dict[str, Any] | None = None
        self.cost_micros = 0
        self.settled = False
        # the completion's text, collected only when SKYLANE_LOG_CONTENT is on (for the log line)
        self.answer: list[str] | None = [] if state.settings.log_content else None

    def overhead_ms(self) -> str:
        return _ms(time.perf_counter() - self.t0 - self.timing.upstream)

    def context(self, target: Target, native: bool = False) -> CallContext:
        catalog = self.state.catalog
        settings = self.state.settings
        provider = target.provider
        adapter_needs_url = get_adapter(provider.protocol).uses_base_url
        return CallContext(
            api_key=catalog.provider_key(provider),
            base_url=catalog.base_url(provider) if adapter_needs_url else "",
            default_max_tokens=min(settings.default_max_tokens,
                                   target.model.max_output_tokens or settings.default_max_tokens),
            fetch_media=self._fetch_media,
            extra_headers=provider.extra_headers,
            settings=settings,
            client_headers=_forwardable(self.request.headers) if native else {},
        )

    async def _fetch_media(self, url: str) -> Media:
        from skylane.transport.fetch import fetch_media  # lazy: only some requests carry remote media

        return await fetch_media(url, self.state.settings)

    def headers(self) -> dict[str, str]:
        h = {"x-request-id": self.rid}
        if self.reservation is not None:
            h.update(self.reservation.headers)
        if self.router.attempts and (len(self.router.attempts) > 1 or self.router.attempts[0].outcome != "ok"):
            h["x-skylane-attempts"] = self.router.attempts_header()
        return h

    def price(self, target: Target, usage: dict[str, Any] | None) -> int:
        return target.model.cost_of(usage)

    async def settle(self) -> None:
        """Reconcile limits and debit credits; then log. Idempotent: only the first call counts."""
        if self.settled:
            return
        self.settled = True
        res = self.reservation
        try:
            if res is not None and not res.settled:
                res.failed = self.status >= 400 and self.status != CLIENT_CLOSED_REQUEST  # usage aggregates
                if self.target is None or self.usage is None and self.status >= 400:
                    target = self.target or self.router.current
                    await self.state.gate.limits.release(res, target.model.id if target else None)
                else:
                    await self.state.gate.limits.settle(res, self.target.model.id, self.usage, self.cost_micros)
        finally:
            self.log()

    def log(self) -> None:
        usage = self.usage or {}
        fields: dict[str, Any] = {
            "request_id": self.rid,
            "key_id": self.principal.key_id if self.principal else None,
            "api": self.dialect.name,
            "model": self.target.requested if self.target else (self.req.model if self.req else None),
            "provider": self.target.provider.name if self.target else None,
            "status": self.status,
            "stream": bool(self.req and self.req.stream),
            "latency_ms": round((time.perf_counter() - self.t0) * 1000, 2),
            "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"),
            "usage_estimated": bool(usage.get("estimated")),  # counted by the gateway (pipeline/usage.py)
            "cost_usd": self.cost_micros / 1_000_000,
        }
        if self.timing.first_token_at is not None:
            fields["ttft_ms"] = round((self.timing.first_token_at - self.t0) * 1000, 2)
        if self.router.attempts:
            fields["attempts"] = self.router.attempts_header()
        if self.answer is not None and self.req is not None:  # SKYLANE_LOG_CONTENT: redacted prompt and answer
            fields.update(content_fields(self.req.raw.get("messages"), "".join(self.answer)))
        log_request(fields)
