"""The commit tracker: only contiguous, fully acknowledged prefixes are committable."""

from __future__ import annotations

import threading

import pytest

from workers.offsets import OffsetTracker

T = "frames"


def test_nothing_committable_until_the_first_record_is_done() -> None:
    tracker = OffsetTracker()
    first = tracker.track(T, 0, 10)
    second = tracker.track(T, 0, 11)
    tracker.settle(second, outstanding=0)
    assert tracker.commit_positions() == {}
    tracker.settle(first, outstanding=2)
    tracker.ack(first)
    assert tracker.commit_positions() == {}
    tracker.ack(first)
    assert tracker.commit_positions() == {(T, 0): 12}


def test_out_of_order_completion_commits_only_the_contiguous_prefix() -> None:
    tracker = OffsetTracker()
    tickets = [tracker.track(T, 1, offset) for offset in range(5)]
    for ticket in tickets:
        tracker.settle(ticket, outstanding=1)
    for index in (4, 2, 0):
        tracker.ack(tickets[index])
    assert tracker.commit_positions() == {(T, 1): 1}
    tracker.ack(tickets[1])
    assert tracker.commit_positions() == {(T, 1): 3}
    tracker.ack(tickets[3])
    assert tracker.commit_positions() == {(T, 1): 5}
    assert tracker.in_flight() == 0


def test_partitions_are_independent() -> None:
    tracker = OffsetTracker()
    a = tracker.track(T, 0, 5)
    b = tracker.track(T, 1, 9)
    tracker.settle(b, outstanding=0)
    tracker.settle(a, outstanding=1)
    assert tracker.commit_positions() == {(T, 1): 10}
    assert tracker.in_flight([(T, 0)]) == 1
    assert tracker.in_flight([(T, 1)]) == 0


def test_committed_positions_are_not_reported_again() -> None:
    tracker = OffsetTracker()
    tracker.settle(tracker.track(T, 0, 0), outstanding=0)
    positions = tracker.commit_positions()
    tracker.mark_committed(positions)
    assert tracker.commit_positions() == {}
    tracker.settle(tracker.track(T, 0, 1), outstanding=0)
    assert tracker.commit_positions() == {(T, 0): 2}


def test_released_partition_ignores_late_acks_and_refuses_settling() -> None:
    tracker = OffsetTracker()
    old = tracker.track(T, 0, 3)
    tracker.settle(old, outstanding=1)
    assert tracker.release([(T, 0)]) == 1
    assert not tracker.is_live(old)
    tracker.ack(old)  # late delivery report from before the revoke: ignored
    # Reassigned later: the same offset is a new record in a new epoch.
    new = tracker.track(T, 0, 3)
    assert tracker.is_live(new)
    assert not tracker.settle(old, outstanding=0)
    assert tracker.commit_positions() == {}
    tracker.settle(new, outstanding=0)
    assert tracker.commit_positions() == {(T, 0): 4}


def test_wait_until_done_returns_when_the_partition_drains() -> None:
    tracker = OffsetTracker()
    ticket = tracker.track(T, 2, 0)
    tracker.settle(ticket, outstanding=1)
    assert not tracker.wait_until_done([(T, 2)], timeout_s=0.01)
    timer = threading.Timer(0.05, tracker.ack, args=(ticket,))
    timer.start()
    assert tracker.wait_until_done([(T, 2)], timeout_s=5)
    timer.join()


def test_misuse_is_refused() -> None:
    tracker = OffsetTracker()
    ticket = tracker.track(T, 0, 1)
    with pytest.raises(ValueError):
        tracker.track(T, 0, 1)
    with pytest.raises(ValueError):
        tracker.track(T, 0, 0)
    with pytest.raises(ValueError):
        tracker.ack(ticket)  # not settled yet
    tracker.settle(ticket, outstanding=1)
    with pytest.raises(ValueError):
        tracker.settle(ticket, outstanding=1)
    with pytest.raises(ValueError):
        tracker.ack(ticket, count=2)


def test_positions_if_done_previews_a_transaction_without_changing_anything() -> None:
    tracker = OffsetTracker()
    tickets = [tracker.track(T, 0, offset) for offset in range(4)]
    other = tracker.track(T, 1, 7)
    tracker.settle(tickets[2], outstanding=0)  # done out of order, waiting for 0 and 1
    assert tracker.positions_if_done([tickets[0], tickets[1]]) == {(T, 0): 3}
    assert tracker.positions_if_done([tickets[1], other]) == {(T, 1): 8}
    assert tracker.commit_positions() == {}  # nothing changed
    assert tracker.in_flight() == 5
    tracker.release([(T, 1)])
    assert tracker.positions_if_done([other]) == {}  # revoked: not part of any transaction
