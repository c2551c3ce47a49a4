"""OpenAI chat completions, and every OpenAI-compatible provider (catalog rows, not modules).

Requests pass through as the client sent them (unknown fields included), with `model` set to
the upstream id and the gateway-only `models` removed; usage is requested in streams when the
provider accepts `stream_options`. Answers are normalised to the spec (refusal, logprobs and
finish_reason present, role on the first delta).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from skylane.core.errors import SkylaneError, UpstreamError
from skylane.providers import openai_responses
from skylane.providers.base import (
    Adapter,
    CallContext,
    Send,
    StreamTranslator,
    UpstreamRequest,
    classify_status,
    error_message,
    parse_retry_after,
)
from skylane.transport.sse import SSEEvent, decode_json

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.embedding import EmbeddingRequest
    from skylane.core.request import ChatRequest

__all__ = ["ADAPTER", "OpenAIAdapter", "OpenAIStream"]

_GATEWAY_FIELDS = ("models",)
_NOT_RELAYED = frozenset({"usage", "id", "object", "created", "model"})  # the gateway sets these
# an empty-choices chunk is relayed when it carries more than these (e.g. Azure's prompt_filter_results):
# the usage-only chunk (with its repeated per-chunk fields) is replaced by the gateway's own
_CHUNK_ENVELOPE = frozenset({"choices", "system_fingerprint", "service_tier", "obfuscation"})


class OpenAIStream(StreamTranslator):
    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.usage: dict[str, Any] | None = None
        self._seen: set[int] = set()

    def feed(self, event: SSEEvent) -> list[dict[str, Any]]:
        data = event.data
        if data == "[DONE]":
            self.done = True
            return []
        try:
            obj = decode_json(data)
        except ValueError:
            raise UpstreamError(f"Provider '{self.provider}' sent a malformed stream event.",
                                provider=self.provider) from None
        if not isinstance(obj, dict):
            raise UpstreamError(f"Provider '{self.provider}' sent a malformed stream event.",
                                provider=self.provider)
        if "error" in obj:
            raise _stream_error(obj, self.provider)
        usage = obj.get("usage")
        if usage:
            self.usage = usage
        choices = obj.get("choices") or []
        # every top-level field is relayed (service_tier, system_fingerprint, prompt_filter_results, ...);
        # the usage is the gateway's own final chunk, and a usage-only chunk is not relayed
        out: dict[str, Any] = {k: v for k, v in obj.items() if k not in _NOT_RELAYED}
        out["choices"] = choices
        if not choices:
            return [out] if set(out) - _CHUNK_ENVELOPE else []
        for choice in choices:
            if "finish_reason" not in choice:
                choice["finish_reason"] = None
            index = choice.setdefault("index", 0)
            if index not in self._seen:
                self._seen.add(index)
                delta = choice.setdefault("delta", {})
                delta.setdefault("role", "assistant")
        return [out]


def _stream_error(obj: dict[str, Any], provider: str) -> SkylaneError:
    err = obj.get("error")
    message = "stream error"
    status = 502
    if isinstance(err, dict):
        message = str(err.get("message") or message)[:2000]
        code = err.get("code")
        if isinstance(code, int):
            status = code
        elif err.get("type") in ("rate_limit_error", "rate_limit_exceeded"):
            status = 429
        elif err.get("type") in ("overloaded_error", "server_error", "service_unavailable"):
            status = 503
    elif isinstance(err, str):
        message = err[:2000]
    if status < 400:
        status = 502
    exc = classify_status(status, message, provider=provider)
    if status < 500 and not isinstance(exc, UpstreamError):
        # a 4xx mid-stream is still the provider's failure from the client's point of view
        return UpstreamError(f"Provider '{provider}' ended the stream with an error: {message}",
                             provider=provider)
    return exc


class OpenAIAdapter(Adapter):
    """The OpenAI protocol and the compatible family. A variant with other URLs or credentials (Azure
    OpenAI: deployments in the path, an `api-key` header) overrides `endpoint` and `auth_headers`."""

    protocol = "openai"
    native_dialects = frozenset({openai_responses.DIALECT})

    def endpoint(self, ctx: CallContext, target: Target, operation: str) -> str:
        """The URL of `operation` ("chat/completions", "responses", "embeddings") for this target."""
        return f"{ctx.base_url}/{operation}"

    def auth_headers(self, ctx: CallContext) -> dict[str, str]:
        return {"authorization": f"Bearer {ctx.api_key}"} if ctx.api_key else {}

    def headers(self, ctx: CallContext, accept: str) -> dict[str, str]:
        return {"content-type": "application/json", "accept": accept, **self.auth_headers(ctx), **ctx.extra_headers}

    # ---- native: OpenAI's Responses API, only where the provider row says `"responses": true`
    def native_for(self, dialect: str, target: Target) -> bool:
        return dialect in self.native_dialects and target.provider.responses

    def build_native(self, dialect: str, req: ChatRequest, target: Target, ctx: CallContext) -> UpstreamRequest:
        return openai_responses.build_responses(self, req, target, ctx)

    def native_usage(self, dialect: str, data: dict[str, Any]) -> dict[str, Any] | None:
        return openai_responses.responses_usage_of(data.get("usage"))

    def native_translator(self, dialect: str, req: ChatRequest, target: Target) -> StreamTranslator:
        return openai_responses.relay(req, target)
    embeddings = True

    async def embed(self, req: EmbeddingRequest, target: Target, ctx: CallContext, send: Send) -> dict[str, Any]:
        from skylane.providers.openai_embeddings import embed  # lazy: chat calls never load it

        return await embed(self, req, target, ctx, send)

    async def build_request(self, req: ChatRequest, target: Target, ctx: CallContext) -> UpstreamRequest:
        body = dict(req.raw) if req.raw else req.model_dump(exclude_unset=True, by_alias=True)
        for name in _GATEWAY_FIELDS:
            body.pop(name, None)
        body["model"] = target.upstream_model
        if not target.provider.max_completion_tokens and "max_completion_tokens" in body:
            body["max_tokens"] = body.pop("max_completion_tokens")  # the provider knows only max_tokens
        if req.stream:
            if target.provider.stream_usage:
                opts = dict(body.get("stream_options") or {})
                opts["include_usage"] = True
                body["stream_options"] = opts
            else:  # the provider rejects stream_options: the gateway counts the usage (pipeline/usage.py)
                body.pop("stream_options", None)
        else:
            body.pop("stream_options", None)
        headers = self.headers(ctx, "text/event-stream" if req.stream else "application/json")
        return UpstreamRequest(url=self.endpoint(ctx, target, "chat/completions"), headers=headers, body=body)

    def parse_response(self, data: dict[str, Any], req: ChatRequest, target: Target) -> dict[str, Any]:
        if "error" in data and "choices" not in data:
            raise _stream_error(data, target.provider.name)
        choices = data.get("choices")
        if not isinstance(choices, list):
            raise UpstreamError(f"Provider '{target.provider.name}' answered without choices.",
                                provider=target.provider.name)
        for i, choice in enumerate(choices):
            choice.setdefault("index", i)
            choice.setdefault("finish_reason", "stop")
            choice.setdefault("logprobs", None)
            msg = choice.setdefault("message", {})
            msg.setdefault("role", "assistant")
            msg.setdefault("content", None)
            msg.setdefault("refusal", None)
        data["object"] = "chat.completion"
        return data

    def stream_translator(self, req: ChatRequest, target: Target) -> StreamTranslator:
        return OpenAIStream(target.provider.name)

    def map_error(self, status: int, body: bytes, headers: Mapping[str, str], provider: str) -> SkylaneError:
        message, _ = error_message(body, f"upstream returned HTTP {status}")
        return classify_status(status, message, provider=provider, retry_after=parse_retry_after(headers))


ADAPTER = OpenAIAdapter()
