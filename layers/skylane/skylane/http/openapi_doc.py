"""The gateway's own OpenAPI document (/openapi.json, browsable at /docs).

Handlers read raw bodies for speed, so FastAPI cannot infer the schemas: this module adds the
request model (`schema.ChatRequest`) and response shapes (documentation-only pydantic models) to
`components.schemas` and points the operations at them. Built once, on first request.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from starlette.routing import BaseRoute

from skylane.accounts.account import SINCE_PATTERN
from skylane.core.catalog import ModelInfo
from skylane.core.embedding import EmbeddingRequest
from skylane.core.request import ChatRequest
from skylane.core.settings import Settings
from skylane.http.openapi_messages import MESSAGES_SCHEMAS, document_messages, is_messages_path
from skylane.http.openapi_responses import RESPONSES_SCHEMAS, document_responses, is_responses_path

if TYPE_CHECKING:
    from skylane.http.application import SkylaneApp

__all__ = ["build_document"]


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
    estimated: bool | None = None  # true: counted by the gateway (the provider reported none)
    cost: float | None = None  # USD, what the key was charged (= x-skylane-cost-usd)


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


class KeyLimits(BaseModel):
    rpm: int | None  # null: unlimited
    tpm: int | None


class KeySpend(BaseModel):
    today_usd: float
    month_usd: float
    month: str  # YYYY-MM (UTC)
    total_usd: float


class KeyInfo(BaseModel):
    object: Literal["key"]
    key_id: str
    name: str
    status: Literal["active", "revoked", "expired"]
    created_at: str | None
    expires_at: str | None
    limits: KeyLimits
    credits_usd: float | None  # null: no balance (unlimited)
    monthly_budget_usd: float | None  # null: no monthly cap
    monthly_budget_resets_at: str  # the 1st of next month, 00:00 UTC
    spend: KeySpend
    models: list[str]  # allowed model patterns; empty: every model


class UsageRow(BaseModel):
    day: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float


class UsageList(BaseModel):
    object: Literal["list"]
    key_id: str
    since: str
    data: list[UsageRow]


class Embedding(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str  # floats, or base64 of little-endian float32 with encoding_format base64


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int
    cost: float | None = None


class EmbeddingList(BaseModel):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


_MODELS: list[type[BaseModel]] = [ChatRequest, EmbeddingRequest, ErrorResponse, ChatCompletion, ChatCompletionChunk,
                                  ModelList, ChatModelList, KeyInfo, UsageList, EmbeddingList]


# One server-sent event of a stream (before OpenAPI 3.2, a text/event-stream `schema` describes one
# event): `data` is a chunk, an error envelope (the stream then ends), or the final `[DONE]`.
_SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "if": {"const": "[DONE]"},
            "else": {
                "contentMediaType": "application/json",
                "contentSchema": {"anyOf": [{"$ref": "#/components/schemas/ChatCompletionChunk"},
                                            {"$ref": "#/components/schemas/ErrorResponse"}]},
            },
        },
    },
}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


_ERRORS = {str(code): {"description": desc, "content": _json("ErrorResponse")} for code, desc in [
    (400, "Invalid request"), (401, "Missing or invalid API key"), (402, "Insufficient credits"),
    (403, "Model not allowed for this key"), (404, "Model not found"), (413, "Request body too large"),
    (429, "Rate limited"), (502, "Upstream provider error"), (503, "Provider unavailable"),
    (500, "Gateway error"), (504, "Upstream timeout"),
]}


_MODEL_ID: dict[str, Any] = {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"},
                             "description": "A model id (`provider/model`, so it contains a slash) or an alias"}

# API keys (only documented when the gateway checks them): either header
_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "A Skylane key: sk-skylane-<key id>-<secret>"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "A Skylane key"},
}
_KEY_REQUIRED: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]


def _settings(app: SkylaneApp) -> Settings | None:
    state = getattr(app.state, "skylane", None)
    return state.settings if state is not None else None


def _example_model(app: SkylaneApp) -> str:
    """A model this gateway serves, for the documented examples."""
    state = getattr(app.state, "skylane", None)
    configured = [m for m in state.catalog.configured_models() if m.kind == "chat"] if state is not None else []
    return configured[0].id if configured else "openai/gpt-4o-mini"


def _request_rules(schema: dict[str, Any], default_model: str | None) -> None:
    """What `schema.parse_request` checks besides the pydantic model: a non-empty model (unless the
    gateway has a default model) and at least one message."""
    _model_rule(schema, default_model)
    schema["properties"]["messages"]["minItems"] = 1


# what an embeddings request documents (EmbeddingRequest inherits the chat fields it never uses)
_EMBEDDING_FIELDS = ("model", "models", "input", "encoding_format", "dimensions", "user")
_EMBEDDING_NOTE = ("Extension fields, passed to the providers that take them: task_type (Gemini's taskType, e.g. "
                   "RETRIEVAL_QUERY), input_type (Cohere, e.g. search_query), normalize (Titan), truncate (Cohere).")
MAX_DIMENSIONS = 3072  # the largest output any catalog embedding model allows (text-embedding-3-large, Gemini)


def _embedding_rules(schema: dict[str, Any], default_model: str | None) -> None:
    """The embeddings request as `core.embedding.parse_embedding_request` checks it."""
    props = schema["properties"]
    schema["properties"] = {k: props[k] for k in _EMBEDDING_FIELDS if k in props}
    schema["properties"]["dimensions"] = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_DIMENSIONS},
                                                    {"type": "null"}], "default": None,
                                          "description": "Output size, where the model allows shortening"}
    schema["required"] = ["input"]
    schema["description"] = _EMBEDDING_NOTE
    _model_rule(schema, default_model)


def _model_rule(schema: dict[str, Any], default_model: str | None) -> None:
    props = schema["properties"]
    if default_model:
        props["model"] = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Model",
                          "description": f"Optional: the gateway's default model is {default_model}."}
    else:
        props["model"] = {"type": "string", "minLength": 1, "title": "Model",
                          "description": "provider/model, an alias, or a bare model name"}
        schema["required"] = ["model", *[r for r in schema.get("required", []) if r != "model"]]


_CHAT_REQUESTS = ("ChatRequest", "MessagesRequest", "CountTokensRequest", "CreateResponse")


def _kind_rules(schemas: dict[str, Any], models: Iterable[ModelInfo]) -> None:
    """A model of the other kind is refused (400): chat APIs name the embedding models they refuse,
    the embeddings API the chat models."""
    names: dict[str, list[str]] = {"chat": [], "embedding": []}
    for m in models:
        names.setdefault(m.kind, []).extend([m.id, *m.aliases])
    for name in _CHAT_REQUESTS:
        model = schemas.get(name, {}).get("properties", {}).get("model")
        if model is not None and names["embedding"]:
            schemas[name]["properties"]["model"] = {**model, "not": {"enum": sorted(names["embedding"])}}
    model = schemas["EmbeddingRequest"]["properties"].get("model")
    if model is not None and names["chat"]:
        schemas["EmbeddingRequest"]["properties"]["model"] = {**model, "not": {"enum": sorted(names["chat"])}}


def _routes(app: SkylaneApp) -> list[BaseRoute]:
    """FastAPI routes for what `app` serves, as FastAPI would have made them: the document's input."""
    router = APIRouter()
    for r in app.docs.routes:
        router.add_api_route(r.path, r.endpoint, methods=list(r.methods), summary=r.summary,
                             include_in_schema=r.include_in_schema, openapi_extra=r.openapi_extra)
    for add in app.docs.extra:
        add(router)
    return router.routes


def build_document(app: SkylaneApp) -> dict[str, Any]:
    """The whole document for `app` (its routes, the catalog's models, the settings)."""
    doc = get_openapi(title=app.title, version=app.version, routes=_routes(app),
                      description="OpenAI-compatible chat completions gateway.")
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in _MODELS:
        js = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
        for name, sub in js.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
        schemas[model.__name__] = js
    schemas.update(copy.deepcopy(MESSAGES_SCHEMAS))
    schemas.update(copy.deepcopy(RESPONSES_SCHEMAS))
    settings = _settings(app)
    _request_rules(schemas["ChatRequest"], settings.default_model if settings else None)
    _embedding_rules(schemas["EmbeddingRequest"], settings.default_model if settings else None)
    state = getattr(app.state, "skylane", None)
    if state is not None:
        _kind_rules(schemas, state.catalog.models.values())
    auth = bool(settings and settings.auth_enabled)
    if auth:
        doc["components"]["securitySchemes"] = _SECURITY_SCHEMES
    example_model = _example_model(app)
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            responses = op.setdefault("responses", {})
            if is_messages_path(path):
                document_messages(path, op, _KEY_REQUIRED if auth else None, example_model)
            elif is_responses_path(path):
                document_responses(path, method, op, _KEY_REQUIRED if auth else None, example_model, _ERRORS)
            elif path.endswith("/chat/completions"):
                op["requestBody"]["content"]["application/json"]["example"] = {
                    "model": example_model, "messages": [{"role": "user", "content": "Hello"}]}
                responses["200"] = {
                    "description": "A chat completion, or with `stream: true` a stream of chunks",
                    "content": {**_json("ChatCompletion"), "text/event-stream": {"schema": _SSE_EVENT}},
                }
                responses.update(_ERRORS)
                if auth:
                    op["security"] = _KEY_REQUIRED
            elif path in ("/v1/models", "/v1/chat/models") or path.startswith("/v1/models/"):
                if path == "/v1/models":
                    responses["200"] = {"description": "The models", "content": _json("ModelList")}
                elif path == "/v1/chat/models":
                    responses["200"] = {"description": "Chat models", "content": _json("ChatModelList")}
                else:
                    op["parameters"] = [{**_MODEL_ID, "example": example_model}]
                    responses["200"] = {"description": "One model", "content": _json("Model")}
                    responses["404"] = _ERRORS["404"]
                if auth:
                    # a key is optional here; when one is sent, only the models it may use are shown
                    op["security"] = [*_KEY_REQUIRED, {}]
                    responses["401"] = _ERRORS["401"]
            elif path in ("/v1/key", "/v1/usage"):
                if path == "/v1/key":
                    responses["200"] = {"description": "The calling key", "content": _json("KeyInfo")}
                else:
                    op["parameters"] = [{"name": "since", "in": "query", "required": False,
                                         "schema": {"type": "string", "default": "30d",
                                                    "pattern": SINCE_PATTERN},
                                         "description": "First UTC day: a date, an ISO time, or e.g. 7d"}]
                    responses["200"] = {"description": "The calling key's ledger rows",
                                        "content": _json("UsageList")}
                    responses["400"] = _ERRORS["400"]
                responses["401"] = _ERRORS["401"]
                responses["403"] = {"description": "The gateway runs without keys (SKYLANE_AUTH=disabled)",
                                    "content": _json("ErrorResponse")}
                if auth:
                    op["security"] = _KEY_REQUIRED
            elif path.endswith("/embeddings"):
                op["requestBody"]["content"]["application/json"]["example"] = {
                    "model": "openai/text-embedding-3-large", "input": ["Hello", "world"]}
                responses["200"] = {"description": "The embeddings, in input order",
                                    "content": _json("EmbeddingList")}
                responses.update(_ERRORS)
                if auth:
                    op["security"] = _KEY_REQUIRED
            elif path.startswith("/admin/"):  # http/admin.py: an admin key, Bearer only
                responses.update({c: _ERRORS[c] for c in ("400", "401", "404")})
                responses["403"] = {"description": "Not an admin key, or the admin API is off (SKYLANE_AUTH="
                                    "disabled)", "content": _json("ErrorResponse")}
                if auth:
                    op["security"] = [{"bearer": []}]
            elif auth:
                op["security"] = []
            responses.pop("422", None)
    return doc
