"""``lineguard dlq inspect`` and ``lineguard dlq replay`` against a real dead-letter topic."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from lineguard.cli import app
from lineguard.stack.endpoints import Endpoints
from schemas.errors import ConfigurationError
from schemas.records import DeadLetter, DeadLetterReason, DeadLetterSource, Header
from schemas.serde import AvroRecordSerializer
from schemas.topics import TopicNames
from tests.integration.test_workers_support import produce, read_topic

pytestmark = pytest.mark.integration


def _letter(reason: DeadLetterReason, offset: int) -> DeadLetter:
    return DeadLetter(
        reason=reason,
        error_class="FrameRejected",
        error_message=f"{reason.value.lower()} at {offset}",
        source=DeadLetterSource(topic="frames", partition=offset % 2, offset=offset),
        original_key=f"cam-{offset}".encode(),
        original_value=f"original-{offset}".encode(),
        original_headers=(Header(key="trace-id", value=f"t{offset}".encode()),),
        worker_id="w-1",
        failed_at=datetime.now(UTC),
    )


def test_inspect_summarises_and_replay_republishes_the_selected_originals(
    kafka_config: dict[str, Any], endpoints: Endpoints, topics: TopicNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", endpoints.kafka_bootstrap)
    monkeypatch.setenv("MONGODB_URI", endpoints.mongodb_uri)
    reasons = [DeadLetterReason.CORRUPT_IMAGE] * 3 + [DeadLetterReason.OVERSIZE] * 2
    letters = [_letter(reason, offset) for offset, reason in enumerate(reasons)]
    serialize = AvroRecordSerializer(DeadLetter)
    produce(
        kafka_config, topics.dead_letters, [(letter.original_key, serialize(letter)) for letter in letters]
    )
    runner = CliRunner()

    inspected = runner.invoke(app, ["dlq", "inspect", "--topic", topics.dead_letters, "--json"])
    assert inspected.exit_code == 0, inspected.output
    summary = json.loads(inspected.output)
    assert summary["total"] == 5
    assert summary["by_reason"] == {"CORRUPT_IMAGE": 3, "OVERSIZE": 2}
    assert len(summary["latest"]) == 5

    table = runner.invoke(app, ["dlq", "inspect", "--topic", topics.dead_letters])
    assert table.exit_code == 0 and "CORRUPT_IMAGE" in table.output

    dry = runner.invoke(
        app,
        [
            "dlq",
            "replay",
            "--topic",
            topics.dead_letters,
            "--to",
            topics.frames,
            "--reason",
            "oversize",
            "--dry-run",
        ],
    )
    assert dry.exit_code == 0 and "would replay 2 of 5" in dry.output

    replayed = runner.invoke(
        app,
        ["dlq", "replay", "--topic", topics.dead_letters, "--to", topics.frames, "--reason", "corrupt_image"],
    )
    assert replayed.exit_code == 0, replayed.output
    assert "replayed 3 of 5" in replayed.output
    values = read_topic(kafka_config, topics.frames, lambda value: value, expected=3)
    assert sorted(values) == [b"original-0", b"original-1", b"original-2"]

    wrong = runner.invoke(app, ["dlq", "replay", "--topic", topics.dead_letters, "--reason", "bogus"])
    # `lineguard` (main) turns a ConfigurationError into one line and exit code 2.
    assert isinstance(wrong.exception, ConfigurationError)
    assert "unknown reason" in str(wrong.exception)
