"""The internal answer: chat completion dicts, stream chunks and usage, as adapters build them.

The internal answer and stream events have the OpenAI chat-completions shape (the richest of the
wire formats the gateway speaks); every dialect renders them in its own format.
"""

from __future__ import annotations

import time
from typing import Any

from skylane.core.ids import hex_id

__all__ = ["chunk", "completion", "completion_id", "message", "usage"]


def completion_id() -> str:
    return "chatcmpl-" + hex_id()


def usage(
    prompt: int,
    completion: int,
    *,
    cached: int | None = None,
    reasoning: int | None = None,
    total: int | None = None,
    cache_write: int | None = None,
    cache_write_1h: int | None = None,
) -> dict[str, Any]:
    """OpenAI usage; prompt includes cached and cache-written tokens. cache_write (5-minute tier) and
    cache_write_1h appear in prompt_tokens_details only when nonzero."""
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total if total is not None else prompt + completion,
    }
    if cached is not None or cache_write or cache_write_1h:
        details: dict[str, Any] = {"cached_tokens": cached or 0}
        if cache_write:
            details["cache_write_tokens"] = cache_write
        if cache_write_1h:
            details["cache_write_1h_tokens"] = cache_write_1h
        out["prompt_tokens_details"] = details
    if reasoning is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


def message(
    content: str | None,
    tool_calls: list[dict[str, Any]] | None = None,
    refusal: str | None = None,
    *,
    reasoning: str | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An assistant message; `reasoning_content` / `reasoning_details` only when there is reasoning."""
    msg: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
    if tool_calls:
        msg["tool_calls"] = tool_calls
    if reasoning:
        msg["reasoning_content"] = reasoning
    if details:
        msg["reasoning_details"] = details
    return msg


def completion(
    *,
    model: str,
    choices: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    id: str | None = None,
    created: int | None = None,
    system_fingerprint: str | None = None,
) -> dict[str, Any]:
    """A ChatCompletion dict. Each choice: {"index", "message", "finish_reason"} (logprobs added)."""
    for choice in choices:
        choice.setdefault("logprobs", None)
        msg = choice["message"]
        msg.setdefault("refusal", None)
        msg.setdefault("content", None)
    out: dict[str, Any] = {
        "id": id or completion_id(),
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        out["usage"] = usage
    if system_fingerprint is not None:
        out["system_fingerprint"] = system_fingerprint
    return out


def chunk(
    id: str,
    created: int,
    model: str,
    choices: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ChatCompletionChunk dict; usage only on the final usage chunk (then choices == [])."""
    out: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        out["usage"] = usage
    return out
