"""The completions function as the Lambda Web Adapter runs it: functions/completions/run.sh itself.

The script is started as a subprocess (the same uvicorn command, port from AWS_LWA_PORT), the test
waits on the readiness path like the adapter does, then streams a completion from a slow fake OpenAI
upstream (OpenAI's wire format, a pause between chunks) and timestamps every SSE event as it arrives:
the chunks must come out spread over time as the upstream produces them, not all at once at the end.
The request carries the headers the adapter adds (x-amzn-trace-id, x-amzn-lambda-context), and the
process's stdout must hold the request's JSON log line and its EMF metrics record.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from tests.fakes.server import free_port, serve

ROOT = Path(__file__).resolve().parents[2]
RUN_SH = ROOT / "functions" / "completions" / "run.sh"
UPSTREAM_KEY = "sk-upstream-lwa-test"
WORDS = ["one", "two", "three", "four", "five", "six"]
DELAY = 0.35  # seconds between two upstream chunks
TRACE = "Root=1-6744b2c3-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"
PROMPT_MARKER = "prompt-text-that-must-never-be-logged"


class SlowOpenAI:
    """A chat completions stream in OpenAI's format, one word every DELAY seconds."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> StreamingResponse:
        body = await request.json()
        self.requests.append({"body": body, "auth": request.headers.get("authorization")})
        return StreamingResponse(self._events(body), media_type="text/event-stream")

    async def _events(self, body: dict[str, Any]) -> AsyncIterator[bytes]:
        base = {"id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body["model"], "system_fingerprint": "fp_slow"}
        usage_field = {"usage": None} if (body.get("stream_options") or {}).get("include_usage") else {}

        def ev(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode()

        yield ev([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                   "finish_reason": None}], **usage_field)
        for i, word in enumerate(WORDS):
            await asyncio.sleep(DELAY)
            piece = word if i == 0 else " " + word
            yield ev([{"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}],
                     **usage_field)
        yield ev([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}], **usage_field)
        if usage_field:
            yield ev([], usage={"prompt_tokens": 12, "completion_tokens": len(WORDS), "total_tokens": 12 + len(WORDS),
                                "prompt_tokens_details": {"cached_tokens": 0},
                                "completion_tokens_details": {"reasoning_tokens": 0}})
        yield b"data: [DONE]\n\n"


def _rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[SlowOpenAI, str]]:
    fake = SlowOpenAI()
    with serve(fake.app) as url:
        yield fake, url + "/v1"


@pytest.fixture(scope="module")
def function(upstream: tuple[SlowOpenAI, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    port = free_port()
    out_path = tmp_path_factory.mktemp("lwa") / "stdout.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SKYLANE_", "OPENAI_", "POWERTOOLS_"))}
    env.update({
        # the function's environment as template.yaml sets it (tables unused: auth is off here)
        "AWS_LWA_PORT": str(port),
        "AWS_LWA_READINESS_CHECK_PATH": "/health",
        "AWS_LWA_INVOKE_MODE": "response_stream",
        "SKYLANE_AUTH": "disabled",
        "SKYLANE_LOG_LEVEL": "INFO",
        "POWERTOOLS_SERVICE_NAME": "skylane",
        "POWERTOOLS_METRICS_NAMESPACE": "Skylane",
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "OPENAI_BASE_URL": upstream[1],
        # `python3` on PATH is the runtime's on Lambda; here the project's interpreter
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    assert os.access(RUN_SH, os.X_OK), "run.sh must be executable (it is the function's Handler)"
    with out_path.open("wb") as out:
        proc = subprocess.Popen([str(RUN_SH)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=tmp_path_factory.getbasetemp(), start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            started = time.monotonic()
            while True:  # the adapter's readiness check: GET the path until it answers
                if proc.poll() is not None:
                    pytest.fail(f"run.sh exited with {proc.returncode}: {out_path.read_text()}")
                try:
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() - started > 30:
                    pytest.fail("run.sh did not become ready in 30 s")
                time.sleep(0.05)
            yield {"base": base, "proc": proc, "out": out_path, "ready_s": time.monotonic() - started}
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # what Lambda sends at shutdown
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def test_run_sh_is_a_posix_script_with_lf_endings() -> None:
    raw = RUN_SH.read_bytes()
    assert raw.startswith(b"#!/bin/bash\n")
    assert b"\r" not in raw
    assert b"exec python3 -m uvicorn completions.app:app" in raw


def test_stream_arrives_chunk_by_chunk(function: dict[str, Any], upstream: tuple[SlowOpenAI, str]) -> None:
    body = {"model": "openai/gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": PROMPT_MARKER}]}
    headers = {  # what the Lambda Web Adapter adds to the request it makes
        "x-amzn-trace-id": TRACE,
        "x-amzn-lambda-context": json.dumps({
            "request_id": "lwa-req-0001", "deadline": int(time.time() * 1000) + 900_000,
            "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:skylane-CompletionsFunction",
            "xray_trace_id": TRACE, "env_config": {}}),
    }
    arrivals: list[tuple[float, dict[str, Any] | str]] = []
    t0 = time.monotonic()
    with httpx.stream("POST", function["base"] + "/v1/chat/completions", json=body, headers=headers,
                      timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: "):]
                arrivals.append((time.monotonic() - t0, data if data == "[DONE]" else json.loads(data)))
    assert arrivals[-1][1] == "[DONE]"
    content = [(t, c["choices"][0]["delta"]["content"]) for t, c in arrivals
               if isinstance(c, dict) and c["choices"] and c["choices"][0]["delta"].get("content")]
    assert "".join(piece for _, piece in content) == " ".join(WORDS)
    times = [t for t, _ in content]
    # incremental: each word arrives about DELAY after the previous one, not in one burst at the end
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) > DELAY * 0.5, gaps
    assert times[-1] - times[0] > DELAY * (len(WORDS) - 1) * 0.8, times
    assert times[0] < arrivals[-1][0] - DELAY * (len(WORDS) - 2), "the first word waited for the whole answer"
    assert upstream[0].requests[-1]["auth"] == f"Bearer {UPSTREAM_KEY}"

    # the process's stdout: one JSON log line and one EMF record for this request, flushed after the stream
    deadline = time.monotonic() + 5
    log: dict[str, Any] | None = None
    emf: dict[str, Any] | None = None
    while time.monotonic() < deadline and (log is None or emf is None):
        lines = [json.loads(x) for x in function["out"].read_text().splitlines() if x.startswith("{")]
        log = next((x for x in lines if x.get("message") == "request"), None)
        emf = next((x for x in lines if "_aws" in x), None)
        time.sleep(0.05)
    assert log is not None and emf is not None, function["out"].read_text()
    assert log["xray_trace_id"] == "1-6744b2c3-0123456789abcdef01234567"
    assert log["aws_request_id"] == "lwa-req-0001"
    assert log["status"] == 200 and log["stream"] is True
    assert log["model"] == "openai/gpt-4o-mini" and log["provider"] == "openai"
    assert log["prompt_tokens"] == 12 and log["completion_tokens"] == len(WORDS)
    assert log["ttft_ms"] >= DELAY * 1000 * 0.8  # the first word came after one upstream pause
    assert log["latency_ms"] >= DELAY * 1000 * len(WORDS) * 0.8
    assert emf["model"] == "openai/gpt-4o-mini" and emf["Requests"] == [1.0]
    assert emf["TimeToFirstToken"] == [log["ttft_ms"]] and emf["aws_request_id"] == "lwa-req-0001"
    text = function["out"].read_text()
    assert PROMPT_MARKER not in text and UPSTREAM_KEY not in text


def test_memory_of_a_warm_instance(function: dict[str, Any]) -> None:
    """What the MemorySize in template.yaml is sized from (reported by `pytest -s`)."""
    rss, peak = _rss_mb(function["proc"].pid)
    print(f"\ncompletions under uvicorn: ready in {function['ready_s']:.2f} s, RSS {rss:.0f} MB, peak {peak:.0f} MB")
    assert peak < 160, f"peak RSS {peak:.0f} MB: revisit CompletionsMemorySize (256 MB) in template.yaml"
