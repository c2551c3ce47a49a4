"""Shared fixtures: real loopback servers for fake providers and for the gateway itself."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from skylane.core.settings import Settings  # noqa: E402
from skylane.http.apps import create_app  # noqa: E402
from tests.fakes.openai_upstream import FakeOpenAI  # noqa: E402
from tests.fakes.server import serve  # noqa: E402

UPSTREAM_KEY = "sk-upstream-test"


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI(UPSTREAM_KEY)
    with serve(fake.app) as url:
        yield fake, url + "/v1"


def make_settings(**env: str) -> Settings:
    # breakers are per gateway and the session `gateway` is shared: error tests must not open its breakers
    # for the tests after them (tests about breakers set SKYLANE_BREAKER_FAILURES themselves)
    base = {"SKYLANE_AUTH": "disabled", "SKYLANE_LOG_LEVEL": "WARNING", "SKYLANE_RETRY_BASE_DELAY": "0.01",
            "SKYLANE_BREAKER_FAILURES": "1000"}
    base.update(env)
    return Settings.from_env(base)


@pytest.fixture(scope="session")
def gateway_factory() -> Iterator[Callable[..., str]]:
    """gateway_factory(**env) → base URL of a real uvicorn server running Skylane with that env."""
    with ExitStack() as stack:

        def start(**env: str) -> str:
            app = create_app(make_settings(**env))
            return stack.enter_context(serve(app))

        yield start


@pytest.fixture(scope="session")
def gateway(gateway_factory: Callable[..., str], fake_openai: tuple[FakeOpenAI, str]) -> str:
    """A gateway (auth off) with the openai provider pointed at the fake."""
    return gateway_factory(OPENAI_API_KEY=UPSTREAM_KEY, OPENAI_BASE_URL=fake_openai[1])


class LogLines(logging.Handler):
    """The gateway's log lines of one kind, as dicts: "request" (observe.log_request, one per call) by
    default, or e.g. "admin" (one per admin API call)."""

    def __init__(self, message: str = "request") -> None:
        super().__init__(logging.INFO)
        self.message = message
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and record.getMessage() == self.message:
            self.lines.append(dict(fields))

    def wait(self, n: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        end = time.monotonic() + timeout
        while len(self.lines) < n and time.monotonic() < end:
            time.sleep(0.01)
        return self.lines


@contextmanager
def captured(message: str = "request") -> Iterator[LogLines]:
    """The gateway's log lines of one kind while inside."""
    handler = LogLines(message)
    logger = logging.getLogger("skylane")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def logs() -> Iterator[LogLines]:
    with captured() as handler:
        yield handler


def last_request(fake: Any) -> dict[str, Any]:
    return fake.requests[-1]
