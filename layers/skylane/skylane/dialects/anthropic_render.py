"""The internal answer / stream / errors -> Anthropic Messages wire format.

Errors: `{"type": "error", "error": {"type", "message"}}` with Anthropic's types and statuses:

    gateway error                         Anthropic type            status
    ------------------------------------  ------------------------  ------
    400 invalid request                   invalid_request_error     400
    401 bad or missing key                authentication_error      401
    402 no credits / budget reached       billing_error             402
    403 model not allowed for the key     permission_error          403
    404 unknown model                     not_found_error           404
    413 body over the cap                 request_too_large         413
    429 key or provider rate limit        rate_limit_error          429 (retry-after kept)
    503 provider overloaded / unavailable overloaded_error          529
    504 provider or deadline timeout      timeout_error             504
    500 / 502 other failures              api_error                 500 / 502

Mid-stream failures are an `event: error` with the same body; the stream ends after it.

Stream rendering follows Anthropic's semantics exactly: one `message_start` (usage: the prompt
estimate until the provider reports, `output_tokens` 1), content blocks with dense indexes
(`thinking` -> `thinking_delta` / `signature_delta`, `redacted_thinking` whole, `text` ->
`text_delta`, `tool_use` -> `input_json_delta`, the input always complete JSON by
`content_block_stop`, "{}" when empty), then `message_delta` (stop_reason, cumulative usage) and
`message_stop`. A provider that streams several tool calls is assumed to stream them one after
another (every provider the gateway speaks does); a fragment for a closed call is dropped.
"""

from __future__ import annotations

import json
from typing import Any

from skylane.core.errors import SkylaneError
from skylane.core.ids import hex_id
from skylane.core.tokens import estimate_prompt_tokens
from skylane.dialects.base import CallView, StreamRenderer
from skylane.transport.sse import encode_json

__all__ = ["STOP_REASONS", "MessagesStream", "anthropic_usage", "error_body", "error_status", "render_message"]

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "function_call": "tool_use", "content_filter": "refusal"}

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
          403: "permission_error", 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
          503: "overloaded_error", 529: "overloaded_error", 504: "timeout_error"}


def error_status(err: SkylaneError) -> int:
    return 529 if err.status in (503, 529) else err.status


def error_body(err: SkylaneError) -> dict[str, Any]:
    etype = _TYPES.get(err.status, "invalid_request_error" if 400 <= err.status < 500 else "api_error")
    return {"type": "error", "error": {"type": etype, "message": err.message}}


def message_id() -> str:
    return "msg_" + hex_id(24)


def anthropic_usage(usage: dict[str, Any] | None, fallback_input: int = 0) -> dict[str, int]:
    """Internal usage (prompt_tokens includes cache reads and writes) -> Anthropic's usage object."""
    if not usage:
        return {"input_tokens": fallback_input, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                "output_tokens": 0}
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0)
    written = int(details.get("cache_write_tokens") or 0) + int(details.get("cache_write_1h_tokens") or 0)
    prompt = int(usage.get("prompt_tokens") or 0)
    return {"input_tokens": max(0, prompt - cached - written), "cache_creation_input_tokens": written,
            "cache_read_input_tokens": cached, "output_tokens": int(usage.get("completion_tokens") or 0)}


def _stop_reason(finish: Any, has_tools: bool) -> str:
    reason = STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"
    if has_tools and reason == "end_turn":
        return "tool_use"  # Gemini says STOP even when it called a tool
    return reason


def _input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments) if arguments else {}
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def _reasoning_blocks(msg: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for item in msg.get("reasoning_details") or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "reasoning.text":
            blocks.append({"type": "thinking", "thinking": str(item.get("text") or ""),
                           "signature": str(item.get("signature") or "")})
        elif item.get("type") == "reasoning.encrypted" and item.get("format") == "anthropic-claude-v1":
            blocks.append({"type": "redacted_thinking", "data": str(item.get("data") or "")})
    if not blocks and msg.get("reasoning_content"):
        blocks.append({"type": "thinking", "thinking": str(msg["reasoning_content"]), "signature": ""})
    return blocks


def render_message(resp: dict[str, Any], view: CallView) -> dict[str, Any]:
    choices = resp.get("choices") or [{}]
    choice = choices[0]
    msg = choice.get("message") or {}
    content = _reasoning_blocks(msg)
    text = msg.get("content")
    if isinstance(text, list):
        text = "".join(str(p.get("text") or "") for p in text if isinstance(p, dict))
    if msg.get("refusal"):
        content.append({"type": "text", "text": str(msg["refusal"])})
    elif text:
        content.append({"type": "text", "text": text})
    calls = msg.get("tool_calls") or []
    for call in calls:
        fn = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or "toolu_" + hex_id(24),
                        "name": fn.get("name"), "input": _input(fn.get("arguments"))})
    stop = "refusal" if msg.get("refusal") else _stop_reason(choice.get("finish_reason"), bool(calls))
    return {"id": message_id(), "type": "message", "role": "assistant", "model": view.model, "content": content,
            "stop_reason": stop, "stop_sequence": None,
            "usage": anthropic_usage(resp.get("usage"), estimate_prompt_tokens(view.req))}


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + encode_json({"type": name, **data}) + b"\n\n"


class MessagesStream(StreamRenderer):
    """Internal chunks -> Anthropic stream events (stateful: the open block, dense indexes)."""

    def __init__(self, view: CallView) -> None:
        self.view = view
        self.started = False
        self.index = -1  # the open block's index (-1: none)
        self.kind: str | None = None  # the open block's kind: thinking | text | tool_use
        self.reasoning_index: Any = None  # reasoning_details index of the open thinking block
        self.tool: int | None = None  # the open tool block's internal tool-call index
        self.tool_args = ""
        self.tools_seen: set[int] = set()
        self.finish: Any = None
        self.refused = False

    # ---- blocks ----------------------------------------------------------------------------
    def _start(self) -> bytes:
        if self.started:
            return b""
        self.started = True
        usage = {"input_tokens": estimate_prompt_tokens(self.view.req), "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0, "output_tokens": 1}
        return _event("message_start", {"message": {
            "id": message_id(), "type": "message", "role": "assistant", "model": self.view.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage}})

    def _close(self) -> bytes:
        if self.kind is None:
            return b""
        out = b""
        if self.kind == "tool_use" and not self.tool_args.strip():
            out += self._delta({"type": "input_json_delta", "partial_json": "{}"})
        out += _event("content_block_stop", {"index": self.index})
        self.kind, self.tool, self.tool_args, self.reasoning_index = None, None, "", None
        return out

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self.index += 1
        self.kind = kind
        return out + _event("content_block_start", {"index": self.index, "content_block": block})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"index": self.index, "delta": delta})

    # ---- deltas ----------------------------------------------------------------------------
    def _reasoning(self, delta: dict[str, Any]) -> bytes:
        out = b""
        text = delta.get("reasoning_content")
        details = [d for d in delta.get("reasoning_details") or () if isinstance(d, dict)]
        for item in details:
            if item.get("type") == "reasoning.encrypted":
                if item.get("format") == "anthropic-claude-v1":
                    out += self._open("redacted_thinking", {"type": "redacted_thinking",
                                                            "data": str(item.get("data") or "")})
                    out += self._close()
                continue
            idx = item.get("index")
            if self.kind != "thinking" or (idx is not None and self.reasoning_index not in (None, idx)):
                out += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            if idx is not None:
                self.reasoning_index = idx
            piece = item.get("text")
            if piece and not text:
                out += self._delta({"type": "thinking_delta", "thinking": str(piece)})
            if item.get("signature"):
                out += self._delta({"type": "signature_delta", "signature": str(item["signature"])})
        if text:
            if self.kind != "thinking":
                out += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            out += self._delta({"type": "thinking_delta", "thinking": str(text)})
        return out

    def _tool_calls(self, calls: list[Any]) -> bytes:
        out = b""
        for call in calls:
            if not isinstance(call, dict):
                continue
            n = call.get("index", 0)
            fn = call.get("function") or {}
            if n not in self.tools_seen:
                self.tools_seen.add(n)
                out += self._open("tool_use", {"type": "tool_use",
                                               "id": call.get("id") or "toolu_" + hex_id(24),
                                               "name": fn.get("name") or "", "input": {}})
                self.tool = n
            elif self.tool != n:
                continue  # a fragment for a call already closed (see the module docstring)
            args = fn.get("arguments")
            if args:
                self.tool_args += args
                out += self._delta({"type": "input_json_delta", "partial_json": args})
        return out

    def chunk(self, c: dict[str, Any]) -> bytes:
        out = self._start()
        for choice in c.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content") or delta.get("reasoning_details"):
                out += self._reasoning(delta)
            refusal = delta.get("refusal")
            text = delta.get("content")
            if refusal:
                self.refused = True
                text = refusal
            if text:
                if self.kind != "text":
                    out += self._open("text", {"type": "text", "text": ""})
                out += self._delta({"type": "text_delta", "text": text})
            if delta.get("tool_calls"):
                out += self._tool_calls(delta["tool_calls"])
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return out

    def end(self, usage: dict[str, Any] | None) -> bytes:
        out = self._start() + self._close()
        stop = "refusal" if self.refused else _stop_reason(self.finish, bool(self.tools_seen))
        out += _event("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None},
                                        "usage": anthropic_usage(usage, estimate_prompt_tokens(self.view.req))})
        return out + _event("message_stop", {})

    def error(self, err: SkylaneError) -> bytes:
        return _event("error", {"error": error_body(err)["error"]})
