"""The circuit breaker's state machine, with an explicit clock (router.Breaker)."""

from __future__ import annotations

from skylane.pipeline.router import Breaker


def test_opens_after_n_failures_within_the_window():
    b = Breaker(failures=3, window=10, cooldown=5)
    for t in (0.0, 1.0):
        b.failure(b.acquire(t), t)
    assert b.state == "closed"
    b.failure(b.acquire(2.0), 2.0)
    assert b.state == "open" and b.acquire(3.0) is None
    assert b.retry_after(3.0) == 4.0


def test_old_failures_leave_the_window_and_a_success_resets_the_count():
    b = Breaker(failures=2, window=10, cooldown=5)
    b.failure(b.acquire(0.0), 0.0)
    b.failure(b.acquire(11.0), 11.0)  # the first one is out of the window
    assert b.state == "closed"
    b.success(b.acquire(12.0))
    b.failure(b.acquire(13.0), 13.0)
    assert b.state == "closed"
    b.failure(b.acquire(14.0), 14.0)
    assert b.state == "open"


def test_half_open_gives_exactly_one_trial():
    b = Breaker(failures=1, window=10, cooldown=5)
    b.failure(b.acquire(0.0), 0.0)
    assert b.acquire(4.9) is None
    trial = b.acquire(5.0)
    assert trial is not None and trial.trial and b.state == "half-open"
    assert b.acquire(5.1) is None and b.acquire(6.0) is None  # the others keep skipping
    assert b.retry_after(6.0) == 1.0
    b.success(trial)
    assert b.state == "closed" and b.acquire(6.1) is not None


def test_failed_trial_reopens_for_another_cooldown():
    b = Breaker(failures=1, window=10, cooldown=5)
    b.failure(b.acquire(0.0), 0.0)
    trial = b.acquire(5.0)
    b.failure(trial, 5.5)
    assert b.state == "open" and b.acquire(10.0) is None
    assert b.acquire(10.5) is not None


def test_a_trial_without_verdict_frees_the_slot():
    b = Breaker(failures=1, window=10, cooldown=5)
    b.failure(b.acquire(0.0), 0.0)
    trial = b.acquire(5.0)
    b.release(trial)  # the client left, the budget ran out
    assert b.state == "open"
    assert b.acquire(5.1) is not None


def test_a_lost_trial_is_replaced_after_max_trial_and_its_verdict_ignored():
    b = Breaker(failures=1, window=10, cooldown=5, max_trial=20)
    b.failure(b.acquire(0.0), 0.0)
    lost = b.acquire(5.0)
    assert b.acquire(24.0) is None
    fresh = b.acquire(25.0)
    assert fresh is not None and fresh.trial
    b.success(lost)  # a late verdict from the lost trial says nothing
    assert b.state == "half-open"
    b.success(fresh)
    assert b.state == "closed"


def test_verdicts_from_before_a_state_change_are_ignored():
    b = Breaker(failures=2, window=10, cooldown=5)
    early = b.acquire(0.0)
    b.failure(b.acquire(0.1), 0.1)
    b.failure(b.acquire(0.2), 0.2)
    assert b.state == "open"
    b.success(early)  # admitted while closed: does not close the open breaker
    assert b.state == "open"
    trial = b.acquire(5.2)
    b.failure(early, 5.3)  # nor does its failure end the trial
    assert b.state == "half-open"
    b.success(trial)
    assert b.state == "closed"
