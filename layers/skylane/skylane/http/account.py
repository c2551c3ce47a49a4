"""A key's own view: GET /v1/key (the calling key) and GET /v1/usage?since=… (its ledger rows).

Bearer or X-API-Key, like every call; errors in the OpenAI envelope (401 without a valid key). The
key id comes from authentication only, so no request can name another key.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from skylane.accounts.gate import Principal
from skylane.core.errors import PermissionDenied
from skylane.http.application import SkylaneApp
from skylane.pipeline.respond import JSONBytes, request_id
from skylane.pipeline.state import AppState

__all__ = ["KEY_PATHS", "USAGE_PATHS", "add_account_routes"]

KEY_PATHS = ("/v1/key", "/key", "/api/key")
USAGE_PATHS = ("/v1/usage", "/usage", "/api/usage")


async def _caller(request: Request) -> tuple[AppState, Principal]:
    state: AppState = request.app.state.skylane
    if not state.gate.enabled:
        raise PermissionDenied("This gateway runs without API keys (SKYLANE_AUTH is disabled): there is no key to "
                               "describe.", code="auth_disabled")
    return state, await state.gate.auth.authenticate(request.headers)


async def key_info(request: Request) -> Response:
    from skylane.accounts.account import key_summary  # lazy: DynamoDB reads only when auth is on

    state, principal = await _caller(request)
    assert principal.key_id is not None
    body = await key_summary(state.gate.limits, principal.key_id)  # type: ignore[arg-type]
    return JSONBytes(body, headers={"x-request-id": request_id(request), "cache-control": "no-store"})


async def key_usage(request: Request) -> Response:
    from skylane.accounts.account import key_usage_rows

    state, principal = await _caller(request)
    assert principal.key_id is not None
    body = await key_usage_rows(state.gate.limits, principal.key_id,  # type: ignore[arg-type]
                                request.query_params.get("since"))
    return JSONBytes(body, headers={"x-request-id": request_id(request), "cache-control": "no-store"})


def add_account_routes(app: SkylaneApp) -> None:
    for i, path in enumerate(KEY_PATHS):
        app.add_api_route(path, key_info, methods=["GET"], include_in_schema=i == 0,
                          summary="The calling key: limits, balance, budget, spend")
    for i, path in enumerate(USAGE_PATHS):
        app.add_api_route(path, key_usage, methods=["GET"], include_in_schema=i == 0,
                          summary="The calling key's usage ledger (per day and model)")
