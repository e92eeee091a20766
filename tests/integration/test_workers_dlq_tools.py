"""``lineguard dlq`` against a real broker under exactly-once, and replay of letters without their original
(issue 19, item 7).

A worker with ``--exactly-once`` writes its dead letters in transactions: the last offset of each partition
is a commit marker, which no consumer receives, so an end taken from the high watermark is never reached.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from lineguard.cli import app
from lineguard.stack.endpoints import Endpoints
from schemas.records import DeadLetter, DeadLetterReason, DeadLetterSource, Header
from schemas.serde import AvroRecordSerializer
from schemas.topics import TopicNames
from tests.integration.test_workers_support import produce, read_topic
from workers.dlq import scan_dead_letters

pytestmark = pytest.mark.integration


def _letter(offset: int, value: bytes | None = b"original") -> DeadLetter:
    return DeadLetter(
        reason=DeadLetterReason.OVERSIZE if value is None else DeadLetterReason.CORRUPT_IMAGE,
        error_class="FrameRejected",
        error_message=f"rejected at {offset}",
        source=DeadLetterSource(topic="frames", partition=0, offset=offset),
        original_key=b"cam-1",
        original_value=None if value is None else value + str(offset).encode(),
        original_headers=(Header(key="trace-id", value=b"t"),),
        worker_id="w-1",
        failed_at=datetime.now(UTC),
    )


def _transactional_letters(kafka_config: dict[str, Any], topic: str) -> None:
    """Two committed transactions (3 letters) and one aborted (2 letters), all on partition 0."""
    producer = Producer({**kafka_config, "transactional.id": f"dlq-test-{uuid.uuid4().hex[:8]}"})
    producer.init_transactions(30)
    serialize = AvroRecordSerializer(DeadLetter)
    for batch, commit in (((0, 1), True), ((2, 3), False), ((4,), True)):
        producer.begin_transaction()
        for offset in batch:
            producer.produce(topic, key=b"cam-1", value=serialize(_letter(offset)), partition=0)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.flush(30)
            producer.abort_transaction(30)


def _env(monkeypatch: pytest.MonkeyPatch, endpoints: Endpoints) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", endpoints.kafka_bootstrap)
    monkeypatch.setenv("MONGODB_URI", endpoints.mongodb_uri)


def test_inspect_ends_at_the_real_end_of_a_transactional_topic(
    kafka_config: dict[str, Any], endpoints: Endpoints, topics: TopicNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    _transactional_letters(kafka_config, topics.dead_letters)
    # A generous bound: the scan must end because it reached the end, which `complete` says, not the bound.
    scan = scan_dead_letters(kafka_config, topics.dead_letters, timeout_s=120)
    assert scan.complete and scan.unfinished == ()
    assert [stored.letter.source.offset for stored in scan.letters] == [0, 1, 4]  # the aborted two are not

    _env(monkeypatch, endpoints)
    runner = CliRunner()
    inspected = runner.invoke(
        app, ["dlq", "inspect", "--topic", topics.dead_letters, "--json", "--timeout-s", "120"]
    )
    assert inspected.exit_code == 0, inspected.output
    summary = json.loads(inspected.stdout)
    assert summary["complete"] is True and summary["partial"] is None and summary["total"] == 3

    limited = runner.invoke(app, ["dlq", "inspect", "--topic", topics.dead_letters, "--limit", "2"])
    assert limited.exit_code == 0, limited.output
    assert "(partial)" in limited.stdout and "stopped at --limit 2" in limited.stderr
    exact = scan_dead_letters(kafka_config, topics.dead_letters, limit=3, timeout_s=120)
    assert exact.complete and len(exact.letters) == 3  # a limit the topic does not exceed is no cut


def test_replay_never_publishes_a_null_record_and_names_what_it_skipped(
    kafka_config: dict[str, Any], endpoints: Endpoints, topics: TopicNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    serialize = AvroRecordSerializer(DeadLetter)
    letters = [_letter(0), _letter(1, value=None), _letter(2), _letter(3, value=None)]
    produce(kafka_config, topics.dead_letters, [(b"cam-1", serialize(letter)) for letter in letters])
    _env(monkeypatch, endpoints)
    runner = CliRunner()
    base = ["dlq", "replay", "--topic", topics.dead_letters, "--to", topics.frames, "--timeout-s", "120"]

    dry = runner.invoke(app, [*base, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would replay 2 of 4" in dry.stdout and "2 selected have no original value" in dry.stdout

    replayed = runner.invoke(app, base)
    assert replayed.exit_code == 1, replayed.output  # not everything selected could be replayed
    assert "replayed 2 of 4" in replayed.stdout
    skipped = [line for line in replayed.stderr.splitlines() if "original value was left out" in line]
    assert len(skipped) == 2
    assert all("may still be at frames[0]@" in line for line in skipped)
    assert {line.split("]@")[1].split(":")[0] for line in skipped} == {
        str(stored.offset)
        for stored in scan_dead_letters(kafka_config, topics.dead_letters, timeout_s=120).letters
        if stored.letter.original_value is None
    }
    values = read_topic(kafka_config, topics.frames, lambda value: value, expected=2, settle_s=2.0)
    assert None not in values and len(values) == 2
    assert sorted(values) == [b"original0", b"original2"]
