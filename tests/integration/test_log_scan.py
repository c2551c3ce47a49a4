"""Log scanning: a representative session against a real gateway process, then every byte it wrote.

The gateway runs as `skylane serve` in its own process (auth ON, DynamoDB Local, DEBUG logging), so
its whole stdout and stderr are captured: Powertools JSON lines, EMF records, uvicorn, warnings,
anything printed. The session: keys created through the CLI and the store; requests with
`Authorization: Bearer` and `X-API-Key`, streaming and not, tool calls; upstream errors (400, 429,
500, mid-stream), upstream errors that ECHO the provider key and the Authorization header the
gateway sent; unknown, malformed, wrong-secret, revoked and expired keys, a key without the model
in its allow-list; the models endpoints; and a client that disconnects mid-stream.

Then: no full API key, no secret part, no provider key, no Authorization/X-API-Key value, and no
prompt or completion text appears anywhere in the output, nor in what clients received as errors.
Key ids do appear (they name the key in every request line). With SKYLANE_LOG_CONTENT=true the prompt
and the completion are logged, and the same secrets, pasted into the prompt, are redacted there.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from skylane.accounts.store import create_tables, dynamodb_client
from skylane.cli.keys import create_key, update_key
from skylane.core.settings import Settings
from tests.conftest import UPSTREAM_KEY
from tests.fakes.server import free_port, serve
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
LEAKY_KEY = "leakyprovider-" + uuid.uuid4().hex  # matches no key pattern: redacted because it is remembered
LEAKY_MODEL = "groq/llama-3.1-8b-instant"
OPENAI_MODEL = "openai/gpt-4o-mini"


# ---- an OpenAI-compatible upstream that quotes the credentials it received -----------------------


class LeakyUpstream:
    """Speaks OpenAI's wire format; its errors quote the Authorization header it was sent, as some
    providers and proxies do. `slow...` streams a chunk every 50 ms for a disconnect."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.cancelled = 0
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        auth = request.headers.get("authorization", "")
        self.requests.append({"body": body, "headers": dict(request.headers)})
        text = body["messages"][-1].get("content") or ""
        leak = f"Invalid request: header 'Authorization: {auth}' (key {auth.removeprefix('Bearer ')}) rejected"
        if text.startswith("leak401"):
            return JSONResponse({"error": {"message": leak, "type": "invalid_request_error", "param": None,
                                           "code": "invalid_api_key"}}, 401)
        if text.startswith("leak400"):
            return JSONResponse({"error": {"message": leak, "type": "invalid_request_error", "param": None,
                                           "code": None}}, 400)
        if text.startswith("leak500"):
            return JSONResponse({"error": {"message": leak, "type": "server_error", "param": None, "code": None}},
                                500)
        base = {"id": "chatcmpl-leaky", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body["model"]}

        def ev(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return f"data: {json.dumps({**base, 'choices': [choice]})}\n\n".encode()

        async def leak_midstream():  # type: ignore[no-untyped-def]
            yield ev({"role": "assistant", "content": "partial answer"})
            yield f"data: {json.dumps({'error': {'message': leak, 'type': 'server_error'}})}\n\n".encode()

        async def slow():  # type: ignore[no-untyped-def]
            try:
                yield ev({"role": "assistant", "content": "slow answer"})
                for i in range(200):
                    await asyncio.sleep(0.05)
                    yield ev({"content": f" word{i}"})
                yield ev({}, "stop")
                yield b"data: [DONE]\n\n"
            except BaseException:
                self.cancelled += 1
                raise

        if text.startswith("leakstream"):
            return StreamingResponse(leak_midstream(), media_type="text/event-stream")
        if text.startswith("slow"):
            return StreamingResponse(slow(), media_type="text/event-stream")
        usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        return JSONResponse({"id": "chatcmpl-leaky", "object": "chat.completion", "created": int(time.time()),
                             "model": body["model"], "choices": [{"index": 0, "message": {
                                 "role": "assistant", "content": f"Leaky says: {text}", "refusal": None},
                                 "logprobs": None, "finish_reason": "stop"}], "usage": usage})


@pytest.fixture(scope="module")
def leaky() -> Iterator[tuple[LeakyUpstream, str]]:
    fake = LeakyUpstream()
    with serve(fake.app) as url:
        yield fake, url + "/v1"


# ---- the gateway as its own process ------------------------------------------------------------------


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "SKYLANE_", "POWERTOOLS_")) and not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update({"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EC2_METADATA_DISABLED": "true", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


@contextmanager
def gateway_process(env: dict[str, str], out: Path) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "skylane.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "debug"],
            cwd=ROOT, env=clean_env(env), stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, out.read_text()[-3000:]
                assert time.monotonic() < deadline, "gateway did not start"
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "skylane.cli", *args], env=clean_env(env), capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc


def wait_logged(path: Path, needle: str, timeout: float = 15) -> None:
    assert wait_for(lambda: needle in path.read_text(errors="replace"), timeout, 0.1), f"{needle!r} never logged"


# ---- the session -------------------------------------------------------------------------------------


class Session:
    """What one run did: the secrets that must never show, what must show, what clients got back."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.prompts: list[str] = []
        self.client_errors: list[str] = []
        self.key_ids: list[str] = []


def marker(kind: str) -> str:
    return f"{kind}{uuid.uuid4().hex[:12]}"


def run_session(base: str, env: dict[str, str], settings: Settings, leaky: LeakyUpstream,
                log: Path) -> Session:
    s = Session()
    s.secrets.update(openai_provider_key=UPSTREAM_KEY, leaky_provider_key=LEAKY_KEY)
    client = dynamodb_client(settings)

    # keys: one through the CLI (as an operator does), the others through the store
    created = json.loads(cli(env, "keys", "create", "--name", "log scan cli", "--rpm", "unlimited", "--tpm",
                             "unlimited", "--json").stdout)
    key_a, id_a = created["key"], created["key_id"]
    key_b, rec_b = create_key(client, settings, "log scan store", rpm=None, tpm=None)
    key_r, rec_r = create_key(client, settings, "to revoke", rpm=None, tpm=None)
    key_x, rec_x = create_key(client, settings, "to expire", rpm=None, tpm=None)
    key_m, rec_m = create_key(client, settings, "restricted", rpm=None, tpm=None, models=["groq/*"])
    cli(env, "keys", "revoke", rec_r.key_id)
    update_key(client, settings, rec_x.key_id, expires_at=int(time.time()) - 60)
    for name, key in (("a", key_a), ("b", key_b), ("revoked", key_r), ("expired", key_x), ("restricted", key_m)):
        s.secrets[f"key {name}"] = key
        s.secrets[f"secret {name}"] = key.rsplit("-", 1)[1]
    s.key_ids += [id_a, rec_b.key_id]
    # the operator's other commands never print a key
    for args in (("keys", "list", "--all"), ("keys", "show", id_a), ("usage",)):
        shown = cli(env, *args)
        assert key_a.rsplit("-", 1)[1] not in shown.stdout + shown.stderr

    bearer = {"authorization": f"Bearer {key_a}"}
    api_key = {"x-api-key": key_b}

    def post(headers: dict[str, str], content: str, model: str = OPENAI_MODEL, **extra: Any) -> httpx.Response:
        r = httpx.post(base + "/v1/chat/completions", headers=headers, timeout=30,
                       json={"model": model, "messages": [{"role": "user", "content": content}], **extra})
        if r.status_code >= 400:
            s.client_errors.append(r.text)
        return r

    # answers: both headers, streaming and not, through the OpenAI SDK and plain HTTP
    p = marker("PROMPTA")
    s.prompts.append(p)
    assert post(bearer, p).status_code == 200
    p = marker("PROMPTB")
    s.prompts.append(p)
    with openai.OpenAI(base_url=base + "/v1", api_key="unused", default_headers=api_key, max_retries=0) as sdk:
        got = "".join(c.choices[0].delta.content or "" for c in sdk.chat.completions.create(
            model=OPENAI_MODEL, messages=[{"role": "user", "content": p}], stream=True,
            stream_options={"include_usage": True}) if c.choices)
        assert p in got
    with openai.OpenAI(base_url=base + "/v1", api_key=key_a, max_retries=0) as sdk:
        p = marker("PROMPTC")
        s.prompts.append(p)
        calls = sdk.chat.completions.create(model=OPENAI_MODEL, messages=[{"role": "user", "content": "tool " + p}],
                                            tools=[{"type": "function", "function": {
                                                "name": "weather", "parameters": {"type": "object"}}}])
        assert calls.choices[0].message.tool_calls
    p = marker("PROMPTD")
    s.prompts.append(p)
    assert post(api_key, p, LEAKY_MODEL).status_code == 200

    # upstream errors, plain and quoting the credentials the gateway sent
    for text, status in (("error:400", 400), ("error:429", 429), ("error:500", 502)):
        assert post(bearer, text).status_code == status
    for text, status in (("leak400 " + marker("P"), 400), ("leak500 " + marker("P"), 502),
                         ("leak401 " + marker("P"), 502)):
        r = post(bearer, text, LEAKY_MODEL)
        assert r.status_code == status, r.text
    for model, text in ((OPENAI_MODEL, "midstream"), (LEAKY_MODEL, "leakstream")):
        with httpx.stream("POST", base + "/v1/chat/completions", headers=bearer, timeout=30,
                          json={"model": model, "stream": True,
                                "messages": [{"role": "user", "content": text}]}) as r:
            body = r.read().decode()
            assert '"error"' in body
            s.client_errors.append(body)

    # callers the gateway refuses
    assert post({}, "x").status_code == 401
    assert post({"authorization": "Bearer not-a-skylane-key-at-all"}, "x").status_code == 401
    wrong_secret = f"sk-skylane-{id_a}-" + "W" * 43
    s.secrets["wrong secret"] = "W" * 43
    for headers in ({"authorization": f"Bearer {wrong_secret}"}, {"x-api-key": f"sk-skylane-zzzz00001111-{'Q' * 43}"},
                    {"authorization": f"Bearer {key_r}"}, {"authorization": f"Bearer {key_x}"}):
        assert post(headers, "x").status_code == 401
    s.secrets["unknown key secret"] = "Q" * 43
    assert post({"authorization": f"Bearer {key_m}"}, "x", OPENAI_MODEL).status_code == 403
    assert post(bearer, "x", "nosuch/model").status_code == 404
    r = httpx.post(base + "/v1/chat/completions", headers=bearer, content=b'{"model": "x", "messages": [',
                   timeout=30)
    assert r.status_code == 400

    # the models endpoints, with and without a (bad) key
    assert httpx.get(base + "/v1/models", headers=bearer).status_code == 200
    assert httpx.get(base + "/v1/models", headers={"x-api-key": wrong_secret}).status_code == 401

    # a client that goes away mid-stream: the gateway logs 499 and closes the upstream
    before = leaky.cancelled
    with httpx.stream("POST", base + "/v1/chat/completions", headers=bearer, timeout=30,
                      json={"model": LEAKY_MODEL, "stream": True,
                            "messages": [{"role": "user", "content": "slow " + marker("P")}]}) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                break
    wait_logged(log, '"status":499')
    deadline = time.monotonic() + 10
    while leaky.cancelled == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leaky.cancelled > before, "the upstream stream was not closed after the client left"
    return s


@pytest.fixture
def tables(dynamo_env: dict[str, str]) -> tuple[dict[str, str], Settings]:
    suffix = uuid.uuid4().hex[:10]
    env = {**dynamo_env, "SKYLANE_KEYS_TABLE": f"scan-keys-{suffix}", "SKYLANE_LIMITS_TABLE": f"scan-limits-{suffix}"}
    settings = Settings.from_env(env)
    create_tables(dynamodb_client(settings), settings)
    return env, settings


def gateway_env(tables_env: dict[str, str], fake_openai: Any, leaky_url: str, **extra: str) -> dict[str, str]:
    return {**tables_env, "SKYLANE_AUTH": "enabled", "SKYLANE_LOG_LEVEL": "DEBUG",
            "SKYLANE_RETRY_BASE_DELAY": "0.01", "SKYLANE_AUTH_CACHE_TTL": "0.5", "SKYLANE_BREAKER_FAILURES": "1000",
            "OPENAI_API_KEY": UPSTREAM_KEY, "OPENAI_BASE_URL": fake_openai[1],
            "GROQ_API_KEY": LEAKY_KEY, "GROQ_BASE_URL": leaky_url, **extra}


def assert_no_secrets(text: str, s: Session, where: str) -> None:
    for name, value in s.secrets.items():
        assert value not in text, f"{name} appears in {where}"
    for header in ("Bearer sk-", "authorization: sk", "x-api-key: sk"):
        assert header.lower() not in text.lower(), f"{header!r} appears in {where}"


# ---- the tests ---------------------------------------------------------------------------------------


def test_logs_carry_no_key_secret_or_prompt(tables, fake_openai, leaky, tmp_path):
    env, settings = tables
    log = tmp_path / "gateway.log"
    with gateway_process(gateway_env(env, fake_openai, leaky[1]), log) as base:
        s = run_session(base, env, settings, leaky[0], log)
    out = log.read_text(errors="replace")

    # the scan looks at real request lines: ids and statuses are there
    lines = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{") and '"message":"request"' in ln]
    assert len(lines) >= 20, out[-3000:]
    statuses = {ln["status"] for ln in lines}
    assert {200, 400, 401, 403, 404, 429, 499, 502} <= statuses, statuses
    assert all(kid in out for kid in s.key_ids)  # key ids may (and do) appear

    assert_no_secrets(out, s, "the gateway's output")
    for p in s.prompts:
        assert p not in out, "prompt or completion text logged without SKYLANE_LOG_CONTENT"
    assert "Leaky says" not in out and "Hello from fake-openai" not in out and "partial answer" not in out
    assert "Traceback" not in out
    # the callers' keys never travel upstream: providers get the gateway's own provider key
    upstream = json.dumps([*leaky[0].requests, *fake_openai[0].requests])
    for name, value in s.secrets.items():
        if name.startswith(("key ", "secret ", "wrong", "unknown")):
            assert value not in upstream, f"{name} was sent to a provider"
    assert f"Bearer {LEAKY_KEY}" in upstream and f"Bearer {UPSTREAM_KEY}" in upstream
    # what clients were told about upstream failures carries no credential either
    for body in s.client_errors:
        assert_no_secrets(body, s, "an error response")
        assert "Traceback" not in body and "127.0.0.1" not in body


def test_content_logging_is_opt_in_and_redacted(tables, fake_openai, leaky, tmp_path):
    env, settings = tables
    log = tmp_path / "gateway.log"
    key, _ = create_key(dynamodb_client(settings), settings, "content", rpm=None, tpm=None)
    pasted_openai_key = "sk-proj-" + uuid.uuid4().hex + uuid.uuid4().hex
    p = marker("PROMPTE")
    prompt = (f"{p} please debug: curl -H 'Authorization: Bearer {key}' -H 'X-API-Key: {key}' with "
              f"OPENAI_API_KEY={pasted_openai_key} and the groq key {LEAKY_KEY}")
    with gateway_process(gateway_env(env, fake_openai, leaky[1], SKYLANE_LOG_CONTENT="true"), log) as base:
        headers = {"authorization": f"Bearer {key}"}
        r = httpx.post(base + "/v1/chat/completions", headers=headers, timeout=30,
                       json={"model": LEAKY_MODEL, "messages": [{"role": "system", "content": "be brief"},
                                                                {"role": "user", "content": prompt}]})
        assert r.status_code == 200
        with httpx.stream("POST", base + "/v1/chat/completions", headers=headers, timeout=30,
                          json={"model": OPENAI_MODEL, "stream": True,
                                "messages": [{"role": "user", "content": prompt}]}) as resp:
            assert resp.read().decode().rstrip().endswith("data: [DONE]")
        wait_logged(log, '"stream":true')
    out = log.read_text(errors="replace")
    lines = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{") and '"message":"request"' in ln]
    assert len(lines) == 2
    for line in lines:
        text = json.dumps(line)
        assert p in text  # the operator asked for content: the prompt is there...
        assert line["messages"][-1]["role"] == "user"
        assert p in line["completion"]  # ...and the completion (the fakes echo the prompt)
        assert "[REDACTED]" in line["messages"][-1]["content"] and "[REDACTED]" in line["completion"]
    assert lines[0]["messages"][0] == {"role": "system", "content": "be brief"}
    for secret in (key, key.rsplit("-", 1)[1], pasted_openai_key, LEAKY_KEY, UPSTREAM_KEY):
        assert secret not in out
    assert f"sk-skylane-{key.split('-')[2]}-[REDACTED]" in out  # the key id survives redaction
