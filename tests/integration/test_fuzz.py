"""Property-based fuzzing of the gateway's own OpenAPI document (/openapi.json) with schemathesis.

The real local server (auth disabled, the openai provider pointed at the fake OpenAI upstream) gets
schema-generated requests: valid ones (positive mode; a share of them naming a configured model so the
call goes through to the upstream and back) and invalid ones (negative mode). Every response must pass
schemathesis's own checks (no 5xx, status codes, content types, headers and bodies as documented,
valid data accepted, invalid data rejected) and ours: no 5xx, no trace, JSON errors in the OpenAI
envelope, answers and stream chunks valid against OpenAI's published spec.

The number of examples is bounded (a few seconds per operation on 2 cores). Hypothesis prints the seed
of a failure; replay it with `--hypothesis-seed`.

(schemathesis's pytest loader `from_fixture` does not work with pytest 9, so each operation's
Hypothesis strategy is driven directly: `operation.as_strategy(mode)` under `@given`.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.helpers import sse_data
from tests.spec import validate

CONFIGURED = ["openai/gpt-4o-mini", "openai/gpt-4o"]
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE

# (method, path, generation mode, max examples)
RUNS = [
    ("POST", "/v1/chat/completions", POSITIVE, 150),
    ("POST", "/v1/chat/completions", NEGATIVE, 100),
    ("GET", "/v1/models", POSITIVE, 20),
    ("GET", "/v1/models/{model_id}", POSITIVE, 100),
    ("GET", "/v1/chat/models", POSITIVE, 20),
    ("GET", "/health", POSITIVE, 10),
]

# what a 200 JSON body must be, per operation (OpenAI's spec where OpenAI has the operation)
OK_SCHEMA = {
    "/v1/chat/completions": "CreateChatCompletionResponse",
    "/v1/models": "ListModelsResponse",
    "/v1/models/{model_id}": "Model",
}


@pytest.fixture(scope="module")
def api_schema(gateway: str) -> Any:
    return schemathesis.openapi.from_url(gateway + "/openapi.json")


def _sse_events(text: str) -> list[str]:
    return sse_data(text, strict=True)


def check_response(path: str, status: int, content_type: str, body: bytes, stats: Counter[str]) -> None:
    """Our own checks, on top of schemathesis's: no 5xx, no trace, the envelope or the spec."""
    text = body.decode("utf-8")
    assert status < 500, f"{status}: {text[:500]}"
    assert "Traceback" not in text and 'File "' not in text
    stats[f"{status}"] += 1
    if content_type.startswith("text/event-stream"):
        assert status == 200
        stats["stream"] += 1
        events = _sse_events(text)
        assert events and (events[-1] == "[DONE]" or "error" in json.loads(events[-1])), events[-3:]
        for data in events:
            if data == "[DONE]":
                continue
            obj = json.loads(data)
            if "error" in obj:
                validate("ErrorResponse", obj)
            else:
                validate("CreateChatCompletionStreamResponse", obj)
        return
    assert content_type.startswith("application/json"), content_type
    obj = json.loads(body)
    if status >= 400:
        validate("ErrorResponse", obj)
        assert set(obj["error"]) >= {"message", "type", "param", "code"}
        stats[f"{status} {obj['error']['code']}"] += 1
    elif path in OK_SCHEMA:
        validate(OK_SCHEMA[path], obj)


@pytest.mark.parametrize(("method", "path", "mode", "examples"), RUNS,
                         ids=[f"{m} {p} {mode.value}" for m, p, mode, _ in RUNS])
def test_fuzz_operation(api_schema: Any, fake_openai: Any, method: str, path: str, mode: GenerationMode,
                        examples: int) -> None:
    operation = api_schema[path][method]
    stats: Counter[str] = Counter()
    upstream_before = len(fake_openai[0].requests)

    @given(case=operation.as_strategy(mode), model=st.sampled_from([*CONFIGURED, None]),
           stream=st.sampled_from([None, True]))
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case: Any, model: str | None, stream: bool | None) -> None:
        if mode.is_positive and isinstance(case.body, dict):
            # still schema-valid: most calls name a configured model and reach the upstream, some stream
            if model:
                case.body["model"] = model
            if stream:
                case.body["stream"] = True
        response = case.call(timeout=30)
        if response.status_code == 413:
            # a generated body over SKYLANE_MAX_BODY_BYTES (6 MB, the function URL's limit) is refused
            # before it is parsed, whatever else is wrong with it: that, exactly, is what is checked here
            assert len(response.request.body or b"") > 6 * 1024 * 1024
            assert response.json()["error"]["code"] == "request_too_large"
        else:
            case.validate_response(response)  # schemathesis's checks, all of them
        check_response(path, response.status_code, response.headers.get("content-type", [""])[0],
                       response.content, stats)

    run()
    print(f"{method} {path} {mode.value}: {dict(stats)}")
    assert stats, "no request was made"
    assert not any(k.startswith("5") for k in stats), stats
    if path == "/v1/chat/completions" and mode.is_positive:
        # the fuzz went through the whole request path, upstream included, streams too
        assert stats["200"] >= 10, stats
        assert stats["stream"] >= 3, stats
        assert len(fake_openai[0].requests) - upstream_before >= 10
    if mode.is_negative:
        assert all(k[0] == "4" for k in stats if k[0].isdigit()), stats


def run_schemathesis_cli(base: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`schemathesis run` with every phase (examples, coverage, fuzzing, stateful) and every check
    (unsupported methods and their Allow header, missing auth, ...). Its caches go to `cwd`, and so does
    its config: a body it makes invalid may also be over the 6 MB cap, and then 413 is the right refusal
    (the default list of statuses that count as a rejection lacks it)."""
    statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5XX"]
    (cwd / "schemathesis.toml").write_text(
        "[checks.negative_data_rejection]\nexpected-statuses = [" + ", ".join(f'"{s}"' for s in statuses) + "]\n")
    exe = Path(sys.executable).with_name("schemathesis")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from schemathesis.cli import schemathesis; "
                                           "schemathesis()"]
    cmd += ["run", base + "/openapi.json", "--checks", "all", "--max-examples", "40", "--workers", "1",
            "--request-timeout", "30", "--no-color", "--continue-on-failure", *args]
    env = {**os.environ, "SCHEMATHESIS_TELEMETRY": "false"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_schemathesis_cli_all_phases_auth_off(gateway: str, tmp_path: Path) -> None:
    proc = run_schemathesis_cli(gateway, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "Coverage" in out and "Stateful" in out


def test_schemathesis_cli_all_phases_auth_on(auth_gateway: Any, make_key: Any, tmp_path: Path) -> None:
    """With keys checked, the document declares both key headers; schemathesis's `ignored_auth` check
    then sends requests without the key (and with a wrong one) and requires a 401."""
    base = auth_gateway()
    key = make_key("fuzz")
    proc = run_schemathesis_cli(base, tmp_path, "-H", f"Authorization: Bearer {key.key}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert key.key not in out  # schemathesis masks the header in what it prints


def test_openapi_document_matches_what_the_handler_enforces(gateway: str, gateway_factory: Any) -> None:
    import httpx

    doc = httpx.get(gateway + "/openapi.json").json()
    req = doc["components"]["schemas"]["ChatRequest"]
    assert "model" in req["required"] and req["properties"]["model"]["minLength"] == 1
    assert req["properties"]["messages"]["minItems"] == 1
    with_default = gateway_factory(SKYLANE_DEFAULT_MODEL="openai/gpt-4o-mini", OPENAI_API_KEY="x")
    req = httpx.get(with_default + "/openapi.json").json()["components"]["schemas"]["ChatRequest"]
    assert "model" not in req["required"]
