"""Test helpers shared by the suites (one copy each): SSE reading, chat streams over httpx."""

from __future__ import annotations

import base64
import json
import struct
import time
import zlib
from collections.abc import Callable
from typing import Any

import httpx

__all__ = ["AWS_ENV", "PNG", "PNG_B64", "SINGLE_ATTEMPT", "png", "sse_data", "sse_json", "stream_chat", "wait_for"]

# a region and static credentials, so boto3 never looks further (the Bedrock fakes answer its requests)
AWS_ENV = {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# one attempt per model and breakers that never open: a test sees exactly the upstream's answer
SINGLE_ATTEMPT = {"SKYLANE_MAX_ATTEMPTS": "1", "SKYLANE_BREAKER_FAILURES": "100000"}


def png(width: int = 1, height: int = 1) -> bytes:
    """A real (tiny, red) PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PNG = png()
PNG_B64 = base64.b64encode(PNG).decode()


def sse_data(text: str, *, strict: bool = False) -> list[str]:
    """The `data` of each server-sent event in `text` (multi-line data joined with "\\n"; `event:`,
    `id:` and comment lines skipped). With `strict`, every line of the stream must be a data line."""
    events: list[str] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = [ln for ln in block.split("\n") if ln]
        if not lines:
            continue
        if strict:
            assert all(ln.startswith("data: ") for ln in lines), block[:300]
        data = [ln[6:] if ln.startswith("data: ") else ln[5:] for ln in lines if ln.startswith("data:")]
        if data:
            events.append("\n".join(data))
    return events


def sse_json(text: str) -> list[Any]:
    """Each event's data parsed as JSON; the `[DONE]` marker kept as the string."""
    return [d if d == "[DONE]" else json.loads(d) for d in sse_data(text)]


def stream_chat(gw: str, body: dict[str, Any], timeout: float = 30,
                path: str = "/v1/chat/completions") -> tuple[httpx.Response, list[Any]]:
    """POST a streaming request; the response and its decoded events ([] when the status is not 200)."""
    with httpx.stream("POST", gw + path, json={**body, "stream": True}, timeout=timeout) as r:
        raw = r.read().decode()
    if r.status_code != 200:
        return r, []
    return r, sse_json(raw)


def wait_for[T](fn: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll until fn() is truthy (e.g. settlement, which runs after the response); its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
