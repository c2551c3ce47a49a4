"""Native passthrough of the Anthropic Messages dialect: to Anthropic, and to Claude on Bedrock.

The client's body goes upstream as sent, only `model` rewritten to the upstream id (Bedrock:
the model moves to the InvokeModel call, `anthropic_version: bedrock-2023-05-31` is added and
`anthropic-beta` becomes the body's `anthropic_beta` list); `anthropic-version` and
`anthropic-beta` are forwarded from the client's headers; the provider key travels as
`x-api-key`, never the caller's. Streams are relayed event for event: each event's `data` is
relayed byte for byte, re-framed as `event: <type>\\ndata: <data>\\n\\n`; usage for billing is read
on the way from `message_start` and `message_delta` (input, output, cache creation and cache read
tokens; prompt_tokens = input + cache creation + cache read).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from skylane.core.errors import UpstreamError
from skylane.providers.base import CallContext, StreamTranslator, UpstreamRequest
from skylane.transport.bedrock import INVOKE_MESSAGES
from skylane.transport.sse import SSEEvent, decode_json

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.errors import SkylaneError
    from skylane.core.request import ChatRequest

__all__ = ["DIALECT", "AnthropicNative", "AnthropicRelay", "BedrockRelay", "bedrock_native_for",
           "bedrock_native_request", "native_usage_of"]

DIALECT = "anthropic"  # skylane.dialects.anthropic.MessagesDialect.name
API_VERSION = "2023-06-01"
BEDROCK_VERSION = "bedrock-2023-05-31"

ErrorOf = Callable[[Any], "SkylaneError"]


def native_usage_of(u: Mapping[str, Any]) -> dict[str, Any]:
    """Anthropic usage -> the internal usage (cache reads and writes inside prompt_tokens)."""
    read = int(u.get("cache_read_input_tokens") or 0)
    written = int(u.get("cache_creation_input_tokens") or 0)
    raw_tiers = u.get("cache_creation")
    tiers: Mapping[str, Any] = raw_tiers if isinstance(raw_tiers, dict) else {}
    written_1h = int(tiers.get("ephemeral_1h_input_tokens") or 0)
    prompt = int(u.get("input_tokens") or 0) + written + read
    completion = int(u.get("output_tokens") or 0)
    details: dict[str, int] = {"cached_tokens": read, "cache_write_tokens": written - written_1h}
    if written_1h:
        details["cache_write_1h_tokens"] = written_1h
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": details}


class AnthropicRelay(StreamTranslator):
    """Relays an Anthropic event stream as is, reading usage; an `error` event raises."""

    def __init__(self, provider: str, error_of: ErrorOf) -> None:
        self.provider = provider
        self.error_of = error_of
        self.usage: dict[str, Any] | None = None
        self._raw: dict[str, Any] = {}

    def relay(self, name: str, data: str) -> list[Any]:
        try:
            obj = decode_json(data)
        except ValueError:
            raise UpstreamError(f"Provider '{self.provider}' sent a malformed stream event.",
                                provider=self.provider) from None
        kind = obj.get("type") if isinstance(obj, dict) else None
        if not isinstance(kind, str):
            raise UpstreamError(f"Provider '{self.provider}' sent a malformed stream event.", provider=self.provider)
        if kind == "error" or name == "error":
            raise self.error_of(obj)
        u = (obj.get("message") or {}).get("usage") if kind == "message_start" else obj.get("usage")
        if kind in ("message_start", "message_delta") and isinstance(u, dict):
            self._raw.update({k: v for k, v in u.items() if v is not None})
            self.usage = native_usage_of(self._raw)
        if kind == "message_stop":
            self.done = True
        return [b"event: " + kind.encode() + b"\ndata: " + data.encode() + b"\n\n"]

    def feed(self, event: SSEEvent) -> list[Any]:
        return self.relay(event.event, event.data)


class BedrockRelay(AnthropicRelay):
    """InvokeModelWithResponseStream: each `chunk` event's bytes are one Anthropic stream event."""

    def feed(self, event: Any) -> list[Any]:
        chunk = event.get("chunk") if isinstance(event, dict) else None
        raw = chunk.get("bytes") if isinstance(chunk, dict) else None
        if raw is None:
            return []  # other event members are exceptions, which boto3 raises itself
        if isinstance(raw, str):  # base64 text (never from boto3, which decodes the blob)
            raw = base64.b64decode(raw)
        return self.relay("", raw.decode("utf-8", errors="replace"))


def _body(req: ChatRequest, model: str | None) -> dict[str, Any]:
    body = dict(req.wire)
    body.pop("models", None)
    if model is None:
        body.pop("model", None)
    else:
        body["model"] = model
    return body


class AnthropicNative:
    """The native hooks of the Anthropic adapter (mixed into providers.anthropic.AnthropicAdapter)."""

    native_dialects = frozenset({DIALECT})

    def native_stream_error(self, obj: Any, provider: str) -> SkylaneError:
        """The error for an `error` event of a relayed stream (the adapter's own mapping)."""
        raise NotImplementedError

    def _headers(self, ctx: CallContext, stream: bool) -> dict[str, str]:
        headers = {"content-type": "application/json",
                   "anthropic-version": ctx.client_headers.get("anthropic-version") or API_VERSION,
                   "accept": "text/event-stream" if stream else "application/json"}
        beta = ctx.client_headers.get("anthropic-beta")
        if beta:
            headers["anthropic-beta"] = beta
        if ctx.api_key:
            headers["x-api-key"] = ctx.api_key
        headers.update(ctx.extra_headers)
        return headers

    def build_native(self, dialect: str, req: ChatRequest, target: Target, ctx: CallContext) -> UpstreamRequest:
        return UpstreamRequest(url=f"{ctx.base_url}/v1/messages", headers=self._headers(ctx, bool(req.stream)),
                               body=_body(req, target.upstream_model))

    def build_count_native(self, dialect: str, req: ChatRequest, target: Target,
                           ctx: CallContext) -> UpstreamRequest | None:
        body = _body(req, target.upstream_model)
        body.pop("stream", None)
        body.pop("max_tokens", None)
        return UpstreamRequest(url=f"{ctx.base_url}/v1/messages/count_tokens", headers=self._headers(ctx, False),
                               body=body)

    def native_usage(self, dialect: str, data: dict[str, Any]) -> dict[str, Any] | None:
        u = data.get("usage")
        return native_usage_of(u) if isinstance(u, dict) else None

    def native_translator(self, dialect: str, req: ChatRequest, target: Target) -> StreamTranslator:
        provider = target.provider.name
        return AnthropicRelay(provider, lambda obj: self.native_stream_error(obj, provider))


def bedrock_native_request(req: ChatRequest, target: Target, ctx: CallContext) -> UpstreamRequest:
    """InvokeModel / InvokeModelWithResponseStream with the Messages body (Claude on Bedrock)."""
    body = _body(req, None)
    body.pop("stream", None)
    body["anthropic_version"] = BEDROCK_VERSION
    beta = ctx.client_headers.get("anthropic-beta")
    if beta and "anthropic_beta" not in body:
        body["anthropic_beta"] = [b.strip() for b in beta.split(",") if b.strip()]
    extra = {"operation": INVOKE_MESSAGES, "modelId": target.upstream_model, "body": json.dumps(body).encode(),
             "contentType": "application/json"}
    if not req.stream:
        extra["accept"] = "application/json"
    return UpstreamRequest(url="", headers={}, body=body, extra=extra, provider=target.provider.name)


def bedrock_native_for(target: Target) -> bool:
    """Claude on Bedrock takes Messages bodies: decided by the catalog row's developer (a model the
    catalog does not list, e.g. `bedrock/<inference profile>`, by its `anthropic.` model family)."""
    if target.model.in_catalog:
        return target.model.developer == "Anthropic"
    family = target.upstream_model.split(":", 1)[0].split(".")
    return "anthropic" in family[:2]
