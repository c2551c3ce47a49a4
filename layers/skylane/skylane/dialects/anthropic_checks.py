"""Checks of a Messages body, as the Messages API makes them (400 invalid_request_error naming the field):
the JSON itself, the top-level fields' types and ranges, non-blank text."""

from __future__ import annotations

import json
from typing import Any

from skylane.core.errors import InvalidRequest
from skylane.core.request import MAX_JSON_DEPTH

__all__ = ["bad", "check_fields", "integer", "load_body", "nonblank"]


def bad(message: str, param: str | None = None) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_value")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _depth(value: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_JSON_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return deepest


def load_body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidRequest("There was an issue with the JSON body of your request: it is not valid JSON.",
                             code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    if _depth(data) > MAX_JSON_DEPTH:
        raise InvalidRequest(f"The request body is nested too deeply (more than {MAX_JSON_DEPTH} levels).",
                             code="invalid_json")
    return data


def nonblank(text: Any, where: str) -> str:
    """Anthropic refuses empty and whitespace-only text (messages, text blocks, system blocks)."""
    if not isinstance(text, str) or not text.strip():
        raise bad(f"{where}: text content blocks must contain non-whitespace text", where)
    return text


_NUMBER_RANGES = {"temperature": (0.0, 1.0), "top_p": (0.0, 1.0)}


def integer(value: Any) -> int | None:
    """JSON has one number type: 1024.0 is the integer 1024 (as JSON Schema says); anything else None."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check_fields(body: dict[str, Any]) -> None:
    """The top-level fields' types and ranges, as the Messages API checks them."""
    for name in ("system", "stream", "tools", "tool_choice", "thinking", "stop_sequences", "temperature", "top_p",
                 "top_k", "metadata"):
        if name in body and body[name] is None:
            raise bad(f"{name}: Input should not be null (leave it out instead)", name)
    for name, (low, high) in _NUMBER_RANGES.items():
        v = body.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not low <= v <= high):
            raise bad(f"{name}: Input should be a number between {low:g} and {high:g}", name)
    for name in ("output_config", "context_management"):
        if name in body and not isinstance(body[name], dict):
            raise bad(f"{name}: Input should be an object", name)
    top_k = body.get("top_k")
    if top_k is not None and ((k := integer(top_k)) is None or k < 0):
        raise bad("top_k: Input should be a non-negative integer", "top_k")
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise bad("stream: Input should be a valid boolean", "stream")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(x, str) for x in stops)):
        raise bad("stop_sequences: Input should be a list of strings", "stop_sequences")
    meta = body.get("metadata")
    if meta is not None:
        uid = meta.get("user_id") if isinstance(meta, dict) else None
        if not isinstance(meta, dict) or (uid is not None and (not isinstance(uid, str) or len(uid) > 256)):
            raise bad("metadata.user_id: Input should be a string of at most 256 characters", "metadata")
    thinking = body.get("thinking")
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind not in ("enabled", "disabled", "adaptive"):
            raise bad("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'", "thinking")
        budget = integer(thinking.get("budget_tokens"))
        if kind == "enabled" and (budget is None or budget < 1024):
            raise bad("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                       "thinking.budget_tokens")
