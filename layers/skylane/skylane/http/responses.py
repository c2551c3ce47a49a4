"""The Responses API: POST /v1/responses (the pipeline) and the stored responses of the caller's key.

    POST   /v1/responses, /responses, /api/responses                  create (dialects/responses.py)
    GET    {prefix}/{response_id}                                      a stored Response
    DELETE {prefix}/{response_id}                                      {"id", "object": "response", "deleted": true}
    GET    {prefix}/{response_id}/input_items?order=desc&limit=20&after=   its input items (a list)

A key only ever sees its own stored responses: anything else is a 404, as if it did not exist (also when
the table cannot be reached: nothing can have been stored).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from skylane.accounts.gate import ANONYMOUS
from skylane.core.errors import InvalidRequest, NotFound
from skylane.dialects.responses import RESPONSES
from skylane.http.application import SkylaneApp
from skylane.http.routes import add_dialect_routes
from skylane.pipeline.respond import JSONBytes, request_id
from skylane.pipeline.state import AppState

__all__ = ["RESPONSES_PATHS", "add_responses_routes"]

RESPONSES_PATHS = ("/v1/responses", "/responses", "/api/responses")


class ResponseNotFound(NotFound):
    code = "response_not_found"


async def _owner(request: Request) -> str:
    state: AppState = request.app.state.skylane
    principal = await state.gate.auth.authenticate(request.headers) if state.gate.enabled else ANONYMOUS
    return state.responses.owner(principal.key_id)


async def _record(request: Request) -> tuple[str, dict[str, Any]]:
    rid = request.path_params["response_id"]
    owner = await _owner(request)
    store = request.app.state.skylane.responses
    record = await store.get(owner, rid) if await store.available() else None
    if record is None:
        raise ResponseNotFound(f"Response with id '{rid[:80]}' not found.", param="response_id")
    return rid, record


async def get_response(request: Request) -> Response:
    _, record = await _record(request)
    return JSONBytes(record["response"], headers={"x-request-id": request_id(request)})


async def delete_response(request: Request) -> Response:
    rid = request.path_params["response_id"]
    owner = await _owner(request)
    store = request.app.state.skylane.responses
    if not (await store.available() and await store.delete(owner, rid)):
        raise ResponseNotFound(f"Response with id '{rid[:80]}' not found.", param="response_id")
    return JSONBytes({"id": rid, "object": "response", "deleted": True}, headers={"x-request-id": request_id(request)})


async def list_input_items(request: Request) -> Response:
    _, record = await _record(request)
    order = request.query_params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("Invalid value for 'order': expected 'asc' or 'desc'.", param="order")
    raw_limit = request.query_params.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        raise InvalidRequest("Invalid value for 'limit': an integer from 1 to 100.", param="limit")
    items = []
    for i, item in enumerate(record.get("input") or []):
        item = dict(item)
        item.setdefault("id", f"item_{i}")
        if item.get("type") is None and "role" in item:
            item["type"] = "message"
        items.append(item)
    if order == "desc":
        items.reverse()
    after = request.query_params.get("after")
    if after:
        ids = [it["id"] for it in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    page = items[: int(raw_limit)]
    body = {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(items) > len(page)}
    return JSONBytes(body, headers={"x-request-id": request_id(request)})


def add_responses_routes(app: SkylaneApp) -> None:
    add_dialect_routes(app, RESPONSES, RESPONSES_PATHS, summary="Create a model response (OpenAI Responses API)",
                       schema_ref="CreateResponse")
    for i, path in enumerate(RESPONSES_PATHS):
        shown = i == 0
        app.add_api_route(path + "/{response_id}", get_response, methods=["GET"], include_in_schema=shown,
                          summary="Retrieve a stored response")
        app.add_api_route(path + "/{response_id}", delete_response, methods=["DELETE"], include_in_schema=shown,
                          summary="Delete a stored response")
        app.add_api_route(path + "/{response_id}/input_items", list_input_items, methods=["GET"],
                          include_in_schema=shown, summary="List a stored response's input items")

