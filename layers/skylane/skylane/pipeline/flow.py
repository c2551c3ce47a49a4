"""A call's life, whatever the dialect.

body within the cap -> dialect.parse -> authenticate -> targets -> allow-list -> reserve limits ->
attempts (router: retries, fallbacks, breakers, deadline; abandoned when the client leaves) ->
answer or stream (rendered by the dialect) -> settle once -> one log line, one metrics record.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import anyio
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from skylane.core.catalog import Target
from skylane.core.errors import PayloadTooLarge, SkylaneError, UpstreamError
from skylane.core.redact import completion_text
from skylane.core.request import ChatRequest
from skylane.core.tokens import estimate_prompt_tokens
from skylane.pipeline.attempt import StreamHandle, complete, open_stream
from skylane.pipeline.billing import priced_targets
from skylane.pipeline.call import CLIENT_CLOSED_REQUEST, Call
from skylane.pipeline.contract import CallView, Dialect
from skylane.pipeline.operations import EMBEDDINGS, embed_attempt, targets_for
from skylane.pipeline.respond import JSONBytes, request_id
from skylane.pipeline.router import BUDGET_EXHAUSTED, budget_exhausted
from skylane.pipeline.state import AppState
from skylane.pipeline.usage import CompletionText, answer_text, complete_usage, with_cost
from skylane.providers import get_adapter

__all__ = ["error_response", "handle", "read_body"]

# Seconds kept back before the Lambda invocation's own deadline, so that the gateway (not Lambda's
# timeout) ends a request: time to send the error, close the upstream and settle usage.
LAMBDA_DEADLINE_MARGIN = 2.0


class _ClientGone(Exception):
    """The client disconnected before the answer started."""


def _usd(micros: int) -> str:
    return f"{micros / 1_000_000:.6f}"


def error_response(dialect: Dialect, err: SkylaneError, rid: str,
                   extra_headers: Mapping[str, str] | None = None) -> JSONBytes:
    headers = {"x-request-id": rid, **err.response_headers(), **(extra_headers or {})}
    return JSONBytes(dialect.error_body(err), status_code=dialect.error_status(err), headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body too large: {declared} bytes (limit {limit}).")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise PayloadTooLarge(f"Request body too large (limit {limit} bytes).")
    return bytes(body)


async def handle(request: Request, dialect: Dialect) -> Response:
    """Serve one request of `dialect` through the whole pipeline."""
    state: AppState = request.app.state.skylane
    call = Call(state, request, request_id(request), dialect)
    try:
        return await _handle(call)
    except SkylaneError as exc:
        call.status = exc.status
        await call.settle()
        return error_response(dialect, exc, call.rid, {**call.headers(), "x-skylane-overhead-ms": call.overhead_ms()})
    except _ClientGone:
        # nobody is listening: the attempt in flight was cancelled (its connection closed); the
        # provider may already have processed the prompt, so that is what gets counted
        call.status = CLIENT_CLOSED_REQUEST
        call.router.stream_ended("unknown")
        call.target = call.router.current
        if call.target is not None and call.req is not None:
            call.usage = await complete_usage(call.req, call.target, None, finished=False)
            call.cost_micros = call.price(call.target, call.usage)
        await call.settle()
        return Response(status_code=CLIENT_CLOSED_REQUEST)


def _lambda_deadline(headers: Mapping[str, str]) -> float | None:
    """The Lambda invocation's deadline (monotonic clock), from the Web Adapter's context header."""
    raw = headers.get("x-amzn-lambda-context")
    if not raw:
        return None
    try:
        ctx = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(ctx, dict):
        return None
    ms = ctx.get("deadline", ctx.get("deadline_ms"))
    if not isinstance(ms, int | float) or isinstance(ms, bool) or ms <= 0:
        return None
    return time.monotonic() + (ms / 1000 - time.time())


def _deadline(call: Call) -> float:
    """SKYLANE_TOTAL_TIMEOUT from the request's arrival, never past Lambda's own deadline (less a margin)."""
    deadline = call.started + call.state.settings.total_timeout
    lambda_deadline = _lambda_deadline(call.request.headers)
    if lambda_deadline is not None:
        deadline = min(deadline, lambda_deadline - LAMBDA_DEADLINE_MARGIN)
    return deadline


async def _client_left(request: Request) -> None:
    """Returns when the client disconnects (the request body has already been read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
        await asyncio.sleep(0.05)  # not expected after the body: never spin


async def _unless_client_leaves[T](request: Request, aw: Awaitable[T]) -> T:
    """Await `aw`, cancelling it (and so its upstream request) as soon as the client disconnects."""
    task = asyncio.ensure_future(aw)
    watcher = asyncio.ensure_future(_client_left(request))

    def client_left(w: asyncio.Future[None]) -> None:
        if not w.cancelled():
            task.cancel()

    watcher.add_done_callback(client_left)
    try:
        result = await task
    except asyncio.CancelledError:
        if watcher.done() and not watcher.cancelled():
            raise _ClientGone from None  # cancelled by the watcher, not from outside
        task.cancel()
        raise
    finally:
        watcher.remove_done_callback(client_left)
        watcher.cancel()
    if watcher.done() and not watcher.cancelled():  # the client left as the answer completed: nobody takes it
        aclose = getattr(result, "aclose", None)
        if aclose is not None:
            await aclose()
        raise _ClientGone
    return result


async def _handle(call: Call) -> Response:
    state = call.state
    settings = state.settings
    body = await read_body(call.request, settings.max_body_bytes)
    req = call.req = call.dialect.parse(body, settings)
    assert req.model is not None
    call.principal = await state.gate.auth.authenticate(call.request.headers)
    targets = call.router.targets(req.model, req.models)
    state.gate.auth.check_model(call.principal, targets[0].model.id)
    targets = [t for t in targets if state.gate.auth.may_use(call.principal, t.model.id)]
    targets = targets_for(call.dialect.operation, targets)  # the model kind the operation needs
    targets = priced_targets(call.principal, targets, settings)  # before any provider call
    first = targets[0]
    await call.dialect.prepare(call, get_adapter(first.provider.protocol).native_for(call.dialect.name, first))
    out_tokens = req.output_limit if req.output_limit is not None else call.context(first).default_max_tokens
    call.reservation = await state.gate.limits.reserve(call.principal, estimate_prompt_tokens(req) + out_tokens)
    deadline = _deadline(call)
    if req.stream:
        return await _stream(call, req, targets, deadline)
    return await _complete(call, req, targets, deadline)


async def run_attempts[T](call: Call, targets: list[Target], attempt: Callable[[Target], Awaitable[T]],
                          deadline: float, stream: bool = False) -> T:
    """The router's attempts, bounded by the deadline (a backstop: attempts and waits bound
    themselves) and abandoned as soon as the client disconnects."""
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            run = call.router.run(targets, attempt, deadline, verdict_later=stream)
            return await _unless_client_leaves(call.request, run)
    except TimeoutError:
        raise budget_exhausted() from None


async def _complete(call: Call, req: ChatRequest, targets: list[Target], deadline: float) -> Response:
    dialect = call.dialect

    async def attempt(target: Target) -> tuple[Target, dict[str, Any], bool]:
        adapter = get_adapter(target.provider.protocol)
        native = adapter.native_for(dialect.name, target)
        ctx = call.context(target, native)
        if dialect.operation == EMBEDDINGS:
            return target, await embed_attempt(req, target, ctx, call.state.settings, call.timing, deadline), False
        if native:
            ureq = adapter.build_native(dialect.name, req, target, ctx)
        else:
            ureq = await adapter.build_request(req, target, ctx)
        data = await complete(adapter, target, ureq, ctx, call.state.settings, call.timing, deadline)
        if native:
            return target, data, True
        return target, adapter.parse_response(data, req, target), False

    target, resp, native = await run_attempts(call, targets, attempt, deadline)
    call.target = target
    view = CallView(target.requested, req)
    if native:
        call.usage = get_adapter(target.provider.protocol).native_usage(dialect.name, resp)
        call.cost_micros = call.price(target, call.usage)
        body = dialect.native_answer(resp, view)
    else:
        reported = resp.get("usage")
        call.usage = await complete_usage(req, target, reported, "" if reported else answer_text(resp))
        call.cost_micros = call.price(target, call.usage)
        resp["usage"] = call.usage = with_cost(call.usage, call.cost_micros)
        if call.answer is not None:
            call.answer.append(completion_text(resp.get("choices") or ()))
        body = dialect.answer(resp, view)
    await dialect.keep(call, body)
    inline = call.state.settings.settle_inline
    if inline:
        # Lambda may freeze the instance as soon as the body is sent: bill before answering
        await call.settle()
    headers = call.headers()
    headers["x-skylane-cost-usd"] = _usd(call.cost_micros)
    headers["x-skylane-overhead-ms"] = call.overhead_ms()
    if inline:
        return JSONBytes(body, headers=headers)
    return JSONBytes(body, headers=headers, background=BackgroundTask(call.settle))


async def _stream(call: Call, req: ChatRequest, targets: list[Target], deadline: float) -> Response:
    dialect = call.dialect

    async def attempt(target: Target) -> StreamHandle:
        adapter = get_adapter(target.provider.protocol)
        native = adapter.native_for(dialect.name, target)
        ctx = call.context(target, native)
        if native:
            ureq = adapter.build_native(dialect.name, req, target, ctx)
            translator = adapter.native_translator(dialect.name, req, target)
        else:
            ureq = await adapter.build_request(req, target, ctx)
            translator = adapter.stream_translator(req, target)
        opened = await open_stream(adapter, target, ureq, translator, ctx, call.state.settings, call.timing,
                                   deadline)
        opened.native = native
        return opened

    handle = await run_attempts(call, targets, attempt, deadline, stream=True)
    call.target = handle.target
    headers = call.headers()
    headers["x-skylane-overhead-ms"] = call.overhead_ms()
    headers["cache-control"] = "no-cache"
    headers["x-accel-buffering"] = "no"
    return StreamingResponse(_events(call, req, handle, deadline), media_type="text/event-stream",
                             headers=headers, background=BackgroundTask(_after_stream, call, req, handle))


async def _after_stream(call: Call, req: ChatRequest, handle: StreamHandle) -> None:
    """Runs after the response, even when the client left before the body generator ever started
    (then its `finally` never ran): close the upstream, release the breaker verdict, settle."""
    with anyio.CancelScope(shield=True):
        await handle.aclose()
        call.router.stream_ended("unknown")
        if not call.settled:
            call.status = CLIENT_CLOSED_REQUEST
            call.usage = await complete_usage(req, handle.target, handle.translator.usage, finished=False)
            call.cost_micros = call.price(handle.target, call.usage)
            await call.settle()


async def _events(call: Call, req: ChatRequest, handle: StreamHandle, deadline: float) -> AsyncIterator[bytes]:
    renderer = call.dialect.stream(CallView(handle.target.requested, req))
    relayed = CompletionText()  # what the client was sent, for counting when the provider reports no usage
    finished = False
    verdict = "unknown"  # for the breaker: ok | failed | unknown (client left, budget used up)
    kept = False  # the dialect's keep hook ran (once, before the client has the whole answer)
    try:
        async for batch in handle.batches():  # what one upstream read brought: one write to the client
            parts: list[bytes] = []
            for c in batch:
                if isinstance(c, bytes):  # a native relay: already framed for the client's wire
                    parts.append(c)
                    continue
                relayed.add_chunk(c)
                if call.answer is not None:
                    call.answer.append(completion_text(c["choices"]))
                out = renderer.chunk(c)
                if out:
                    parts.append(out)
            if handle.native and not kept and handle.translator.final is not None:
                kept = True
                await call.dialect.keep(call, handle.translator.final)
            if parts:
                yield parts[0] if len(parts) == 1 else b"".join(parts)
            if time.monotonic() > deadline:
                raise budget_exhausted("stream")
        finished = True
        verdict = "ok"
        call.usage = await complete_usage(req, handle.target, handle.translator.usage, relayed.text())
        call.cost_micros = call.price(handle.target, call.usage)
        call.usage = with_cost(call.usage, call.cost_micros)
        closing = b"" if handle.native else renderer.end(call.usage)  # a native relay sent the provider's own end
        if not kept and renderer.final is not None:
            kept = True
            await call.dialect.keep(call, renderer.final)
        yield closing
    except SkylaneError as exc:
        call.status = exc.status if exc.status >= 500 else 502
        if exc.code != BUDGET_EXHAUSTED:
            verdict = "failed"
        yield renderer.error(exc)
    except (TimeoutError, OSError) as exc:
        err = UpstreamError(f"The stream from provider '{handle.provider}' failed ({type(exc).__name__}).",
                            provider=handle.provider)
        call.status = 502
        verdict = "failed"
        yield renderer.error(err)
    except (asyncio.CancelledError, GeneratorExit):
        call.status = CLIENT_CLOSED_REQUEST  # the client went away mid-stream
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await handle.aclose()  # drops the upstream connection if it is still open
            call.router.stream_ended(verdict)
            if not finished or call.usage is None:
                # the client left or the stream broke: count at least what was served
                call.usage = await complete_usage(req, handle.target, handle.translator.usage, relayed.text(),
                                                  finished=False)
                call.cost_micros = call.price(handle.target, call.usage)
            await call.settle()

