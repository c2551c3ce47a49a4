"""What every app shares: the state, error handlers, the catch-all for bugs, CORS."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skylane.core.errors import InvalidRequest, NotFound, SkylaneError, envelope
from skylane.dialects.chat import CHAT
from skylane.ops.observe import configure_logging, logger
from skylane.pipeline.flow import error_response as _dialect_error
from skylane.pipeline.respond import JSONBytes, request_id
from skylane.pipeline.state import AppState

__all__ = ["AppState", "CatchAll", "JSONBytes", "error_response", "install_common", "install_error_handlers",
           "request_id"]


def error_response(err: SkylaneError, rid: str, extra_headers: dict[str, str] | None = None) -> JSONBytes:
    """An error outside any dialect (unknown path, CORS, a bug) in the OpenAI envelope."""
    return _dialect_error(CHAT, err, rid, extra_headers)


def install_common(app: Starlette, state: AppState) -> None:
    app.state.skylane = state
    configure_logging(state.settings.log_level)
    install_error_handlers(app)
    app.add_middleware(CatchAll)

    if state.settings.cors_origins:
        app.add_middleware(
            _CORS,
            allow_origins=list(state.settings.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            # any request header: browser SDKs add their own (the OpenAI SDK's x-stainless-*); keys travel in
            # headers, never cookies, so credentials stay off (no Access-Control-Allow-Credentials)
            allow_headers=["*"],
            expose_headers=["x-request-id", "x-skylane-overhead-ms", "x-skylane-cost-usd", "x-skylane-attempts",
                            "retry-after", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                            "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
                            "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"],
        )


def install_error_handlers(app: Starlette) -> None:
    """The gateway's errors, unknown paths and wrong methods in the OpenAI envelope (also on the
    mounted admin app, which adds FastAPI's validation errors itself)."""
    app.add_exception_handler(SkylaneError, _skylane_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]


async def _skylane_error(request: Request, exc: SkylaneError) -> Response:
    return error_response(exc, request_id(request), getattr(exc, "extra_response_headers", None))


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 404:
        err: SkylaneError = NotFound(f"Unknown path: {request.method} {request.url.path}", code="not_found")
    elif exc.status_code == 405:
        err = InvalidRequest(f"Method {request.method} is not allowed on {request.url.path}.",
                             code="method_not_allowed", status=405)
    else:
        err = SkylaneError(str(exc.detail), status=exc.status_code)
    headers = dict(exc.headers or {})  # e.g. a 405's Allow
    if exc.status_code == 405:  # Starlette names the first matching route's methods only: name them all
        path, root = request.url.path, request.scope.get("root_path", "")
        if root and path.startswith(root):  # within a mounted app (the admin API), its routes see the path below
            path = path[len(root):]
        methods = {m for r in request.app.routes if (rx := getattr(r, "path_regex", None)) is not None
                   and rx.match(path) for m in getattr(r, "methods", None) or ()}
        if methods:
            headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
            headers["Allow"] = ", ".join(sorted(methods))
    return error_response(err, request_id(request), headers)


class CatchAll:
    """A bug answers 500 in the OpenAI envelope and is logged as one line (request id, exception type).

    It stops the exception here, so neither Starlette nor uvicorn print a traceback whose message
    could quote request data into the logs.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            request = Request(scope)
            rid = request_id(request)
            logger.error("unhandled error", extra={"fields": {"request_id": rid, "error": type(exc).__name__,
                                                              "path": scope.get("path")}})
            if not started:
                response = error_response(
                    SkylaneError("The gateway hit an internal error.", code="internal_error"), rid)
                await response(scope, receive, send)


class _CORS(CORSMiddleware):
    """Starlette's CORS middleware; a refused preflight is answered in the OpenAI error envelope."""

    def preflight_response(self, request_headers: Any) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        reason = bytes(response.body).decode(errors="replace")  # "Disallowed CORS origin, method"
        headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
        return JSONBytes(envelope(InvalidRequest(f"{reason}.", code="cors_not_allowed")), status_code=400,
                         headers=headers)
