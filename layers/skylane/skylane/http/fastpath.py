"""The hot path: POSTs to a dialect's paths go straight to the pipeline.

FastAPI's per-request machinery (its middleware stack, routing, dependency solving) costs more CPU
than a model call's own work in the gateway; these routes read their body themselves and need none
of it. `SkylaneAPI` answers them before that stack, with what the stack would have given them: the
app in the scope, the invocation's ids in the log context (as `RequestContextMiddleware`), and the
catch-all for bugs (`http.common`). The routes stay registered on the app, so the OpenAPI document,
405s and every other path are unchanged. With CORS on, requests take the ordinary stack (the CORS
middleware must see them).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from skylane.ops.observe import request_context
from skylane.pipeline.contract import Dialect
from skylane.pipeline.flow import handle

__all__ = ["SkylaneAPI", "add_fast_path"]


class SkylaneAPI(FastAPI):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fast_paths: dict[str, Dialect] = {}
        self._guarded: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            dialect = self.fast_paths.get(scope["path"])
            if dialect is not None:
                scope["app"] = self
                with request_context(scope.get("headers") or []):
                    await self._guarded_call()(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _guarded_call(self) -> Any:
        if self._guarded is None:
            from skylane.http.common import CatchAll

            async def call(scope: Scope, receive: Receive, send: Send) -> None:
                request = Request(scope, receive, send)
                response = await handle(request, self.fast_paths[scope["path"]])
                await response(scope, receive, send)

            self._guarded = CatchAll(call)
        return self._guarded


def add_fast_path(app: FastAPI, path: str, dialect: Dialect) -> None:
    """Serve POST `path` on the hot path (when the app is a SkylaneAPI and CORS is off)."""
    state = getattr(app.state, "skylane", None)
    if isinstance(app, SkylaneAPI) and state is not None and not state.settings.cors_origins:
        app.fast_paths[path] = dialect
