"""Test helpers shared by the suites (one copy each): SSE reading, chat streams over httpx."""

from __future__ import annotations

import json
from typing import Any

import httpx

__all__ = ["sse_data", "sse_json", "stream_chat"]


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
