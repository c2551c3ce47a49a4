"""A fake Anthropic Messages server (POST /v1/messages) speaking the real JSON and SSE formats.

It checks `x-api-key` and `anthropic-version`, validates what the real API validates
(required `model` / `max_tokens` / `messages`, user/assistant alternation, no `system` role in
`messages`, non-empty text blocks, base64 image data, `tool_result` ids answering the previous
assistant turn's `tool_use` ids, tool results first in their turn), answering with Anthropic's
400 error body when something is wrong. Behaviour follows the shared fake conventions, chosen by
the LAST message:
  tool_result blocks   → "Tool said: <text of the last result>"
  an image             → "I see an image (<mime>, <N> bytes)"   (URL source: "(url, <url>)")
  "tools2" / "tool"    → a text block at index 0, then tool_use blocks at 1 (and 2)
                         (one only when disable_parallel_tool_use is set)
  a forced tool        → (tool_choice {"type": "tool"}) only that tool_use; input {"answer": 42} for "json"
  "json"               → text '{"answer": 42}'
  "error:<status>"     → that status with Anthropic's error body (429 with retry-after: 1)
  "midstream"          → (stream) one text delta, then an `error` event (overloaded_error)
  "length" / "refuse" / "stopseq" / "pause" / "window"
                       → stop_reason max_tokens / refusal / stop_sequence / pause_turn /
                         model_context_window_exceeded
  otherwise            → "Hello from fake-anthropic: <text>"
With `thinking` on (enabled / adaptive), a tool_use answer starts with a signed thinking block
(streamed as thinking_delta + signature_delta); a thinking block sent back must keep its signature, and
a tool-result turn whose assistant turn does not start with its thinking block is refused with
Anthropic's 400 text. `role: "system"` messages inside `messages` are accepted (Claude Code).
Also refused with Anthropic's texts: whitespace-only text blocks, a final assistant turn ending in
whitespace, tool names outside ^[a-zA-Z0-9_-]{1,128}$, and temperature with top_p together on the
recent models (all but claude-3* and the 4-2025 Sonnet/Opus).
Usage always carries nonzero cache_creation_input_tokens and cache_read_input_tokens; streams
repeat the cumulative usage in message_delta and include `ping` events. Every request is recorded
in `requests` (body and headers), the usage of every answer in `usages`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# the versions Anthropic accepts: 2023-06-01 (what adapters send) and what the current SDK sends
API_VERSIONS = frozenset({"2023-01-01", "2023-06-01", "2026-10-21"})
CACHE_CREATION = 5
CACHE_READ = 11
_IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error"}
_STOP_WORDS = {"length": "max_tokens", "refuse": "refusal", "stopseq": "stop_sequence", "pause": "pause_turn",
               "window": "model_context_window_exceeded"}


THINKING_TEXT = "Let me think about which tool answers this."
_THINKING_RULE = ("messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{found}`. "
                  "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
                  "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
                  "thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult "
                  "our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking")


_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
BOTH_SAMPLERS = "`temperature` and `top_p` cannot both be specified for this model. Please use only one."


def _both_samplers_refused(model: str) -> bool:
    return not (model.startswith("claude-3") or "-4-2025" in model)


def sign(thinking: str) -> str:
    """The fake's thinking signature: opaque to clients, checked when the block comes back."""
    return base64.b64encode(hashlib.sha256(b"fake-anthropic:" + thinking.encode()).digest()).decode()


def _thinking_on(body: dict[str, Any]) -> bool:
    t = body.get("thinking")
    return isinstance(t, dict) and t.get("type") in ("enabled", "adaptive")


def _check_thinking(body: dict[str, Any]) -> None:
    """Anthropic's rules for thinking blocks sent back: signatures intact, and with thinking on, the
    assistant turn answered by tool results starts with its thinking block."""
    msgs = [m for m in body["messages"] if m.get("role") != "system"]
    for i, msg in enumerate(msgs):
        for j, b in enumerate(_blocks(msg.get("content"))):
            if b.get("type") == "thinking" and b.get("signature") != sign(str(b.get("thinking", ""))):
                raise Invalid(f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")
    if not _thinking_on(body) or len(msgs) < 2:
        return
    last, prev = msgs[-1], msgs[-2]
    results = [b for b in _blocks(last.get("content")) if b.get("type") == "tool_result"]
    if last["role"] == "user" and results and prev["role"] == "assistant":
        first = _blocks(prev.get("content"))[0]
        if first.get("type") not in ("thinking", "redacted_thinking"):
            raise Invalid(_THINKING_RULE.format(i=len(msgs) - 2, found=first.get("type")))


def error_body(etype: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": etype, "message": message}, "request_id": "req_fake0123456789"}


class Invalid(Exception):
    pass


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or () if isinstance(b, dict) and b.get("type") == "text")


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _validate(body: dict[str, Any]) -> None:
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise Invalid(f"{name}: Field required")
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        raise Invalid("max_tokens: Input should be a valid integer greater than or equal to 1")
    msgs = body["messages"]
    if not isinstance(msgs, list) or not msgs:
        raise Invalid("messages: at least one message is required")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        for block in system:
            if block.get("type") != "text" or not block.get("text"):
                raise Invalid("system: text content blocks must be non-empty")
    prev_tool_ids: set[str] = set()
    prev_role = None
    for i, msg in enumerate(msgs):
        role = msg.get("role")
        if role == "system":  # mid-conversation system messages (Claude Code's beta): text only
            if not _text_of(msg.get("content")):
                raise Invalid(f"messages.{i}: system messages must have non-empty text content")
            continue
        if role not in ("user", "assistant"):
            raise Invalid(f"messages.{i}.role: Input should be 'user', 'assistant' or 'system'")
        if prev_role == role:
            raise Invalid("messages: roles must alternate between \"user\" and \"assistant\"")
        blocks = _blocks(msg.get("content"))
        if not blocks:
            raise Invalid(f"messages.{i}: all messages must have non-empty content")
        seen_other = False
        tool_ids: set[str] = set()
        for j, b in enumerate(blocks):
            kind = b.get("type")
            where = f"messages.{i}.content.{j}"
            if kind == "text":
                if not b.get("text"):
                    raise Invalid(f"{where}: text content blocks must be non-empty")
                if not str(b["text"]).strip():
                    raise Invalid("messages: text content blocks must contain non-whitespace text")
                seen_other = True
            elif kind == "image":
                src = b.get("source", {})
                if src.get("type") == "base64":
                    if src.get("media_type") not in _IMAGE_TYPES:
                        raise Invalid(f"{where}.source.media_type: unsupported image type")
                    try:
                        base64.b64decode(src.get("data", ""), validate=True)
                    except (binascii.Error, ValueError):
                        raise Invalid(f"{where}.source.data: invalid base64 data") from None
                elif src.get("type") != "url" or not src.get("url"):
                    raise Invalid(f"{where}.source: invalid image source")
                seen_other = True
            elif kind == "document":
                seen_other = True
            elif kind in ("thinking", "redacted_thinking"):
                if role != "assistant":
                    raise Invalid(f"{where}: thinking blocks may only appear in assistant messages")
            elif kind == "tool_use":
                if role != "assistant" or not isinstance(b.get("input"), dict) or not b.get("id"):
                    raise Invalid(f"{where}: invalid tool_use block")
                tool_ids.add(b["id"])
            elif kind == "tool_result":
                if role != "user" or b.get("tool_use_id") not in prev_tool_ids:
                    raise Invalid(f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: "
                                  f"{b.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                                  "`tool_use` block in the previous message.")
                if seen_other:
                    raise Invalid(f"{where}: tool_result blocks must come first in the user message")
            else:
                raise Invalid(f"{where}.type: unknown content block type {kind!r}")
        prev_tool_ids = tool_ids
        prev_role = role
    final = [m for m in msgs if m.get("role") != "system"][-1]
    if final["role"] == "assistant":
        tail = _blocks(final.get("content"))[-1:]
        if tail and tail[0].get("type") == "text" and str(tail[0].get("text")) != str(tail[0].get("text")).rstrip():
            raise Invalid("messages: final assistant content cannot end with trailing whitespace")
    for k, t in enumerate(body.get("tools") or ()):
        if not t.get("name") or not isinstance(t.get("input_schema"), dict):
            raise Invalid("tools: each tool needs a name and an input_schema")
        if not _TOOL_NAME.match(str(t["name"])):
            raise Invalid(f"tools.{k}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
    if "temperature" in body and "top_p" in body and _both_samplers_refused(str(body["model"])):
        raise Invalid(BOTH_SAMPLERS)


class FakeAnthropic:
    def __init__(self, key: str = "sk-upstream-test") -> None:
        self.key = key
        self.requests: list[dict[str, Any]] = []
        self.usages: list[dict[str, int]] = []
        self.app = Starlette(routes=[Route("/v1/messages", self.messages, methods=["POST"]),
                                     Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"])])

    async def count_tokens(self, request: Request) -> Response:
        """{"input_tokens": N} for a Messages body without max_tokens (as Anthropic's count_tokens)."""
        body = await request.json()
        self.requests.append({"body": body, "headers": dict(request.headers), "path": "/v1/messages/count_tokens"})
        if request.headers.get("x-api-key") != self.key:
            return JSONResponse(error_body("authentication_error", "invalid x-api-key"), 401)
        if "max_tokens" in body or "stream" in body:
            return JSONResponse(error_body("invalid_request_error", "max_tokens: Extra inputs are not permitted"), 400)
        try:
            _validate({**body, "max_tokens": 1})
        except Invalid as exc:
            return JSONResponse(error_body("invalid_request_error", str(exc)), 400)
        return JSONResponse({"input_tokens": len(json.dumps(body["messages"])) // 4 + len(json.dumps(
            body.get("tools") or [])) // 4})

    async def messages(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(error_body("invalid_request_error", "There was an issue with the JSON body"), 400)
        self.requests.append({"body": body, "headers": dict(request.headers)})
        if request.headers.get("x-api-key") != self.key:
            return JSONResponse(error_body("authentication_error", "invalid x-api-key"), 401)
        if request.headers.get("anthropic-version") not in API_VERSIONS:
            return JSONResponse(error_body("invalid_request_error", "anthropic-version: header is required"), 400)
        try:
            _validate(body)
            _check_thinking(body)
        except Invalid as exc:
            return JSONResponse(error_body("invalid_request_error", str(exc)), 400)
        last = [m for m in body["messages"] if m.get("role") != "system"][-1]
        text = _text_of(last["content"]) if last["role"] == "user" else ""
        if text.startswith("error:"):
            status = int(text.split(":", 1)[1])
            headers = {"retry-after": "1"} if status == 429 else {}
            etype = _ERROR_TYPES.get(status, "api_error")
            return JSONResponse(error_body(etype, f"fake failure {status}"), status, headers=headers)
        content, stop_reason = self._answer(body, last, text)
        if _thinking_on(body) and stop_reason == "tool_use":  # thinking first, signed
            content = [{"type": "thinking", "thinking": THINKING_TEXT, "signature": sign(THINKING_TEXT)}, *content]
        prompt = len(json.dumps(body["messages"])) // 4
        output = sum(len(json.dumps(b)) for b in content) // 4 + 1
        stop_sequence = (body.get("stop_sequences") or ["END"])[0] if stop_reason == "stop_sequence" else None
        self.usages.append({"input_tokens": prompt, "cache_creation_input_tokens": CACHE_CREATION,
                            "cache_read_input_tokens": CACHE_READ, "output_tokens": output})
        if body.get("stream"):
            return StreamingResponse(self._stream(body, content, stop_reason, stop_sequence, prompt, output,
                                                  text.startswith("midstream")),
                                     media_type="text/event-stream")
        return JSONResponse({
            "id": "msg_fake01", "type": "message", "role": "assistant", "model": body["model"],
            "content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence,
            "usage": {"input_tokens": prompt, "cache_creation_input_tokens": CACHE_CREATION,
                      "cache_read_input_tokens": CACHE_READ, "output_tokens": output, "service_tier": "standard"},
        })

    def _answer(self, body: dict[str, Any], last: dict[str, Any], text: str) -> tuple[list[dict[str, Any]], str]:
        blocks = _blocks(last["content"])
        results = [b for b in blocks if b.get("type") == "tool_result"]
        if last["role"] == "user" and results:
            return [{"type": "text", "text": f"Tool said: {_text_of(results[-1].get('content', ''))}"}], "end_turn"
        for b in blocks:
            if b.get("type") == "image":
                src = b["source"]
                if src["type"] == "base64":
                    size = len(base64.b64decode(src["data"]))
                    return [{"type": "text", "text": f"I see an image ({src['media_type']}, {size} bytes)"}], "end_turn"
                return [{"type": "text", "text": f"I see an image (url, {src['url']})"}], "end_turn"
        tools = body.get("tools") or []
        choice = body.get("tool_choice") or {}
        if tools and choice.get("type") == "tool":
            args = {"answer": 42} if text.startswith("json") else {"city": "Paris0"}
            return [{"type": "tool_use", "id": "toolu_fake0", "name": choice["name"], "input": args}], "tool_use"
        if text.startswith("tool") and tools and choice.get("type") != "none":
            n = 2 if text.startswith("tools2") and not choice.get("disable_parallel_tool_use") else 1
            out: list[dict[str, Any]] = [{"type": "text", "text": "Let me check."}]
            for i in range(n):
                out.append({"type": "tool_use", "id": f"toolu_fake{i}", "name": tools[min(i, len(tools) - 1)]["name"],
                            "input": {"city": f"Paris{i}"}})
            return out, "tool_use"
        for word, reason in _STOP_WORDS.items():
            if text.startswith(word):
                return [{"type": "text", "text": "Truncated answer"}], reason
        if text.startswith("json"):
            return [{"type": "text", "text": json.dumps({"answer": 42})}], "end_turn"
        return [{"type": "text", "text": f"Hello from fake-anthropic: {text}"}], "end_turn"

    async def _stream(self, body: dict[str, Any], content: list[dict[str, Any]], stop_reason: str,
                      stop_sequence: str | None, prompt: int, output: int, midstream: bool) -> AsyncIterator[bytes]:
        def ev(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()

        usage = {"input_tokens": prompt, "cache_creation_input_tokens": CACHE_CREATION,
                 "cache_read_input_tokens": CACHE_READ}
        yield ev("message_start", {"message": {
            "id": "msg_fake01", "type": "message", "role": "assistant", "model": body["model"], "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}})
        yield ev("ping", {})
        if midstream:
            yield ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
            yield ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "partial"}})
            yield ev("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
            return
        for index, block in enumerate(content):
            if block["type"] == "thinking":
                yield ev("content_block_start", {"index": index, "content_block": {
                    "type": "thinking", "thinking": "", "signature": ""}})
                half = len(block["thinking"]) // 2
                for piece in (block["thinking"][:half], block["thinking"][half:]):
                    yield ev("content_block_delta", {"index": index, "delta": {"type": "thinking_delta",
                                                                               "thinking": piece}})
                yield ev("content_block_delta", {"index": index, "delta": {"type": "signature_delta",
                                                                           "signature": block["signature"]}})
            elif block["type"] == "text":
                yield ev("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
                words = block["text"].split(" ")
                for i, w in enumerate(words):
                    piece = w if i == 0 else " " + w
                    yield ev("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": piece}})
            else:
                start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                yield ev("content_block_start", {"index": index, "content_block": start})
                yield ev("content_block_delta", {"index": index,
                                                 "delta": {"type": "input_json_delta", "partial_json": ""}})
                args = json.dumps(block["input"])
                for j in range(0, len(args), 6):
                    yield ev("content_block_delta", {"index": index, "delta": {"type": "input_json_delta",
                                                                               "partial_json": args[j:j + 6]}})
            yield ev("content_block_stop", {"index": index})
            if index == 0:
                yield ev("ping", {})
        yield ev("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                                   "usage": {**usage, "output_tokens": output}})
        yield ev("message_stop", {})
