"""Worker size bounds the bad-input campaign relies on: every bound a deployment may choose must produce a
librdkafka configuration that librdkafka accepts (creating clients needs no broker)."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer

from workers.settings import WorkerSettings


@pytest.mark.parametrize("max_message_bytes", [1024, 64 * 1024, 900_000, 10 * 1024 * 1024])
def test_worker_clients_accept_any_record_bound(max_message_bytes: int) -> None:
    settings = WorkerSettings(max_message_bytes=max_message_bytes)
    base = {"bootstrap.servers": "127.0.0.1:1"}
    Consumer({**base, **settings.consumer_config()}).close()
    Producer({**base, **settings.producer_config()}).flush(0)
