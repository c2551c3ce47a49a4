"""Model id → targets, then attempts: retries with backoff, fallbacks, circuit breakers.

A request's targets are its `model`, then the request's own `models` (OpenRouter style), then
the catalog's fallback chain for the first model. Each target gets up to `max_attempts`
attempts for retryable failures (connect errors, timeouts before the first byte, 429, 5xx),
with exponential backoff and full jitter, honouring Retry-After, inside the request's time
budget. A caller's error (4xx other than 408/409/429) is never retried nor fallen back from.

Circuit breakers are per provider+model and per Lambda instance (process memory): after
`breaker_failures` failures within `breaker_window` seconds a breaker opens and the target is
skipped for `breaker_cooldown` seconds, then one trial request is let through (half-open).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .catalog import Catalog, Target
from .errors import SkylaneError, UpstreamUnavailable
from .settings import Settings

__all__ = ["Attempt", "Breaker", "Router"]

T = TypeVar("T")


class Breaker:
    def __init__(self, failures: int, window: float, cooldown: float) -> None:
        self.failures = failures
        self.window = window
        self.cooldown = cooldown
        self._times: deque[float] = deque()
        self.opened_at: float | None = None
        self._trial = False

    def allow(self, now: float) -> bool:
        if self.opened_at is None:
            return True
        if now - self.opened_at >= self.cooldown and not self._trial:
            self._trial = True  # half-open: one request goes through
            return True
        return False

    def retry_after(self, now: float) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (now - self.opened_at))

    def success(self) -> None:
        self._times.clear()
        self.opened_at = None
        self._trial = False

    def failure(self, now: float) -> None:
        if self._trial:
            self.opened_at = now  # the trial failed: open again
            self._trial = False
            return
        self._times.append(now)
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
        if len(self._times) >= self.failures:
            self.opened_at = now
            self._times.clear()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self._trial else "open"


@dataclass
class Attempt:
    model: str
    outcome: str  # ok | error status | skipped

    def __str__(self) -> str:
        return f"{self.model};{self.outcome}"


@dataclass
class Router:
    catalog: Catalog
    settings: Settings
    breakers: dict[str, Breaker]  # per process (per Lambda instance), shared by its requests
    attempts: list[Attempt] = field(default_factory=list)

    def targets(self, model: str, extra: list[str] | None) -> list[Target]:
        """The first target raises ModelNotFound etc.; unusable fallbacks are skipped."""
        first = self.catalog.target(model)
        names = list(extra or [])
        names += list(first.model.fallbacks)
        out = [first]
        seen = {first.model.id}
        for name in names:
            try:
                t = self.catalog.target(name)
            except SkylaneError:
                if extra and name in extra:
                    raise
                continue
            if t.model.id not in seen:
                seen.add(t.model.id)
                out.append(t)
        return out

    def _breaker(self, target: Target) -> Breaker:
        key = target.model.id
        b = self.breakers.get(key)
        if b is None:
            s = self.settings
            b = self.breakers[key] = Breaker(s.breaker_failures, s.breaker_window, s.breaker_cooldown)
        return b

    async def run(self, targets: list[Target], call: Callable[[Target], Awaitable[T]], deadline: float) -> T:
        """Try targets in order with retries; return the first success or raise the last error."""
        last: SkylaneError | None = None
        soonest_open: float | None = None
        s = self.settings
        for target in targets:
            breaker = self._breaker(target)
            now = time.monotonic()
            if not breaker.allow(now):
                self.attempts.append(Attempt(target.model.id, "skipped"))
                wait = breaker.retry_after(now)
                soonest_open = wait if soonest_open is None else min(soonest_open, wait)
                continue
            for attempt in range(max(1, s.max_attempts)):
                try:
                    result = await call(target)
                except SkylaneError as exc:
                    self.attempts.append(Attempt(target.model.id, str(exc.status)))
                    if not exc.retryable:
                        raise
                    breaker.failure(time.monotonic())
                    last = exc
                    if attempt + 1 >= s.max_attempts or not breaker.allow(time.monotonic()):
                        break
                    delay = random.uniform(0, min(s.retry_max_delay, s.retry_base_delay * (2**attempt)))
                    if exc.retry_after is not None:
                        delay = max(delay, exc.retry_after)
                    if time.monotonic() + delay >= deadline:
                        break  # no time for another try here: a fallback may still fit
                    await asyncio.sleep(delay)
                    continue
                breaker.success()
                self.attempts.append(Attempt(target.model.id, "ok"))
                return result
            if time.monotonic() >= deadline:
                break
        if last is not None:
            raise last
        raise UpstreamUnavailable(
            "Every provider for this model is failing right now (circuit open); try again shortly.",
            retry_after=soonest_open or self.settings.breaker_cooldown,
            code="circuit_open",
        )

    def attempts_header(self) -> str:
        return ", ".join(str(a) for a in self.attempts)
