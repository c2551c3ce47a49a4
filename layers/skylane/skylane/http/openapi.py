"""The gateway's own OpenAPI document (/openapi.json, browsable at /docs), built on first request.

The document and its schema models live in `openapi_doc.py` and are imported when /openapi.json is
first asked for: a model call's cold start does not pay for them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

__all__ = ["install_openapi"]


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        from skylane.http.openapi_doc import build_document

        return build_document(app)

    app.openapi = build  # type: ignore[method-assign]
