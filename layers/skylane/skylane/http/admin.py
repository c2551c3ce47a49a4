"""The admin API (/admin/v1/...): keys, usage aggregates and the catalog, for the console and scripts.

    GET    /admin/v1/me                      the admin key calling (a login check for the console)
    GET    /admin/v1/keys?search=&status=    keys (never a secret or its hash), spend this month, last use
    POST   /admin/v1/keys                    create a key: the full key is in this answer only (201)
    GET    /admin/v1/keys/{key_id}           one key, its usage by day and model, rate-limit headroom now
    PATCH  /admin/v1/keys/{key_id}           change name, limits, balance, allow-list, expiry, (un)revoke
    POST   /admin/v1/keys/{key_id}/revoke    revoke
    POST   /admin/v1/keys/{key_id}/topup     add credits {"amount_usd": 5}
    GET    /admin/v1/usage?period=24h|7d|30d spend, requests, tokens, errors by hour/day, by model and key
    GET    /admin/v1/models                  the catalog as configured (read-only)

Access: `Authorization: Bearer <admin key>` only (a key created with `skylane keys create --admin`);
any other key gets 403, no key 401. With SKYLANE_AUTH=disabled the admin API is off (403
`admin_api_disabled`): there is no key to tell an operator from anyone else. Keys travel in a
header, never a cookie, so a cross-site page cannot make the browser send one (no CSRF). Every
call is logged as one `admin` line with the admin key id, the action and the target key id.
Changes are the conditional writes of accounts/admin.py (the CLI's); a change also drops the key
from this instance's auth cache, so a revocation holds here at once and elsewhere within
SKYLANE_AUTH_CACHE_TTL.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, cast

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Route

from skylane.accounts import admin as ops
from skylane.accounts import usage_agg
from skylane.accounts.gate import Principal
from skylane.accounts.keys import KeyRecord
from skylane.accounts.limits import WINDOW_SECONDS, rate_sk
from skylane.accounts.store import call, dynamodb_client
from skylane.core.errors import AuthenticationFailed, InvalidRequest, NotFound, PermissionDenied, SkylaneError
from skylane.http.application import SkylaneApp
from skylane.http.common import CatchAll, error_response, install_error_handlers
from skylane.ops.observe import logger
from skylane.pipeline.respond import JSONBytes, request_id
from skylane.pipeline.state import AppState

__all__ = ["PREFIX", "add_admin_routes", "mount_admin_api"]

PREFIX = "/admin/v1"
NO_STORE = {"cache-control": "no-store"}


# ---- bodies (also the OpenAPI document's schemas) -------------------------------------------------


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    rpm: int | None = Field(ops.DEFAULT_RPM, ge=1, description="requests per minute; null = unlimited")
    tpm: int | None = Field(ops.DEFAULT_TPM, ge=1, description="tokens per minute; null = unlimited")
    credits_usd: Decimal | None = Field(None, description="credit balance; null = unlimited")
    models: list[str] = Field(default_factory=list, description="allowed model patterns (fnmatch); [] = all")
    expires_at: int | None = Field(None, description="epoch seconds; null = never")
    admin: bool = Field(False, description="may use the admin API and the console")


class KeyUpdate(BaseModel):
    """Only the fields sent change; null means unlimited (rpm, tpm, credits_usd) or never (expires_at)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    credits_usd: Decimal | None = None
    models: list[str] | None = None
    expires_at: int | None = None
    revoked: bool | None = None


class TopUp(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_usd: Decimal = Field(gt=0, le=1_000_000)


class KeyOut(BaseModel):
    key_id: str
    name: str
    status: str
    created_at: int
    expires_at: int | None
    revoked: bool
    rpm: int | None
    tpm: int | None
    models: list[str]
    credits_usd: float | None
    spent_usd: float
    admin: bool


class CreatedKey(KeyOut):
    key: str = Field(description="the full key: shown in this answer only")


def _micros(usd: Decimal | None) -> int | None:
    if usd is None:
        return None
    if not usd.is_finite():
        raise InvalidRequest("Amounts must be finite numbers.", param="credits_usd")
    return int((usd * 1_000_000).to_integral_value())


# ---- access and the log line -------------------------------------------------------------------------


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.skylane
    return state


def _client(state: AppState) -> Any:
    return dynamodb_client(state.settings)


def _log(request: Request, admin_id: str | None, action: str, status: int, target: str | None, t0: float) -> None:
    logger.info("admin", extra={"fields": {
        "request_id": request_id(request), "admin_key_id": admin_id, "action": action, "method": request.method,
        "path": request.url.path, "target_key_id": target, "status": status,
        "latency_ms": round((time.perf_counter() - t0) * 1000, 2)}})


async def require_admin(request: Request) -> Principal:
    """The calling admin key (Bearer only), or 401/403; refusals are logged too."""
    t0 = time.perf_counter()
    state = _state(request)
    key_id: str | None = None
    try:
        if not state.gate.enabled:
            raise PermissionDenied("The admin API is off: it needs SKYLANE_AUTH=enabled and an admin key.",
                                   code="admin_api_disabled")
        scheme, _, token = (request.headers.get("authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationFailed("The admin API takes an admin key as 'Authorization: Bearer <key>'.",
                                       code="missing_api_key")
        principal = await state.gate.auth.authenticate({"authorization": f"Bearer {token.strip()}"})
        key_id = principal.key_id
        if not getattr(principal.record, "admin", False):
            raise PermissionDenied("This API key is not an admin key.", code="not_admin")
        return principal
    except SkylaneError as err:
        _log(request, key_id, "refused", err.status, None, t0)
        raise


Admin = Depends(require_admin)
Handler = Callable[..., Awaitable[Response]]


def _logged(action: str) -> Callable[[Handler], Handler]:
    """One `admin` log line per call: who, what, on which key, the status."""

    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def run(**kw: Any) -> Response:
            t0 = time.perf_counter()
            status = 500
            try:
                response = await fn(**kw)
                status = response.status_code
                return response
            except SkylaneError as err:
                status = err.status
                raise
            finally:
                admin: Principal = kw["admin"]
                _log(kw["request"], admin.key_id, action, status, kw.get("key_id"), t0)

        return run

    return wrap


def _answer(request: Request, data: Any, status: int = 200) -> Response:
    return JSONBytes(data, status_code=status, headers={**NO_STORE, "x-request-id": request_id(request)})


async def _run[T](fn: Callable[..., T], /, **kw: Any) -> T:
    """An accounts/admin.py operation on the DynamoDB thread pool; its AdminError as a 404/400."""
    try:
        return await call(fn, **kw)
    except ops.AdminError as exc:
        text = str(exc)
        raise (NotFound(text, code="key_not_found") if text.startswith("no key") else InvalidRequest(text)) from None


def _forget(state: AppState, key_id: str) -> None:
    cache = getattr(state.gate.auth, "cache", None)
    if cache is not None:
        cache.put(key_id, None, 0)  # the next request reads the key again


# ---- keys ---------------------------------------------------------------------------------------------


@_logged("whoami")
async def whoami(request: Request, admin: Principal = Admin) -> Response:
    record: KeyRecord = admin.record
    return _answer(request, {"key_id": admin.key_id, "name": record.name, "admin": True})


def _matches(record: KeyRecord, search: str) -> bool:
    needle = search.strip().lower()
    return not needle or needle in record.key_id or needle in record.name.lower() or any(
        needle in m.lower() for m in record.models)


@_logged("keys.list")
async def keys_list(request: Request, search: str = "", status: str = "all", limit: int = 500, offset: int = 0,
                    admin: Principal = Admin) -> Response:
    if status not in ("all", "active", "revoked", "expired"):
        raise InvalidRequest("status is one of all, active, revoked, expired.", param="status")
    state = _state(request)
    client = _client(state)
    records = await _run(ops.list_keys, client=client, settings=state.settings)
    chosen = [r for r in records if (status == "all" or r.status == status) and _matches(r, search)]
    activity = await usage_agg.key_activity(client, state.settings.limits_table, time.time())
    page = chosen[max(0, offset):max(0, offset) + max(1, min(limit, 1000))]
    none = {"month_spent_usd": 0.0, "last_used": None, "requests_30d": 0}
    data = [{**r.public(), **activity.get(r.key_id, none)} for r in page]
    return _answer(request, {"object": "list", "total": len(chosen), "offset": offset, "data": data})


@_logged("keys.create")
async def keys_create(request: Request, body: KeyCreate, admin: Principal = Admin) -> Response:
    state = _state(request)
    key, record = await _run(ops.create_key, client=_client(state), settings=state.settings, name=body.name,
                             rpm=body.rpm, tpm=body.tpm, credits_micros=_micros(body.credits_usd),
                             models=tuple(body.models), expires_at=body.expires_at, admin=body.admin)
    return _answer(request, {"key": key, **record.public()}, status=201)


async def _headroom(state: AppState, record: KeyRecord) -> dict[str, Any]:
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    resp = await call(_client(state).get_item, TableName=state.settings.limits_table, ConsistentRead=True,
                      Key={"pk": {"S": f"key#{record.key_id}"}, "sk": {"S": rate_sk(window)}})
    item = resp.get("Item") or {}
    used_r = int(item["requests"]["N"]) if "requests" in item else 0
    used_t = int(item["tokens"]["N"]) if "tokens" in item else 0
    return {
        "window_resets_in_s": round((window + 1) * WINDOW_SECONDS - now, 3),
        "requests": {"limit": record.rpm, "used": used_r,
                     "remaining": None if record.rpm is None else max(0, record.rpm - used_r)},
        "tokens": {"limit": record.tpm, "used": used_t,
                   "remaining": None if record.tpm is None else max(0, record.tpm - used_t)},
    }


@_logged("keys.show")
async def keys_show(request: Request, key_id: str, days: int = 30, admin: Principal = Admin) -> Response:
    state = _state(request)
    record = await _run(ops.get_key, client=_client(state), settings=state.settings, key_id=key_id)
    if record is None:
        raise NotFound(f"no key with id '{key_id}'", code="key_not_found")
    usage = await usage_agg.key_usage(_client(state), state.settings.limits_table, key_id, max(1, min(days, 90)),
                                      time.time())
    return _answer(request, {**record.public(), "usage": usage, "headroom": await _headroom(state, record)})


async def _update(request: Request, key_id: str, **changes: Any) -> Response:
    state = _state(request)
    record = await _run(ops.update_key, client=_client(state), settings=state.settings, key_id=key_id, **changes)
    _forget(state, key_id)
    return _answer(request, record.public())


@_logged("keys.update")
async def keys_update(request: Request, key_id: str, body: KeyUpdate, admin: Principal = Admin) -> Response:
    sent = body.model_fields_set
    changes: dict[str, Any] = {}
    if "name" in sent:
        if body.name is None:
            raise InvalidRequest("name cannot be null.", param="name")
        changes["name"] = body.name
    for attr in ("rpm", "tpm", "expires_at"):
        if attr in sent:
            changes[attr] = getattr(body, attr)
    if "credits_usd" in sent:
        changes["credits_micros"] = _micros(body.credits_usd)
    if "models" in sent:
        changes["models"] = tuple(body.models or ())
    if "revoked" in sent and body.revoked is not None:
        changes["revoked"] = body.revoked
    return await _update(request, key_id, **changes)


@_logged("keys.revoke")
async def keys_revoke(request: Request, key_id: str, admin: Principal = Admin) -> Response:
    return await _update(request, key_id, revoked=True)


@_logged("keys.topup")
async def keys_topup(request: Request, key_id: str, body: TopUp, admin: Principal = Admin) -> Response:
    state = _state(request)
    record = await _run(ops.get_key, client=_client(state), settings=state.settings, key_id=key_id)
    if record is None:
        raise NotFound(f"no key with id '{key_id}'", code="key_not_found")
    if record.credits_micros is None:
        raise InvalidRequest("This key has unlimited credits: set a balance (PATCH credits_usd) instead.",
                             code="unlimited_credits")
    return await _update(request, key_id, add_credits_micros=_micros(body.amount_usd))


# ---- usage and models ------------------------------------------------------------------------------


@_logged("usage")
async def usage(request: Request, period: str = "7d", admin: Principal = Admin) -> Response:
    if period not in usage_agg.PERIODS:
        raise InvalidRequest(f"period is one of {', '.join(usage_agg.PERIODS)}.", param="period")
    state = _state(request)
    client = _client(state)
    data = await usage_agg.overview(client, state.settings.limits_table, period, time.time())
    names = await _names(state, [k["key_id"] for k in data["top_keys"]])
    for k in data["top_keys"]:
        k["name"] = names.get(k["key_id"], "")
    for s in data["split"]["key"]:
        s["label"] = names.get(s["name"], s["name"])
    return _answer(request, data)


async def _names(state: AppState, key_ids: list[str]) -> dict[str, str]:
    """Key names for a few ids (one BatchGetItem of at most 100)."""
    ids = list(dict.fromkeys(key_ids))[:100]
    if not ids:
        return {}
    table = state.settings.keys_table
    resp = await call(_client(state).batch_get_item, RequestItems={table: {
        "Keys": [{"pk": {"S": i}} for i in ids], "ProjectionExpression": "pk, #n",
        "ExpressionAttributeNames": {"#n": "name"}}})
    return {it["pk"]["S"]: it.get("name", {}).get("S", "") for it in resp.get("Responses", {}).get(table, [])}


@_logged("models")
async def models(request: Request, admin: Principal = Admin) -> Response:
    catalog = _state(request).catalog
    configured = {name for name, p in catalog.providers.items() if catalog.is_configured(p)}
    providers = [{"name": name, "display_name": p.display_name, "protocol": p.protocol,
                  "configured": name in configured, "passthrough": p.passthrough}
                 for name, p in sorted(catalog.providers.items())]
    data = [{**m.detail(), "configured": m.provider in configured, "aliases": list(m.aliases),
             "fallbacks": list(m.fallbacks)} for m in sorted(catalog.models.values(), key=lambda m: m.id)]
    return _answer(request, {"object": "list", "providers": providers, "data": data})


def mount_admin_api(app: SkylaneApp) -> None:
    """The admin API as a FastAPI app under PREFIX (typed bodies, query parameters, the admin
    dependency), with the gateway's error envelope and catch-all; documented in `app`'s document."""
    admin = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    admin.state.skylane = app.state.skylane
    install_error_handlers(admin)

    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return error_response(InvalidRequest("Invalid request."), request_id(request))

    admin.add_exception_handler(RequestValidationError, invalid)  # type: ignore[arg-type]
    admin.add_middleware(CatchAll)  # inside the admin app's own error middleware, which answers in plain text
    add_admin_routes(admin)
    app.router.routes.append(Route(PREFIX, _no_path))  # the prefix alone is no path (not a redirect to PREFIX/)
    app.mount(PREFIX, admin)
    app.document_with(lambda router: add_admin_routes(router, PREFIX))


async def _no_path(request: Request) -> Response:
    raise HTTPException(404)


def add_admin_routes(app: FastAPI | APIRouter, prefix: str = "") -> None:
    ok = {200: {"description": "OK"}}
    routes: list[tuple[str, Handler, str, str, dict[int, Any]]] = [
        ("/me", whoami, "GET", "The admin key calling", ok),
        ("/keys", keys_list, "GET", "List keys (search, status)", ok),
        ("/keys", keys_create, "POST", "Create a key (the full key is shown once)", {201: {"model": CreatedKey}}),
        ("/keys/{key_id}", keys_show, "GET", "One key: usage by day and model, rate-limit headroom", ok),
        ("/keys/{key_id}", keys_update, "PATCH", "Change a key (only the fields sent)", {200: {"model": KeyOut}}),
        ("/keys/{key_id}/revoke", keys_revoke, "POST", "Revoke a key", {200: {"model": KeyOut}}),
        ("/keys/{key_id}/topup", keys_topup, "POST", "Add credits to a key", {200: {"model": KeyOut}}),
        ("/usage", usage, "GET", "Usage aggregates (24h by hour, 7d/30d by day)", ok),
        ("/models", models, "GET", "The catalog as configured", ok),
    ]
    for path, fn, method, summary, responses in routes:
        app.add_api_route(prefix + path, fn, methods=[method], summary=summary, tags=["admin"],
                          responses=cast(dict[int | str, dict[str, Any]], responses),
                          status_code=201 if responses.get(201) else 200)
