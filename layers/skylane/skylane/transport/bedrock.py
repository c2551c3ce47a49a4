"""Bedrock's transport and errors: the boto3 `bedrock-runtime` client, run in worker threads.

boto3 is synchronous: `converse` runs in a worker thread and `converse_stream`'s EventStream is
iterated in worker threads, so the event loop is never blocked; closing the async iterator closes
the boto3 stream. botocore exceptions (from a call, or raised mid-stream by exception events) map
to Skylane errors by their error code, never by message text.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from functools import partial
from typing import TYPE_CHECKING, Any

from skylane.core.errors import (
    GatewayMisconfigured,
    InvalidRequest,
    ModelNotFound,
    SkylaneError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from skylane.transport.aws import THREADS, aws_client, run_blocking
from skylane.transport.base import Transport, TransportContext, UpstreamRequest
from skylane.transport.status import classify_status, parse_retry_after

if TYPE_CHECKING:
    from skylane.core.settings import Settings

__all__ = ["INVOKE_MESSAGES", "INVOKE_MODEL", "BedrockTransport", "get_client", "map_code", "map_exception"]

_AUTH_CODES = {"AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException",
               "InvalidSignatureException", "IncompleteSignature", "MissingAuthenticationToken",
               "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken"}


# ---- errors ---------------------------------------------------------------------------------------


def map_code(code: str, message: str, status: int | None, provider: str,
              retry_after: float | None = None) -> SkylaneError:
    """A Bedrock error code (HTTP `x-amzn-errortype` or a stream exception event) → a Skylane error."""
    norm = code[:1].upper() + code[1:]
    message = message[:1000] or norm or "unknown error"
    if norm in ("ThrottlingException", "ServiceQuotaExceededException", "TooManyRequestsException"):
        return UpstreamRateLimited(f"Provider '{provider}' is throttling requests: {message}", provider=provider,
                                   retry_after=retry_after)
    if norm in ("ServiceUnavailableException", "ModelNotReadyException"):
        return UpstreamUnavailable(f"Provider '{provider}' is unavailable: {message}", provider=provider,
                                   retry_after=retry_after)
    if norm == "ValidationException":
        return InvalidRequest(f"Provider '{provider}' rejected the request: {message}", provider=provider,
                              code="upstream_bad_request")
    if norm in _AUTH_CODES or status in (401, 403):
        # AWS's text names the role and account: never pass it on
        return UpstreamError(
            f"The gateway's AWS credentials may not call provider '{provider}' for this model ({norm or status}); "
            "check the IAM policy and the model access settings.",
            provider=provider, code="upstream_auth_failed", retryable=False)
    if norm == "ResourceNotFoundException":
        return ModelNotFound(f"Provider '{provider}' does not know this model or inference profile: {message}",
                             provider=provider, param="model")
    if norm == "ModelTimeoutException":
        return UpstreamTimeout(f"The model on provider '{provider}' timed out: {message}", provider=provider)
    if norm in ("ModelStreamErrorException", "ModelErrorException", "InternalServerException"):
        return UpstreamError(f"Provider '{provider}' failed ({norm}): {message}", provider=provider)
    if status is not None and status >= 400:
        return classify_status(status, message, provider=provider, retry_after=retry_after)
    return UpstreamError(f"Provider '{provider}' failed ({norm or 'unknown error'}): {message}", provider=provider)


def map_exception(exc: BaseException, provider: str) -> SkylaneError:
    """boto3 / botocore exceptions (from a call or from iterating a stream) → a Skylane error."""
    if isinstance(exc, SkylaneError):
        return exc
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error") or {}
        meta: Any = exc.response.get("ResponseMetadata") or {}
        headers = meta.get("HTTPHeaders") or {}
        status = meta.get("HTTPStatusCode")
        return map_code(str(err.get("Code") or ""), str(err.get("Message") or ""),
                         int(status) if status else None, provider, parse_retry_after(headers))
    if isinstance(exc, bx.ParamValidationError):
        return InvalidRequest(f"Provider '{provider}' cannot take this request: {str(exc)[:500]}", provider=provider)
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError | bx.NoRegionError):
        return GatewayMisconfigured(f"Provider '{provider}' is not configured: AWS credentials or region missing.",
                                    provider=provider)
    if isinstance(exc, bx.ReadTimeoutError | bx.ConnectTimeoutError | TimeoutError):
        return UpstreamTimeout(f"Provider '{provider}' did not answer in time.", provider=provider)
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectionClosedError):
        return UpstreamUnavailable(f"Could not connect to provider '{provider}'.", provider=provider)
    return UpstreamError(f"The call to provider '{provider}' failed ({type(exc).__name__}).", provider=provider)


# ---- transport: boto3 in worker threads -------------------------------------------------------------

def get_client(settings: Settings, create: bool = True) -> Any:
    """The process's boto3 `bedrock-runtime` client for these settings, created on first use."""
    return aws_client("bedrock-runtime", settings, create=create,
                      endpoint=settings.env.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME"),
                      config={"retries": {"total_max_attempts": 1, "mode": "standard"},
                              "connect_timeout": settings.connect_timeout, "read_timeout": settings.idle_timeout,
                              "max_pool_connections": THREADS, "tcp_keepalive": True, "user_agent_extra": "skylane"})


async def _in_thread(fn: Any, *args: Any) -> Any:
    return await run_blocking(fn, *args)


# `UpstreamRequest.extra["operation"]` for InvokeModel (a model's native body) instead of Converse
INVOKE_MODEL = "invoke_model"
# the same for Anthropic Messages bodies (native passthrough to Claude): `complete` returns the
# answer's JSON itself; `stream` runs InvokeModelWithResponseStream
INVOKE_MESSAGES = "invoke_model_messages"


def _provider_of(request: UpstreamRequest) -> str:
    return request.provider or "bedrock"


class _Opening:
    """A stream being opened in a worker thread; if the caller gave up meanwhile, it is closed on arrival."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abandoned = False
        self.stream: Any = None

    def arrived(self, stream: Any) -> Any:
        with self.lock:
            if self.abandoned:
                stream.close()
                return None
            self.stream = stream
            return stream

    def abandon(self) -> None:
        with self.lock:
            self.abandoned = True
            if self.stream is not None:
                self.stream.close()


class BedrockTransport(Transport):
    async def _client(self, ctx: TransportContext) -> Any:
        from skylane.core.settings import get_settings

        settings = ctx.settings or get_settings()
        client = get_client(settings, create=False)
        return client if client is not None else await _in_thread(get_client, settings)

    async def complete(self, request: UpstreamRequest, ctx: TransportContext) -> dict[str, Any]:
        if request.extra.get("operation") == INVOKE_MODEL:
            return await self.invoke_model(request, ctx)
        if request.extra.get("operation") == INVOKE_MESSAGES:  # Claude's Messages body: its answer only
            answer: dict[str, Any] = (await self.invoke_model(request, ctx))["body"]
            return answer
        provider = _provider_of(request)
        try:
            client = await self._client(ctx)
            data = await _in_thread(partial(client.converse, **request.extra))
        except Exception as exc:
            raise map_exception(exc, provider) from None
        return dict(data)

    async def invoke_model(self, request: UpstreamRequest, ctx: TransportContext) -> dict[str, Any]:
        """InvokeModel with a model's own JSON body (`extra`: modelId, body; e.g. embeddings models):
        {"body": the answer's JSON, "headers": the HTTP response headers (token counts are there)}."""
        provider = _provider_of(request)
        kwargs = {k: v for k, v in request.extra.items() if k != "operation"}
        kwargs.setdefault("contentType", "application/json")
        kwargs.setdefault("accept", "application/json")

        def call(client: Any) -> dict[str, Any]:
            resp = client.invoke_model(**kwargs)
            raw = resp["body"].read()
            headers = (resp.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
            return {"raw": raw, "headers": dict(headers)}

        try:
            client = await self._client(ctx)
            out = await _in_thread(call, client)
        except Exception as exc:
            raise map_exception(exc, provider) from None
        try:
            body = json.loads(out["raw"])
        except (ValueError, UnicodeDecodeError):
            raise UpstreamError(f"Provider '{provider}' answered with a body that is not JSON.",
                                provider=provider) from None
        return {"body": body, "headers": out["headers"]}

    def stream(self, request: UpstreamRequest, ctx: TransportContext) -> AsyncIterator[Any]:
        return self._events(request, ctx)

    async def _events(self, request: UpstreamRequest, ctx: TransportContext) -> AsyncIterator[Any]:
        provider = _provider_of(request)
        opening = _Opening()
        try:
            client = await self._client(ctx)

            def start() -> Any:
                if request.extra.get("operation") == INVOKE_MESSAGES:
                    kwargs = {k: v for k, v in request.extra.items() if k != "operation"}
                    # InvokeModelWithResponseStream: {"chunk": {"bytes": <one Anthropic stream event>}} events
                    return opening.arrived(client.invoke_model_with_response_stream(**kwargs)["body"])
                return opening.arrived(client.converse_stream(**request.extra)["stream"])

            stream = await _in_thread(start)
        except BaseException as exc:
            opening.abandon()
            if isinstance(exc, Exception):
                raise map_exception(exc, provider) from None
            raise
        events = iter(stream)
        try:
            while True:
                try:
                    event = await _in_thread(next, events, None)
                except Exception as exc:
                    raise map_exception(exc, provider) from None
                if event is None:
                    return
                yield event
        finally:
            stream.close()  # closes the HTTP response; an abandoned reader thread then fails and ends


