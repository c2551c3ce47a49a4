"""Mounting a dialect: its paths, each served by the one pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from skylane.dialects.anthropic import MESSAGES
from skylane.dialects.base import Dialect
from skylane.dialects.chat import CHAT
from skylane.dialects.embeddings import EMBEDDING_PATHS, EMBEDDINGS_DIALECT
from skylane.http.application import SkylaneApp, add_fast_path
from skylane.pipeline.count import count_tokens
from skylane.pipeline.flow import handle

__all__ = ["COMPLETION_PATHS", "COUNT_TOKENS_PATHS", "MESSAGES_PATHS", "add_completion_routes", "add_dialect_routes",
           "add_messages_routes"]

COMPLETION_PATHS = ("/v1/chat/completions", "/chat/completions", "/api/chat/completions")
# Anthropic clients append /v1/messages to ANTHROPIC_BASE_URL (query strings such as ?beta=true are accepted)
MESSAGES_PATHS = ("/v1/messages", "/api/v1/messages")
COUNT_TOKENS_PATHS = ("/v1/messages/count_tokens", "/api/v1/messages/count_tokens")


def add_dialect_routes(app: SkylaneApp, dialect: Dialect, paths: Sequence[str], *, summary: str,
                       schema_ref: str) -> None:
    """POST each of `paths` to the pipeline with `dialect`; the first path is the documented one."""

    async def endpoint(request: Request) -> Response:
        return await handle(request, dialect)

    extra: dict[str, Any] = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}}
    for path in paths:
        app.add_api_route(path, endpoint, methods=["POST"], include_in_schema=path == paths[0], summary=summary,
                          openapi_extra=extra)
        add_fast_path(app, path, dialect)


def add_completion_routes(app: SkylaneApp) -> None:
    add_dialect_routes(app, CHAT, COMPLETION_PATHS, summary="Create a chat completion (OpenAI-compatible)",
                       schema_ref="ChatRequest")
    add_messages_routes(app)


def add_messages_routes(app: SkylaneApp) -> None:
    """The Anthropic Messages API (Claude Code, the Anthropic SDKs): ANTHROPIC_BASE_URL=<gateway> or <gateway>/api."""
    add_dialect_routes(app, MESSAGES, MESSAGES_PATHS, summary="Create a message (Anthropic Messages API)",
                       schema_ref="MessagesRequest")

    async def count(request: Request) -> Response:
        return await count_tokens(request, MESSAGES, MESSAGES.parse_count)

    for path in COUNT_TOKENS_PATHS:
        app.add_api_route(path, count, methods=["POST"], include_in_schema=path == COUNT_TOKENS_PATHS[0],
                          summary="Count the input tokens of a Messages request (Anthropic models: the provider's "
                                  "count; others: the gateway's estimate)",
                          openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                              "schema": {"$ref": "#/components/schemas/MessagesRequest"}}}}})
    add_dialect_routes(app, EMBEDDINGS_DIALECT, EMBEDDING_PATHS, summary="Create embeddings (OpenAI-compatible)",
                       schema_ref="EmbeddingRequest")
