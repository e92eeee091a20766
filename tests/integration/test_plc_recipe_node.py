"""The PLC bridge's recipe node against a real OPC UA server (asyncua, standing in for the PLC) and Kafka:
each recipe index the PLC writes becomes one changeover signal on the recipe topic, which the workers' recipe
state applies; an unmapped index publishes nothing; a bad recipe node is one line and exit 2."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer
from pymongo.database import Database

from chaos.plc_kill import bridge_command, bridge_env
from infra.kafka_topics import delete_topics, ensure_topics
from lineguard.stack.endpoints import Endpoints
from parts.plc_sim import SimulatedPlc, node_ids
from workers.recipes import RecipeBook, RecipeState

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def plc() -> Iterator[SimulatedPlc]:
    simulated = SimulatedPlc(_free_port()).start()
    try:
        yield simulated
    finally:
        simulated.stop()


def _config(tmp_path: Path, plc: SimulatedPlc, recipe_topic: str, node: str | None = None) -> Path:
    path = tmp_path / "plc.yaml"
    recipe = {"line": "line-1", "node": node or plc.recipe_node_id, "recipes": {1: "A", 2: "B"},
              "topic": recipe_topic, "poll_s": 0.05}  # fmt: skip
    config = {"endpoint": plc.endpoint, "nodes": node_ids(plc.namespace_index), "heartbeat_s": 0.5,
              "connect_timeout_s": 3, "recipe": recipe}  # fmt: skip
    path.write_text(yaml.safe_dump(config))
    return path


class _Signals:
    """The recipe topic's records, in order, as (line, value)."""

    def __init__(self, kafka_config: dict[str, Any], topic: str) -> None:
        self._consumer = Consumer({**kafka_config, "group.id": f"t-{uuid.uuid4().hex[:8]}",
                                   "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
        self._consumer.subscribe([topic])
        self.records: list[tuple[str, bytes]] = []

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout_s
        while len(self.records) < count:
            assert time.monotonic() < deadline, f"{len(self.records)} of {count} signals: {self.records}"
            message = self._consumer.poll(0.2)
            if message is not None and message.error() is None:
                self.records.append(((message.key() or b"").decode(), message.value() or b""))
        return self.records

    def close(self) -> None:
        self._consumer.close()


def test_each_recipe_index_the_plc_writes_is_one_signal_the_workers_apply(
    tmp_path: Path,
    plc: SimulatedPlc,
    endpoints: Endpoints,
    kafka_config: dict[str, Any],
    mongo_db: Database[dict[str, Any]],
) -> None:
    prefix = f"test.plc-recipe.{uuid.uuid4().hex[:8]}"
    decisions, recipes = f"{prefix}.part-decisions", f"{prefix}.recipes"
    ensure_topics(kafka_config, [decisions, recipes], partitions=1)
    signals = _Signals(kafka_config, recipes)
    plc.set_recipe_index(1)  # the product running when the bridge starts
    bridge = subprocess.Popen(
        bridge_command(_config(tmp_path, plc, recipes), decisions, f"g-{uuid.uuid4().hex[:6]}"),
        env=bridge_env(endpoints.kafka_bootstrap, endpoints.mongodb_uri, mongo_db.name),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert signals.wait_for(1) == [("line-1", b'{"recipe": "A"}')]  # the current one, at start
        plc.set_recipe_index(2)
        assert signals.wait_for(2)[1] == ("line-1", b'{"recipe": "B"}')
        plc.set_recipe_index(7)  # no recipe 7 in the config: nothing is published
        time.sleep(0.5)  # ten reads of the node
        plc.set_recipe_index(1)
        assert signals.wait_for(3)[2] == ("line-1", b'{"recipe": "A"}')  # the 7 left no record between
        bridge.terminate()
        out, _ = bridge.communicate(timeout=30)
        assert "PLC recipe index 7 of line line-1 has no recipe in the config" in out
        assert len(signals.records) == 3
        book = RecipeBook.from_mapping(
            {
                "lines": {
                    "line-1": {"default": "A", "recipes": {"A": {}, "B": {"thresholds": {"defect": 0.9}}}}
                }
            }
        )
        state = RecipeState(book)
        applied = [state.apply(line, value) for line, value in signals.records]
        assert applied == [False, True, True] and state.current("line-1") == "A"  # A (already), B, A again
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait()
        signals.close()
        delete_topics(kafka_config, [decisions, recipes])


def test_a_bad_recipe_node_is_one_line_and_exit_2(
    tmp_path: Path, plc: SimulatedPlc, endpoints: Endpoints
) -> None:
    for node, words in ((f"ns={plc.namespace_index};s=Line.NoSuchNode", "NoSuchNode"),
                        (node_ids(plc.namespace_index)["part_id"], "not an integer")):  # fmt: skip
        done = subprocess.run(
            bridge_command(_config(tmp_path, plc, "unused", node=node), "unused", "g"),
            env=bridge_env(endpoints.kafka_bootstrap, endpoints.mongodb_uri, "unused"),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, done.stdout + done.stderr
        last = done.stderr.strip().splitlines()[-1]  # asyncua's own warnings may come before it
        assert words in last and last.startswith("error:") and "Traceback" not in done.stderr, done.stderr
