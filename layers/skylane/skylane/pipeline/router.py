"""Model id → targets, then attempts: retries with backoff, fallbacks, circuit breakers.

A request's targets are its `model`, then the request's own `models` (OpenRouter style), then
the catalog's fallback chain for the first model. Each target gets up to `max_attempts`
attempts for retryable failures (connect errors, timeouts before the first byte, 429, 5xx),
with exponential backoff and full jitter, honouring Retry-After, inside the request's time
budget (`deadline`, a `time.monotonic()` value):

- a caller's error (4xx other than 408/409/429) is never retried nor fallen back from;
- a target-specific failure that retrying cannot fix (the provider refused the gateway's key)
  skips straight to the next target;
- a Retry-After longer than `retry_max_delay`, or one that would end past the deadline, is not
  waited for: the next target is tried, or the error (with its Retry-After) is the answer;
- no sleep ever crosses the deadline, and once the deadline has passed no attempt starts.

Circuit breakers are per provider+model and per process (one Lambda instance: breakers are not
shared between instances). After `breaker_failures` failures within `breaker_window` seconds
with no success in between, a breaker opens and the target is skipped for `breaker_cooldown`
seconds; then exactly one trial request is let through (half-open). The trial's success closes
the breaker, its failure re-opens it for another cool-down; a trial that ends without a verdict
(the client left, the budget ran out) frees the slot for the next request, and so does a trial
still out after `max_trial` seconds (the request budget), whatever happened to it. Outcomes of
requests admitted before the breaker last changed state are ignored (generation counter).

A stream's verdict waits for the stream's end (`Router.run(..., verdict_later=True)`, then
`Router.stream_ended(outcome)`): a provider that starts streams and then breaks them counts as
failing.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from skylane.core.catalog import Catalog, Target
from skylane.core.errors import SkylaneError, UpstreamTimeout, UpstreamUnavailable
from skylane.core.settings import Settings

__all__ = ["BUDGET_EXHAUSTED", "Attempt", "Breaker", "Router", "Ticket", "budget_exhausted"]

T = TypeVar("T")

BUDGET_EXHAUSTED = "budget_exhausted"  # the error code of a request that ran out of its time budget


def budget_exhausted(what: str = "request") -> UpstreamTimeout:
    """The error for a request (or stream) that used up SKYLANE_TOTAL_TIMEOUT."""
    return UpstreamTimeout(f"The {what} ran out of its time budget.", code=BUDGET_EXHAUSTED, retryable=False)


@dataclass(frozen=True, slots=True)
class Ticket:
    """Permission from a breaker for one attempt; hand it back with the outcome."""

    generation: int
    trial: bool = False


class Breaker:
    """closed → (N failures in the window) → open → (cool-down) → half-open: one trial → closed | open."""

    def __init__(self, failures: int, window: float, cooldown: float, max_trial: float = 600.0) -> None:
        self.failures = max(1, failures)
        self.window = window
        self.cooldown = cooldown
        self.max_trial = max_trial
        self._times: deque[float] = deque()
        self.opened_at: float | None = None
        self._trial = False  # a half-open trial is in flight
        self._trial_at = 0.0
        self._generation = 0

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self._trial else "open"

    def acquire(self, now: float) -> Ticket | None:
        """A ticket for one attempt, or None when the breaker is open (or its one trial is out)."""
        if self.opened_at is None:
            return Ticket(self._generation)
        if now - self.opened_at < self.cooldown:
            return None
        if self._trial:
            if now - self._trial_at < self.max_trial:
                return None
            self._generation += 1  # the lost trial's verdict no longer counts
        self._trial = True
        self._trial_at = now
        return Ticket(self._generation, trial=True)

    def retry_after(self, now: float) -> float:
        """Seconds until a request may get through again (at least 1 while a trial is out)."""
        if self.opened_at is None:
            return 0.0
        return max(1.0, self.cooldown - (now - self.opened_at))

    def success(self, ticket: Ticket) -> None:
        if ticket.generation != self._generation:
            return  # admitted before the last state change: says nothing about now
        if ticket.trial or self.opened_at is None:
            self._close()

    def failure(self, ticket: Ticket, now: float) -> None:
        if ticket.generation != self._generation:
            return
        if ticket.trial:
            self._open(now)  # the trial failed: another cool-down
            return
        self._times.append(now)
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()
        if len(self._times) >= self.failures:
            self._open(now)

    def release(self, ticket: Ticket) -> None:
        """The attempt ended without a verdict on the provider (cancelled, budget used up)."""
        if ticket.generation == self._generation and ticket.trial:
            self._trial = False  # the next request may try instead

    def _open(self, now: float) -> None:
        self.opened_at = now
        self._trial = False
        self._times.clear()
        self._generation += 1

    def _close(self) -> None:
        self.opened_at = None
        self._trial = False
        self._times.clear()
        self._generation += 1


@dataclass
class Attempt:
    model: str
    outcome: str  # ok | the error's HTTP status | circuit-open

    def __str__(self) -> str:
        return f"{self.model};{self.outcome}"


def _is_budget(exc: SkylaneError) -> bool:
    return exc.code == BUDGET_EXHAUSTED


@dataclass
class Router:
    catalog: Catalog
    settings: Settings
    breakers: dict[str, Breaker]  # per process (per Lambda instance), shared by its requests
    attempts: list[Attempt] = field(default_factory=list)
    current: Target | None = None  # the target of the attempt in flight (or the last one)
    _verdict: tuple[Breaker, Ticket] | None = None  # a committed stream's, given when it ends

    def targets(self, model: str, extra: list[str] | None) -> list[Target]:
        """The first target raises ModelNotFound etc.; unusable catalog fallbacks are skipped."""
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

    def breaker(self, target: Target) -> Breaker:
        key = target.model.id  # provider/model
        b = self.breakers.get(key)
        if b is None:
            s = self.settings
            b = self.breakers[key] = Breaker(s.breaker_failures, s.breaker_window, s.breaker_cooldown,
                                             max_trial=s.total_timeout)
        return b

    def stream_ended(self, outcome: str) -> None:
        """The verdict on a stream returned by `run(..., verdict_later=True)`: "ok", "failed"
        (the provider broke it), or "unknown" (the client left, the budget ran out). Idempotent."""
        pending, self._verdict = self._verdict, None
        if pending is None:
            return
        breaker, ticket = pending
        if outcome == "ok":
            breaker.success(ticket)
        elif outcome == "failed":
            breaker.failure(ticket, time.monotonic())
        else:
            breaker.release(ticket)

    def _delay(self, attempt: int, exc: SkylaneError) -> float | None:
        """Seconds to wait before the next attempt on the same target; None: don't retry it."""
        s = self.settings
        delay = random.uniform(0, min(s.retry_max_delay, s.retry_base_delay * (2**attempt)))
        if exc.retry_after is not None:
            if exc.retry_after > s.retry_max_delay:
                return None  # the provider asks for longer than we wait: fall back or report it
            delay = max(delay, exc.retry_after)
        return delay

    async def run(self, targets: list[Target], call: Callable[[Target], Awaitable[T]], deadline: float,
                  *, verdict_later: bool = False) -> T:
        """Try targets in order with retries; return the first success or raise the last error.

        With `verdict_later`, the successful attempt's breaker verdict waits for `stream_ended()`.
        """
        last: SkylaneError | None = None
        soonest_open: float | None = None
        max_attempts = max(1, self.settings.max_attempts)
        for target in targets:
            if time.monotonic() >= deadline:
                break
            breaker = self.breaker(target)
            for attempt in range(max_attempts):
                now = time.monotonic()
                ticket = breaker.acquire(now)
                if ticket is None:
                    self.attempts.append(Attempt(target.model.id, "circuit-open"))
                    wait = breaker.retry_after(now)
                    soonest_open = wait if soonest_open is None else min(soonest_open, wait)
                    break
                self.current = target
                try:
                    result = await call(target)
                except SkylaneError as exc:
                    self.attempts.append(Attempt(target.model.id, str(exc.status)))
                    if not exc.retryable and exc.status < 500:
                        breaker.success(ticket)  # the provider answered; the request is at fault
                        raise
                    if _is_budget(exc):
                        breaker.release(ticket)  # the budget ended it, not the provider
                        raise
                    breaker.failure(ticket, time.monotonic())
                    last = exc
                    if not exc.retryable or attempt + 1 >= max_attempts:
                        break  # next target
                    delay = self._delay(attempt, exc)
                    if delay is None or time.monotonic() + delay >= deadline:
                        break  # no time (or no point) waiting here: a fallback may still fit
                    await asyncio.sleep(delay)
                    continue
                except BaseException:
                    breaker.release(ticket)  # cancelled (client left) or a bug: no verdict
                    raise
                if verdict_later:
                    self._verdict = (breaker, ticket)
                else:
                    breaker.success(ticket)
                self.attempts.append(Attempt(target.model.id, "ok"))
                return result
        if last is not None:
            raise last
        if soonest_open is not None:
            raise UpstreamUnavailable(
                "Every provider for this model is failing right now (circuit open); try again shortly.",
                retry_after=float(math.ceil(soonest_open)),
                code="circuit_open",
            )
        raise budget_exhausted()

    def attempts_header(self) -> str:
        return ", ".join(str(a) for a in self.attempts)
