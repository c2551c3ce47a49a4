"""The app factories.

- completions: what the streaming function serves behind the Lambda Web Adapter. It also answers
  the (cheap, catalog-only) models routes, so its function URL alone is a complete base URL when
  the CloudFront distribution is turned off.
- models: the buffered Mangum function behind CloudFront's `/v1/models*` routes.
- create_app: everything, for `skylane serve` / `make run`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.requests import Request
from starlette.responses import Response

from skylane.core.settings import Settings
from skylane.http.account import add_account_routes
from skylane.http.application import SkylaneApp
from skylane.http.common import install_common
from skylane.http.models import add_model_routes
from skylane.http.responses import add_responses_routes
from skylane.http.routes import add_completion_routes
from skylane.pipeline.respond import JSONBytes
from skylane.pipeline.state import AppState
from skylane.transport.http import aclose_client

__all__ = ["create_app", "create_completions_app", "create_models_app"]


@asynccontextmanager
async def _lifespan(app: SkylaneApp) -> AsyncIterator[None]:
    yield
    await aclose_client()


def _base(title: str, state: AppState | None, settings: Settings | None) -> tuple[SkylaneApp, AppState]:
    state = state or AppState.build(settings)
    app = SkylaneApp(title=title, version="0.1.0", lifespan=_lifespan)
    install_common(app, state)

    async def health(request: Request) -> Response:
        return JSONBytes({"status": "ok"})

    app.add_api_route("/health", health, methods=["GET"], summary="Liveness check")
    return app, state


def create_completions_app(settings: Settings | None = None, state: AppState | None = None) -> SkylaneApp:
    app, _ = _base("Skylane completions", state, settings)
    add_completion_routes(app)
    add_responses_routes(app)
    add_model_routes(app)
    add_account_routes(app)
    return app


def _add_console(app: SkylaneApp) -> None:
    """The operator console and its admin API (buffered, no streaming). Imported here, not at module
    level: the completions function never serves them, and its cold start does not pay for them."""
    from skylane.http.admin import mount_admin_api
    from skylane.http.static import add_console_routes

    mount_admin_api(app)
    add_console_routes(app)


def create_models_app(settings: Settings | None = None, state: AppState | None = None) -> SkylaneApp:
    app, _ = _base("Skylane models", state, settings)
    add_model_routes(app)
    add_account_routes(app)
    _add_console(app)
    return app


def create_app(settings: Settings | None = None, state: AppState | None = None) -> SkylaneApp:
    """Both surfaces on one app: what `skylane serve` and `make run` serve."""
    app, _ = _base("Skylane", state, settings)
    add_completion_routes(app)
    add_responses_routes(app)
    add_model_routes(app)
    add_account_routes(app)
    _add_console(app)
    return app
