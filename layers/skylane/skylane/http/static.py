"""The operator console's static files (http/console/: index.html, console.js, console.css) under /console.

Plain files read once from the package (the Lambda layer ships them; pyproject's package-data
too), answered with a strict Content-Security-Policy: scripts and styles from this origin only,
no inline script or style, no framing, no form posts, fetches to this origin only. The console
talks to /admin/v1 with the admin key in the Authorization header (kept in sessionStorage).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from skylane.core.errors import NotFound
from skylane.http.application import SkylaneApp

__all__ = ["CSP", "add_console_routes"]

ASSETS = Path(__file__).resolve().parent / "console"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
           "x-frame-options": "DENY", "cross-origin-opener-policy": "same-origin", "cache-control": "no-cache"}


@cache
def _asset(name: str) -> tuple[bytes, str] | None:
    path = ASSETS / name
    if "/" in name or name.startswith(".") or path.suffix not in TYPES or not path.is_file():
        return None
    return path.read_bytes(), TYPES[path.suffix]


async def console_file(request: Request) -> Response:
    found = _asset(request.path_params.get("name") or "index.html")
    if found is None:
        raise NotFound(f"Unknown path: {request.method} {request.url.path}", code="not_found")
    body, media_type = found
    return Response(body, media_type=media_type, headers=HEADERS)


async def console_root(request: Request) -> Response:
    return RedirectResponse("/console/", status_code=308)


def add_console_routes(app: SkylaneApp) -> None:
    app.add_api_route("/console", console_root, methods=["GET"], include_in_schema=False)
    app.add_api_route("/console/", console_file, methods=["GET"], include_in_schema=False)
    app.add_api_route("/console/{name}", console_file, methods=["GET"], include_in_schema=False)
