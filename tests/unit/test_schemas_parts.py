"""PartDecision records: round trip through the serde, invariants, and the topic key contract."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from schemas.parts import PartDecision, PartDecisionReason, PartOutcome, PartView
from schemas.records import InvalidRecordError, Verdict
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer
from tests.unit.golden.records import golden_part_decision


def test_round_trip_keeps_every_field() -> None:
    decision = golden_part_decision()

    data = AvroRecordSerializer(PartDecision)(decision)
    back = AvroRecordDeserializer(PartDecision)(data)

    assert back == decision
    assert back.views[1].label == "scratch"
    assert back.missing_views == ("cam-09",)


def test_timestamps_are_normalized_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    decision = PartDecision(
        part_id="P-1",
        line_id="line-1",
        decision="PASS",
        reason="ALL_OK",
        rule="all-ok",
        first_captured_at=datetime(2026, 1, 1, 12, tzinfo=plus_two),
        decided_at=datetime(2026, 1, 1, 12, 0, 1, tzinfo=plus_two),
    )

    assert decision.decision is PartOutcome.PASS
    assert decision.reason is PartDecisionReason.ALL_OK
    assert decision.first_captured_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "changes",
    [
        {"part_id": ""},
        {"decision": "MAYBE"},
        {"reason": "MISSING_VIEWS", "missing_views": ()},
        {"decided_at": datetime(2026, 1, 1)},  # naive
    ],
)
def test_invalid_decisions_are_refused(changes: dict[str, object]) -> None:
    fields = golden_part_decision().to_dict()
    fields.update(changes)
    with pytest.raises(InvalidRecordError):
        PartDecision.from_dict(fields)


def test_view_score_must_be_a_probability() -> None:
    with pytest.raises(InvalidRecordError):
        PartView(camera_id="c", station_id="s", frame_number=1, verdict=Verdict.OK, score=1.5)
