"""CORS: off by default (no CORS headers at all); with SKYLANE_CORS_ORIGINS, preflight and simple requests
get the headers only for the listed origins, errors and streams included, never with credentials."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.spec import validate

ALLOWED = "https://app.example.com"
OTHER = "https://admin.example.com"
EVIL = "https://evil.example.net"
BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
# what the OpenAI JavaScript SDK sends from a browser (dangerouslyAllowBrowser): its own x-stainless-* headers
SDK_HEADERS = ("authorization, content-type, x-stainless-arch, x-stainless-lang, x-stainless-os, "
               "x-stainless-package-version, x-stainless-retry-count, x-stainless-runtime, "
               "x-stainless-runtime-version, x-stainless-timeout")


def preflight(base: str, origin: str, path: str = "/v1/chat/completions", method: str = "POST",
              headers: str = SDK_HEADERS) -> httpx.Response:
    return httpx.options(base + path, headers={"origin": origin, "access-control-request-method": method,
                                               "access-control-request-headers": headers})


def cors_headers(r: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.startswith("access-control-")}


@pytest.fixture(scope="module")
def cors_gateway(gateway_factory, fake_openai) -> str:
    return gateway_factory(OPENAI_API_KEY=UPSTREAM_KEY, OPENAI_BASE_URL=fake_openai[1],
                           SKYLANE_CORS_ORIGINS=f"{ALLOWED}, {OTHER}")


def test_off_by_default(gateway):
    r = preflight(gateway, ALLOWED)
    assert r.status_code == 405 and cors_headers(r) == {}  # no CORS route: just a method not allowed
    validate("ErrorResponse", r.json())
    assert "POST" in r.headers["allow"]
    for r in (httpx.get(gateway + "/v1/models", headers={"origin": ALLOWED}),
              httpx.post(gateway + "/v1/chat/completions", json=BODY, headers={"origin": ALLOWED}),
              httpx.get(gateway + "/v1/nope", headers={"origin": ALLOWED})):
        assert cors_headers(r) == {}, r.headers


@pytest.mark.parametrize("origin", [ALLOWED, OTHER])
def test_preflight_from_an_allowed_origin(cors_gateway, origin):
    r = preflight(cors_gateway, origin)
    assert r.status_code == 200
    h = cors_headers(r)
    assert h["access-control-allow-origin"] == origin  # the origin itself, never "*"
    assert "POST" in h["access-control-allow-methods"]
    allowed = {x.strip() for x in h["access-control-allow-headers"].lower().split(",")}
    assert {x.strip() for x in SDK_HEADERS.split(",")} <= allowed
    assert "access-control-allow-credentials" not in h
    assert "origin" in r.headers.get("vary", "").lower()
    r = preflight(cors_gateway, origin, "/v1/models", "GET", "x-api-key")
    assert r.status_code == 200 and cors_headers(r)["access-control-allow-origin"] == origin


@pytest.mark.parametrize("origin", [EVIL, "null", "https://app.example.com.evil.net", "http://app.example.com",
                                    "https://APP.example.com"])
def test_preflight_from_any_other_origin_is_refused_in_the_envelope(cors_gateway, origin):
    r = preflight(cors_gateway, origin)
    assert r.status_code == 400
    assert "access-control-allow-origin" not in r.headers
    validate("ErrorResponse", r.json())
    assert r.json()["error"]["code"] == "cors_not_allowed" and "origin" in r.json()["error"]["message"]


def test_preflight_for_a_method_the_gateway_does_not_serve(cors_gateway):
    r = preflight(cors_gateway, ALLOWED, method="DELETE")
    assert r.status_code == 400 and "method" in r.json()["error"]["message"]


def test_simple_and_streamed_requests_get_the_headers_only_for_allowed_origins(cors_gateway):
    r = httpx.post(cors_gateway + "/v1/chat/completions", json=BODY, headers={"origin": ALLOWED})
    assert r.status_code == 200
    h = cors_headers(r)
    assert h["access-control-allow-origin"] == ALLOWED and "access-control-allow-credentials" not in h
    exposed = {x.strip() for x in h["access-control-expose-headers"].split(",")}
    assert {"x-request-id", "x-skylane-cost-usd", "retry-after", "x-ratelimit-remaining-requests"} <= exposed
    with httpx.stream("POST", cors_gateway + "/v1/chat/completions", json={**BODY, "stream": True},
                      headers={"origin": OTHER}) as s:
        assert s.status_code == 200 and s.headers["access-control-allow-origin"] == OTHER
        assert s.read().decode().rstrip().endswith("data: [DONE]")
    # errors are readable by the allowed page too (a browser hides a response without the header)
    for r in (httpx.post(cors_gateway + "/v1/chat/completions", json={"model": "nosuch/x", "messages": []},
                         headers={"origin": ALLOWED}),
              httpx.get(cors_gateway + "/v1/models/nosuch/model", headers={"origin": ALLOWED})):
        assert r.status_code in (400, 404) and r.headers["access-control-allow-origin"] == ALLOWED
    # other origins: the answer is served (CORS is enforced by browsers) but carries no CORS header
    for origin in (EVIL, "null"):
        r = httpx.get(cors_gateway + "/v1/models", headers={"origin": origin})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    # no Origin at all (curl, SDKs on servers): nothing CORS-specific
    assert "access-control-allow-origin" not in httpx.get(cors_gateway + "/v1/models").headers


def test_preflight_needs_no_key_and_the_request_still_does(auth_gateway):
    gw = auth_gateway(SKYLANE_CORS_ORIGINS=ALLOWED)
    r = preflight(gw, ALLOWED)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ALLOWED
    r = httpx.post(gw + "/v1/chat/completions", json=BODY, headers={"origin": ALLOWED})
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == ALLOWED
