"""ops/observe.py: one request's log line and EMF record leave in one write; the line is the same
whether it is written directly (the stdout handler alone) or through a LogRecord (another handler
attached), and Powertools' own formatter agrees with it key for key."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from skylane.ops import observe

FIELDS: dict[str, Any] = {"request_id": "req_1", "key_id": None, "api": "chat", "model": "gpt-4o-mini",
                          "provider": "openai", "status": 200, "stream": False, "latency_ms": 0.94,
                          "prompt_tokens": 19, "completion_tokens": 9, "cost_usd": 6e-6}


@pytest.fixture(autouse=True)
def info_level() -> Iterator[None]:
    """Request lines are INFO; gateways made by other tests may have left the level at WARNING."""
    old = observe._log.level
    observe.configure_logging("INFO")
    yield
    observe._log.setLevel(old)


class Writes(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, s: str) -> int:
        self.calls.append(s)
        return super().write(s)


@contextmanager
def stdout_of_handler() -> Iterator[Writes]:
    buf = Writes()
    old = observe._HANDLER.setStream(buf)
    try:
        yield buf
    finally:
        observe._HANDLER.setStream(old)


class Other(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _lines(buf: Writes) -> list[dict[str, Any]]:
    return [json.loads(x) for x in buf.getvalue().splitlines()]


def test_direct_line_and_metrics_in_one_write() -> None:
    with stdout_of_handler() as buf:
        observe.log_request(dict(FIELDS))
    assert len(buf.calls) == 1  # the line and its EMF record: one write
    line, emf = _lines(buf)
    assert line["message"] == "request" and line["level"] == "INFO" and line["service"] == "skylane"
    assert line["location"].startswith("log_request:") and line["request_id"] == "req_1"
    assert "key_id" not in line  # None values are left out, as Powertools does
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Skylane" and emf["Requests"] == [1.0]
    assert emf["request_id"] == "req_1" and emf["Latency"] == [0.94]


def test_the_record_path_writes_the_same_line_and_other_handlers_get_the_record() -> None:
    other = Other()
    with stdout_of_handler() as direct:
        observe.log_request(dict(FIELDS))
    observe._log.addHandler(other)
    try:
        with stdout_of_handler() as recorded:
            observe.log_request(dict(FIELDS))
    finally:
        observe._log.removeHandler(other)
    a, b = _lines(direct)[0], _lines(recorded)[0]
    assert a.pop("timestamp")[:10] == b.pop("timestamp")[:10]
    assert a == b
    assert len(recorded.calls) == 1 and len(_lines(recorded)) == 2  # still one write with its metrics
    assert [r.__dict__["fields"]["request_id"] for r in other.records] == ["req_1"]


def test_the_line_matches_powertools_own_formatter() -> None:
    formatter = observe._HANDLER.formatter
    assert isinstance(formatter, observe._Formatter)
    record = observe._log.makeRecord("skylane", logging.INFO, __file__, 7, "request", (), None, func="log_request")
    ours = json.loads(formatter.format(logging.makeLogRecord({**record.__dict__, "fields": dict(FIELDS)})))
    for key, value in FIELDS.items():  # Powertools takes the fields as the record's own attributes
        if value is not None:
            record.__dict__[key] = value
    theirs = json.loads(LambdaPowertoolsFormatter.format(formatter, record))
    theirs.pop("taskName", None)
    assert ours == theirs


def test_with_the_level_above_info_only_the_metrics_are_written(capsys: Any) -> None:
    observe.configure_logging("ERROR")
    with stdout_of_handler() as buf:
        observe.log_request(dict(FIELDS))
    assert buf.calls == []  # no log line
    emf = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(emf) == 1 and emf[0]["request_id"] == "req_1" and "_aws" in emf[0]
