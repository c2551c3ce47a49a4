"""The gateway's own OpenAPI document (/openapi.json, browsable at /docs).

Handlers read raw bodies for speed, so FastAPI cannot infer the schemas: this module adds the
request model (`schema.ChatRequest`) and response shapes (documentation-only pydantic models) to
`components.schemas` and points the operations at them. Built once, on first request.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from ..schema import ChatRequest

__all__ = ["install_openapi"]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ToolCallFunction(BaseModel):
    name: str
    arguments: str


class ToolCallOut(BaseModel):
    id: str
    type: Literal["function"]
    function: ToolCallFunction


class AssistantOut(BaseModel):
    role: Literal["assistant"]
    content: str | None
    refusal: str | None
    tool_calls: list[ToolCallOut] | None = None


class Choice(BaseModel):
    index: int
    message: AssistantOut
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
    logprobs: dict[str, Any] | None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: dict[str, int] | None = None
    completion_tokens_details: dict[str, int] | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter", "function_call"] | None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class Model(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[Model]


class ChatModel(BaseModel):
    name: str
    developer: str
    display_name: str
    max_tokens: int | None
    vision: bool


class ChatModelList(BaseModel):
    data: list[ChatModel]


_MODELS: list[type[BaseModel]] = [ChatRequest, ErrorResponse, ChatCompletion, ChatCompletionChunk, ModelList,
                                  ChatModelList]


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


_ERRORS = {str(code): {"description": desc, "content": _json("ErrorResponse")} for code, desc in [
    (400, "Invalid request"), (401, "Missing or invalid API key"), (402, "Insufficient credits"),
    (403, "Model not allowed for this key"), (404, "Model not found"), (413, "Request body too large"),
    (429, "Rate limited"), (502, "Upstream provider error"), (503, "Provider unavailable"),
    (504, "Upstream timeout"),
]}


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, routes=app.routes,
                          description="OpenAI-compatible chat completions gateway.")
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for model in _MODELS:
            js = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
            for name, sub in js.pop("$defs", {}).items():
                schemas.setdefault(name, sub)
            schemas[model.__name__] = js
        for path, item in doc.get("paths", {}).items():
            for op in item.values():
                responses = op.setdefault("responses", {})
                if path.endswith("/chat/completions"):
                    responses["200"] = {
                        "description": "A chat completion, or with `stream: true` a stream of chunks",
                        "content": {**_json("ChatCompletion"), "text/event-stream": {
                            "schema": {"$ref": "#/components/schemas/ChatCompletionChunk"}}},
                    }
                    responses.update(_ERRORS)
                elif path == "/v1/models":
                    responses["200"] = {"description": "The models", "content": _json("ModelList")}
                elif path == "/v1/chat/models":
                    responses["200"] = {"description": "Chat models", "content": _json("ChatModelList")}
                elif path.startswith("/v1/models/"):
                    responses["200"] = {"description": "One model", "content": _json("Model")}
                    responses["404"] = _ERRORS["404"]
                responses.pop("422", None)
        app.openapi_schema = doc
        return doc

    app.openapi = build  # type: ignore[method-assign]
