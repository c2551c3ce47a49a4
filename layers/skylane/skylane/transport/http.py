"""The HTTP client for provider calls: one per event loop, so connections are reused.

Both clients have the same calling conventions (httpx's: `post`, `build_request` + `send(stream=True)`,
answers' `status_code`/`headers`/`content`/`json`/`aread`/`aiter_raw`/`aclose`) and raise
transport/errors.py's errors, which the pipeline maps (pipeline/attempt.py). `SKYLANE_HTTP_TRANSPORT`:

    h1     (default) transport/h1.py: Skylane's HTTP/1.1 client on asyncio protocols and httptools —
           a fraction of a general-purpose client's CPU per call (make bench measures both)
    httpx  httpx.AsyncClient on httpcore (imported only then), its errors mapped one for one
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from skylane.core.settings import Settings
from skylane.transport import errors
from skylane.transport.h1 import H1Client

if TYPE_CHECKING:
    import httpx

__all__ = ["aclose_client", "get_client"]

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()

_MAX_CONNECTIONS, _MAX_KEEPALIVE, _KEEPALIVE_EXPIRY = 256, 64, 30.0


def _read_timeout(settings: Settings) -> float:
    # reads are bounded by the first-token and idle timeouts (pipeline/attempt.py); this is a backstop
    return max(settings.first_token_timeout, settings.idle_timeout) + 1.0


def get_client(settings: Settings) -> Any:
    """This event loop's client (see above), made on first use."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is not None and not client.is_closed:
        return client
    if settings.http_transport == "httpx":
        client = _HttpxClient(settings)
    else:
        client = H1Client(connect_timeout=settings.connect_timeout, read_timeout=_read_timeout(settings),
                          max_connections=_MAX_CONNECTIONS, max_keepalive=_MAX_KEEPALIVE,
                          keepalive_expiry=_KEEPALIVE_EXPIRY)
    _clients[loop] = client
    return client


async def aclose_client() -> None:
    """Close this event loop's client (app shutdown)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


# ---- httpx, with its errors as the transport's ------------------------------------------------------


def _mapped_error(exc: Exception) -> errors.TransportError | None:
    import httpx

    if not isinstance(exc, httpx.HTTPError):
        return None
    kinds: list[tuple[type[Exception], type[errors.TransportError]]] = [
        (httpx.PoolTimeout, errors.PoolTimeout), (httpx.ConnectTimeout, errors.ConnectTimeout),
        (httpx.TimeoutException, errors.ReadTimeout), (httpx.ConnectError, errors.ConnectError),
        (httpx.RemoteProtocolError, errors.RemoteProtocolError), (httpx.UnsupportedProtocol, errors.UnsupportedURL),
        (httpx.InvalidURL, errors.UnsupportedURL), (httpx.LocalProtocolError, errors.LocalProtocolError),
        (httpx.NetworkError, errors.ReadError),
    ]
    for theirs, ours in kinds:
        if isinstance(exc, theirs):
            return ours(str(exc) or type(exc).__name__)
    return errors.TransportError(str(exc) or type(exc).__name__)


@contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        mapped = _mapped_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


class _HttpxResponse:
    def __init__(self, inner: httpx.Response) -> None:
        self._inner = inner
        self.status_code = inner.status_code
        self.headers = inner.headers

    @property
    def content(self) -> bytes:
        return self._inner.content

    def json(self) -> Any:
        return self._inner.json()

    async def aread(self) -> bytes:
        with _mapped():
            return await self._inner.aread()

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        with _mapped():
            async for chunk in self._inner.aiter_raw():
                yield chunk

    async def aclose(self) -> None:
        with _mapped():
            await self._inner.aclose()


class _HttpxClient:
    def __init__(self, settings: Settings) -> None:
        import httpx

        self._inner = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=settings.connect_timeout, read=_read_timeout(settings),
                                  write=settings.connect_timeout + 30, pool=settings.connect_timeout),
            limits=httpx.Limits(max_connections=_MAX_CONNECTIONS, max_keepalive_connections=_MAX_KEEPALIVE,
                                keepalive_expiry=_KEEPALIVE_EXPIRY),
            follow_redirects=False, trust_env=False,
        )

    @property
    def is_closed(self) -> bool:
        return self._inner.is_closed

    def build_request(self, method: str, url: str, *, content: bytes = b"",
                      headers: Mapping[str, str] | None = None) -> Any:
        with _mapped():
            return self._inner.build_request(method, url, content=content, headers=headers)

    async def post(self, url: str, *, content: bytes = b"", headers: Mapping[str, str] | None = None) -> Any:
        with _mapped():
            return _HttpxResponse(await self._inner.post(url, content=content, headers=headers))

    async def send(self, request: Any, *, stream: bool = False) -> Any:
        with _mapped():
            return _HttpxResponse(await self._inner.send(request, stream=stream))

    async def aclose(self) -> None:
        await self._inner.aclose()
