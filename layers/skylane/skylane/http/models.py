"""The models endpoints, generated from the catalog (configured providers only).

GET /v1/models, /models, /api/models          OpenAI list format
GET /v1/models/{id}, /models/{id}, /api/models/{id}   one model (ids contain slashes)
GET /v1/chat/models                           {"data": [{name, developer, display_name, max_tokens, vision}]},
                                              chat models only (embedding models are listed by /v1/models)

When a key is sent, only the models that key may use are listed.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from skylane.accounts.gate import ANONYMOUS, Principal
from skylane.core.catalog import ModelInfo
from skylane.core.errors import ModelNotFound
from skylane.http.application import SkylaneApp
from skylane.pipeline.respond import JSONBytes, request_id
from skylane.pipeline.state import AppState

__all__ = ["LIST_PATHS", "add_model_routes"]

LIST_PATHS = ("/v1/models", "/models", "/api/models")


async def _principal(state: AppState, request: Request) -> Principal:
    if not state.gate.enabled:
        return ANONYMOUS
    h = request.headers
    if not (h.get("authorization") or h.get("x-api-key")):
        return ANONYMOUS
    return await state.gate.auth.authenticate(h)


async def _visible(request: Request) -> list[ModelInfo]:
    state: AppState = request.app.state.skylane
    principal = await _principal(state, request)
    models = state.catalog.configured_models()
    if principal.key_id is not None:
        models = [m for m in models if state.gate.auth.may_use(principal, m.id)]
    return models


async def list_models(request: Request) -> Response:
    data = [m.openai_model() for m in await _visible(request)]
    return JSONBytes({"object": "list", "data": data}, headers={"x-request-id": request_id(request)})


async def get_model(request: Request) -> Response:
    model_id = request.path_params["model_id"]
    for m in await _visible(request):
        if m.id == model_id or model_id in m.aliases:
            return JSONBytes(m.detail(), headers={"x-request-id": request_id(request)})
    raise ModelNotFound(f"Model not found: {model_id}", param="model")


async def chat_models(request: Request) -> Response:
    data = [
        {
            "name": m.id,
            "developer": m.developer,
            "display_name": m.display_name,
            "max_tokens": m.context_window,
            "vision": m.vision,
        }
        for m in await _visible(request)
        if m.kind == "chat"
    ]
    return JSONBytes({"data": data}, headers={"x-request-id": request_id(request)})


def add_model_routes(app: SkylaneApp) -> None:
    for i, path in enumerate(LIST_PATHS):
        app.add_api_route(path, list_models, methods=["GET"], include_in_schema=i == 0, summary="List models")
        app.add_api_route(path + "/{model_id:path}", get_model, methods=["GET"], include_in_schema=i == 0,
                          summary="Retrieve a model (ids contain a slash)")
    app.add_api_route("/v1/chat/models", chat_models, methods=["GET"], summary="Chat models with capabilities")
