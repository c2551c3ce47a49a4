"""The HTTP transport: one shared httpx.AsyncClient per event loop, so connections are reused.

The client keeps httpx's API; its transport is aiohttp's (httpx-aiohttp), which costs a fraction of
httpcore's CPU per request (`SKYLANE_HTTP_TRANSPORT=httpx` goes back to httpcore). aiohttp's errors
are re-raised as the httpx errors the rest of the gateway maps (`pipeline/attempt.py`), one for one:
a refused connection is `httpx.ConnectError` (503), a connect or pool timeout `httpx.ConnectTimeout`
(504), a read timeout `httpx.ReadTimeout`, a dropped connection `httpx.ReadError`, a TLS failure
`httpx.ConnectError` — as with httpcore.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx

from skylane.core.settings import Settings

__all__ = ["aclose_client", "get_client"]

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()

_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30)


def _httpx_error(exc: BaseException) -> httpx.HTTPError | None:
    """The httpx error an aiohttp error stands for (None: not an aiohttp transport error)."""
    import aiohttp

    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # connect, or the wait for a pooled connection
        return httpx.ConnectTimeout(str(exc) or "connect timeout")
    if isinstance(exc, aiohttp.ServerTimeoutError):  # a socket read timed out
        return httpx.ReadTimeout(str(exc) or "read timeout")
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, unreachable, DNS, TLS handshake
        return httpx.ConnectError(str(exc) or "connect error")
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return httpx.ReadError(str(exc) or "connection lost")
    if isinstance(exc, aiohttp.ClientError):
        return httpx.RemoteProtocolError(str(exc) or type(exc).__name__)
    return None


@contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except httpx.HTTPError as exc:
        # httpx-aiohttp's own mapping, e.g. a refused connection as ConnectTimeout: map from the cause
        cause = exc.__cause__
        mapped = _httpx_error(cause) if cause is not None else None
        if mapped is None:
            raise
        raise mapped from cause
    except Exception as exc:
        mapped = _httpx_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


class _MappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped():
            async for chunk in self._inner:
                yield chunk

    async def aclose(self) -> None:
        with _mapped():
            await self._inner.aclose()


def _aiohttp_transport() -> httpx.AsyncBaseTransport:
    from httpx_aiohttp import AiohttpTransport

    class Transport(AiohttpTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            with _mapped():
                response = await super().handle_async_request(request)
            stream = response.stream
            assert isinstance(stream, httpx.AsyncByteStream)
            response.stream = _MappedStream(stream)
            return response

    return Transport(trust_env=False, limits=_LIMITS)


def get_client(settings: Settings) -> httpx.AsyncClient:
    """One AsyncClient per process (per event loop), so connections are reused."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=settings.connect_timeout,
                # reads are bounded by the first-token and idle timeouts below; this is a backstop
                read=max(settings.first_token_timeout, settings.idle_timeout) + 1.0,
                write=settings.connect_timeout + 30,
                pool=settings.connect_timeout,
            ),
            limits=_LIMITS,
            follow_redirects=False,
            trust_env=False,
            transport=_aiohttp_transport() if settings.http_transport == "aiohttp" else None,
        )
        _clients[loop] = client
    return client


async def aclose_client() -> None:
    """Close this event loop's client (app shutdown)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
