"""Skylane's HTTP/1.1 client for the calls to providers: asyncio protocols and httptools' parser.

It has the part of httpx's API the gateway uses — `post(url, content=, headers=)`,
`build_request(...)` + `send(request, stream=True)`, and answers with `status_code`, `headers`,
`content`, `json()`, `aread()`, `aiter_raw()` and `aclose()` — and none of what a general-purpose
client does per request that a gateway's provider calls do not need (URL and header models, auth,
redirect and cookie flows, event hooks): one request is one socket write, and the answer is parsed in
C as it arrives (transport/h1_wire.py). Errors are transport/errors.py's.

Connections: one pool per client, keyed by scheme, host and port; idle connections are reused newest
first and closed after `keepalive_expiry` seconds or when the provider closes them. A request on a
reused connection that the provider closed before answering is sent once more on a fresh one (no
byte of an answer came: nothing of it was processed). TLS verifies against certifi's roots, as httpx.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from skylane.transport.errors import ConnectError, ConnectTimeout, PoolTimeout, ReadError, RemoteProtocolError
from skylane.transport.h1_wire import Connection, Origin, request_head
from skylane.transport.sse import decode_json

__all__ = ["H1Client", "H1Request", "H1Response", "Headers"]

_ORIGINS_CACHED = 512


class Headers(dict[str, str]):
    """An answer's headers: names in lower case, looked up in any case; repeated ones joined by ", "."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        super().__init__()
        for name, value in raw:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            super().__setitem__(key, f"{self[key]}, {text}" if key in self else text)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


class _Decoder:
    """A gzip or deflate body, decoded as it arrives (deflate with its zlib header or without, as sent:
    told apart by its first two bytes); what does not decode is the provider's protocol error."""

    def __init__(self, deflate: bool) -> None:
        self._inner = zlib.decompressobj(zlib.MAX_WBITS | 32)
        self._sniff: bytes | None = b"" if deflate else None  # a deflate body's first bytes, until 2 are in

    def feed(self, data: bytes) -> bytes:
        if self._sniff is not None:
            data = self._sniff + data
            if len(data) < 2:
                self._sniff = data
                return b""
            self._sniff = None
            if (data[0] & 0x0F) != 8 or int.from_bytes(data[:2]) % 31:  # no zlib header (RFC 1950)
                self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            return self._inner.decompress(data)
        except zlib.error as exc:
            raise RemoteProtocolError(f"The answer's compressed body does not decode: {exc}") from None

    def end(self) -> bytes:
        try:
            tail = self.feed(b"") if self._sniff else b""
            return tail + self._inner.flush()
        except zlib.error as exc:
            raise RemoteProtocolError(f"The answer's compressed body does not decode: {exc}") from None


class H1Request:
    __slots__ = ("content", "headers", "method", "url")

    def __init__(self, method: str, url: str, content: bytes, headers: Mapping[str, str]) -> None:
        self.method = method
        self.url = url
        self.content = content
        self.headers = headers


class H1Response:
    """An answer: status and headers at once; the body read whole (`aread`) or as it comes (`aiter_raw`)."""

    def __init__(self, client: H1Client, conn: Connection) -> None:
        self._client = client
        self._conn: Connection | None = conn
        self.status_code = conn.status
        self._raw_headers = conn.raw_headers
        self._headers: Headers | None = None
        self._content: bytes | None = None
        encoding = next((v for n, v in conn.raw_headers if n.lower() == b"content-encoding"), b"").strip().lower()
        self._decoder = _Decoder(encoding == b"deflate") if encoding in (b"gzip", b"deflate") else None

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self._raw_headers)
        return self._headers

    @property
    def content(self) -> bytes:
        if self._content is None:
            raise RuntimeError("The answer's body has not been read (aread).")
        return self._content

    def json(self) -> Any:
        return decode_json(self.content)

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives: everything buffered at each step in one piece."""
        conn = self._conn
        if conn is None:
            if self._content:
                yield self._content
            return
        timeout = self._client.read_timeout
        try:
            while True:
                if conn.chunks:
                    data = conn.take()
                    if self._decoder is not None:
                        data = self._decoder.feed(data)
                    if data:
                        yield data
                    continue
                if conn.complete:
                    break
                await conn.wait(timeout)
            if self._decoder is not None:
                tail = self._decoder.end()
                if tail:
                    yield tail
        finally:
            await self.aclose()

    async def aread(self) -> bytes:
        if self._content is None:
            self._content = b"".join([part async for part in self.aiter_raw()])
        return self._content

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client._release(conn)


class H1Client:
    """A pool of HTTP/1.1 connections with httpx's calling conventions (see the module's docstring)."""

    def __init__(self, *, connect_timeout: float, read_timeout: float, max_connections: int = 256,
                 max_keepalive: int = 64, keepalive_expiry: float = 30.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._max = max_connections
        self._max_idle = max_keepalive
        self._expiry = keepalive_expiry
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._all: set[Connection] = set()  # every open connection, idle or carrying an answer
        self._idle_count = 0
        self._open = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._origins: dict[str, Origin] = {}
        self.is_closed = False

    def build_request(self, method: str, url: str, *, content: bytes = b"",
                      headers: Mapping[str, str] | None = None) -> H1Request:
        return H1Request(method, url, content, headers or {})

    async def post(self, url: str, *, content: bytes = b"", headers: Mapping[str, str] | None = None) -> H1Response:
        return await self.send(H1Request("POST", url, content, headers or {}))

    async def send(self, request: H1Request, *, stream: bool = False) -> H1Response:
        origin = self._origin(request.url)
        body = request.content
        head = request_head(request.method, origin, request.headers, len(body))
        for _ in range(2):
            conn = await self._acquire(origin)
            reused = conn.used
            conn.used = True
            conn.reset()
            transport = conn.transport
            if transport is None:  # pragma: no cover - create_connection returns connected protocols
                raise ReadError("The connection to the provider is closed.")
            try:
                if len(body) < 65536:
                    transport.write(head + body)
                else:
                    transport.writelines((head, body))
                while not conn.headers_done:
                    await conn.wait(self.read_timeout)
            except ReadError:
                self._discard(conn)
                if reused and not conn.got_bytes:
                    continue  # the provider closed an idle connection as the request went out: once more
                raise
            except BaseException:
                self._discard(conn)
                raise
            response = H1Response(self, conn)
            if not stream:
                await response.aread()
            return response
        raise ReadError("The provider closed the connection before answering.")

    async def aclose(self) -> None:
        """Close every connection, those still carrying an answer too (their readers get ReadError)."""
        self.is_closed = True
        for conn in list(self._all):
            self._discard(conn)
        self._idle.clear()
        self._idle_count = 0

    # ---- the pool ----

    def _origin(self, url: str) -> Origin:
        origin = self._origins.get(url)
        if origin is None:
            origin = Origin(url)
            if len(self._origins) >= _ORIGINS_CACHED:
                self._origins.clear()
            self._origins[url] = origin
        return origin

    async def _acquire(self, origin: Origin) -> Connection:
        while True:
            idle = self._idle.get(origin.key)
            now = time.monotonic()
            while idle:
                conn = idle.pop()
                self._idle_count -= 1
                if not conn.closed and now - conn.idle_since < self._expiry:
                    return conn
                self._discard(conn)
            if self.is_closed:
                raise ConnectError("The client is closed.")
            if self._open >= self._max and self._idle_count:
                self._evict_idle()  # at the limit with idle connections elsewhere: one of them makes room
            if self._open < self._max:
                break
            await self._wait_for_slot()
        self._open += 1
        try:
            return await self._connect(origin)
        except BaseException:
            self._open -= 1
            self._wake_waiter()
            raise

    def _evict_idle(self) -> None:
        """Close the longest-idle connection of any origin."""
        oldest = min((conns for conns in self._idle.values() if conns), key=lambda conns: conns[0].idle_since)
        conn = oldest.pop(0)
        self._idle_count -= 1
        self._discard(conn)

    async def _wait_for_slot(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.connect_timeout):
                await waiter
        except TimeoutError:
            raise PoolTimeout("No connection to the provider was free in time.") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake_waiter(self) -> None:
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            import certifi

            self._ssl = ssl.create_default_context(cafile=certifi.where())
            self._ssl.set_alpn_protocols(["http/1.1"])
        return self._ssl

    async def _connect(self, origin: Origin) -> Connection:
        loop = asyncio.get_running_loop()
        tls = self._tls() if origin.tls else None
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(origin.key), origin.host, origin.port, ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
        except TimeoutError:
            raise ConnectTimeout(f"Timed out connecting to {origin.host}:{origin.port}.") from None
        except OSError as exc:  # refused, unreachable, DNS, a failed TLS handshake (ssl.SSLError)
            raise ConnectError(f"Could not connect to {origin.host}:{origin.port}: {type(exc).__name__}") from None
        self._all.add(conn)
        return conn

    def _release(self, conn: Connection) -> None:
        if self.is_closed or not conn.reusable() or self._idle_count >= self._max_idle:
            self._discard(conn)
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.key, []).append(conn)
        self._idle_count += 1
        self._wake_waiter()

    def _discard(self, conn: Connection) -> None:
        conn.close()
        self._all.discard(conn)
        if conn.counted:
            conn.counted = False
            self._open -= 1
            self._wake_waiter()
