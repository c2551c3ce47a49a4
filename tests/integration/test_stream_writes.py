"""Stream framing through the real gateway: SSE events that arrive from the provider in one read
leave in one write to the client (one chunk of the chunked response), and an event that arrives
alone is sent at once, never held back for company."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from tests.fakes.server import serve

N = 50


def _event(i: int) -> bytes:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"content": f"w{i} "} if i else {"role": "assistant", "content": ""},
                          "finish_reason": None}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _tail() -> bytes:
    end = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    return b"data: " + json.dumps(end).encode() + b"\n\ndata: [DONE]\n\n"


async def _chat(request: Request) -> StreamingResponse:
    body = await request.json()
    mode = body["model"]

    async def gen() -> Any:
        if mode == "burst":  # the first event alone, then the other N-1 and the end in one write
            yield _event(0) + _event(1)
            await asyncio.sleep(0.05)
            yield b"".join(_event(i) for i in range(2, N)) + _tail()
        else:  # "drip": one event per write, 30 ms apart
            for i in range(6):
                yield _event(i)
                await asyncio.sleep(0.03)
            yield _tail()

    return StreamingResponse(gen(), media_type="text/event-stream")


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    app = Starlette(routes=[Route("/v1/chat/completions", _chat, methods=["POST"])])
    with serve(app) as url:
        yield url + "/v1"


def _chunks(base: str, model: str) -> list[tuple[float, bytes]]:
    """POST a stream over a raw socket; the HTTP chunks of the response body with their arrival times."""
    host, port = base.removeprefix("http://").split(":")
    body = json.dumps({"model": f"openai/{model}", "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    s = socket.create_connection((host, int(port)))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
              b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    f = s.makefile("rb")
    while f.readline() not in (b"\r\n", b""):  # the status line and headers
        pass
    out: list[tuple[float, bytes]] = []
    while True:
        size = int(f.readline().strip(), 16)
        if size == 0:
            break
        out.append((time.monotonic(), f.read(size)))
        f.readline()
    s.close()
    return out


def _events(chunk: bytes) -> int:
    return chunk.count(b"data: ")


def test_events_read_together_leave_together(gateway_factory: Callable[..., str], upstream: str) -> None:
    gw = gateway_factory(OPENAI_API_KEY="k", OPENAI_BASE_URL=upstream)
    chunks = _chunks(gw, "burst")
    counts = [_events(c) for _, c in chunks]
    assert sum(counts) == N + 2  # every event (N - 1 content + role + finish) and [DONE]
    # the upstream wrote twice: at most a few writes come out (the first answer chunk may be split from
    # the rest of its read, the end is one more), never one per event
    assert len(chunks) <= 4, counts
    assert max(counts) >= N - 3


def test_an_event_that_arrives_alone_is_not_held_back(gateway_factory: Callable[..., str], upstream: str) -> None:
    gw = gateway_factory(OPENAI_API_KEY="k", OPENAI_BASE_URL=upstream)
    chunks = _chunks(gw, "drip")
    content = [(t, c) for t, c in chunks if b'"content"' in c]
    assert len(content) >= 5  # one write per upstream write
    gaps = [b[0] - a[0] for a, b in zip(content, content[1:], strict=False)]
    assert all(g >= 0.015 for g in gaps), gaps  # each left when it came (30 ms apart), not in a bunch
