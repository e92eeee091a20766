"""The claim-check pruner's decision (issue 18, item 1): which objects a retained frame may still
reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra.claimcheck_retention import PruneReport, TopicRetention, is_expired, prune_cutoff, reference_time
from schemas.errors import ConfigurationError

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
HOUR_MS = 3_600_000


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_the_cutoff_is_retention_plus_margin_when_the_log_holds_nothing_older() -> None:
    topic = TopicRetention("frames", HOUR_MS, {0: _ms(NOW - timedelta(minutes=30)), 1: None})
    assert prune_cutoff(NOW, [topic], margin_s=600) == NOW - timedelta(hours=1, minutes=10)


def test_a_record_kafka_has_not_deleted_yet_holds_the_cutoff_back() -> None:
    # Segments go late: a record three hours old is still readable under a one-hour retention.
    oldest = NOW - timedelta(hours=3)
    topic = TopicRetention("frames", HOUR_MS, {0: _ms(NOW), 1: _ms(oldest), 2: None})
    assert prune_cutoff(NOW, [topic], margin_s=60) == oldest - timedelta(seconds=60)


def test_several_topics_keep_what_the_longest_retention_and_oldest_record_need() -> None:
    short = TopicRetention("a", HOUR_MS, {0: None})
    long = TopicRetention("b", 5 * HOUR_MS, {0: None})
    assert prune_cutoff(NOW, [short, long], margin_s=0) == NOW - timedelta(hours=5)


def test_a_topic_that_keeps_records_for_ever_or_no_topic_prunes_nothing() -> None:
    assert prune_cutoff(NOW, [TopicRetention("a", HOUR_MS), TopicRetention("b", -1)], margin_s=0) is None
    assert prune_cutoff(NOW, [], margin_s=0) is None


def test_a_negative_margin_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="margin"):
        prune_cutoff(NOW, [TopicRetention("a", HOUR_MS)], margin_s=-1)


def test_a_re_upload_refreshes_the_reference_time() -> None:
    cutoff = NOW - timedelta(hours=1)
    uploaded = (NOW - timedelta(hours=2)).replace(tzinfo=None)  # pymongo reads naive UTC
    old = {"uploadDate": uploaded, "metadata": {"sha256": "x"}}
    refreshed = {"uploadDate": uploaded, "metadata": {"referenced_at": (NOW - timedelta(minutes=5))}}
    assert reference_time(old) == NOW - timedelta(hours=2)
    assert is_expired(old, cutoff)
    assert not is_expired(refreshed, cutoff)


def test_unknown_times_and_no_cutoff_keep_the_object() -> None:
    assert not is_expired({"metadata": None}, NOW)
    assert not is_expired({"uploadDate": NOW - timedelta(days=9)}, None)


def test_the_summary_counts_what_went() -> None:
    report = PruneReport(NOW, scanned=10, deleted=4, deleted_bytes=2_000_000, kept=6, dry_run=True)
    assert report.summary().startswith("would delete 4 of 10 objects (2.0 MB)")
    assert "for ever" in PruneReport(None, scanned=3).summary()
