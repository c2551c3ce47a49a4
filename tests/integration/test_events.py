"""Every file in events/ (function URL events, payload format 2.0) replayed through the deployed handlers.

The models events go through `functions.models.app.handler(event, context)` (Mangum, Powertools Tracer
and Logger), exactly what `sam local invoke ModelsFunction -e events/<file>` runs. The completions events
go through the completions app under Mangum, which turns the event into the same HTTP request the Lambda
Web Adapter makes in buffered mode (`AWS_LWA_INVOKE_MODE=buffered`, what `sam local invoke` uses).

Each "function" is loaded with its environment and invoked on one worker thread of its own, like one
Lambda execution environment (Mangum keeps one event loop per thread). A new event file without an
expectation below fails the suite, and so does an expectation without its file.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from skylane.core.settings import reset_settings
from skylane.ops.observe import logger as skylane_logger
from tests.conftest import UPSTREAM_KEY
from tests.spec import validate

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
TRACE_ROOT = "1-6744a1f0-3f5e8d2c9b1a4e6f7d8c9b0a"  # the Root of every event's x-amzn-trace-id
GREETING = "Hello from fake-openai: Say hello in one word."


@dataclass
class LambdaContext:
    """The attributes of the Python runtime's context object that Mangum and Powertools read."""

    aws_request_id: str = "0f6a6a3e-1111-4a4a-9b9b-c0c0c0c0c0c0"
    function_name: str = "skylane-ModelsFunction-AbC123"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:skylane-ModelsFunction-AbC123"
    log_group_name: str = "/aws/lambda/skylane-ModelsFunction-AbC123"
    log_stream_name: str = "2026/11/25/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 9_000


@dataclass
class Result:
    status: int
    headers: dict[str, str]
    body: str
    out: str  # what the function wrote to stdout (log lines and EMF records)

    def json(self) -> Any:
        return json.loads(self.body)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.startswith("{")]


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith(("SKYLANE_", "OPENAI_", "POWERTOOLS_")):
            del os.environ[name]
    os.environ.update(env)
    reset_settings()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_settings()


class Function:
    """One Lambda execution environment: a module loaded with its env, invoked on its own thread."""

    def __init__(self, module: str, env: dict[str, str], wrap: Callable[[Any], Any]) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=module)
        self.handler = self.pool.submit(self._load, module, env, wrap).result()

    @staticmethod
    def _load(module: str, env: dict[str, str], wrap: Callable[[Any], Any]) -> Any:
        with _environ(env):
            mod = importlib.import_module(module)
            mod = importlib.reload(mod)  # built from this env (the settings are read at import)
            return wrap(mod)

    def invoke(self, event: dict[str, Any], context: LambdaContext) -> Result:
        return self.pool.submit(self._invoke, event, context).result(timeout=30)

    def _invoke(self, event: dict[str, Any], context: LambdaContext) -> Result:
        buf = io.StringIO()
        handler = skylane_logger.handlers[0]
        old_stream = handler.setStream(buf)  # type: ignore[attr-defined]
        try:
            with contextlib.redirect_stdout(buf):  # EMF records are printed
                resp = self.handler(event, context)
        finally:
            handler.setStream(old_stream)  # type: ignore[attr-defined]
        body = resp.get("body") or ""
        if resp.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        headers = {k.lower(): v for k, v in (resp.get("headers") or {}).items()}
        return Result(resp["statusCode"], headers, body, buf.getvalue())

    @staticmethod
    def _shutdown() -> None:
        from skylane.transport.http import aclose_client

        loop = asyncio.get_event_loop()  # the one Mangum made for this thread
        loop.run_until_complete(aclose_client())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)

    def close(self) -> None:
        self.pool.submit(self._shutdown).result()
        self.pool.shutdown(wait=True)


def _base_env(fake_url: str, auth: str) -> dict[str, str]:
    return {
        "SKYLANE_AUTH": auth,
        "SKYLANE_LOG_LEVEL": "INFO",
        "SKYLANE_KEYS_TABLE": "skylane-events-keys",  # never read: these events need no key lookup
        "SKYLANE_LIMITS_TABLE": "skylane-events-limits",
        "SKYLANE_RETRY_BASE_DELAY": "0.01",
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "OPENAI_BASE_URL": fake_url,
        "POWERTOOLS_SERVICE_NAME": "skylane",
        "POWERTOOLS_METRICS_NAMESPACE": "Skylane",
    }


@pytest.fixture(scope="module")
def functions(fake_openai: tuple[Any, str]) -> Iterator[dict[str, Function]]:
    from mangum import Mangum

    url = fake_openai[1]
    made = {
        # as deployed: auth on; listing without a key needs no key lookup
        "models": Function("functions.models.app", _base_env(url, "enabled"), lambda m: m.handler),
        # `sam local invoke` with SKYLANE_AUTH=disabled in the env-vars file (README, "Deploy to AWS")
        "completions": Function("functions.completions.app", _base_env(url, "disabled"),
                                lambda m: Mangum(m.app, lifespan="off")),
        # as deployed: auth on (the bad key is refused before any lookup)
        "completions-auth": Function("functions.completions.app", _base_env(url, "enabled"),
                                     lambda m: Mangum(m.app, lifespan="off")),
    }
    yield made
    for f in made.values():
        f.close()
    # leave the modules as a plain import would build them
    for name in ("functions.models.app", "functions.completions.app"):
        sys.modules.pop(name, None)


# ---- what each event must produce -----------------------------------------------------------------


def _models_list(r: Result, fake: Any) -> None:
    body = r.json()
    validate("ListModelsResponse", body)
    ids = [m["id"] for m in body["data"]]
    assert "openai/gpt-4o-mini" in ids
    assert all(m["object"] == "model" for m in body["data"])


def _models_chat(r: Result, fake: Any) -> None:
    data = r.json()["data"]
    row = next(m for m in data if m["name"] == "openai/gpt-4o-mini")
    assert set(row) == {"name", "developer", "display_name", "max_tokens", "vision"}
    assert row["developer"] == "OpenAI" and row["vision"] is True and row["max_tokens"] == 128000


def _models_get(r: Result, fake: Any) -> None:
    body = r.json()
    assert body["id"] == "openai/gpt-4o-mini" and body["object"] == "model"
    validate("Model", {k: body[k] for k in ("id", "object", "created", "owned_by")})


def _completion(r: Result, fake: Any) -> None:
    body = r.json()
    validate("CreateChatCompletionResponse", body)
    assert body["model"] == "openai/gpt-4o-mini"
    assert body["choices"][0]["message"]["content"] == GREETING
    assert body["choices"][0]["finish_reason"] == "stop"
    sent = fake.requests[-1]["body"]
    assert sent["model"] == "gpt-4o-mini" and sent["messages"][0] == {"role": "system", "content": "You are terse."}
    assert r.headers["x-request-id"]


def _completion_stream(r: Result, fake: Any) -> None:
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [line[len("data: "):] for line in r.body.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    for c in chunks:
        validate("CreateChatCompletionStreamResponse", c)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == GREETING
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 7
    assert fake.requests[-1]["body"]["stream"] is True


def _error(status: int, type_: str, code: str | None) -> Callable[[Result, Any], None]:
    def check(r: Result, fake: Any) -> None:
        body = r.json()
        validate("ErrorResponse", body)
        assert body["error"]["type"] == type_
        if code:
            assert body["error"]["code"] == code
        assert "Traceback" not in r.body

    return check


@dataclass
class Expect:
    function: str
    status: int
    check: Callable[[Result, Any], None]
    upstream_calls: int = 0  # requests the fake OpenAI must receive


EXPECT: dict[str, Expect] = {
    "models-list.json": Expect("models", 200, _models_list),
    "models-chat.json": Expect("models", 200, _models_chat),
    "models-get.json": Expect("models", 200, _models_get),
    "completion.json": Expect("completions", 200, _completion, upstream_calls=1),
    "completion-stream.json": Expect("completions", 200, _completion_stream, upstream_calls=1),
    "completion-bad-key.json": Expect("completions-auth", 401,
                                      _error(401, "authentication_error", "invalid_api_key")),
    "completion-malformed.json": Expect("completions", 400, _error(400, "invalid_request_error", None)),
}


def _event_files() -> list[str]:
    return sorted(p.name for p in EVENTS.glob("*.json"))


def test_every_event_file_has_an_expectation() -> None:
    assert _event_files(), "events/ is empty"
    assert set(_event_files()) == set(EXPECT)


@pytest.mark.parametrize("name", _event_files())
def test_event(name: str, functions: dict[str, Function], fake_openai: tuple[Any, str]) -> None:
    event = json.loads((EVENTS / name).read_text())
    assert event["version"] == "2.0" and event["rawPath"] == event["requestContext"]["http"]["path"]
    expect = EXPECT[name]
    fake = fake_openai[0]
    before = len(fake.requests)
    context = LambdaContext(aws_request_id=event["requestContext"]["requestId"])
    r = functions[expect.function].invoke(event, context)
    assert r.status == expect.status, r.body
    expect.check(r, fake)
    assert len(fake.requests) - before == expect.upstream_calls
    assert UPSTREAM_KEY not in r.out and UPSTREAM_KEY not in r.body


# ---- what the functions write: one log line and one EMF record per completion; the trace id --------


def test_completion_logs_and_metrics(functions: dict[str, Function]) -> None:
    event = json.loads((EVENTS / "completion-stream.json").read_text())
    r = functions["completions"].invoke(event, LambdaContext())
    assert r.status == 200
    lines = r.lines()
    logs = [x for x in lines if x.get("message") == "request"]
    emf = [x for x in lines if "_aws" in x]
    assert len(logs) == 1 and len(emf) == 1, r.out
    log = logs[0]
    assert log["level"] == "INFO" and log["service"] == "skylane"
    assert log["xray_trace_id"] == TRACE_ROOT  # from the event's x-amzn-trace-id header
    assert log["model"] == "openai/gpt-4o-mini" and log["provider"] == "openai"
    assert log["status"] == 200 and log["stream"] is True
    assert log["request_id"] == r.headers["x-request-id"]
    assert log["prompt_tokens"] > 0 and log["completion_tokens"] == 7
    assert log["latency_ms"] >= log["ttft_ms"] > 0
    # never the prompt or the answer, never a key
    assert "Say hello" not in r.out and "Hello from fake" not in r.out and UPSTREAM_KEY not in r.out

    record = emf[0]
    cw = record["_aws"]["CloudWatchMetrics"][0]
    assert cw["Namespace"] == "Skylane"
    assert cw["Dimensions"] == [["service", "provider", "model"], ["service", "provider"]]
    names = {m["Name"]: m["Unit"] for m in cw["Metrics"]}
    assert names == {"Requests": "Count", "Errors": "Count", "Latency": "Milliseconds",
                     "TimeToFirstToken": "Milliseconds", "PromptTokens": "Count", "CompletionTokens": "Count",
                     "CostUSD": "None"}
    assert record["model"] == "openai/gpt-4o-mini" and record["provider"] == "openai"
    assert record["Requests"] == [1.0] and record["Errors"] == [0.0]
    assert record["CompletionTokens"] == [7.0] and record["CostUSD"][0] > 0
    assert record["request_id"] == log["request_id"] and record["xray_trace_id"] == TRACE_ROOT


def test_error_metrics_do_not_take_the_model_name_from_the_client(functions: dict[str, Function]) -> None:
    event = json.loads((EVENTS / "completion.json").read_text())
    event["body"] = json.dumps({"model": "openai-but-not-really/attacker-chosen-name",
                                "messages": [{"role": "user", "content": "hi"}]})
    r = functions["completions"].invoke(event, LambdaContext())
    assert r.status == 404
    record = next(x for x in r.lines() if "_aws" in x)
    assert record["model"] == "none" and record["provider"] == "none"
    assert record["Errors"] == [1.0]
    log = next(x for x in r.lines() if x.get("message") == "request")
    assert log["status"] == 404 and log["level"] == "INFO"


def test_models_function_runs_with_the_lambda_context(functions: dict[str, Function]) -> None:
    event = json.loads((EVENTS / "models-list.json").read_text())
    r = functions["models"].invoke(event, LambdaContext(aws_request_id="aaaa-bbbb"))
    assert r.status == 200
    try:
        # Powertools' inject_lambda_context put the invocation on the logger (every line of it carries it)
        keys = skylane_logger.get_current_keys()
        assert keys["function_request_id"] == "aaaa-bbbb"
        assert keys["function_name"] == LambdaContext.function_name
        assert "cold_start" in keys
    finally:
        skylane_logger.clear_state()


# ---- X-Ray on the models function: real segments over UDP, as the X-Ray daemon receives them -----------

_INVOKE = """
import json, sys
sys.path.insert(0, {root!r})
from functions.models import app
class Context:
    aws_request_id = "xray-req-1"
    function_name = "skylane-ModelsFunction-AbC123"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:skylane-ModelsFunction-AbC123"
event = json.load(open({event!r}))
print(json.dumps({{"status": app.handler(event, Context())["statusCode"]}}))
"""


def _invoke_models_in_a_fresh_process(env: dict[str, str]) -> tuple[int, list[dict[str, Any]]]:
    import socket
    import subprocess

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        daemon.settimeout(0.5)
        port = daemon.getsockname()[1]
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SKYLANE_", "POWERTOOLS_", "AWS_", "_X_"))}
        base.update({"SKYLANE_AUTH": "enabled", "SKYLANE_LOG_LEVEL": "WARNING", "AWS_DEFAULT_REGION": "us-east-1",
                     "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{port}", **env})
        script = _INVOKE.format(root=str(ROOT), event=str(EVENTS / "models-list.json"))
        r = subprocess.run([sys.executable, "-c", script], env=base, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        status = json.loads(r.stdout.strip().splitlines()[-1])["status"]
        segments = []
        while True:
            try:
                data, _ = daemon.recvfrom(65536)
            except TimeoutError:
                break
            header, _, doc = data.decode().partition("\n")
            assert json.loads(header) == {"format": "json", "version": 1}
            segments.append(json.loads(doc))
    return status, segments


def test_models_function_is_traced_on_lambda() -> None:
    root = "1-6744c3d4-00112233445566778899aabb"
    status, segments = _invoke_models_in_a_fresh_process({
        "AWS_LAMBDA_FUNCTION_NAME": "skylane-ModelsFunction-AbC123",  # what makes Powertools' Tracer active
        "LAMBDA_TASK_ROOT": str(ROOT / "functions"),  # what puts the X-Ray SDK in Lambda mode
        "_X_AMZN_TRACE_ID": f"Root={root};Parent=1a2b3c4d5e6f7a8b;Sampled=1",
    })
    assert status == 200
    assert segments, "no X-Ray segment reached the daemon address"
    handler = next(s for s in segments if s["name"].startswith("## "))
    assert handler["trace_id"] == root and handler["parent_id"] == "1a2b3c4d5e6f7a8b"
    assert handler["end_time"] >= handler["start_time"]
    assert handler["annotations"]["ColdStart"] is True and handler["annotations"]["Service"] == "skylane"
    assert "metadata" not in handler or "traced response" not in json.dumps(handler["metadata"])


def test_models_function_sends_no_segments_off_lambda() -> None:
    status, segments = _invoke_models_in_a_fresh_process({})
    assert status == 200 and segments == []
