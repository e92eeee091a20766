"""Waiting for a service at start-up: growing pauses, a deadline, a stop, and no wait for a refusal."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from schemas.errors import ConfigurationError, ServiceUnavailableError
from workers.startup import wait_for_service


class FakeTime(threading.Event):
    """A stop event whose waits advance a fake clock instead of sleeping."""

    def __init__(self, stop_at: float | None = None) -> None:
        super().__init__()
        self.now = 0.0
        self.pauses: list[float] = []
        self._stop_at = stop_at

    def clock(self) -> float:
        return self.now

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.pauses.append(timeout)
        self.now += timeout
        if self._stop_at is not None and self.now >= self._stop_at:
            self.set()
        return self.is_set()


def failing(times: int, cost_s: float, fake: FakeTime) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        fake.now += cost_s  # e.g. MongoDB's server selection timeout
        if len(calls) <= times:
            raise ServiceUnavailableError("MongoDB is not reachable: connection refused")
        return "ready"

    return calls, attempt


def test_a_service_that_comes_back_in_time_is_waited_for() -> None:
    fake = FakeTime()
    calls, attempt = failing(3, 0.5, fake)

    assert wait_for_service(attempt, "MongoDB", 60.0, fake, clock=fake.clock) == "ready"
    assert len(calls) == 4
    assert fake.pauses == [1.0, 2.0, 4.0]  # growing pauses between attempts


def test_the_last_error_is_raised_once_the_time_is_up() -> None:
    fake = FakeTime()
    calls, attempt = failing(1_000, 10.0, fake)

    with pytest.raises(ServiceUnavailableError, match="not reachable"):
        wait_for_service(attempt, "MongoDB", 30.0, fake, clock=fake.clock)
    # 10 s per attempt plus the pauses: the deadline is kept to within one attempt
    assert 2 <= len(calls) <= 4
    assert fake.now <= 30.0 + 10.0


def test_no_wait_means_one_attempt() -> None:
    fake = FakeTime()
    calls, attempt = failing(1, 0.0, fake)

    with pytest.raises(ServiceUnavailableError):
        wait_for_service(attempt, "MongoDB", 0.0, fake, clock=fake.clock)
    assert len(calls) == 1 and fake.pauses == []


def test_a_stop_ends_the_wait() -> None:
    fake = FakeTime(stop_at=2.5)
    calls, attempt = failing(1_000, 0.0, fake)

    with pytest.raises(ServiceUnavailableError, match="stopped while waiting for MongoDB"):
        wait_for_service(attempt, "MongoDB", 60.0, fake, clock=fake.clock)
    assert len(calls) == 2


def test_a_refused_login_is_not_waited_for() -> None:
    fake = FakeTime()
    calls: list[int] = []

    def refused() -> None:
        calls.append(1)
        raise ConfigurationError("MongoDB refused the login")

    with pytest.raises(ConfigurationError):
        wait_for_service(refused, "MongoDB", 60.0, fake, clock=fake.clock)
    assert len(calls) == 1 and fake.pauses == []
