"""`lineguard plc`: part decisions from Kafka to the line's PLC over OPC UA, once per part.

The handshake, per decision (see the README's sequence diagram):

1. the bridge writes decision, class code, error code, part id and sequence (sequence = last + 1) in one
   OPC UA write, then sets ``request`` (result ready);
2. the PLC takes the result over and writes ``ack_sequence`` = sequence and ``ack_part_id`` = part id;
3. the bridge clears ``request``, records the part as acknowledged in MongoDB (``plc_acks``, ``_id`` = part
   id) and only then commits the decision's Kafka offset.

Idempotent per part: a decision whose part is the PLC's ``ack_part_id`` or is in ``plc_acks`` (a Kafka
redelivery after a crash, or a second decision for the same part) is skipped and counted, never written again.
``plc_acks`` is read once at connect into a set that every ack then joins, so the check costs no round trip.
The ack record of part n is inserted (and its offset committed) while the bridge reads and writes part n+1,
but always before part n+1's ``request``: after a crash, every uncommitted decision is either in
``plc_acks`` or the PLC's ``ack_part_id`` (the last one acknowledged), never a second fire.
A PLC that does not acknowledge within ``ack_timeout_s`` raises the alarm (log + counter) and the bridge keeps
waiting: it reads nothing more from Kafka meanwhile, so the backlog stays in Kafka and nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asyncua import Client, Node, ua
from confluent_kafka import Consumer, Message
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from parts.plc_config import ERROR_CODES, NODE_NAMES, UNKNOWN_CLASS_CODE, PlcConfig
from parts.plc_recipes import RecipeWatcher
from schemas.errors import ConfigurationError
from schemas.parts import PartDecision, PartOutcome
from schemas.serde import AvroRecordDeserializer

log = logging.getLogger(__name__)

DECISION_CODES = {PartOutcome.PASS: 1, PartOutcome.REJECT: 2, PartOutcome.UNKNOWN: 2}  # unknown: fail-safe
ACK_POLL_S = 0.002


@dataclass(slots=True)
class BridgeCounters:
    written: int = 0
    duplicates: int = 0  # decisions for parts the PLC already acknowledged: skipped
    alarms: int = 0  # acks slower than ack_timeout_s
    undecodable: int = 0


class PlcBridge:
    """One OPC UA session, one Kafka consumer, one MongoDB collection of acknowledged parts."""

    def __init__(
        self,
        config: PlcConfig,
        consumer: Consumer,
        acks: Collection[dict[str, Any]],
        on_write: Callable[[PartDecision, float, float], None] | None = None,
        recipes: RecipeWatcher | None = None,
    ) -> None:
        self._config = config
        self._consumer = consumer
        self._acks = acks
        self._on_write = on_write  # (decision, written_at, acked_at): the benchmark's stage timestamps
        self.recipes = recipes  # the PLC's recipe node -> changeover signals (config `recipe`)
        self._read = AvroRecordDeserializer(PartDecision)
        self._client = Client(config.endpoint, timeout=config.connect_timeout_s)
        self._nodes: dict[str, Node] = {}
        self._types: dict[str, ua.VariantType] = {}
        self.sequence = 0
        self._acked: set[str] = set()
        self._recording: asyncio.Task[None] | None = None  # the last ack's insert + commit
        self.counters = BridgeCounters()
        self.alarm = False

    async def connect(self) -> None:
        """Connect and check every configured node: an unreachable endpoint or an unknown node id is a
        ConfigurationError (one line, exit 2), not a retry loop."""
        if self._config.security is not None:  # certificate and key were checked with the config
            await self._config.security.apply(self._client)
        try:
            await asyncio.wait_for(self._client.connect(), self._config.connect_timeout_s)
        except (OSError, TimeoutError, ua.UaError) as exc:
            raise ConfigurationError(
                f"cannot reach the OPC UA endpoint {self._config.endpoint}: {exc or type(exc).__name__}"
            ) from None
        for name in NODE_NAMES:
            node_id = self._config.nodes[name]
            try:
                node = self._client.get_node(node_id)
                self._types[name] = await node.read_data_type_as_variant_type()
            except (ua.UaError, ValueError) as exc:
                await self._client.disconnect()
                raise ConfigurationError(f"PLC node {name} = {node_id!r} is not usable: {exc}") from None
            self._nodes[name] = node
        if self.recipes is not None:
            try:
                await self.recipes.check(self._client)
            except ConfigurationError:
                await self._client.disconnect()
                raise
        ack_sequence, self._ack_part = await self._values("ack_sequence", "ack_part_id")
        self.sequence = int(ack_sequence or 0)
        self._acked = {str(doc["_id"]) for doc in self._acks.find({}, {"_id": 1})}
        log.info("PLC %s: connected, last acknowledged sequence %d", self._config.endpoint, self.sequence)

    async def close(self) -> None:
        await self._recorded()
        await self._client.disconnect()

    async def run(self, stop: asyncio.Event) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(stop))
        recipes = asyncio.create_task(self.recipes.run(stop)) if self.recipes is not None else None
        try:
            while not stop.is_set():
                message = await asyncio.to_thread(self._consumer.poll, 0.1)
                if message is None:
                    continue
                if message.error() is not None:
                    log.warning("part-decisions consumer: %s", message.error())
                    continue
                await self.handle(message)
        finally:
            heartbeat.cancel()
            if recipes is not None:
                recipes.cancel()
            await self._recorded()

    async def handle(self, message: Message) -> None:
        try:
            decision = self._read(message.value(), None)
        except Exception as exc:  # poison data: counted and committed, never a crash
            self.counters.undecodable += 1
            log.error("undecodable part decision at offset %s: %s", message.offset(), exc)
            decision = None
        if decision is not None and (decision.part_id == self._ack_part or decision.part_id in self._acked):
            self.counters.duplicates += 1
            log.info("part %s already acknowledged by the PLC: not written again", decision.part_id)
            # A bridge killed between the PLC's ack and the MongoDB insert leaves the PLC's registers as the
            # only record of that ack: write it now (a no-op if it is there), so plc_acks stays complete.
            await self._record(decision.part_id, self.sequence, time.time(), message)
        elif decision is not None:
            await self._hand_over(decision, message)
        else:
            await self._record(None, 0, 0.0, message)

    async def _hand_over(self, decision: PartDecision, message: Message) -> None:
        sequence = self.sequence + 1
        label = decision.defect_label
        class_code = 0
        if decision.decision is PartOutcome.REJECT and label is not None:
            class_code = self._config.class_codes.get(label, UNKNOWN_CLASS_CODE)
        await self._write(
            decision=DECISION_CODES[decision.decision],
            class_code=class_code,
            error_code=ERROR_CODES[decision.reason],
            part_id=decision.part_id,
            sequence=sequence,
        )
        await self._recorded()  # the previous part is in plc_acks before the PLC can acknowledge this one
        await self._write(request=True)
        written_at = time.time()
        await self._wait_for_ack(sequence, decision.part_id)
        acked_at = time.time()
        await self._write(request=False)
        self.sequence = sequence
        self._ack_part = decision.part_id
        self._acked.add(decision.part_id)
        await self._record(decision.part_id, sequence, acked_at, message)
        self.counters.written += 1
        if self._on_write is not None:
            self._on_write(decision, written_at, acked_at)

    async def _record(self, part_id: str | None, sequence: int, acked_at: float, message: Message) -> None:
        """Insert the ack record, then commit the message's offset, on a thread behind the handshake; one
        at a time, in order (a commit never overtakes the ack record of an earlier part)."""
        await self._recorded()

        def record() -> None:
            if part_id is not None:
                with contextlib.suppress(DuplicateKeyError):  # recorded already (a replay, another bridge)
                    self._acks.insert_one({"_id": part_id, "sequence": sequence, "acked_at": acked_at})
            self._consumer.commit(message=message, asynchronous=False)

        self._recording = asyncio.create_task(asyncio.to_thread(record))

    async def _recorded(self) -> None:
        """Wait for the last ack record and commit (an error there is raised here)."""
        task, self._recording = self._recording, None
        if task is not None:
            await task

    async def _wait_for_ack(self, sequence: int, part_id: str) -> None:
        started = time.monotonic()
        alarmed = False
        while True:
            ack_sequence, ack_part = await self._values("ack_sequence", "ack_part_id")
            if ack_sequence == sequence and ack_part == part_id:
                if alarmed:
                    log.warning(
                        "PLC acknowledged part %s after %.1f s: alarm cleared",
                        part_id,
                        time.monotonic() - started,
                    )
                    self.alarm = False
                return
            if not alarmed and time.monotonic() - started > self._config.ack_timeout_s:
                alarmed = True
                self.alarm = True
                self.counters.alarms += 1
                log.error(
                    "ALARM: PLC has not acknowledged part %s (sequence %d) for %.1f s; holding the "
                    "decisions in Kafka",
                    part_id,
                    sequence,
                    self._config.ack_timeout_s,
                )
            await asyncio.sleep(ACK_POLL_S if not alarmed else 0.05)

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        beat = 0
        while not stop.is_set():
            beat += 1
            try:
                await self._write(heartbeat=beat)
            except Exception as exc:  # the handshake reports a dead session; the heartbeat only logs
                log.warning("heartbeat write failed: %s", exc)
            await asyncio.sleep(self._config.heartbeat_s)

    async def _values(self, *names: str) -> list[Any]:
        return await self._client.read_values([self._nodes[name] for name in names])

    async def _write(self, **values: Any) -> None:
        await self._client.write_values(
            [self._nodes[name] for name in values],
            [ua.DataValue(ua.Variant(value, self._types[name])) for name, value in values.items()],
        )
