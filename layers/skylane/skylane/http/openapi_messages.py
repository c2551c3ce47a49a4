"""The OpenAPI description of the Anthropic Messages routes (POST /v1/messages, /v1/messages/count_tokens).

An outline of Anthropic's request (text content only; the gateway accepts the whole Messages API, see
dialects/anthropic_parse.py, and passes fields it does not know natively), tight enough that every
body it describes is one the gateway accepts; errors in Anthropic's envelope.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MESSAGES_SCHEMAS", "document_messages", "is_messages_path"]

_TEXT_BLOCK: dict[str, Any] = {
    "type": "object", "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": {"type": "string", "minLength": 1, "pattern": r"\S"}},
}
_CONTENT: dict[str, Any] = {"anyOf": [{"type": "string", "minLength": 1, "pattern": r"\S"},
                                      {"type": "array", "minItems": 1, "maxItems": 64, "items": _TEXT_BLOCK}]}
_TOOL: dict[str, Any] = {
    "type": "object", "required": ["name", "input_schema"],
    "properties": {"name": {"type": "string", "pattern": r"^[a-zA-Z0-9_-]{1,64}$"},
                   "description": {"type": "string"},
                   "input_schema": {"type": "object", "required": ["type"],
                                    "properties": {"type": {"const": "object"},
                                                   "properties": {"type": "object"}}}},
}
_PROPERTIES: dict[str, Any] = {
    "model": {"type": "string", "minLength": 1, "description": "A catalog id or alias, e.g. claude-opus-4-8"},
    "max_tokens": {"type": "integer", "minimum": 1, "maximum": 10_000_000},
    "messages": {"type": "array", "minItems": 1, "maxItems": 4000, "items": {
        "type": "object", "required": ["role", "content"],
        "properties": {"role": {"enum": ["user", "assistant"]}, "content": _CONTENT}}},
    "system": {"anyOf": [{"type": "string", "minLength": 1, "pattern": r"\S"},
                         {"type": "array", "maxItems": 64, "items": _TEXT_BLOCK}]},
    "stream": {"type": "boolean"},
    "tools": {"type": "array", "maxItems": 128, "items": _TOOL},
    "tool_choice": {"oneOf": [
        {"type": "object", "required": ["type"],
         "properties": {"type": {"enum": ["auto", "any", "none"]}, "disable_parallel_tool_use": {"type": "boolean"}}},
        {"type": "object", "required": ["type", "name"],
         "properties": {"type": {"const": "tool"}, "name": {"type": "string"},
                        "disable_parallel_tool_use": {"type": "boolean"}}}]},
    "thinking": {"oneOf": [
        {"type": "object", "required": ["type", "budget_tokens"],
         "properties": {"type": {"const": "enabled"}, "budget_tokens": {"type": "integer", "minimum": 1024}}},
        {"type": "object", "required": ["type"],
         "properties": {"type": {"enum": ["disabled", "adaptive"]}}}]},
    "stop_sequences": {"type": "array", "maxItems": 16, "items": {"type": "string"}},
    "temperature": {"type": "number", "minimum": 0, "maximum": 1},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    "top_k": {"type": "integer", "minimum": 0},
    "output_config": {"type": "object", "description": "effort, format: to translated models as reasoning_effort "
                                                       "and response_format"},
    "context_management": {"type": "object", "description": "Anthropic only (native); dropped when translated"},
    "metadata": {"type": "object",
                 "properties": {"user_id": {"type": ["string", "null"], "maxLength": 256}}},
}

MESSAGES_SCHEMAS: dict[str, Any] = {
    "MessagesRequest": {"type": "object", "title": "MessagesRequest",
                        "required": ["model", "max_tokens", "messages"], "properties": _PROPERTIES},
    "CountTokensRequest": {"type": "object", "title": "CountTokensRequest",
                           "required": ["model", "messages"],
                           "properties": {k: v for k, v in _PROPERTIES.items()
                                          if k not in ("max_tokens", "stream", "stop_sequences", "temperature",
                                                       "top_p", "top_k", "metadata")}},
    "AnthropicError": {"type": "object", "required": ["type", "error"], "properties": {
        "type": {"const": "error"},
        "error": {"type": "object", "required": ["type", "message"], "properties": {
            "type": {"type": "string"}, "message": {"type": "string"}}}}},
    "Message": {"type": "object", "required": ["id", "type", "role", "model", "content", "stop_reason", "usage"],
                "properties": {"id": {"type": "string"}, "type": {"const": "message"},
                               "role": {"const": "assistant"}, "model": {"type": "string"},
                               "content": {"type": "array", "items": {"type": "object"}},
                               "stop_reason": {"type": ["string", "null"]},
                               "usage": {"type": "object", "required": ["input_tokens", "output_tokens"]}}},
    "MessageTokensCount": {"type": "object", "required": ["input_tokens"],
                           "properties": {"input_tokens": {"type": "integer", "minimum": 0}}},
}

# one server-sent event: `event: <type>` and its JSON `data` (an Anthropic stream event, or an error)
_SSE_EVENT: dict[str, Any] = {
    "type": "object", "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
                           "message_delta", "message_stop", "ping", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": {
            "type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}}},
    },
}

_STATUSES = [(400, "Invalid request (invalid_request_error)"), (401, "Missing or invalid key (authentication_error)"),
             (402, "No credits or budget left (billing_error)"), (403, "Model not allowed (permission_error)"),
             (404, "Model not found (not_found_error)"), (413, "Body too large (request_too_large)"),
             (429, "Rate limited (rate_limit_error)"), (500, "Gateway error (api_error)"),
             (502, "Provider failed (api_error)"), (504, "Timeout (timeout_error)"),
             (529, "Provider overloaded (overloaded_error)")]


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def is_messages_path(path: str) -> bool:
    return path.endswith(("/v1/messages", "/v1/messages/count_tokens"))


def document_messages(path: str, op: dict[str, Any], security: list[dict[str, list[str]]] | None,
                      example_model: str) -> None:
    """Request schema, example (with a model the gateway serves), responses and security of one Messages operation."""
    count = path.endswith("/count_tokens")
    body = op.setdefault("requestBody", {"required": True, "content": {}})
    body["content"] = _json("CountTokensRequest" if count else "MessagesRequest")
    example = {"model": example_model, "messages": [{"role": "user", "content": "Hello"}]}
    body["content"]["application/json"]["example"] = example if count else {**example, "max_tokens": 1024}
    responses = op.setdefault("responses", {})
    responses.pop("422", None)
    if count:
        responses["200"] = {"description": "The input token count (an estimate for non-Anthropic models)",
                            "content": _json("MessageTokensCount")}
    else:
        responses["200"] = {"description": "A message, or with `stream: true` Anthropic's server-sent events",
                            "content": {**_json("Message"), "text/event-stream": {"schema": _SSE_EVENT}}}
    for status, desc in _STATUSES:
        responses[str(status)] = {"description": desc, "content": _json("AnthropicError")}
    if security:
        op["security"] = security
