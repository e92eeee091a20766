"""The dynamic batcher, driven by a fake clock."""

from __future__ import annotations

import pytest

from workers.batcher import DynamicBatcher


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_batch_closes_when_full(clock: FakeClock) -> None:
    batcher: DynamicBatcher[int] = DynamicBatcher(max_batch_size=3, max_wait_ms=50, clock=clock)
    assert batcher.add(1) is None
    assert batcher.add(2) is None
    batch = batcher.add(3)
    assert batch is not None
    assert batch.items == (1, 2, 3)
    assert batch.full
    assert len(batcher) == 0
    assert batcher.deadline() is None


def test_batch_closes_max_wait_after_first_item(clock: FakeClock) -> None:
    batcher: DynamicBatcher[str] = DynamicBatcher(max_batch_size=8, max_wait_ms=50, clock=clock)
    batcher.add("a")
    clock.advance(0.030)
    batcher.add("b")  # a later item does not extend the deadline
    assert batcher.due() is None
    assert batcher.time_until_due() == pytest.approx(0.020)
    clock.advance(0.020)
    batch = batcher.due()
    assert batch is not None
    assert batch.items == ("a", "b")
    assert not batch.full
    assert batch.closed_at - batch.opened_at == pytest.approx(0.050)


def test_new_batch_deadline_starts_at_its_own_first_item(clock: FakeClock) -> None:
    batcher: DynamicBatcher[int] = DynamicBatcher(max_batch_size=2, max_wait_ms=10, clock=clock)
    batcher.add(1)
    assert batcher.add(2) is not None
    clock.advance(1.0)
    batcher.add(3)
    assert batcher.deadline() == pytest.approx(clock.now + 0.010)


def test_items_that_waited_elsewhere_close_their_batch_at_once(clock: FakeClock) -> None:
    # Frames decoded while the model was busy carry their arrival time: no second max_wait.
    batcher: DynamicBatcher[int] = DynamicBatcher(max_batch_size=8, max_wait_ms=20, clock=clock)
    batcher.add(1, arrived_at=clock.now - 0.5)
    batcher.add(2, arrived_at=clock.now - 0.1)
    assert batcher.time_until_due() == 0.0
    batch = batcher.due()
    assert batch is not None and batch.items == (1, 2)


def test_zero_wait_closes_on_the_next_due_check(clock: FakeClock) -> None:
    batcher: DynamicBatcher[int] = DynamicBatcher(max_batch_size=4, max_wait_ms=0, clock=clock)
    batcher.add(7)
    batch = batcher.due()
    assert batch is not None and batch.items == (7,)


def test_empty_batcher_has_no_deadline_and_nothing_to_flush(clock: FakeClock) -> None:
    batcher: DynamicBatcher[int] = DynamicBatcher(max_batch_size=4, max_wait_ms=5, clock=clock)
    assert batcher.deadline() is None
    assert batcher.time_until_due() is None
    assert batcher.due() is None
    assert batcher.flush() is None


def test_flush_closes_a_partial_batch(clock: FakeClock) -> None:
    batcher: DynamicBatcher[int] = DynamicBatcher(max_batch_size=4, max_wait_ms=1000, clock=clock)
    batcher.add(1)
    batcher.add(2)
    batch = batcher.flush()
    assert batch is not None and batch.items == (1, 2) and not batch.full
    assert len(batcher) == 0


def test_remove_if_drops_items_of_revoked_partitions(clock: FakeClock) -> None:
    batcher: DynamicBatcher[tuple[int, int]] = DynamicBatcher(max_batch_size=8, max_wait_ms=10, clock=clock)
    for item in [(0, 1), (1, 1), (0, 2)]:
        batcher.add(item)
    dropped = batcher.remove_if(lambda item: item[0] == 0)
    assert dropped == [(0, 1), (0, 2)]
    assert len(batcher) == 1
    assert batcher.remove_if(lambda item: True) == [(1, 1)]
    assert batcher.deadline() is None


@pytest.mark.parametrize(("size", "wait"), [(0, 10), (4, -1)])
def test_rejects_invalid_limits(size: int, wait: float) -> None:
    with pytest.raises(ValueError):
        DynamicBatcher(max_batch_size=size, max_wait_ms=wait)
