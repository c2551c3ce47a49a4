"""Anthropic Messages (`POST {base}/v1/messages`): OpenAI chat completions in and out.

Request mapping. `system` and `developer` messages, wherever they stand, become the top-level
`system` (text blocks, in order); consecutive same-role turns are merged (Anthropic wants
user/assistant alternation); `tool` messages become `tool_result` blocks at the front of a user
turn; assistant `tool_calls` become `tool_use` blocks. Tool-call ids outside Anthropic's
`[A-Za-z0-9_-]` alphabet are rewritten the same way on both sides, so a conversation started
on another provider can continue here. OpenAI parameters with no Anthropic counterpart:

    parameter                          decision
    ---------------------------------  -------------------------------------------------------
    n > 1                              400 unsupported_parameter (one choice only)
    logprobs=true, top_logprobs        400 unsupported_parameter (no token probabilities)
    presence/frequency_penalty != 0    400 unsupported_parameter (0 is accepted: a no-op)
    logit_bias (non-empty)             400 unsupported_parameter
    modalities containing "audio"      400 unsupported_parameter
    temperature > 1                    400 invalid_value (Anthropic's range is 0..1)
    seed                               dropped: a best-effort hint in OpenAI too
    metadata, store, service_tier,     dropped: OpenAI account features
      prediction, reasoning_effort
    message `name`, image `detail`,    dropped: no Anthropic field
      tool `strict`
    unknown top-level fields           dropped: Anthropic rejects unknown keys
    user                               metadata.user_id
    response_format json_schema        a forced tool `json_response` (input_schema = the schema)
                                       whose input is returned as the message content JSON,
                                       finish_reason "stop" (with other tools: tool_choice "any")
    response_format json_object        the same tool with a permissive object schema
    image_url                          data: URL → base64 source (jpeg/png/gif/webp, else 400);
                                       http(s) URL → url source (Anthropic fetches it)
    video_url                          400 invalid_request_error naming the model
    input_audio parts, file_id files   400 unsupported_parameter; a PDF `file_data` → document

Response mapping: text blocks joined → `content`; `tool_use` → `tool_calls` (id = the
`toolu_` id, arguments = the JSON of `input`); `thinking` / `redacted_thinking` blocks are
dropped (the `thinking` option is never sent, so they only appear from a misconfigured proxy);
`stop_reason` by `FINISH_REASONS` below; usage per PROTOCOLS.md (prompt = input + cache
creation + cache read, cached = cache read). Streams keep OpenAI's dense tool-call indexes:
the N-th `tool_use` block is tool index N whatever its content-block index. The role rides on
the first content chunk (not on message_start), so an `error` event before any content fails
the attempt while it can still be retried.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from skylane.core import answer as schema
from skylane.core.errors import SkylaneError, UpstreamError
from skylane.providers.anthropic_native import AnthropicNative
from skylane.providers.anthropic_request import JSON_TOOL, build_body, json_mode
from skylane.providers.anthropic_thinking import FORMAT, detail_of, wants_thinking
from skylane.providers.base import (
    NAME_ANTHROPIC,
    Adapter,
    CallContext,
    StreamTranslator,
    UpstreamRequest,
    classify_status,
    error_message,
    parse_retry_after,
    tool_names,
)
from skylane.providers.reasoning import thinking_to_id
from skylane.transport.sse import SSEEvent, decode_json

if TYPE_CHECKING:
    from skylane.core.catalog import Target
    from skylane.core.request import ChatRequest

__all__ = ["ADAPTER", "FINISH_REASONS", "JSON_TOOL", "AnthropicAdapter", "AnthropicStream", "usage_from"]

API_VERSION = "2023-06-01"

# Anthropic stop_reason → OpenAI finish_reason (anything unknown → "stop")
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic error.type → the HTTP status it stands for (529 is Anthropic's "overloaded")
_ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


# ---- response --------------------------------------------------------------------------------


def usage_from(u: Mapping[str, Any]) -> dict[str, Any]:
    """prompt = input + cache creation + cache read; cache_write_tokens = the 5-minute writes,
    cache_write_1h_tokens = cache_creation.ephemeral_1h_input_tokens."""
    cache_read = int(u.get("cache_read_input_tokens") or 0)
    written = int(u.get("cache_creation_input_tokens") or 0)
    raw_tiers = u.get("cache_creation")
    tiers: Mapping[str, Any] = raw_tiers if isinstance(raw_tiers, Mapping) else {}
    hour = min(int(tiers.get("ephemeral_1h_input_tokens") or 0), written)
    prompt = int(u.get("input_tokens") or 0) + written + cache_read
    return schema.usage(prompt, int(u.get("output_tokens") or 0), cached=cache_read, cache_write=written - hour,
                        cache_write_1h=hour)


def _finish(stop_reason: Any, json_only: bool) -> str:
    reason = FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"
    return "stop" if reason == "tool_calls" and json_only else reason


def parse_message(data: dict[str, Any], req: ChatRequest, target: Target) -> dict[str, Any]:
    provider = target.provider.name
    if data.get("type") == "error":
        raise _event_error(data, provider, stream=False)
    blocks = data.get("content")
    if not isinstance(blocks, list):
        raise UpstreamError(f"Provider '{provider}' answered without content.", provider=provider)
    wants_json = json_mode(req)
    names = {wire: name for name, wire in tool_names(req, NAME_ANTHROPIC).items()}
    shown = wants_thinking(req, target)  # thinking blocks without it come only from a misconfigured proxy
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []  # the turn's thinking blocks, as Anthropic sent them
    details: list[dict[str, Any]] = []
    json_answer: str | None = None
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind in ("thinking", "redacted_thinking") and shown:
            item = detail_of(block, len(details))
            if item is not None:
                details.append(item)
                thinking.append(block)
        elif kind == "tool_use":
            args = json.dumps(block.get("input") or {}, ensure_ascii=False)
            if wants_json and block.get("name") == JSON_TOOL:
                json_answer = args
                continue
            call_id = str(block.get("id") or "")
            calls.append({"id": thinking_to_id(call_id, thinking) if not calls else call_id, "type": "function",
                          "function": {"name": names.get(block.get("name"), block.get("name")), "arguments": args}})
    if json_answer is not None and not calls:
        content: str | None = json_answer
    else:
        content = "".join(texts) if texts or not calls else None
    finish = _finish(data.get("stop_reason"), json_answer is not None and not calls)
    refusal = None
    if data.get("stop_reason") == "refusal":  # the explanation goes where OpenAI puts refusals
        refusal, content = content or "The model declined to answer.", None
    reasoning = "".join(d.get("text") or "" for d in details)
    choice = {"index": 0, "message": schema.message(content, calls or None, refusal, reasoning=reasoning,
                                                    details=details), "finish_reason": finish}
    raw_usage = data.get("usage")
    return schema.completion(model=target.requested, choices=[choice],
                             usage=usage_from(raw_usage) if isinstance(raw_usage, dict) else None)


# ---- stream ----------------------------------------------------------------------------------


class AnthropicStream(StreamTranslator):
    """Anthropic stream events → OpenAI chunk dicts (stateful: block kinds, dense tool indexes)."""

    def __init__(self, provider: str, json_mode: bool, names: dict[str, str] | None = None,
                 thinking: bool = False) -> None:
        self.show_thinking = thinking
        self.provider = provider
        self.json_mode = json_mode
        self._names = names or {}  # wire name → the client's name
        self._thinking: list[dict[str, Any]] = []  # this turn's thinking blocks (for the first tool-call id)
        self._args_seen: set[int] = set()
        self.usage: dict[str, Any] | None = None
        self._raw_usage: dict[str, Any] = {}
        self._blocks: dict[int, tuple[str, int]] = {}  # content index → (kind, tool index)
        self._tools = 0
        self._json_answer = False
        self._role_sent = False
        self._finished = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        if not self._role_sent:
            self._role_sent = True
            delta = {"role": "assistant", **(delta or {"content": ""})}
        return {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def _take_usage(self, u: Any) -> None:
        if isinstance(u, dict):
            self._raw_usage.update({k: v for k, v in u.items() if v is not None})
            self.usage = usage_from(self._raw_usage)

    def feed(self, event: SSEEvent) -> list[dict[str, Any]]:
        try:
            obj = decode_json(event.data)
        except ValueError:
            raise UpstreamError(f"Provider '{self.provider}' sent a malformed stream event.",
                                provider=self.provider) from None
        if not isinstance(obj, dict):
            raise UpstreamError(f"Provider '{self.provider}' sent a malformed stream event.", provider=self.provider)
        kind = obj.get("type") or event.event
        if kind == "error" or event.event == "error":
            raise _event_error(obj, self.provider, stream=True)
        if kind == "message_start":
            message = obj.get("message") or {}
            self._take_usage(message.get("usage"))
            return []
        if kind == "content_block_start":
            return self._block_start(int(obj.get("index", 0)), obj.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(obj.get("index", 0)), obj.get("delta") or {})
        if kind == "message_delta":
            self._take_usage(obj.get("usage"))
            return self._final((obj.get("delta") or {}).get("stop_reason"))
        if kind == "message_stop":
            self.done = True
            return self._final(None)
        if kind == "content_block_stop":
            return self._block_stop(int(obj.get("index", 0)))
        return []  # ping and event types added later

    def _block_start(self, index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = ("text", -1)
            text = block.get("text")
            return [self._chunk({"content": text})] if text else []
        if kind == "tool_use":
            if self.json_mode and block.get("name") == JSON_TOOL:
                self._blocks[index] = ("json", -1)
                self._json_answer = True
                return []
            n = self._tools
            self._tools += 1
            self._blocks[index] = ("tool", n)
            call_id = str(block.get("id") or "")
            call = {"index": n, "id": thinking_to_id(call_id, self._thinking) if n == 0 else call_id,
                    "type": "function",
                    "function": {"name": self._names.get(str(block.get("name")), block.get("name")), "arguments": ""}}
            return [self._chunk({"tool_calls": [call]})]
        if kind in ("thinking", "redacted_thinking") and self.show_thinking:
            self._blocks[index] = ("thinking", len(self._thinking))
            self._thinking.append(dict(block))
            if kind == "redacted_thinking":
                item = detail_of(block, len(self._thinking) - 1)
                return [self._chunk({"reasoning_details": [item]})] if item else []
            text = block.get("thinking")
            return [self._chunk({"reasoning_content": text})] if text else []
        self._blocks[index] = ("ignore", -1)  # server tools and block kinds added later
        return []

    def _block_stop(self, index: int) -> list[dict[str, Any]]:
        kind, n = self._blocks.get(index, ("ignore", -1))
        if kind == "tool" and index not in self._args_seen:  # no input at all: still valid JSON
            self._args_seen.add(index)
            return [self._chunk({"tool_calls": [{"index": n, "function": {"arguments": "{}"}}]})]
        return []

    def _block_delta(self, index: int, delta: dict[str, Any]) -> list[dict[str, Any]]:
        kind, n = self._blocks.get(index, ("ignore", -1))
        dtype = delta.get("type")
        if dtype == "text_delta" and kind == "text":
            text = delta.get("text")
            return [self._chunk({"content": text})] if text else []
        if kind == "thinking":
            block = self._thinking[n]
            if dtype == "thinking_delta" and delta.get("thinking"):
                block["thinking"] = str(block.get("thinking") or "") + delta["thinking"]
                return [self._chunk({"reasoning_content": delta["thinking"]})]
            if dtype == "signature_delta" and delta.get("signature"):
                block["signature"] = str(block.get("signature") or "") + delta["signature"]
                return [self._chunk({"reasoning_details": [{
                    "type": "reasoning.text", "text": "", "signature": delta["signature"], "format": FORMAT,
                    "index": n}]})]
            return []
        if dtype == "input_json_delta":
            part = delta.get("partial_json")
            if not part:
                return []
            if kind == "tool":
                self._args_seen.add(index)
                return [self._chunk({"tool_calls": [{"index": n, "function": {"arguments": part}}]})]
            if kind == "json":
                return [self._chunk({"content": part})]
        return []  # citations_delta and delta kinds added later

    def _final(self, stop_reason: Any) -> list[dict[str, Any]]:
        if self._finished:
            return []
        self._finished = True
        return [self._chunk({}, _finish(stop_reason, self._json_answer and self._tools == 0))]


# ---- errors ----------------------------------------------------------------------------------


def _error_fields(obj: Any) -> tuple[str | None, str | None]:
    err = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(err, dict):
        return None, None
    etype = err.get("type") if isinstance(err.get("type"), str) else None
    msg = err.get("message") if isinstance(err.get("message"), str) else None
    return etype, (msg[:2000] if msg else None)


def _classify(status: int, etype: str | None, message: str, provider: str,
              retry_after: float | None) -> SkylaneError:
    status = _ERROR_STATUS.get(etype or "", status)
    if etype == "billing_error" or status == 402:
        # the gateway's own provider account: not the caller's business, and not retryable
        return UpstreamError(f"Provider '{provider}' refused the request for a billing reason on the gateway's "
                             "account.", provider=provider, code="upstream_billing", retryable=False)
    return classify_status(status, message, provider=provider, retry_after=retry_after)


def _event_error(obj: Any, provider: str, *, stream: bool) -> SkylaneError:
    etype, message = _error_fields(obj)
    message = message or "stream error"
    status = _ERROR_STATUS.get(etype or "", 502)
    exc = _classify(status, etype, message, provider, None)
    if stream and exc.status < 500 and exc.status != 429:
        # a 4xx in a stream that already started is the provider's failure, not the caller's
        return UpstreamError(f"Provider '{provider}' ended the stream with an error: {message}",
                             provider=provider, retryable=False)
    return exc


class AnthropicAdapter(AnthropicNative, Adapter):
    """Chat translation here; the Messages dialect's native passthrough in anthropic_native.py."""

    protocol = "anthropic"

    def native_stream_error(self, obj: Any, provider: str) -> SkylaneError:
        return _event_error(obj, provider, stream=True)

    async def build_request(self, req: ChatRequest, target: Target, ctx: CallContext) -> UpstreamRequest:
        body = build_body(req, target, ctx.default_max_tokens)
        headers = {"content-type": "application/json", "anthropic-version": API_VERSION,
                   "accept": "text/event-stream" if req.stream else "application/json"}
        if ctx.api_key:
            headers["x-api-key"] = ctx.api_key
        headers.update(ctx.extra_headers)
        return UpstreamRequest(url=f"{ctx.base_url}/v1/messages", headers=headers, body=body)

    def parse_response(self, data: dict[str, Any], req: ChatRequest, target: Target) -> dict[str, Any]:
        return parse_message(data, req, target)

    def stream_translator(self, req: ChatRequest, target: Target) -> StreamTranslator:
        names = {wire: name for name, wire in tool_names(req, NAME_ANTHROPIC).items()}
        return AnthropicStream(target.provider.name, json_mode(req), names, wants_thinking(req, target))

    def map_error(self, status: int, body: bytes, headers: Mapping[str, str], provider: str) -> SkylaneError:
        message, _ = error_message(body, f"upstream returned HTTP {status}")
        try:
            etype, _msg = _error_fields(json.loads(body))
        except (ValueError, UnicodeDecodeError):
            etype = None
        return _classify(status, etype, message, provider, parse_retry_after(headers))


ADAPTER = AnthropicAdapter()
