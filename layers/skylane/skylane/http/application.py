"""The gateway's ASGI app: Starlette routing, the dialects' hot path, the OpenAPI document on demand.

Every handler reads its request itself (raw body, headers, path and query parameters), so nothing
of FastAPI's request machinery is needed to serve them, and importing FastAPI (its OpenAPI models
and dependency system) cost the completions function about half its cold start. `SkylaneApp` is
a Starlette app that records each route's documentation (`add_api_route`, FastAPI's signature):
the first GET /openapi.json imports FastAPI and builds the document from those records, as FastAPI
would have from the same routes, so the document is unchanged. /docs serves FastAPI's Swagger UI
page, also imported on first use. The admin API, which does use FastAPI (typed bodies, query
parameters, dependencies), is a FastAPI app mounted under /admin/v1 (http/admin.py).

The hot path: POSTs to a dialect's paths go straight to the pipeline, before the middleware stack
and routing, with what that stack would have given them: the app in the scope, the invocation's ids
in the log context (as `RequestContextMiddleware`) and the catch-all for bugs (`http.common`). The
routes stay registered, so 405s and every other path are unchanged. With CORS on, requests take
the ordinary stack (the CORS middleware must see them).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from skylane.http.common import CatchAll
from skylane.ops.observe import request_context
from skylane.pipeline.contract import Dialect
from skylane.pipeline.flow import handle
from skylane.pipeline.respond import JSONBytes

__all__ = ["RouteDoc", "SkylaneApp", "add_fast_path"]

OPENAPI_URL = "/openapi.json"
DOCS_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"


@dataclass(frozen=True)
class RouteDoc:
    """What the OpenAPI document says of one route (the arguments of FastAPI's add_api_route)."""

    path: str
    endpoint: Callable[..., Any]
    methods: tuple[str, ...]
    summary: str | None = None
    include_in_schema: bool = True
    openapi_extra: dict[str, Any] | None = None


class _Route(Route):
    """A Starlette route that answers exactly its methods (Starlette adds HEAD to GET routes)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], methods: Sequence[str]) -> None:
        super().__init__(path, endpoint, methods=list(methods))
        if self.methods is not None and "HEAD" not in methods:
            self.methods.discard("HEAD")


@dataclass
class _Docs:
    routes: list[RouteDoc] = field(default_factory=list)
    # (router) -> None: adds routes documented by FastAPI itself (the admin API's) to the document's router
    extra: list[Callable[[Any], None]] = field(default_factory=list)
    document: dict[str, Any] | None = None


class SkylaneApp(Starlette):
    def __init__(self, *, title: str, version: str, lifespan: Any = None) -> None:
        super().__init__(lifespan=lifespan)
        self.title = title
        self.version = version
        self.docs = _Docs()
        self.fast_paths: dict[str, Dialect] = {}
        self._fast = CatchAll(self._fast_call)
        self.router.routes.extend([
            _Route(OPENAPI_URL, self._openapi_json, ["GET"]),
            _Route(DOCS_URL, self._swagger_ui, ["GET"]),
            _Route(OAUTH2_REDIRECT_URL, _swagger_redirect, ["GET"]),
        ])

    def add_api_route(self, path: str, endpoint: Callable[..., Any], *, methods: Sequence[str],
                      summary: str | None = None, include_in_schema: bool = True,
                      openapi_extra: dict[str, Any] | None = None) -> None:
        """Serve `path` with `endpoint(request) -> Response` (or `endpoint()`, as FastAPI allows) and
        document it as FastAPI would."""
        self.docs.routes.append(RouteDoc(path, endpoint, tuple(methods), summary, include_in_schema, openapi_extra))
        self.router.routes.append(_Route(path, _takes_request(endpoint), methods))

    def document_with(self, add_routes: Callable[[Any], None]) -> None:
        """Routes FastAPI documents itself (a mounted FastAPI app's): `add_routes(router)` on the document's router."""
        self.docs.extra.append(add_routes)

    def openapi(self) -> dict[str, Any]:
        if self.docs.document is None:
            from skylane.http.openapi_doc import build_document

            self.docs.document = build_document(self)
        return self.docs.document

    async def _openapi_json(self, request: Request) -> Response:
        doc = self.openapi()
        root_path = request.scope.get("root_path", "").rstrip("/")
        if root_path:  # as FastAPI: behind a path prefix, the document names it as its server
            doc = {**doc, "servers": [{"url": root_path}, *doc.get("servers", [])]}
        return JSONBytes(doc)

    async def _swagger_ui(self, request: Request) -> Response:
        from fastapi.openapi.docs import get_swagger_ui_html

        root_path = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(openapi_url=root_path + OPENAPI_URL, title=f"{self.title} - Swagger UI",
                                   oauth2_redirect_url=root_path + OAUTH2_REDIRECT_URL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            dialect = self.fast_paths.get(scope["path"])
            if dialect is not None:
                scope["app"] = self
                with request_context(scope.get("headers") or []):
                    await self._fast(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _fast_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await handle(Request(scope, receive, send), self.fast_paths[scope["path"]])
        await response(scope, receive, send)


def _takes_request(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.signature(endpoint).parameters:
        return endpoint

    async def call(request: Request) -> Any:
        result = endpoint()
        return await result if inspect.isawaitable(result) else result

    return call


async def _swagger_redirect(request: Request) -> Response:
    from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html

    return get_swagger_ui_oauth2_redirect_html()


def add_fast_path(app: SkylaneApp, path: str, dialect: Dialect) -> None:
    """Serve POST `path` on the hot path (when CORS is off)."""
    state = getattr(app.state, "skylane", None)
    if state is not None and not state.settings.cors_origins:
        app.fast_paths[path] = dialect
