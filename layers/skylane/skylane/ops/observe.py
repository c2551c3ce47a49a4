"""Observability with Powertools: one JSON log line and one EMF metrics record per request.

    log_request(fields)        called once per request by pipeline/call.py (after the answer, after
                               the last chunk of a stream): writes the log line and the request's
                               CloudWatch EMF metrics record (dimensions: model and provider) in one write
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
from aws_lambda_powertools.logging.formatter import RESERVED_LOG_ATTRS, THREAD_LOCAL_KEYS, LambdaPowertoolsFormatter

__all__ = [
    "METRICS",
    "RequestContextMiddleware",
    "configure_logging",
    "lambda_handler",
    "metrics_line",
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
    """Powertools' JSON lines, with `extra={"fields": {...}}` flattened and the request context added.

    A record with `fields` (the request line, the admin lines) is built here directly, key for key
    what Powertools builds from the same record (its log format, its context keys, ours, the
    fields, the trace id; no None values) without its per-record copies, JSON-decoding attempt of the
    message and exception probing: the request line is written once per request. Any other record
    (exceptions included) takes Powertools' own path.
    """

    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__.get("fields")
        if isinstance(fields, dict) and record.exc_info is None and not record.args and isinstance(record.msg, str) \
                and self.datefmt is None and not self.use_rfc3339_iso8601:
            return self._fields_line(record, fields)
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

    def _fields_line(self, record: logging.LogRecord, fields: dict[str, Any]) -> str:
        return self.fields_line(record.__dict__, fields)

    def fields_line(self, attrs: Mapping[str, Any], fields: dict[str, Any]) -> str:
        """The JSON line of a record with these attributes (a LogRecord's, or log_request's own) and fields."""
        line: dict[str, Any] = {}
        for key, value in self.log_format.items():
            if key == "message":
                line[key] = attrs["msg"]
            elif value and key in RESERVED_LOG_ATTRS and isinstance(value, str):
                line[key] = self._timestamp(attrs) if value == "%(asctime)s" else value % attrs
            else:
                line[key] = value
        line.update(THREAD_LOCAL_KEYS.get())
        for key, value in (_context.get() or {}).items():
            if key != "xray_trace_id":
                line.setdefault(key, value)
        for key, value in fields.items():
            if key not in _RESERVED:
                line[key] = value
        line["xray_trace_id"] = self._get_latest_trace_id()
        return self.serialize(log={k: v for k, v in line.items() if v is not None})

    def _timestamp(self, attrs: Mapping[str, Any]) -> str:
        """Powertools' default time format ('2026-12-01 22:47:48,008+0000'), the seconds part made once a second."""
        second = int(attrs["created"])
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S,", self.converter(second))
            self._zone = time.strftime("%z", self.converter(second))
            self._second = second
        return f"{self._stamp}{int(attrs['msecs']):03d}{self._zone}"

    def _get_latest_trace_id(self) -> str | None:
        ctx = _context.get()
        if ctx and ctx.get("xray_trace_id"):
            return ctx["xray_trace_id"]
        return super()._get_latest_trace_id()


_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

def _json_line(obj: Any) -> str:
    """The log line's JSON (orjson; anything it cannot encode as its str(), as Powertools does)."""
    return orjson.dumps(obj, default=str).decode()


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Powertools' stdout handler, which also writes a request's EMF record (`log_request`) in the same
    write as its log line: one system call per request, not two."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            metrics = record.__dict__.pop(_EMF, None)
            self.stream.write(f"{line}\n{metrics}\n" if metrics is not None else line + "\n")
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


_EMF = "skylane_emf"  # the record attribute carrying a request's EMF line to the stdout handler

_HANDLER = _StdoutHandler(sys.stdout)
logger = Logger(service=SERVICE, level=os.environ.get("SKYLANE_LOG_LEVEL", "INFO").upper(),
                logger_formatter=_Formatter(utc=True, json_serializer=_json_line), logger_handler=_HANDLER)
_log = logging.getLogger(SERVICE)  # the stdlib logger behind `logger` (typed: level checks, log())


def configure_logging(level: str = "INFO") -> None:
    """Set the log level (the handler and formatter are installed once, at import)."""
    logger.setLevel(level.upper())


def log_request(fields: dict[str, Any]) -> None:
    """The one log line of a request and its metrics record, written together (flushed now: streams included)."""
    try:
        metrics: str | None = metrics_line(fields) if _METRICS_ON else None
    except Exception as exc:  # metrics must never fail a request
        metrics = None
        logger.warning("metrics not emitted", extra={"fields": {"error": type(exc).__name__}})
    status = fields.get("status") or 200
    level = logging.INFO if status < 500 else logging.ERROR
    if _log.isEnabledFor(level):
        lineno = sys._getframe().f_lineno  # the caller's location, without the stack walk of Logger.log
        if _direct(level):
            line = _direct_line(level, lineno, fields)
            if line is not None:
                _HANDLER.stream.write(f"{line}\n{metrics}\n" if metrics is not None else line + "\n")
                _HANDLER.flush()
                return
        record = _log.makeRecord(SERVICE, level, __file__, lineno, "request", (), None,
                                 func="log_request", extra={"fields": fields})
        record.__dict__[_EMF] = metrics
        _log.handle(record)
        metrics = record.__dict__.pop(_EMF, None)  # still there: no stdout handler took it
    if metrics is not None:
        sys.stdout.write(metrics + "\n")


def _direct(level: int) -> bool:
    """Whether the stdout handler is the request line's only destination (no other handler, filter or
    propagation): then the line is written without a LogRecord — the same line."""
    return _log.handlers == [_HANDLER] and not _log.filters and not _HANDLER.filters and level >= _HANDLER.level \
        and not _log.disabled and not (_log.propagate and logging.getLogger().handlers)


def _direct_line(level: int, lineno: int, fields: dict[str, Any]) -> str | None:
    formatter = _HANDLER.formatter
    if not isinstance(formatter, _Formatter) or formatter.datefmt is not None or formatter.use_rfc3339_iso8601:
        return None
    now = time.time_ns()
    attrs = {"name": SERVICE, "msg": "request", "levelname": logging.getLevelName(level), "levelno": level,
             "funcName": "log_request", "lineno": lineno, "created": now / 1e9,
             "msecs": (now % 1_000_000_000) // 1_000_000}
    try:
        return formatter.fields_line(attrs, fields)
    except (KeyError, ValueError, TypeError):  # a log format naming a record attribute not made here
        return None


# ---- metrics ---------------------------------------------------------------------------------------


def _dimension(value: Any, default: str) -> str:
    text = str(value) if value not in (None, "") else default
    return text[:250]


_DIMENSIONS = [["service", "provider", "model"], ["service", "provider"]]


_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE")  # read once, at start, as Powertools does
_METRICS_ON = os.environ.get("POWERTOOLS_METRICS_DISABLED", "").strip().lower() not in ("true", "1")
_METRIC_FIELDS = [(name, unit, key) for name, (unit, key) in METRICS.items() if key and name != "Errors"]
_DEFINITIONS: dict[tuple[str, ...], list[dict[str, str]]] = {}  # the metric definitions of each set of names


def metrics_line(fields: Mapping[str, Any]) -> str:
    """One EMF record for one request: dimension sets [service, provider, model] and [service, provider].

    The model dimension is only the requested model once a provider answered for it (so arbitrary
    model names sent by clients cannot create metrics); otherwise "none". The record is CloudWatch's
    embedded metric format (what Powertools' EMF provider writes), built directly: one JSON line on
    stdout per request, no per-request metrics object.
    """
    provider = _dimension(fields.get("provider"), "none")
    model = _dimension(fields.get("model"), "none") if fields.get("provider") else "none"
    status = int(fields.get("status") or 200)
    record: dict[str, Any] = {"_aws": None, "service": SERVICE, "provider": provider, "model": model}
    for key in ("request_id", "stream"):
        if fields.get(key) is not None:
            record[key] = fields[key]
    ctx = _context.get()
    if ctx:
        for key in ("aws_request_id", "xray_trace_id"):
            if key in ctx:
                record[key] = ctx[key]
    record["Requests"] = [1.0]
    record["Errors"] = [1.0 if status >= 400 else 0.0]
    names = ["Requests", "Errors"]
    for name, _unit, key in _METRIC_FIELDS:
        value = fields.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            record[name] = [float(value)]
            names.append(name)
    shape = tuple(names)
    defs = _DEFINITIONS.get(shape)
    if defs is None:
        defs = _DEFINITIONS[shape] = [{"Name": name, "Unit": METRICS[name][0]} for name in names]
    record["_aws"] = {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
        "Namespace": _NAMESPACE or DEFAULT_NAMESPACE,
        "Dimensions": _DIMENSIONS, "Metrics": defs}]}
    return orjson.dumps(record).decode()


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


_CONTEXT_HEADERS = frozenset({b"x-amzn-trace-id", b"x-amzn-lambda-context"})


def context_from_headers(headers: list[tuple[bytes, bytes]] | Mapping[str, str]) -> dict[str, str]:
    """The ids the Lambda Web Adapter passes in headers (nothing when not on Lambda)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    ctx: dict[str, str] = {}
    for raw_name, raw_value in items:
        if isinstance(raw_name, bytes):  # an ASGI scope's: lower case already; most requests have neither
            if raw_name not in _CONTEXT_HEADERS:
                continue
            name = raw_name.decode("latin-1")
        else:
            name = raw_name.lower()
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
