"""The Starlette app (http/application.py): what FastAPI used to give the routes, kept; FastAPI
itself out of the completions function's import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from starlette.testclient import TestClient

from skylane.http.apps import create_app, create_completions_app
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]


def test_completions_function_imports_no_fastapi() -> None:
    """FastAPI (its OpenAPI models, its dependency system) loads only for the document, /docs and the
    admin API: the completions function's import has none of it, the full app's does."""
    probe = ("import sys, importlib; importlib.import_module(sys.argv[1]); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'fastapi'))")
    env = {**os.environ, "SKYLANE_AUTH": "disabled", "AWS_REGION": "us-east-1"}
    out = subprocess.run([sys.executable, "-c", probe, "functions.completions.app"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout.strip()
    assert out == "[]"
    out = subprocess.run([sys.executable, "-c", probe, "functions.models.app"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout.strip()
    assert "'fastapi.routing'" in out  # the admin API


def test_routes_answer_exactly_their_methods() -> None:
    """Starlette adds HEAD to GET routes; FastAPI did not, and neither does the gateway (405 with Allow)."""
    client = TestClient(create_completions_app(make_settings()))
    r = client.head("/v1/models")
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    r = client.request("PATCH", "/v1/responses/resp_1")
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET"
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_document_and_docs_pages_are_built_on_first_use() -> None:
    app = create_completions_app(make_settings())
    assert app.docs.document is None
    client = TestClient(app)
    doc = client.get("/openapi.json").json()
    assert doc["info"] == {"title": "Skylane completions", "version": "0.1.0",
                           "description": "OpenAI-compatible chat completions gateway."}
    assert doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"] \
        == {"$ref": "#/components/schemas/ChatRequest"}
    assert "/chat/completions" not in doc["paths"]  # the aliases are served, not documented
    assert app.docs.document is doc or app.docs.document == doc
    page = client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text and "swagger-ui" in page.text
    assert client.get("/docs/oauth2-redirect").status_code == 200


def test_admin_api_mounted_with_the_gateway_envelope() -> None:
    client = TestClient(create_app(make_settings()), raise_server_exceptions=False)
    r = client.get("/admin/v1")  # the prefix alone: no path, not a redirect into the mount
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.get("/admin/v1/nope")
    assert r.status_code == 404 and r.json()["error"]["message"] == "Unknown path: GET /admin/v1/nope"
    r = client.delete("/admin/v1/me")  # the Allow header from the admin app's own routes
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    r = client.get("/admin/v1/me")  # auth off: the admin API is off, in the OpenAI envelope
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_api_disabled"
    doc = client.get("/openapi.json").json()
    assert doc["paths"]["/admin/v1/keys"]["post"]["tags"] == ["admin"]
