"""Observability with Powertools: one JSON log line and one EMF metrics record per request.

    log_request(fields)        called once per request by http/completions.py (after the answer,
                               after the last chunk of a stream): writes the log line and flushes the
                               request's CloudWatch EMF metrics (dimensions: model and provider)
    logger                     the package's Powertools Logger (stdlib `logging.getLogger("skylane")`
                               and its children log through it; `extra={"fields": {...}}` is flattened)
    RequestContextMiddleware   ASGI middleware for the Lambda Web Adapter path: the invocation's
                               `x-amzn-trace-id` and `x-amzn-lambda-context` headers become the
                               `xray_trace_id` and `aws_request_id` of every log line of that request
    lambda_handler(fn)         wraps a Lambda handler (the models function): Powertools Tracer
                               (X-Ray, only active on Lambda) and the Lambda context in the logs

Both go to stdout: on Lambda that is CloudWatch Logs (which turns the EMF records into metrics);
locally it is the console, the same lines. Never prompt or completion text, never a key: the
fields are ids, model, provider, status, timings, token counts and cost.

Environment (Powertools' own names): POWERTOOLS_METRICS_NAMESPACE (default "Skylane"),
POWERTOOLS_METRICS_DISABLED=true to stop the metrics records, POWERTOOLS_TRACE_DISABLED.
"""

from __future__ import annotations

import contextvars
import copy
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import orjson
from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

__all__ = [
    "METRICS",
    "RequestContextMiddleware",
    "configure_logging",
    "emit_metrics",
    "lambda_handler",
    "log_request",
    "logger",
]

SERVICE = "skylane"
DEFAULT_NAMESPACE = "Skylane"

# metric name → (unit, field of the log line it comes from)
METRICS: dict[str, tuple[str, str]] = {
    "Requests": ("Count", ""),
    "Errors": ("Count", "status"),
    "Latency": ("Milliseconds", "latency_ms"),
    "TimeToFirstToken": ("Milliseconds", "ttft_ms"),
    "PromptTokens": ("Count", "prompt_tokens"),
    "CompletionTokens": ("Count", "completion_tokens"),
    "CostUSD": ("None", "cost_usd"),
}

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("skylane_request_context",
                                                                               default=None)


# ---- logs ------------------------------------------------------------------------------------------


class _Formatter(LambdaPowertoolsFormatter):
    """Powertools' JSON lines, with `extra={"fields": {...}}` flattened and the request context added."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__.get("fields")
        ctx = _context.get()
        if isinstance(fields, dict) or ctx:
            record = copy.copy(record)
            record.__dict__.pop("fields", None)
            for key, value in (ctx or {}).items():
                if key != "xray_trace_id":  # Powertools sets that one itself (below)
                    record.__dict__.setdefault(key, value)
            for key, value in (fields or {}).items():
                if key not in _RESERVED:
                    record.__dict__[key] = value
        return super().format(record)

    def _get_latest_trace_id(self) -> str | None:
        ctx = _context.get()
        if ctx and ctx.get("xray_trace_id"):
            return ctx["xray_trace_id"]
        return super()._get_latest_trace_id()


_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

def _json_line(obj: Any) -> str:
    """The log line's JSON (orjson; anything it cannot encode as its str(), as Powertools does)."""
    return orjson.dumps(obj, default=str).decode()


logger = Logger(service=SERVICE, level=os.environ.get("SKYLANE_LOG_LEVEL", "INFO").upper(),
                logger_formatter=_Formatter(utc=True, json_serializer=_json_line))
_log = logging.getLogger(SERVICE)  # the stdlib logger behind `logger` (typed: level checks, log())


def configure_logging(level: str = "INFO") -> None:
    """Set the log level (the handler and formatter are installed once, at import)."""
    logger.setLevel(level.upper())


def log_request(fields: dict[str, Any]) -> None:
    """The one log line of a request, then its metrics (flushed now: streams included)."""
    status = fields.get("status") or 200
    level = logging.INFO if status < 500 else logging.ERROR
    if _log.isEnabledFor(level):
        _log.log(level, "request", extra={"fields": fields})
    try:
        emit_metrics(fields)
    except Exception as exc:  # metrics must never fail a request
        logger.warning("metrics not emitted", extra={"fields": {"error": type(exc).__name__}})


# ---- metrics ---------------------------------------------------------------------------------------


def _dimension(value: Any, default: str) -> str:
    text = str(value) if value not in (None, "") else default
    return text[:250]


_DIMENSIONS = [["service", "provider", "model"], ["service", "provider"]]


def emit_metrics(fields: Mapping[str, Any]) -> None:
    """One EMF record for one request: dimension sets [service, provider, model] and [service, provider].

    The model dimension is only the requested model once a provider answered for it (so arbitrary
    model names sent by clients cannot create metrics); otherwise "none". The record is CloudWatch's
    embedded metric format (what Powertools' EMF provider writes), built directly: one JSON line on
    stdout per request, no per-request metrics object.
    """
    provider = _dimension(fields.get("provider"), "none")
    model = _dimension(fields.get("model"), "none") if fields.get("provider") else "none"
    status = int(fields.get("status") or 200)
    values: dict[str, list[float]] = {"Requests": [1.0], "Errors": [1.0 if status >= 400 else 0.0]}
    defs = [{"Name": "Requests", "Unit": "Count"}, {"Name": "Errors", "Unit": "Count"}]
    for name, (unit, key) in METRICS.items():
        if name in ("Requests", "Errors"):
            continue
        value = fields.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            values[name] = [float(value)]
            defs.append({"Name": name, "Unit": unit})
    record: dict[str, Any] = {
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
            "Namespace": os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE,
            "Dimensions": _DIMENSIONS, "Metrics": defs}]},
        "service": SERVICE, "provider": provider, "model": model,
    }
    for key in ("request_id", "stream"):
        if fields.get(key) is not None:
            record[key] = fields[key]
    ctx = _context.get() or {}
    for key in ("aws_request_id", "xray_trace_id"):
        if key in ctx:
            record[key] = ctx[key]
    record.update(values)
    sys.stdout.write(orjson.dumps(record).decode() + "\n")


# ---- the Lambda Web Adapter's request context --------------------------------------------------------


def _header_text(value: bytes, limit: int) -> str | None:
    if not value or len(value) > limit:
        return None
    text = value.decode("latin-1")
    return text if text.isprintable() else None


def _trace_root(header: str) -> str | None:
    """`Root=1-5759e988-bd862e3fe1be46a994272793;Parent=…;Sampled=1` → the Root id."""
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "Root" and value:
            return value
    return None


def context_from_headers(headers: list[tuple[bytes, bytes]] | Mapping[str, str]) -> dict[str, str]:
    """The ids the Lambda Web Adapter passes in headers (nothing when not on Lambda)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    ctx: dict[str, str] = {}
    for raw_name, raw_value in items:
        name = raw_name.decode("latin-1").lower() if isinstance(raw_name, bytes) else raw_name.lower()
        value = raw_value if isinstance(raw_value, bytes) else raw_value.encode("latin-1", "replace")
        if name == "x-amzn-trace-id":
            text = _header_text(value, 256)
            root = _trace_root(text) if text else None
            if root:
                ctx["xray_trace_id"] = root
        elif name == "x-amzn-lambda-context":
            text = _header_text(value, 8192)
            try:
                data = json.loads(text) if text else None
            except ValueError:
                data = None
            rid = data.get("request_id") if isinstance(data, dict) else None
            if isinstance(rid, str) and 0 < len(rid) <= 128 and rid.isprintable():
                ctx["aws_request_id"] = rid
    return ctx


@contextmanager
def request_context(headers: list[tuple[bytes, bytes]] | Mapping[str, str]) -> Iterator[None]:
    """The invocation's ids (from the Lambda Web Adapter's headers) in every log line written inside."""
    token = _context.set(context_from_headers(headers))
    try:
        yield
    finally:
        _context.reset(token)


class RequestContextMiddleware:
    """Pure ASGI middleware: the invocation's ids in a context variable for the request's lifetime
    (streamed bodies and background tasks included)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        with request_context(scope.get("headers") or []):
            await self.app(scope, receive, send)


# ---- the models function's handler ----------------------------------------------------------------


def lambda_handler(handler: Callable[[dict[str, Any], Any], Any]) -> Callable[[dict[str, Any], Any], Any]:
    """A Lambda handler with X-Ray tracing (Powertools Tracer: active only on Lambda, botocore patched so
    DynamoDB reads show as subsegments) and the Lambda context (request id, cold start) in the logs."""
    from aws_lambda_powertools import Tracer  # imports the X-Ray SDK: only the function that traces pays

    tracer = Tracer(service=SERVICE, patch_modules=("botocore",))

    @tracer.capture_lambda_handler(capture_response=False)
    @logger.inject_lambda_context(clear_state=True)
    def traced(event: dict[str, Any], context: Any) -> Any:
        return handler(event, context)

    wrapped: Callable[[dict[str, Any], Any], Any] = traced
    return wrapped
