"""Named errors with their exact messages and statuses; the models endpoints."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.spec import validate

USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("body,status,message,param", [
    ({"messages": USER}, 400, "You must specify a model to call", "model"),
    ({"model": "", "messages": USER}, 400, "You must specify a model to call", "model"),
    ({"model": "openai/gpt-4o", "messages": []}, 400, "Messages array cannot be empty", "messages"),
    ({"model": "nosuch/model", "messages": USER}, 404, "Model not found: nosuch/model", "model"),
    ({"model": "not-a-model", "messages": USER}, 404, "Model not found: not-a-model", "model"),
])
def test_named_errors(gateway, body, status, message, param):
    r = httpx.post(gateway + "/v1/chat/completions", json=body)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["message"] == message
    assert err["param"] == param
    validate("ErrorResponse", r.json())
    if status == 404:
        assert err["code"] == "model_not_found"


@pytest.mark.parametrize("body,param", [
    ({"model": "openai/gpt-4o", "messages": USER, "temperature": 2.5}, "temperature"),
    ({"model": "openai/gpt-4o", "messages": USER, "temperature": -1}, "temperature"),
    ({"model": "openai/gpt-4o", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": 12}]}, "messages[0].content"),
    ({"model": "openai/gpt-4o", "messages": USER, "n": "two"}, "n"),
    ({"model": "openai/gpt-4o", "messages": "hello"}, "messages"),
    ({"model": 5, "messages": USER}, "model"),
    ({"model": "openai/gpt-4o", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
])
def test_bad_fields_are_named(gateway, body, param):
    r = httpx.post(gateway + "/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert param.split("[")[0].split(".")[0] in err["message"]


def test_non_json_body(gateway):
    r = httpx.post(gateway + "/v1/chat/completions", content=b"{not json",
                   headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "JSON" in r.json()["error"]["message"]
    assert "Traceback" not in r.text


def test_provider_not_configured(gateway):
    r = httpx.post(gateway + "/v1/chat/completions", json={"model": "groq/llama-3.1-8b-instant", "messages": USER})
    assert r.status_code == 400
    assert "GROQ_API_KEY" in r.json()["error"]["message"]


def test_sdk_raises_not_found(gateway):
    c = openai.OpenAI(base_url=gateway + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="nosuch/model", messages=USER)


@pytest.mark.parametrize("path", ["/v1/models", "/models", "/api/models"])
def test_models_list(gateway, path):
    r = httpx.get(gateway + path)
    assert r.status_code == 200
    body = r.json()
    validate("ListModelsResponse", body)
    ids = {m["id"] for m in body["data"]}
    assert "openai/gpt-4o" in ids
    # only configured providers are listed
    assert not any(i.startswith(("groq/", "anthropic/")) for i in ids)


def test_models_list_through_sdk_and_retrieve_with_slash(gateway):
    c = openai.OpenAI(base_url=gateway + "/v1", api_key="x", max_retries=0)
    ids = [m.id for m in c.models.list()]
    assert "openai/gpt-4o-mini" in ids
    m = c.models.retrieve("openai/gpt-4o-mini")
    assert m.id == "openai/gpt-4o-mini" and m.owned_by == "openai"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("openai/nope")


def test_chat_models(gateway):
    r = httpx.get(gateway + "/v1/chat/models")
    assert r.status_code == 200
    rows = {m["name"]: m for m in r.json()["data"]}
    row = rows["openai/gpt-4o"]
    assert set(row) == {"name", "developer", "display_name", "max_tokens", "vision"}
    assert row["max_tokens"] == 128000 and row["vision"] is True and row["developer"] == "OpenAI"


def test_health_and_unknown_path(gateway):
    assert httpx.get(gateway + "/health").json() == {"status": "ok"}
    r = httpx.get(gateway + "/v2/whatever")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


def test_completions_function_alone_is_a_complete_base_url(fake_openai):
    """With CloudFront off, clients use the completions function URL for everything."""
    from skylane.http.apps import create_completions_app, create_models_app
    from tests.conftest import UPSTREAM_KEY, make_settings
    from tests.fakes.server import serve

    settings = make_settings(OPENAI_API_KEY=UPSTREAM_KEY, OPENAI_BASE_URL=fake_openai[1])
    with serve(create_completions_app(settings)) as base:
        c = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0)
        assert "openai/gpt-4o" in [m.id for m in c.models.list()]
        assert httpx.get(base + "/v1/chat/models").status_code == 200
        assert c.chat.completions.create(model="openai/gpt-4o", messages=USER).choices[0].message.content
    with serve(create_models_app(settings)) as base:  # the models function stays models-only
        r = httpx.post(base + "/v1/chat/completions", json={"model": "openai/gpt-4o", "messages": USER})
        assert r.status_code in (404, 405) and "error" in r.json()


def test_a_bug_is_a_clean_500_without_traceback(capfd):
    from skylane.http.apps import create_app
    from tests.conftest import make_settings
    from tests.fakes.server import serve

    app = create_app(make_settings())

    async def broken() -> None:
        raise RuntimeError("boom with private prompt text")

    app.add_api_route("/broken", broken, methods=["GET"])
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("skylane").addHandler(handler)
    try:
        with serve(app) as base:
            r = httpx.get(base + "/broken", headers={"x-request-id": "bug-1"})
    finally:
        logging.getLogger("skylane").removeHandler(handler)
    assert r.status_code == 500
    assert r.json()["error"] == {"message": "The gateway hit an internal error.", "type": "api_error",
                                 "param": None, "code": "internal_error"}
    assert r.headers["x-request-id"] == "bug-1"
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "private prompt text" not in out + err + r.text
    fields = [getattr(rec, "fields", {}) for rec in records if rec.getMessage() == "unhandled error"]
    assert fields and fields[0]["error"] == "RuntimeError" and fields[0]["request_id"] == "bug-1"
