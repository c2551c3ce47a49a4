"""Transport: the shared httpx.AsyncClient, timeouts, and driving an adapter for one attempt.

`complete()` sends one non-streaming attempt; `open_stream()` sends one streaming attempt and
returns only once the first translated chunk is in hand (or the stream ended), so everything
up to the first byte can still be retried. Time spent waiting on the provider is added to
`Timing.upstream`, which gives the gateway's own overhead.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from .catalog import Target
from .errors import SkylaneError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from .providers.base import Adapter, CallContext, StreamTranslator, UpstreamRequest
from .settings import Settings
from .streaming import decode_sse

__all__ = ["StreamHandle", "Timing", "aclose_client", "complete", "get_client", "open_stream"]

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()


def get_client(settings: Settings) -> httpx.AsyncClient:
    """One AsyncClient per process (per event loop), so connections are reused."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=settings.connect_timeout,
                read=settings.idle_timeout,
                write=settings.connect_timeout + 30,
                pool=settings.connect_timeout,
            ),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30),
            follow_redirects=False,
            trust_env=False,
        )
        _clients[loop] = client
    return client


async def aclose_client() -> None:
    """Close this event loop's client (app shutdown)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


@dataclass
class Timing:
    upstream: float = 0.0  # seconds spent waiting on providers
    first_token_at: float | None = None


def _transport_error(exc: Exception, provider: str) -> SkylaneError:
    if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError | TimeoutError):
        return UpstreamTimeout(f"Provider '{provider}' did not answer in time.", provider=provider)
    if isinstance(exc, httpx.ConnectError):
        return UpstreamUnavailable(f"Could not connect to provider '{provider}'.", provider=provider)
    return UpstreamError(f"The connection to provider '{provider}' failed ({type(exc).__name__}).",
                         provider=provider)


async def complete(
    adapter: Adapter,
    target: Target,
    request: UpstreamRequest,
    ctx: CallContext,
    settings: Settings,
    timing: Timing,
) -> dict[str, Any]:
    provider = target.provider.name
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(settings.first_token_timeout):
            if adapter.transport is not None:
                return await adapter.transport.complete(request, ctx)
            client = get_client(settings)
            resp = await client.post(request.url, content=json.dumps(request.body).encode(),
                                     headers=request.headers)
    except SkylaneError:
        raise
    except (httpx.HTTPError, TimeoutError, OSError) as exc:
        raise _transport_error(exc, provider) from None
    finally:
        timing.upstream += time.perf_counter() - t0
    if resp.status_code >= 400:
        raise adapter.map_error(resp.status_code, resp.content, resp.headers, provider)
    try:
        data = resp.json()
    except ValueError:
        raise UpstreamError(f"Provider '{provider}' answered with a body that is not JSON.",
                            provider=provider) from None
    if not isinstance(data, dict):
        raise UpstreamError(f"Provider '{provider}' answered with unexpected JSON.", provider=provider)
    return data


@dataclass
class StreamHandle:
    """An upstream stream that has produced its first chunk(s)."""

    target: Target
    translator: StreamTranslator
    pending: list[dict[str, Any]]
    events: AsyncIterator[Any]
    timing: Timing
    provider: str
    _closers: list[Any] = field(default_factory=list)
    ended: bool = False  # the upstream stream is exhausted

    async def chunks(self) -> AsyncIterator[dict[str, Any]]:
        """The translated chunks: those already read, then the rest as they arrive."""
        for c in self.pending:
            yield c
        self.pending = []
        translator = self.translator
        events = self.events
        timing = self.timing
        while not translator.done and not self.ended:
            t0 = time.perf_counter()
            try:
                event = await anext(events)
            except StopAsyncIteration:
                self.ended = True
                break
            except SkylaneError:
                raise
            except (httpx.HTTPError, TimeoutError, OSError) as exc:
                raise _transport_error(exc, self.provider) from None
            finally:
                timing.upstream += time.perf_counter() - t0
            for c in translator.feed(event):
                yield c
        if not translator.done:
            raise UpstreamError(f"The stream from provider '{self.provider}' ended unexpectedly.",
                                provider=self.provider)
        for c in translator.finish():
            yield c

    async def aclose(self) -> None:
        closers, self._closers = self._closers, []
        await _close_all(closers)


async def _http_events(resp: httpx.Response) -> AsyncIterator[Any]:
    async for event in decode_sse(resp.aiter_raw()):
        yield event


async def open_stream(
    adapter: Adapter,
    target: Target,
    request: UpstreamRequest,
    translator: StreamTranslator,
    ctx: CallContext,
    settings: Settings,
    timing: Timing,
) -> StreamHandle:
    """Start a stream and read until the first translated chunk (all of it retryable)."""
    provider = target.provider.name
    closers: list[Any] = []
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(settings.first_token_timeout):
            if adapter.transport is not None:
                events: AsyncIterator[Any] = adapter.transport.stream(request, ctx)
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    closers.append(aclose)
            else:
                client = get_client(settings)
                req = client.build_request(
                    "POST", request.url, content=json.dumps(request.body).encode(), headers=request.headers
                )
                resp = await client.send(req, stream=True)
                closers.append(resp.aclose)
                if resp.status_code >= 400:
                    body = await resp.aread()
                    raise adapter.map_error(resp.status_code, body, resp.headers, provider)
                events = _http_events(resp)
            pending: list[dict[str, Any]] = []
            ended = False
            while not pending and not translator.done:
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    ended = True
                    break
                pending.extend(translator.feed(event))
            if not pending and not translator.done:
                raise UpstreamError(f"Provider '{provider}' closed the stream without an answer.",
                                    provider=provider)
    except SkylaneError:
        await _close_all(closers)
        raise
    except (httpx.HTTPError, TimeoutError, OSError) as exc:
        await _close_all(closers)
        raise _transport_error(exc, provider) from None
    finally:
        timing.upstream += time.perf_counter() - t0
    timing.first_token_at = time.perf_counter()
    return StreamHandle(target=target, translator=translator, pending=pending, events=events,
                        timing=timing, provider=provider, _closers=closers, ended=ended)


async def _close_all(closers: list[Any]) -> None:
    for closer in closers:
        try:
            await closer()
        except Exception:  # noqa: S110 - closing a dead connection must not fail the request
            pass
