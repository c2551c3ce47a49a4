"""Table-driven bad input: every case gets its status and a clear message, never a 5xx or a trace."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.spec import validate

M = "openai/gpt-4o"
U = [{"role": "user", "content": "hi"}]


def post(gateway: str, body: bytes | dict, **headers: str) -> httpx.Response:
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    return httpx.post(gateway + "/v1/chat/completions", content=body,
                      headers={"content-type": "application/json", **headers}, timeout=30)


CASES = [
    # (id, body, status, substring of message, param)
    ("malformed json", b'{"model": "x", ', 400, "valid JSON", None),
    ("not an object", b'[1, 2, 3]', 400, "JSON object", None),
    ("invalid utf-8", b'{"model": "\xff\xfe", "messages": []}', 400, "JSON", None),
    ("NaN literal", b'{"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
     400, "JSON", None),
    ("empty body", b"", 400, "JSON", None),
    ("messages not a list", {"model": M, "messages": {"role": "user"}}, 400, "messages", "messages"),
    ("message not an object", {"model": M, "messages": ["hi"]}, 400, "messages[0]", "messages[0]"),
    ("unknown role", {"model": M, "messages": [{"role": "root", "content": "x"}]}, 400, "role",
     "messages[0].role"),
    ("missing role", {"model": M, "messages": [{"content": "x"}]}, 400, "role", "messages[0].role"),
    ("unknown content part", {"model": M, "messages": [{"role": "user", "content": [{"type": "hologram"}]}]},
     400, "type", "messages[0].content[0].type"),
    ("image url not a url", {"model": M, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}, 400, "url", None),
    ("image url empty", {"model": M, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": ""}}]}]}, 400, "url", None),
    ("temperature string", {"model": M, "messages": U, "temperature": "hot"}, 400, "temperature", "temperature"),
    ("top_p too big", {"model": M, "messages": U, "top_p": 1.5}, 400, "top_p", "top_p"),
    ("n = 1000", {"model": M, "messages": U, "n": 1000}, 400, "'n'", "n"),
    ("max_tokens 1e12", {"model": M, "messages": U, "max_tokens": 10**12}, 400, "max_tokens", "max_tokens"),
    ("max_completion_tokens 0", {"model": M, "messages": U, "max_completion_tokens": 0}, 400,
     "max_completion_tokens", "max_completion_tokens"),
    ("10,000 messages", {"model": M, "messages": U * 10_000}, 400, "Too many messages", "messages"),
    ("1 MB tool name", {"model": M, "messages": U, "tools": [{"type": "function", "function": {
        "name": "x" * 1_000_000}}]}, 400, "tools[0].function.name", "tools[0].function.name"),
    ("tool without function", {"model": M, "messages": U, "tools": [{"type": "function"}]}, 400,
     "function", "tools[0].function"),
    ("bad tool_choice", {"model": M, "messages": U, "tool_choice": {"type": "function"}}, 400,
     "tool_choice", None),
    ("bad response_format", {"model": M, "messages": U, "response_format": {"type": "yaml"}}, 400,
     "response_format", "response_format.type"),
    ("stream not bool", {"model": M, "messages": U, "stream": {"yes": 1}}, 400, "stream", "stream"),
    ("stop list too long", {"model": M, "messages": U, "stop": ["a"] * 100}, 400, "stop", None),
    ("tool message without id", {"model": M, "messages": [{"role": "tool", "content": "x"}]}, 400,
     "tool_call_id", "messages[0].tool_call_id"),
    ("assistant tool call without function", {"model": M, "messages": [
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function"}]}]}, 400, "function", None),
    ("model is a list", {"model": ["a"], "messages": U}, 400, "model", "model"),
    ("metadata not strings", {"model": M, "messages": U, "metadata": {"a": {"b": 1}}}, 400, "metadata", None),
    # no type coercion (found by the fuzzer): what the OpenAPI document says is what is accepted
    ("max_tokens as a string", {"model": M, "messages": U, "max_tokens": "5"}, 400, "max_tokens", "max_tokens"),
    ("n fractional", {"model": M, "messages": U, "n": 1.5}, 400, "'n'", "n"),
    ("stream as 0", {"model": M, "messages": U, "stream": 0}, 400, "stream", "stream"),
    ("temperature as true", {"model": M, "messages": U, "temperature": True}, 400, "temperature", "temperature"),
    ("image data url not base64", {"model": M, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]}]}, 400, "url", None),
    ("image data url bad base64", {"model": M, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]}]}, 400, "url", None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(gateway, case):
    _, body, status, text, param = case
    r = post(gateway, body)
    assert r.status_code == status, r.text[:500]
    data = r.json()
    validate("ErrorResponse", data)
    err = data["error"]
    assert text in err["message"], err
    if param is not None:
        assert err["param"] == param
    assert err["type"] == "invalid_request_error"
    assert "Traceback" not in r.text and 'File "' not in r.text
    assert len(r.text) < 2000, "errors never echo huge inputs"


def test_deeply_nested_json(gateway):
    nested = b'{"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}], "metadata": ' + \
        b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"}"
    r = post(gateway, nested)
    assert r.status_code == 400
    assert "nested" in r.json()["error"]["message"]


def test_moderately_nested_tool_schema_is_fine(gateway):
    schema: dict = {"type": "string"}
    for _ in range(20):
        schema = {"type": "object", "properties": {"x": schema}}
    r = post(gateway, {"model": M, "messages": U, "tools": [{"type": "function", "function": {
        "name": "deep", "parameters": schema}}]})
    assert r.status_code == 200


def test_body_over_cap_is_413_before_parsing(gateway_factory, fake_openai):
    base = gateway_factory(OPENAI_API_KEY="sk-upstream-test", OPENAI_BASE_URL=fake_openai[1],
                           SKYLANE_MAX_BODY_BYTES="1000")
    r = post(base, b"x" * 5000)  # not even JSON: refused on size alone
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"
    r = post(base, {"model": M, "messages": U})
    assert r.status_code == 200


def test_unicode_edge_cases_round_trip(gateway, fake_openai):
    text = "héllo \u200b\u202e RTL 🤖 \U0001f600 \ud800 end"
    body = json.dumps({"model": M, "messages": [{"role": "user", "content": text}], "stream": True}).encode()
    with httpx.stream("POST", gateway + "/v1/chat/completions", content=body,
                      headers={"content-type": "application/json"}) as r:
        assert r.status_code == 200
        lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    got = "".join(json.loads(ln[6:])["choices"][0]["delta"].get("content") or "" for ln in lines[:-1])
    assert got.endswith(text)
    assert fake_openai[0].requests[-1]["body"]["messages"][0]["content"] == text
    r = post(gateway, body.replace(b'"stream": true', b'"stream": false'))
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"].endswith(text)


def test_duplicate_keys_last_wins_and_upstream_sees_one(gateway, fake_openai):
    body = b'{"model": "nosuch/model", "model": "openai/gpt-4o", "messages": [{"role": "user", "content": "dup"}]}'
    r = post(gateway, body)
    assert r.status_code == 200
    assert r.json()["model"] == "openai/gpt-4o"
    assert fake_openai[0].requests[-1]["body"]["model"] == "gpt-4o"


def test_wrong_method_and_content_type(gateway):
    r = httpx.get(gateway + "/v1/chat/completions")
    assert r.status_code == 405 and "error" in r.json()
    r = httpx.post(gateway + "/v1/chat/completions", content=json.dumps({"model": M, "messages": U}),
                   headers={"content-type": "text/plain"})
    assert r.status_code == 200  # OpenAI clients always send JSON; the body decides


def test_integral_floats_are_integers(gateway, fake_openai):
    """JSON (and JSON Schema) has one number type: 5.0 is the integer 5."""
    r = post(gateway, {"model": M, "messages": U, "max_tokens": 5.0, "n": 1.0})
    assert r.status_code == 200, r.text
