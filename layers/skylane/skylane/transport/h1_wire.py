"""HTTP/1.1 on the wire for transport/h1.py: a URL's request line and Host, a request's head, and one
keep-alive connection (an asyncio protocol) whose answers httptools parses as they arrive."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

from skylane.transport.errors import LocalProtocolError, ReadError, ReadTimeout, RemoteProtocolError, UnsupportedURL

__all__ = ["Connection", "Origin", "request_head"]

_PAUSE_AT = 1 << 20  # buffered answer bytes at which the socket stops being read until the reader catches up
_UNSENDABLE = ("\r", "\n", "\0")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a header name (RFC 9110 token)
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection"})  # this client's to set


class Origin:
    """What a URL turns into, once per URL: where to connect, and its request line's target and Host."""

    __slots__ = ("host", "key", "port", "prefix", "tls")

    def __init__(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise UnsupportedURL(f"Invalid URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UnsupportedURL("The URL is not http(s) with a host.")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = port or (443 if self.tls else 80)
        self.key = (parts.scheme, self.host, self.port)
        name = f"[{self.host}]" if ":" in self.host else self.host
        host_header = name if port is None or port == (443 if self.tls else 80) else f"{name}:{port}"
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if any(c in target or c in host_header for c in (" ", *_UNSENDABLE)) or not target.isascii():
            raise LocalProtocolError("The URL's path or host holds characters a request line cannot carry.")
        self.prefix = f" {target} HTTP/1.1\r\nhost: {host_header}\r\n"


def request_head(method: str, origin: Origin, headers: Mapping[str, str], length: int) -> bytes:
    """The request line and headers, with the body's length (every request here has a body). Host,
    the length and the connection's framing are this client's: a caller's own are left out."""
    lines = [method, origin.prefix]
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or not value.isascii() or any(c in value for c in _UNSENDABLE):
            raise LocalProtocolError(f"Header {name[:40]!r} holds characters a request cannot carry.")
        if name.lower() in _FRAMING:
            continue
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"content-length: {length}\r\n\r\n")
    return "".join(lines).encode("ascii")


class Connection(asyncio.Protocol):
    """One keep-alive connection and the answer being read on it."""

    def __init__(self, key: tuple[str, str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.used = False  # has carried a request before: a failure without an answer may be retried
        self.counted = True  # counted in the pool's open connections
        self.reset()

    def reset(self) -> None:
        """Ready for the next answer."""
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.until_close = False  # the body ends when the connection does (no length, not chunked)
        self.got_bytes = False
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    # ---- asyncio.Protocol ----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(RemoteProtocolError("The provider switched protocols."))
            self.close()
        except httptools.HttpParserError as exc:
            self._fail(RemoteProtocolError(f"Malformed answer: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.headers_done and self.until_close and not self.complete:
            self.complete = True
        elif not self.complete and self.error is None:
            self.error = ReadError("The provider closed the connection before the answer was complete.")
        self._wake()

    # ---- httptools' callbacks ----

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:  # an interim answer (103 Early Hints): the real one follows
            self.raw_headers = []
            return
        self.headers_done = True
        names = {name.lower() for name, _ in self.raw_headers}
        self.until_close = b"content-length" not in names and b"transfer-encoding" not in names \
            and self.status not in (204, 304)
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _PAUSE_AT and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.headers_done:  # the end of an interim answer
            return
        self.keep_alive = self.parser.should_keep_alive()  # meaningful only now, before the parser resets
        self.complete = True
        self._wake()

    # ---- the reader's side ----

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self._wake()

    async def wait(self, timeout: float) -> None:
        """Until the parser has something new (headers, body, the end) or the connection failed."""
        if self.error is not None:
            raise self.error
        if self.closed:
            if self.headers_done and self.until_close:
                self.complete = True
                return
            raise ReadError("The connection to the provider is closed.")
        loop = asyncio.get_running_loop()
        waiter = self.waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None
        if self.error is not None:
            raise self.error

    def take(self) -> bytes:
        """Everything of the body buffered so far, in one piece."""
        data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks = []
        self.buffered = 0
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return data

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None \
            and not self.until_close

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(ReadTimeout("Timed out waiting for the provider's answer."))
