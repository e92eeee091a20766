"""The rebalance storm's figures: time spent rebalancing from sampled group states, and the printed report."""

from __future__ import annotations

import threading

from chaos.audit import audit
from chaos.group_state import GroupStateSampler, figures_of, rebalancing_spans
from chaos.rebalance_storm import StormReport, report_json


def test_consecutive_rebalancing_samples_are_one_stretch_held_until_the_next_sample() -> None:
    samples = [
        (0.0, "STABLE"),
        (1.0, "PREPARING_REBALANCING"),
        (1.5, "COMPLETING_REBALANCING"),
        (2.0, "STABLE"),
        (5.0, "PREPARING_REBALANCING"),
        (6.0, "STABLE"),
    ]
    assert rebalancing_spans(samples, end=10.0) == [(1.0, 2.0), (5.0, 6.0)]
    figures = figures_of(samples, end=10.0, failed=2)
    assert (figures.seconds, figures.episodes, figures.longest_s) == (2.0, 2, 1.0)
    assert (figures.samples, figures.failed_samples, figures.sampled_s) == (6, 2, 10.0)
    assert figures.to_json()["rebalancing_share"] == 0.2


def test_a_rebalance_still_running_at_the_end_lasts_until_the_end_and_order_does_not_matter() -> None:
    samples = [(4.0, "PREPARING_REBALANCING"), (0.0, "STABLE"), (3.0, "EMPTY")]
    assert rebalancing_spans(samples, end=7.5) == [(4.0, 7.5)]


def test_no_samples_no_rebalancing() -> None:
    figures = figures_of([], end=3.0)
    assert (figures.seconds, figures.episodes, figures.sampled_s) == (0.0, 0, 0.0)
    assert figures.to_json()["rebalancing_share"] is None


def test_the_sampler_counts_unanswered_samples_and_names_states() -> None:
    script: list[str | Exception] = ["STABLE", RuntimeError("coordinator moving"), "PREPARING_REBALANCING"]
    answers = iter(script)
    done = threading.Event()

    def describe(group_id: str) -> str:
        assert group_id == "g"
        answer = next(answers, None)
        if answer is None:
            done.set()
            return "STABLE"
        if isinstance(answer, Exception):
            raise answer
        return answer

    sampler = GroupStateSampler({}, "g", every_s=0.01, describe=describe).start()
    done.wait(5)
    figures = sampler.close()
    assert [state for _, state in sampler.samples[:2]] == ["STABLE", "PREPARING_REBALANCING"]
    assert figures.failed_samples == 1
    assert figures.episodes == 1


def test_the_printed_report_has_latency_and_rebalancing_figures() -> None:
    figures = audit(
        expected=[("cam", 0)],
        documents=[("cam", 0, "v1")],
        results=[("cam", 0), ("cam", 0)],
        dead_letter_sources=[],
        injected_bad=[],
    )
    report = StormReport(
        mode="at-least-once",
        figures=figures,
        joins=2,
        leaves_sigterm=1,
        leaves_sigkill=1,
        unplanned_exits=0,
        seconds=60.0,
        latency_s={"p50": 0.12345, "p99": 2.5, "max": None},
        rebalancing=figures_of([(0.0, "STABLE"), (1.0, "PREPARING_REBALANCING"), (3.0, "STABLE")], 10.0),
    )
    printed = report_json(report)
    assert printed["latency_s"] == {"p50": 0.123, "p99": 2.5, "max": None}
    rebalanced = (printed["rebalancing_s"], printed["rebalances_seen"], printed["rebalancing_share"])
    assert rebalanced == (2.0, 1, 0.2)
    assert printed["passed"] is True  # a duplicate result is allowed at least once
    assert printed["figures"]["duplicate_results"] == 1


def test_the_client_enums_rebalancing_states_count() -> None:
    # What describe_consumer_groups returns is confluent_kafka's enum: its names, not the broker's.
    from confluent_kafka import ConsumerGroupState

    from chaos.group_state import REBALANCING, _state_name

    assert _state_name(ConsumerGroupState.PREPARING_REBALANCING) in REBALANCING
    assert _state_name(ConsumerGroupState.COMPLETING_REBALANCING) in REBALANCING
    assert _state_name(ConsumerGroupState.STABLE) not in REBALANCING
    assert _state_name(ConsumerGroupState.EMPTY) not in REBALANCING
