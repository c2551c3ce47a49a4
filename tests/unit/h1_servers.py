"""Raw loopback HTTP/1.1 servers and client helpers for the tests of the gateway's own client
(tests/unit/test_h1_wire.py, tests/unit/test_h1_pool.py): `serving(handler)` starts an asyncio server on
127.0.0.1 whose handler writes exact bytes, and yields its `Wire` — the TCP connections it accepted and
every request it received, byte for byte; a handler gets a `Peer` (one accepted connection: read a
request, send bytes, hang). `pool(...)` is a real, unpatched H1Client with short timeouts, closed
afterwards; `aio` turns an async test into a plain one run in a fresh event loop; `ok`, `replies` and
`silent` build answers and handlers; `head_lines` splits a recorded request's head into its lines.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from skylane.transport.h1 import H1Client

__all__ = ["Handler", "Peer", "Wire", "aio", "head_lines", "ok", "pool", "replies", "serving", "silent"]


class Wire:
    """A raw server's record: connections accepted, requests received (head and body bytes)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.port = 0
        self.connections = 0
        self.requests: list[bytes] = []
        self.errors: list[BaseException] = []
        self.tasks: set[asyncio.Task[Any]] = set()

    def url(self, path: str = "/v1/x", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self.handler(Peer(self, reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:  # a broken handler must fail its test, not vanish in a log line
            self.errors.append(exc)
        finally:
            writer.close()
            self.tasks.discard(task)


class Peer:
    """The server's side of one accepted connection (`number`: 1 for the first the server accepted)."""

    def __init__(self, wire: Wire, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.wire, self.reader, self.writer, self.number = wire, reader, writer, wire.connections

    async def request(self) -> bytes | None:
        """One request (head and content-length body), recorded; None when the client closed first."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        request = head + await self.reader.readexactly(length)
        self.wire.requests.append(request)
        return request

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def hang(self) -> None:
        """Say nothing until the client hangs up."""
        await self.reader.read()


Handler = Callable[[Peer], Awaitable[None]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[Wire]:
    wire = Wire(handler)
    server = await asyncio.start_server(wire.serve, "127.0.0.1", 0)
    wire.port = server.sockets[0].getsockname()[1]
    try:
        yield wire
    finally:
        server.close()
        for task in list(wire.tasks):
            task.cancel()
        await asyncio.gather(*wire.tasks, return_exceptions=True)
        await server.wait_closed()
    assert not wire.errors, wire.errors


@asynccontextmanager
async def pool(**options: Any) -> AsyncIterator[H1Client]:
    client = H1Client(**{"connect_timeout": 0.5, "read_timeout": 0.5, **options})
    try:
        yield client
    finally:
        await client.aclose()
        await asyncio.sleep(0.01)  # let the closed transports finish closing


def aio(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """A plain (sync) pytest test that runs the async one in a fresh event loop."""

    def sync_test() -> None:
        asyncio.run(test())

    sync_test.__name__ = test.__name__
    return sync_test


def ok(body: bytes, *headers: bytes, status: bytes = b"200 OK") -> bytes:
    extra = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 %s\r\ncontent-length: %d\r\n%s\r\n%s" % (status, len(body), extra, body)


def replies(*answers: bytes, close_after: bool = False) -> Handler:
    """Answers the n-th request the server receives (over all connections) with answers[n] (the last repeats)."""

    async def handler(c: Peer) -> None:
        while await c.request() is not None:
            await c.send(answers[min(len(c.wire.requests), len(answers)) - 1])
            if close_after:
                return

    return handler


async def silent(c: Peer) -> None:
    """Reads the request and never answers (until the client hangs up)."""
    await c.request()
    await c.hang()


def head_lines(request: bytes) -> list[bytes]:
    return request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
