"""POST /v1/chat/completions (and /chat/completions, /api/chat/completions).

parse → authenticate → route → reserve limits → attempts (retries, fallbacks) → answer or
stream → settle usage and credits → one log line.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any

import anyio
from fastapi import FastAPI, Request
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from ..catalog import Target
from ..errors import PayloadTooLarge, SkylaneError, UpstreamError, envelope
from ..gate import Principal, Reservation
from ..observe import log_request
from ..providers import get_adapter
from ..providers.base import CallContext
from ..redact import completion_text, content_fields
from ..router import BUDGET_EXHAUSTED, Router, budget_exhausted
from ..schema import ChatRequest, chunk, completion_id, parse_request
from ..streaming import DONE, encode_event
from ..tokens import estimate_prompt_tokens, estimate_text_tokens
from ..upstream import StreamHandle, Timing, complete, open_stream
from .common import AppState, JSONBytes, error_response, request_id

__all__ = ["COMPLETION_PATHS", "add_completion_routes"]

COMPLETION_PATHS = ("/v1/chat/completions", "/chat/completions", "/api/chat/completions")

# Seconds kept back before the Lambda invocation's own deadline, so that the gateway (not Lambda's
# timeout) ends a request: time to send the error, close the upstream and settle usage.
LAMBDA_DEADLINE_MARGIN = 2.0
CLIENT_CLOSED_REQUEST = 499  # logged status of a request whose client went away (nginx's convention)


class _ClientGone(Exception):
    """The client disconnected before the answer started."""


def _ms(seconds: float) -> str:
    return f"{max(0.0, seconds) * 1000:.2f}"


def _usd(micros: int) -> str:
    return f"{micros / 1_000_000:.6f}"


class Call:
    """One chat completion request as it moves through the gateway."""

    def __init__(self, state: AppState, request: Request, rid: str) -> None:
        self.state = state
        self.request = request
        self.rid = rid
        self.t0 = time.perf_counter()
        self.started = time.monotonic()
        self.timing = Timing()
        self.principal: Principal | None = None
        self.reservation: Reservation | None = None
        self.router = Router(state.catalog, state.settings, state.breakers)
        self.req: ChatRequest | None = None
        self.target: Target | None = None
        self.status = 200
        self.usage: dict[str, Any] | None = None
        self.cost_micros = 0
        self.settled = False
        # the completion's text, collected only when SKYLANE_LOG_CONTENT is on (for the log line)
        self.answer: list[str] | None = [] if state.settings.log_content else None

    def overhead_ms(self) -> str:
        return _ms(time.perf_counter() - self.t0 - self.timing.upstream)

    def context(self, target: Target) -> CallContext:
        catalog = self.state.catalog
        provider = target.provider
        return CallContext(
            api_key=catalog.provider_key(provider),
            base_url=catalog.base_url(provider) if provider.protocol != "bedrock" else "",
            default_max_tokens=min(self.state.settings.default_max_tokens,
                                   target.model.max_output_tokens or self.state.settings.default_max_tokens),
            fetch_media=self._fetch_media,
            extra_headers=provider.extra_headers,
            settings=self.state.settings,
        )

    async def _fetch_media(self, url: str) -> Any:
        from ..fetch import fetch_media  # lazy: only some requests carry remote media

        return await fetch_media(url, self.state.settings)

    def headers(self) -> dict[str, str]:
        h = {"x-request-id": self.rid}
        if self.reservation is not None:
            h.update(self.reservation.headers)
        if self.router.attempts and (len(self.router.attempts) > 1 or self.router.attempts[0].outcome != "ok"):
            h["x-skylane-attempts"] = self.router.attempts_header()
        return h

    def price(self, target: Target, usage: dict[str, Any] | None) -> int:
        if not usage:
            return 0
        details = usage.get("prompt_tokens_details") or {}
        return target.model.cost_micros(
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
            int(details.get("cached_tokens") or 0),
        )

    async def settle(self) -> None:
        """Reconcile limits and debit credits; then log. Idempotent: only the first call counts."""
        if self.settled:
            return
        self.settled = True
        res = self.reservation
        try:
            if res is not None and not res.settled:
                if self.target is None or self.usage is None and self.status >= 400:
                    await self.state.gate.limits.release(res)
                else:
                    await self.state.gate.limits.settle(res, self.target.model.id, self.usage, self.cost_micros)
        finally:
            self.log()

    def log(self) -> None:
        usage = self.usage or {}
        fields: dict[str, Any] = {
            "request_id": self.rid,
            "key_id": self.principal.key_id if self.principal else None,
            "model": self.target.requested if self.target else (self.req.model if self.req else None),
            "provider": self.target.provider.name if self.target else None,
            "status": self.status,
            "stream": bool(self.req and self.req.stream),
            "latency_ms": round((time.perf_counter() - self.t0) * 1000, 2),
            "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"),
            "cost_usd": self.cost_micros / 1_000_000,
        }
        if self.timing.first_token_at is not None:
            fields["ttft_ms"] = round((self.timing.first_token_at - self.t0) * 1000, 2)
        if self.router.attempts:
            fields["attempts"] = self.router.attempts_header()
        if self.answer is not None and self.req is not None:  # SKYLANE_LOG_CONTENT: redacted prompt and answer
            fields.update(content_fields(self.req.raw.get("messages"), "".join(self.answer)))
        log_request(fields)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body too large: {declared} bytes (limit {limit}).")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise PayloadTooLarge(f"Request body too large (limit {limit} bytes).")
    return bytes(body)


async def handle_completion(request: Request) -> Response:
    state: AppState = request.app.state.skylane
    call = Call(state, request, request_id(request))
    try:
        return await _handle(call)
    except SkylaneError as exc:
        call.status = exc.status
        await call.settle()
        return error_response(exc, call.rid, {**call.headers(), "x-skylane-overhead-ms": call.overhead_ms()})
    except _ClientGone:
        # nobody is listening: the attempt in flight was cancelled (its connection closed); the
        # provider may already have processed the prompt, so that is what gets counted
        call.status = CLIENT_CLOSED_REQUEST
        call.router.stream_ended("unknown")
        call.target = call.router.current
        if call.target is not None and call.req is not None:
            prompt = estimate_prompt_tokens(call.req)
            call.usage = {"prompt_tokens": prompt, "completion_tokens": 0, "total_tokens": prompt,
                          "estimated": True}
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
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        watcher.cancel()
        raise
    watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    try:
        orphan = await task
    except (asyncio.CancelledError, Exception):  # noqa: S110 - the client is gone, so is the answer
        pass
    else:  # it finished just before the cancel landed: close what it opened
        aclose = getattr(orphan, "aclose", None)
        if aclose is not None:
            await aclose()
    raise _ClientGone


async def _handle(call: Call) -> Response:
    state = call.state
    settings = state.settings
    body = await _read_body(call.request, settings.max_body_bytes)
    req = call.req = parse_request(body, settings.default_model)
    assert req.model is not None
    call.principal = await state.gate.auth.authenticate(call.request.headers)
    targets = call.router.targets(req.model, req.models)
    state.gate.auth.check_model(call.principal, targets[0].model.id)
    targets = [t for t in targets if state.gate.auth.may_use(call.principal, t.model.id)]
    first = targets[0]
    out_tokens = req.output_limit or call.context(first).default_max_tokens
    call.reservation = await state.gate.limits.reserve(call.principal, estimate_prompt_tokens(req) + out_tokens)
    deadline = _deadline(call)
    if req.stream:
        return await _stream(call, req, targets, deadline)
    return await _complete(call, req, targets, deadline)


async def _run(call: Call, targets: list[Target], attempt: Any, deadline: float, stream: bool = False) -> Any:
    """The router's attempts, bounded by the deadline (a backstop: attempts and waits bound
    themselves) and abandoned as soon as the client disconnects."""
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            run = call.router.run(targets, attempt, deadline, verdict_later=stream)
            return await _unless_client_leaves(call.request, run)
    except TimeoutError:
        raise budget_exhausted() from None


async def _complete(call: Call, req: ChatRequest, targets: list[Target], deadline: float) -> Response:
    async def attempt(target: Target) -> tuple[Target, dict[str, Any]]:
        adapter = get_adapter(target.provider.protocol)
        ctx = call.context(target)
        ureq = await adapter.build_request(req, target, ctx)
        data = await complete(adapter, target, ureq, ctx, call.state.settings, call.timing, deadline)
        return target, adapter.parse_response(data, req, target)

    target, resp = await _run(call, targets, attempt, deadline)
    call.target = target
    resp["model"] = target.requested
    resp.setdefault("id", completion_id())
    call.usage = resp.get("usage")
    call.cost_micros = call.price(target, call.usage)
    if call.answer is not None:
        call.answer.append(completion_text(resp.get("choices") or ()))
    inline = call.state.settings.settle_inline
    if inline:
        # Lambda may freeze the instance as soon as the body is sent: bill before answering
        await call.settle()
    headers = call.headers()
    headers["x-skylane-cost-usd"] = _usd(call.cost_micros)
    headers["x-skylane-overhead-ms"] = call.overhead_ms()
    if inline:
        return JSONBytes(resp, headers=headers)
    return JSONBytes(resp, headers=headers, background=BackgroundTask(call.settle))


async def _stream(call: Call, req: ChatRequest, targets: list[Target], deadline: float) -> Response:
    async def attempt(target: Target) -> StreamHandle:
        adapter = get_adapter(target.provider.protocol)
        ctx = call.context(target)
        ureq = await adapter.build_request(req, target, ctx)
        translator = adapter.stream_translator(req, target)
        return await open_stream(adapter, target, ureq, translator, ctx, call.state.settings, call.timing,
                                 deadline)

    handle = await _run(call, targets, attempt, deadline, stream=True)
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
            call.usage = _usage_so_far(req, handle.translator.usage, 0)
            call.cost_micros = call.price(handle.target, call.usage)
            await call.settle()


async def _events(call: Call, req: ChatRequest, handle: StreamHandle, deadline: float) -> AsyncIterator[bytes]:
    cid = completion_id()
    created = int(time.time())
    model = handle.target.requested
    out_chars = 0
    finished = False
    verdict = "unknown"  # for the breaker: ok | failed | unknown (client left, budget used up)
    try:
        async for c in handle.chunks():
            c["id"] = cid
            c["object"] = "chat.completion.chunk"
            c["created"] = created
            c["model"] = model
            for choice in c["choices"]:
                delta = choice.get("delta")
                if delta:
                    content = delta.get("content")
                    if content:
                        out_chars += len(content)
            if call.answer is not None:
                call.answer.append(completion_text(c["choices"]))
            yield encode_event(c)
            if time.monotonic() > deadline:
                raise budget_exhausted("stream")
        finished = True
        verdict = "ok"
        call.usage = handle.translator.usage
        if req.wants_usage and call.usage:
            yield encode_event(chunk(cid, created, model, [], call.usage))
        yield DONE
    except SkylaneError as exc:
        call.status = exc.status if exc.status >= 500 else 502
        if exc.code != BUDGET_EXHAUSTED:
            verdict = "failed"
        yield encode_event(envelope(exc))
    except (TimeoutError, OSError) as exc:
        err = UpstreamError(f"The stream from provider '{handle.provider}' failed ({type(exc).__name__}).",
                            provider=handle.provider)
        call.status = 502
        verdict = "failed"
        yield encode_event(envelope(err))
    except (asyncio.CancelledError, GeneratorExit):
        call.status = CLIENT_CLOSED_REQUEST  # the client went away mid-stream
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await handle.aclose()  # drops the upstream connection if it is still open
            call.router.stream_ended(verdict)
            if call.usage is None:
                call.usage = handle.translator.usage
            if not finished:
                # the client left or the stream broke: count at least what was served
                call.usage = _usage_so_far(req, call.usage, out_chars)
            call.cost_micros = call.price(handle.target, call.usage)
            await call.settle()


def _usage_so_far(req: ChatRequest, reported: dict[str, Any] | None, out_chars: int) -> dict[str, Any]:
    """Usage of a stream that did not finish: what the provider reported, or an estimate of
    the prompt and the text sent so far, whichever is larger."""
    usage = dict(reported or {})
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    est_prompt = estimate_prompt_tokens(req) if not prompt else prompt
    est_completion = estimate_text_tokens(out_chars) if out_chars else 0
    if reported is not None and prompt and completion >= est_completion:
        return usage
    usage.update(prompt_tokens=est_prompt, completion_tokens=max(completion, est_completion),
                 total_tokens=est_prompt + max(completion, est_completion), estimated=True)
    return usage


def add_completion_routes(app: FastAPI) -> None:
    for path in COMPLETION_PATHS:
        app.add_api_route(
            path,
            handle_completion,
            methods=["POST"],
            include_in_schema=path == COMPLETION_PATHS[0],
            summary="Create a chat completion (OpenAI-compatible)",
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}},
                }
            },
        )
