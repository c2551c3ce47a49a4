"""OpenAI's own Responses API, natively (only provider rows with `"responses": true`, i.e. `openai`).

The body goes to `{base_url}/responses` as the client sent it, with `model` rewritten, the
gateway-only `models` removed and `store: false` (the gateway resolves `previous_response_id`
and stores responses itself; see dialects/responses.py). Streams are relayed event for event
(re-framed `event: X / data: ...`); usage for billing is read from the final Response.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from skylane.core.errors import UpstreamError
from skylane.providers.base import CallContext, StreamTranslator, UpstreamRequest
from skylane.transport.sse import SSEEvent, decode_json

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.request import ChatRequest
    from skylane.providers.openai import OpenAIAdapter

__all__ = ["DIALECT", "ResponsesRelay", "build_responses", "relay", "responses_usage_of"]

DIALECT = "responses"
_FINAL = ("response.completed", "response.incomplete", "response.failed")


def build_responses(adapter: OpenAIAdapter, req: ChatRequest, target: Target, ctx: CallContext) -> UpstreamRequest:
    body = dict(req.wire)
    body.pop("models", None)
    body.pop("previous_response_id", None)
    body["model"] = target.upstream_model
    body["store"] = False
    headers = adapter.headers(ctx, "text/event-stream" if body.get("stream") else "application/json")
    return UpstreamRequest(url=adapter.endpoint(ctx, target, "responses"), headers=headers, body=body)


def responses_usage_of(usage: Any) -> dict[str, Any] | None:
    """Responses usage (input/output tokens and details) as the internal usage."""
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    ind = usage.get("input_tokens_details") or {}
    outd = usage.get("output_tokens_details") or {}
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": int(usage.get("total_tokens") or prompt + completion),
            "prompt_tokens_details": {"cached_tokens": int(ind.get("cached_tokens") or 0),
                                      "cache_write_tokens": int(ind.get("cache_write_tokens") or 0)},
            "completion_tokens_details": {"reasoning_tokens": int(outd.get("reasoning_tokens") or 0)}}


class ResponsesRelay(StreamTranslator):
    """Relays each upstream event as is (the client's model name on Response objects); reads usage and
    the final Response from response.completed / .incomplete / .failed."""

    def __init__(self, provider: str, model: str, store: bool, previous: Any) -> None:
        self.provider = provider
        self.model = model
        self.store = store
        self.previous = previous
        self.usage: dict[str, Any] | None = None
        self.final: dict[str, Any] | None = None

    def feed(self, event: SSEEvent) -> list[bytes]:  # type: ignore[override]
        if event.data == "[DONE]":
            self.done = True
            return []
        try:
            obj = decode_json(event.data)
        except ValueError:
            raise UpstreamError(f"Provider '{self.provider}' sent a malformed stream event.",
                                provider=self.provider) from None
        if not isinstance(obj, dict):
            raise UpstreamError(f"Provider '{self.provider}' sent a malformed stream event.", provider=self.provider)
        kind = str(obj.get("type") or event.event or "message")
        resp = obj.get("response")
        if isinstance(resp, dict):
            resp["model"] = self.model
            resp["store"] = self.store
            resp["previous_response_id"] = self.previous
            if kind in _FINAL:
                self.usage = responses_usage_of(resp.get("usage"))
                self.done = True
                if kind != "response.failed":
                    self.final = resp
        if kind == "error":
            self.done = True
        data = json.dumps(obj, separators=(",", ":"))
        return [f"event: {kind}\ndata: {data}\n\n".encode()]


def relay(req: ChatRequest, target: Target) -> ResponsesRelay:
    wire = req.wire
    return ResponsesRelay(target.provider.name, target.requested, wire.get("store", True) is not False,
                          wire.get("previous_response_id"))
