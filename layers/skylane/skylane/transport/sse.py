"""Server-sent events, once for every adapter: decoding upstream streams, encoding to clients.

`decode_sse` turns an async byte stream into `SSEEvent`s (field parsing per the WHATWG
event-stream rules: `event:`, `data:` (joined by newlines), comments and `id:`/`retry:` ignored,
CR/LF/CRLF line ends). Adapters never see framing. `[DONE]` is delivered as an event; the
OpenAI translator ends on it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["DONE", "SSEEvent", "decode_sse", "decode_json", "decode_sse_batches", "encode_event", "encode_json"]

DONE = b"data: [DONE]\n\n"


@dataclass(slots=True)
class SSEEvent:
    event: str  # "message" when the stream names none
    data: str

    def json(self) -> Any:
        return decode_json(self.data)


async def decode_sse_batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[SSEEvent]]:
    """The events completed by each network read, together (a read may complete none: then nothing is
    yielded for it). The gateway translates and writes one read's events in one go."""
    buf = b""
    event = ""
    data: list[str] = []
    async for piece in chunks:
        if not piece:
            continue
        batch: list[SSEEvent] = []
        buf += piece
        hold_cr = False
        if b"\r" in buf:
            # normalise CRLF / CR; a trailing CR may be half of a CRLF split across pieces
            hold_cr = buf.endswith(b"\r")
            if hold_cr:
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line = buf[:nl].decode("utf-8", errors="replace")
            buf = buf[nl + 1 :]
            if not line:
                if data:
                    batch.append(SSEEvent(event or "message", "\n".join(data)))
                event, data = "", []
                continue
            if line[0] == ":":
                continue
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
        if hold_cr:
            buf += b"\r"
        if batch:
            yield batch
    # a final event without its blank line still counts (some servers close without it)
    tail_line = buf.decode("utf-8", errors="replace").strip("\r\n")
    if tail_line.startswith("data:"):
        value = tail_line[5:]
        data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield [SSEEvent(event or "message", "\n".join(data))]


async def decode_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    """The events of an SSE byte stream, one by one."""
    async for batch in decode_sse_batches(chunks):
        for event in batch:
            yield event




_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_dumps_ascii = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def decode_json(data: str | bytes) -> Any:
    """JSON text -> Python (orjson; the standard library for what orjson refuses but JSON allows,
    such as escaped lone surrogates). Raises ValueError for text that is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def encode_json(obj: Any) -> bytes:
    """Compact UTF-8 JSON (orjson); what orjson refuses — text with lone surrogates (legal in JSON
    escapes), integers beyond 64 bits, non-string keys — goes through the standard library, with \\u
    escapes when the text cannot be UTF-8."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        pass
    text = _dumps(obj)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _dumps_ascii(obj).encode()


def encode_event(obj: dict[str, Any]) -> bytes:
    return b"data: " + encode_json(obj) + b"\n\n"
