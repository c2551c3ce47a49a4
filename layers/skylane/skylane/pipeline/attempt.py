"""One attempt: driving an adapter over its transport, with the connect, first-token and idle timeouts.

`complete()` sends one non-streaming attempt; `open_stream()` sends one streaming attempt and
returns only once the first chunk that carries something (text, a tool call, a finish reason)
is in hand, or the stream ended properly: everything up to then can still be retried, because
nothing has reached the client.

Timeouts (all from settings, all also bounded by the request's deadline):

- connect: the TCP/TLS connect (the client's connect timeout, and the pool wait);
- first token: from sending the request to that first committed chunk (streams), or to the
  whole answer (non-streaming: the answer is the first byte);
- idle: the longest wait for the next stream event after the first token;
- total: the request's deadline; an attempt or a wait cut short by it raises the
  `budget_exhausted` timeout, which is never retried.

Time spent waiting on the provider is added to `Timing.upstream`, which gives the gateway's
own overhead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio

from skylane.core.catalog import Target
from skylane.core.errors import SkylaneError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from skylane.core.settings import Settings
from skylane.pipeline.router import budget_exhausted
from skylane.providers.base import Adapter, CallContext, StreamTranslator
from skylane.transport import errors
from skylane.transport.base import UpstreamRequest
from skylane.transport.http import get_client
from skylane.transport.sse import decode_json, decode_sse_batches, encode_json

__all__ = ["StreamHandle", "Timing", "complete", "open_stream"]

@dataclass
class Timing:
    upstream: float = 0.0  # seconds spent waiting on providers
    first_token_at: float | None = None


def _limit(timeout: float, deadline: float | None) -> tuple[float, bool]:
    """The wait allowed: `timeout`, or less when the deadline is nearer (then True)."""
    if deadline is None:
        return timeout, False
    left = deadline - time.monotonic()
    if left < timeout:
        return max(0.0, left), True
    return timeout, False


def _transport_error(exc: BaseException, provider: str, settings: Settings) -> SkylaneError:
    if isinstance(exc, errors.ConnectTimeout):  # a pool timeout too
        return UpstreamTimeout(
            f"Could not connect to provider '{provider}' within {settings.connect_timeout:g} s.", provider=provider
        )
    if isinstance(exc, errors.ReadTimeout | TimeoutError):
        return UpstreamTimeout(f"Provider '{provider}' did not answer in time.", provider=provider)
    if isinstance(exc, errors.ConnectError):
        return UpstreamUnavailable(f"Could not connect to provider '{provider}'.", provider=provider)
    return UpstreamError(f"The connection to provider '{provider}' failed ({type(exc).__name__}).",
                         provider=provider)


def _first_token_timeout(provider: str, settings: Settings) -> UpstreamTimeout:
    return UpstreamTimeout(
        f"Provider '{provider}' did not start answering within {settings.first_token_timeout:g} s.",
        provider=provider,
    )


async def complete(
    adapter: Adapter,
    target: Target,
    request: UpstreamRequest,
    ctx: CallContext,
    settings: Settings,
    timing: Timing,
    deadline: float | None = None,
) -> dict[str, Any]:
    provider = target.provider.name
    wait, by_budget = _limit(settings.first_token_timeout, deadline)
    if wait <= 0:
        raise budget_exhausted()
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(wait):
            if adapter.transport is not None:
                return await adapter.transport.complete(request, ctx)
            client = get_client(settings)
            resp = await client.post(request.url, content=encode_json(request.body),
                                     headers=request.headers)
    except SkylaneError:
        raise
    except TimeoutError:
        raise (budget_exhausted() if by_budget else _first_token_timeout(provider, settings)) from None
    except (errors.TransportError, OSError) as exc:
        raise _transport_error(exc, provider, settings) from None
    finally:
        timing.upstream += time.perf_counter() - t0
    if resp.status_code >= 400:
        raise adapter.map_error(resp.status_code, resp.content, resp.headers, provider)
    try:
        data = decode_json(resp.content)
    except ValueError:
        raise UpstreamError(f"Provider '{provider}' answered with a body that is not JSON.",
                            provider=provider) from None
    if not isinstance(data, dict):
        raise UpstreamError(f"Provider '{provider}' answered with unexpected JSON.", provider=provider)
    return data


def _substantive(chunk: dict[str, Any] | bytes) -> bool:
    """Whether a chunk carries something a client would see as the answer starting (a relayed
    native event always does: it may already be on its way)."""
    if isinstance(chunk, bytes):
        return bool(chunk)
    for choice in chunk.get("choices") or ():
        if choice.get("finish_reason") is not None:
            return True
        delta = choice.get("delta") or {}
        for key, value in delta.items():
            if key != "role" and value:
                return True
    return False


@dataclass
class StreamHandle:
    """An upstream stream that has produced its first answer chunk(s)."""

    target: Target
    translator: StreamTranslator
    pending: list[Any]
    events: AsyncIterator[list[Any]]  # one list of upstream events per network read
    timing: Timing
    provider: str
    settings: Settings
    deadline: float | None = None
    _closers: list[Any] = field(default_factory=list)
    ended: bool = False  # the upstream stream is exhausted
    native: bool = False  # chunks are the provider's own events, framed for the client (passthrough)
    leftover: list[Any] = field(default_factory=list)  # events read with the first answer, not yet translated

    async def _next(self) -> Any:
        wait, by_budget = _limit(self.settings.idle_timeout, self.deadline)
        if wait <= 0:
            raise budget_exhausted("stream")
        try:
            async with asyncio.timeout(wait):
                return await anext(self.events)
        except TimeoutError:
            if by_budget:
                raise budget_exhausted("stream") from None
            raise UpstreamTimeout(
                f"Provider '{self.provider}' stopped sending for {self.settings.idle_timeout:g} s mid-stream.",
                provider=self.provider,
            ) from None

    async def batches(self) -> AsyncIterator[list[Any]]:
        """The translated chunks (internal chunk dicts; framed bytes for native relays), a list per
        upstream read: those already read first, then the rest as they arrive. What arrived together
        leaves together (one write to the client), and nothing waits for more."""
        if self.pending:
            yield self.pending
        self.pending = []
        translator = self.translator
        timing = self.timing
        while not translator.done and not self.ended:
            t0 = time.perf_counter()
            try:
                if self.leftover:
                    batch, self.leftover = self.leftover, []
                else:
                    batch = await self._next()
            except StopAsyncIteration:
                self.ended = True
                break
            except SkylaneError:
                raise
            except (errors.TransportError, OSError) as exc:
                raise _transport_error(exc, self.provider, self.settings) from None
            finally:
                timing.upstream += time.perf_counter() - t0
            out: list[Any] = []
            for event in batch:
                if translator.done:
                    break
                out.extend(translator.feed(event))
            if out:
                yield out
        if not translator.done:
            raise UpstreamError(f"The stream from provider '{self.provider}' ended unexpectedly.",
                                provider=self.provider)
        tail = translator.finish()
        if tail:
            yield tail

    async def chunks(self) -> AsyncIterator[Any]:
        """The translated chunks one by one (see `batches`)."""
        async for batch in self.batches():
            for c in batch:
                yield c

    async def aclose(self) -> None:
        """Close the upstream connection now (idempotent; safe while being cancelled)."""
        closers, self._closers = self._closers, []
        await _close_all(closers)


async def _http_events(resp: Any) -> AsyncIterator[list[Any]]:
    async for batch in decode_sse_batches(resp.aiter_raw()):
        yield batch


async def _one_by_one(events: AsyncIterator[Any]) -> AsyncIterator[list[Any]]:
    """A transport that hands over events one at a time (Bedrock's boto3 stream): batches of one."""
    try:
        async for event in events:
            yield [event]
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def open_stream(
    adapter: Adapter,
    target: Target,
    request: UpstreamRequest,
    translator: StreamTranslator,
    ctx: CallContext,
    settings: Settings,
    timing: Timing,
    deadline: float | None = None,
) -> StreamHandle:
    """Start a stream and read until the answer begins (all of it retryable)."""
    provider = target.provider.name
    wait, by_budget = _limit(settings.first_token_timeout, deadline)
    if wait <= 0:
        raise budget_exhausted()
    closers: list[Any] = []
    pending: list[Any] = []
    leftover: list[Any] = []
    ended = False
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(wait):
            if adapter.transport is not None:
                events: AsyncIterator[list[Any]] = _one_by_one(adapter.transport.stream(request, ctx))
            else:
                client = get_client(settings)
                req = client.build_request(
                    "POST", request.url, content=encode_json(request.body), headers=request.headers
                )
                resp = await client.send(req, stream=True)
                closers.append(resp.aclose)
                if resp.status_code >= 400:
                    body = await resp.aread()
                    raise adapter.map_error(resp.status_code, body, resp.headers, provider)
                events = _http_events(resp)
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                closers.insert(0, aclose)
            while not translator.done:
                try:
                    batch = await anext(events)
                except StopAsyncIteration:
                    ended = True
                    break
                started = False
                for i, event in enumerate(batch):
                    if translator.done:
                        break
                    fresh = translator.feed(event)
                    pending.extend(fresh)
                    if any(_substantive(c) for c in fresh):
                        # the answer has begun: the rest of this read belongs to the stream (an error
                        # event in it is a mid-stream error, not a failed attempt)
                        leftover = batch[i + 1:]
                        started = True
                        break
                if started:
                    break
            if ended and not translator.done:
                raise UpstreamError(f"Provider '{provider}' closed the stream before answering.",
                                    provider=provider)
    except SkylaneError:
        await _close_all(closers)
        raise
    except TimeoutError:
        await _close_all(closers)
        raise (budget_exhausted() if by_budget else _first_token_timeout(provider, settings)) from None
    except (errors.TransportError, OSError) as exc:
        await _close_all(closers)
        raise _transport_error(exc, provider, settings) from None
    except BaseException:  # cancelled: the client left or the request is being torn down
        await _close_all(closers)
        raise
    finally:
        timing.upstream += time.perf_counter() - t0
    timing.first_token_at = time.perf_counter()
    return StreamHandle(target=target, translator=translator, pending=pending, events=events, leftover=leftover,
                        timing=timing, provider=provider, settings=settings, deadline=deadline,
                        _closers=closers, ended=ended)


async def _close_all(closers: list[Any]) -> None:
    """Run closers shielded from cancellation: a cancelled request must still drop its connection."""
    with anyio.CancelScope(shield=True):
        for closer in closers:
            try:
                await closer()
            except Exception:  # noqa: S110 - closing a dead connection must not fail the request
                pass
        closers.clear()
