"""The OpenAPI description of the Responses routes (POST /v1/responses, GET/DELETE /v1/responses/{id},
GET /v1/responses/{id}/input_items).

An outline of OpenAI's CreateResponse (text messages and function tools; the gateway accepts the whole
Responses API, see dialects/responses_parse.py), tight enough that every body it describes is one the
gateway accepts; errors in OpenAI's envelope.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RESPONSES_SCHEMAS", "document_responses", "is_responses_path"]

_TEXT = {"type": "string", "minLength": 1, "pattern": r"\S"}
_MESSAGE: dict[str, Any] = {
    "type": "object", "required": ["role", "content"], "additionalProperties": False,
    "properties": {"type": {"const": "message"}, "role": {"enum": ["user", "system", "developer"]}, "content": _TEXT},
}
_TOOL: dict[str, Any] = {
    "type": "object", "required": ["type", "name", "parameters"], "additionalProperties": False,
    "properties": {"type": {"const": "function"}, "name": {"type": "string", "pattern": r"^[a-zA-Z0-9_-]{1,64}$"},
                   "description": {"type": "string"},
                   "parameters": {"type": "object", "required": ["type"], "additionalProperties": False,
                                  "properties": {"type": {"const": "object"}}}},
}
def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_OPTIONAL: dict[str, Any] = {
    "input": {"anyOf": [_TEXT, {"type": "array", "minItems": 1, "maxItems": 256, "items": _MESSAGE}]},
    "instructions": _TEXT,
    "stream": {"type": "boolean"},
    "store": {"type": "boolean", "description": "Keep the response for GET and previous_response_id (default true)"},
    "previous_response_id": {"type": "string", "minLength": 1, "maxLength": 200},
    "tools": {"type": "array", "maxItems": 64, "items": _TOOL},
    "tool_choice": {"enum": ["auto", "none"]},
    "parallel_tool_calls": {"type": "boolean"},
    "max_output_tokens": {"type": "integer", "minimum": 16, "maximum": 100_000},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    "metadata": {"type": "object", "maxProperties": 16,
                 "additionalProperties": {"type": "string", "maxLength": 512}},
}
# null is "not set", as OpenAI reads it
_PROPERTIES: dict[str, Any] = {
    "model": {"type": "string", "minLength": 1, "description": "A catalog id or alias, e.g. openai/gpt-5-mini"},
    **{name: _nullable(schema) for name, schema in _OPTIONAL.items()},
}
# one server-sent event: `event` names it, `data` is its JSON (a Responses stream event)
_SSE_EVENT: dict[str, Any] = {"type": "object", "required": ["event", "data"], "properties": {
    "event": {"type": "string"}, "data": {"type": "string", "contentMediaType": "application/json"}}}
_RESPONSE_ID: dict[str, Any] = {"name": "response_id", "in": "path", "required": True,
                                "schema": {"type": "string", "minLength": 1, "maxLength": 200}}
_LIST_PARAMS: list[dict[str, Any]] = [
    {"name": "order", "in": "query", "required": False, "schema": {"enum": ["asc", "desc"]}},
    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    {"name": "after", "in": "query", "required": False, "schema": {"type": "string"}},
]

RESPONSES_SCHEMAS: dict[str, Any] = {
    "CreateResponse": {"type": "object", "title": "CreateResponse", "additionalProperties": False,
                       "required": ["model"], "properties": _PROPERTIES},
    "Response": {"type": "object", "required": ["id", "object", "created_at", "status", "model", "output"],
                 "properties": {"id": {"type": "string"}, "object": {"const": "response"},
                                "created_at": {"type": "number"}, "status": {"type": "string"},
                                "model": {"type": "string"}, "output": {"type": "array", "items": {"type": "object"}},
                                "usage": {"type": "object"}}},
    "ResponseDeleted": {"type": "object", "required": ["id", "object", "deleted"],
                        "properties": {"id": {"type": "string"}, "object": {"const": "response"},
                                       "deleted": {"const": True}}},
    "ResponseItemList": {"type": "object", "required": ["object", "data", "has_more"],
                         "properties": {"object": {"const": "list"}, "data": {"type": "array",
                                                                              "items": {"type": "object"}},
                                        "first_id": {"type": ["string", "null"]},
                                        "last_id": {"type": ["string", "null"]}, "has_more": {"type": "boolean"}}},
}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def is_responses_path(path: str) -> bool:
    return path.startswith("/v1/responses")


def document_responses(path: str, method: str, op: dict[str, Any], security: list[dict[str, list[str]]] | None,
                       example_model: str, errors: dict[str, Any]) -> None:
    """Request schema, example, responses and security of one Responses operation."""
    responses = op.setdefault("responses", {})
    if path == "/v1/responses":
        body = op.setdefault("requestBody", {"required": True, "content": {}})
        body["content"] = _json("CreateResponse")
        body["content"]["application/json"]["example"] = {"model": example_model, "input": "Hello"}
        responses["200"] = {"description": "A Response, or with `stream: true` the Responses stream events",
                            "content": {**_json("Response"), "text/event-stream": {"schema": _SSE_EVENT}}}
    elif path.endswith("/input_items"):
        op["parameters"] = [_RESPONSE_ID, *_LIST_PARAMS]
        responses["200"] = {"description": "The stored response's input items", "content": _json("ResponseItemList")}
    else:
        op["parameters"] = [_RESPONSE_ID]
        if method == "delete":
            responses["200"] = {"description": "Deleted", "content": _json("ResponseDeleted")}
        else:
            responses["200"] = {"description": "The stored response", "content": _json("Response")}
    responses.update(errors)
    if security:
        op["security"] = security
