"""Backpressure: pause the assigned partitions at the in-flight bound, resume them at half of it."""

from __future__ import annotations

from workers.consumer import Backpressure

T = "frames"


def test_backpressure_pauses_at_the_bound_and_resumes_at_half() -> None:
    a, b, c = (T, 0), (T, 1), (T, 2)
    backpressure = Backpressure(max_in_flight=8)
    assert backpressure.update(7, {a, b}).pause == frozenset()
    assert backpressure.update(8, {a, b}).pause == {a, b}
    assert backpressure.update(9, {a, b}).pause == frozenset()  # already paused
    assert backpressure.update(6, {a, b, c}).pause == {c}  # assigned while engaged: paused too
    backpressure.forget([b])  # revoked
    change = backpressure.update(4, {a, c})
    assert change.resume == {a, c} and not backpressure.engaged
    assert backpressure.update(7, {a, c}) == type(change)()  # below the bound again: nothing to do
