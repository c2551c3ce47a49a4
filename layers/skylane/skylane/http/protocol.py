"""uvicorn's httptools protocol, with a response's head and first body bytes in one socket write.

uvicorn writes the status line and headers as soon as the app sends `http.response.start`, and the
body with the next message: two system calls, two TCP segments, two wake-ups of the reader (the
Lambda Web Adapter, or any client) for one small JSON answer. Here the head waits — only until the
app's next write in the same event-loop turn, or the end of that turn — and leaves together with the
body. Nothing waits for I/O: a stream whose first event is not ready yet gets its head at the end of
the turn, as before. Everything else is uvicorn's (run.sh: `--http skylane.http.protocol:HttpProtocol`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HttpProtocol"]

_HEAD = b"HTTP/1.1 "


class _HeadWithBody:
    """The connection's transport, holding a response head for the rest of the event-loop turn."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif data.startswith(_HEAD):
            self._held = data
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_HeadWithBody(transport, self.loop))  # type: ignore[arg-type]
