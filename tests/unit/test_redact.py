"""Redaction: credentials out of error messages and content logs (pure functions, plain data)."""

from __future__ import annotations

import json

import pytest

from skylane.core.errors import InvalidRequest, SkylaneError, UpstreamError, envelope
from skylane.core.redact import REDACTED, completion_text, content_fields, redact, redact_value, remember_secret
from skylane.providers import get_adapter
from skylane.providers.base import error_message
from skylane.transport.status import classify_status

OPENAI_KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8" * 3
SKYLANE_KEY = "sk-skylane-abc123def456-" + "Zx9" * 14 + "q"

CASES = [
    # (text, must be gone, must stay)
    (f"Incorrect API key provided: {OPENAI_KEY}.", OPENAI_KEY, "Incorrect API key provided: "),
    ("Anthropic key sk-ant-api03-" + "x" * 40 + " is invalid", "sk-ant-api03", "is invalid"),
    (f"header Authorization: Bearer {OPENAI_KEY[:20]}", OPENAI_KEY[:20], "Authorization: "),
    ("authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA", "authorization="),
    ("x-api-key: abcdefghijklmnop", "abcdefghijklmnop", "x-api-key: "),
    ('{"x-goog-api-key": "AIzaSyA1234567890abcdefghijklmnopqrstu"}', "AIzaSyA123", "x-goog-api-key"),
    ("GET /v1beta/models/x:generateContent?key=AIzaSyA1234567890abcdefghijklmnopqrstu&alt=sse", "AIzaSy",
     "&alt=sse"),
    ("The security token included in the request is invalid: AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE",
     "is invalid"),
    ("groq gsk_" + "a1B2" * 10 + " and xai-" + "Q" * 30, "gsk_a1B2", "groq "),
    (f"your key {SKYLANE_KEY} was used", SKYLANE_KEY[-20:], "sk-skylane-abc123def456-" + REDACTED),
    ("Bearer abcdefgh12345678 at the start", "abcdefgh12345678", "at the start"),
]


@pytest.mark.parametrize(("text", "gone", "stays"), CASES, ids=[c[0][:30] for c in CASES])
def test_redact_removes_credentials(text, gone, stays):
    out = redact(text)
    assert gone not in out
    assert stays in out
    assert REDACTED in out


@pytest.mark.parametrize("text", [
    "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.",
    "Invalid value for 'max_tokens': Input should be less than or equal to 10000000.",
    "key_id=abc123def456 model=openai/gpt-4o-mini status=200",
    "Provider 'openai' failed (500): upstream returned HTTP 500",
    "This model's maximum context length is 128000 tokens; see https://platform.openai.com/docs/guides/errors",
    "",
])
def test_ordinary_text_is_untouched(text):
    assert redact(text) == text


def test_remembered_secrets_are_redacted_exactly_and_short_ones_ignored():
    remember_secret("plain-provider-secret-42")
    remember_secret("x")  # too short to remember: would redact ordinary text
    remember_secret(None)
    assert redact("upstream said: plain-provider-secret-42!") == f"upstream said: {REDACTED}!"
    assert redact("x marks the spot") == "x marks the spot"


def test_skylane_error_messages_are_redacted_in_one_place():
    err = SkylaneError(f"anything quoting {OPENAI_KEY}")
    assert OPENAI_KEY not in err.message and OPENAI_KEY not in str(err) and OPENAI_KEY not in repr(err)
    assert OPENAI_KEY not in json.dumps(envelope(err))
    assert OPENAI_KEY not in InvalidRequest(f"bad {OPENAI_KEY}").message


@pytest.mark.parametrize("status", [400, 404, 408, 413, 422, 429, 500, 503, 529])
def test_classify_status_never_echoes_a_key(status):
    body = json.dumps({"error": {"message": f"Key {OPENAI_KEY} (Authorization: Bearer {OPENAI_KEY}) refused",
                                 "type": "invalid_request_error"}}).encode()
    msg, _ = error_message(body, "fallback")
    err = classify_status(status, msg, provider="openai")
    assert OPENAI_KEY not in err.message and REDACTED in err.message
    assert "refused" in err.message  # the rest of the provider's explanation stays


@pytest.mark.parametrize(("protocol", "body"), [
    ("openai", {"error": {"message": f"bad key {OPENAI_KEY}", "type": "invalid_request_error"}}),
    ("anthropic", {"type": "error", "error": {"type": "invalid_request_error", "message": f"bad key {OPENAI_KEY}"}}),
    ("gemini", {"error": {"code": 400, "message": f"API key not valid: {OPENAI_KEY}", "status": "INVALID_ARGUMENT"}}),
])
def test_adapters_map_errors_without_keys(protocol, body):
    adapter = get_adapter(protocol)
    for status in (400, 500):
        err = adapter.map_error(status, json.dumps(body).encode(), {}, protocol)
        assert OPENAI_KEY not in err.message, (protocol, status, err.message)


def test_bedrock_error_codes_map_without_keys():
    from skylane.transport.bedrock import map_code

    err = map_code("ValidationException", "The security token AKIAIOSFODNN7EXAMPLE is invalid", 400, "bedrock")
    assert "AKIAIOSFODNN7EXAMPLE" not in err.message


def test_upstream_auth_failures_do_not_echo_at_all():
    err = classify_status(401, f"Incorrect API key provided: {OPENAI_KEY}", provider="openai")
    assert isinstance(err, UpstreamError) and err.code == "upstream_auth_failed"
    assert "Incorrect API key" not in err.message


def test_redact_value_walks_json_and_blanks_sensitive_names():
    value = {"headers": {"Authorization": "Bearer short", "X-API-Key": "k", "content-type": "application/json"},
             "messages": [{"role": "user", "content": [{"type": "text", "text": f"my key is {OPENAI_KEY}"}]}],
             "api_key": "", "n": 1, "ok": True}
    out = redact_value(value)
    assert out["headers"]["Authorization"] == REDACTED and out["headers"]["X-API-Key"] == REDACTED
    assert out["headers"]["content-type"] == "application/json"
    assert out["messages"][0]["content"][0]["text"] == f"my key is {REDACTED}"
    assert out["api_key"] == "" and out["n"] == 1 and out["ok"] is True
    assert value["headers"]["Authorization"] == "Bearer short"  # the original is not modified


def test_content_fields_redact_then_cap():
    big = "word " * 5000
    data_url = "data:image/png;base64," + "QUJD" * 10_000
    messages = [{"role": "system", "content": f"use {OPENAI_KEY}"},
                {"role": "user", "content": [{"type": "text", "text": big},
                                             {"type": "image_url", "image_url": {"url": data_url}}]}]
    fields = content_fields(messages, f"Sure, Authorization: Bearer {OPENAI_KEY}")
    text = json.dumps(fields)
    assert OPENAI_KEY not in text
    assert fields["messages"][0]["content"] == f"use {REDACTED}"
    assert "more characters]" in fields["messages"][1]["content"][0]["text"]
    assert fields["messages"][1]["content"][1]["image_url"]["url"] == "data:image/png;base64,<30000 bytes>"
    assert fields["completion"] == f"Sure, Authorization: {REDACTED}"
    assert len(text) < 70_000
    many = [{"role": "user", "content": "z" * 8000}] * 50
    assert len(json.dumps(content_fields(many, "x"))) < 70_000  # the whole line is capped too


def test_completion_text_of_messages_and_deltas():
    message = [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]}}]
    assert completion_text(message) == '[tool call weather] {"city": "Paris"}'
    assert completion_text([{"index": 0, "delta": {"content": "Hel"}}]) == "Hel"
    assert completion_text([{"index": 0, "delta": {}, "finish_reason": "stop"}]) == ""
    assert completion_text([]) == ""
