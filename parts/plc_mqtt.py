"""`lineguard plc` over MQTT (config ``transport: mqtt``): part decisions to the broker, Sparkplug-style.

```yaml
transport: mqtt
mqtt:
  url: mqtt://broker:1883     # default: $MQTT_URL (`lineguard stack up --with mqtt` prints it)
  group: lineguard            # Sparkplug group id
  edge_node: line-1           # edge node id (this bridge)
  device: gate                # device id (the reject gate)
class_codes: {scratch: 1}
ack_timeout_s: 2.0            # a broker slower than this to acknowledge raises the alarm (the bridge waits)
```

Topics (Sparkplug B namespace; JSON payloads, not Sparkplug's protobuf):
``spBv1.0/<group>/NBIRTH/<edge_node>`` at connect, ``.../NDEATH/<edge_node>`` as the session's will, and one
message per decision on ``spBv1.0/<group>/DDATA/<edge_node>/<device>``, QoS 1 and **retained** (unlike
Sparkplug's DDATA): the broker then holds the gate's current state, the last decision with its part id and
sequence, for any subscriber and for a restarted bridge.

Once per part, as over OPC UA: the broker's PUBACK is the handover; only then is the part recorded in MongoDB
``plc_acks`` and the Kafka offset committed. A decision for a part in ``plc_acks``, or for the part the
retained state names (a bridge killed between the PUBACK and the MongoDB insert), is skipped and counted.
At start the bridge reads the retained state back before it reads Kafka: it subscribes to its DDATA topic and
to a private sync topic, publishes to the latter and waits for that message to come back, which the broker
sends after the retained state, so "no retained state" is an answer and not a timeout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from confluent_kafka import Consumer, Message
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from infra.endpoints import MQTT_ENV
from parts.plc import DECISION_CODES, BridgeCounters
from parts.plc_config import (
    ERROR_CODES,
    UNKNOWN_CLASS_CODE,
    PlcConfig,
    plc_config_from_dict,
    read_config_data,
)
from schemas.errors import ConfigurationError
from schemas.parts import PartDecision, PartOutcome
from schemas.serde import AvroRecordDeserializer

log = logging.getLogger(__name__)

QOS = 1


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str
    port: int
    group: str = "lineguard"
    edge_node: str = "line-1"
    device: str = "gate"
    class_codes: Mapping[str, int] = field(default_factory=dict)
    ack_timeout_s: float = 2.0
    connect_timeout_s: float = 5.0

    def topic(self, kind: str) -> str:
        node = f"spBv1.0/{self.group}/{kind}/{self.edge_node}"
        return f"{node}/{self.device}" if kind == "DDATA" else node


def mqtt_config_from_dict(data: Mapping[str, Any], env: Mapping[str, str]) -> MqttConfig:
    section = data.get("mqtt", {})
    if not isinstance(section, Mapping):
        raise ConfigurationError("PLC config: `mqtt` must be a mapping (url, group, edge_node, device)")
    url = section.get("url") or env.get(MQTT_ENV)
    if not isinstance(url, str) or not url.startswith(("mqtt://", "tcp://")):
        raise ConfigurationError(
            f"PLC config: mqtt.url (or {MQTT_ENV}) must be an mqtt://host:port URL, got {url!r}"
        )
    parts = urlsplit(url)
    try:
        port = parts.port or 1883
    except ValueError:
        raise ConfigurationError(f"PLC config: mqtt.url has a bad port: {url!r}") from None
    defaults = (("group", "lineguard"), ("edge_node", "line-1"), ("device", "gate"))
    names = {key: section.get(key, default) for key, default in defaults}
    for key, value in names.items():  # Sparkplug ids are topic levels: no separators, no wildcards
        if not isinstance(value, str) or not value or any(c in value for c in "/+#"):
            raise ConfigurationError(
                f"PLC config: mqtt.{key} must be a non-empty name without / + #, got {value!r}"
            )
    codes = data.get("class_codes", {})
    if not isinstance(codes, Mapping) or not all(isinstance(v, int) for v in codes.values()):
        raise ConfigurationError("PLC config: class_codes must map labels to integers")
    try:
        ack_timeout_s = float(data.get("ack_timeout_s", 2.0))
        connect_timeout_s = float(data.get("connect_timeout_s", 5.0))
    except (TypeError, ValueError):
        raise ConfigurationError("PLC config: ack_timeout_s, connect_timeout_s must be numbers") from None
    return MqttConfig(
        parts.hostname or "127.0.0.1",
        port,
        **names,
        class_codes={str(k): v for k, v in codes.items()},
        ack_timeout_s=ack_timeout_s,
        connect_timeout_s=connect_timeout_s,
    )


def load_bridge_config(path: Path, env: Mapping[str, str]) -> PlcConfig | MqttConfig:
    """The bridge's config file: ``transport: mqtt`` gives an MQTT config, ``opcua`` (the default) OPC UA."""
    data = read_config_data(path)
    transport = data.get("transport", "opcua") if isinstance(data, Mapping) else "opcua"
    if transport == "mqtt" and isinstance(data, Mapping):
        return mqtt_config_from_dict(data, env)
    if transport != "opcua":
        raise ConfigurationError(f"PLC config: transport must be opcua or mqtt, got {transport!r}")
    return plc_config_from_dict(data)


class MqttBridge:
    """One MQTT session, one Kafka consumer, one MongoDB collection of handed-over parts."""

    def __init__(
        self,
        config: MqttConfig,
        consumer: Consumer,
        acks: Collection[dict[str, Any]],
        on_publish: Callable[[PartDecision, float, float], None] | None = None,
    ) -> None:
        self._config = config
        self._consumer = consumer
        self._acks = acks
        self._on_publish = on_publish  # (decision, published_at, acked_at): for benchmarks
        self._read = AvroRecordDeserializer(PartDecision)
        self._client_id = f"lineguard-plc-{config.edge_node}-{uuid.uuid4().hex[:6]}"
        self._client = Client(CallbackAPIVersion.VERSION2, client_id=self._client_id, clean_session=True)
        self._client.on_connect = self._connected
        self._client.on_publish = self._published_cb
        self._client.on_message = self._message
        self._lock = threading.Condition()
        self._connected_event = threading.Event()
        self._acked: set[int] = set()
        self._sync_topic = f"lineguard/plc-bridge/{self._client_id}/sync"
        self._synced = threading.Event()
        self._state: dict[str, Any] | None = None
        self.sequence = 0
        self.last_part: str | None = None
        self.counters = BridgeCounters()
        self.alarm = False

    # -- session -----------------------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect, announce (NBIRTH, NDEATH as will) and read the retained gate state back; an unreachable
        broker is a ConfigurationError (one line, exit 2)."""
        cfg = self._config
        birth = {"timestamp": _now_ms(), "bdSeq": int(time.time()) % 256}
        self._client.will_set(cfg.topic("NDEATH"), json.dumps(birth), qos=QOS, retain=False)
        try:
            self._client.connect(cfg.host, cfg.port, keepalive=10)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot reach the MQTT broker {cfg.host}:{cfg.port}: {exc}") from None
        self._client.loop_start()
        if not self._connected_event.wait(cfg.connect_timeout_s):
            self.close()
            raise ConfigurationError(f"the MQTT broker {cfg.host}:{cfg.port} did not accept the session")
        self._client.subscribe([(cfg.topic("DDATA"), QOS), (self._sync_topic, QOS)])
        self._client.publish(self._sync_topic, b"sync", qos=QOS)
        if not self._synced.wait(cfg.connect_timeout_s):
            self.close()
            raise ConfigurationError(f"the MQTT broker {cfg.host}:{cfg.port} did not return the gate state")
        self._client.unsubscribe([cfg.topic("DDATA"), self._sync_topic])
        if self._state is not None:
            self.sequence = int(self._state.get("sequence", 0))
            self.last_part = self._state.get("part_id")
        self._client.publish(cfg.topic("NBIRTH"), json.dumps({**birth, "sequence": self.sequence}), qos=QOS)
        log.info("MQTT %s:%d: connected, last decision sequence %d", cfg.host, cfg.port, self.sequence)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _connected(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not reason.is_failure:
            self._connected_event.set()

    def _message(self, client: Any, userdata: Any, message: MQTTMessage) -> None:
        if message.topic == self._sync_topic:
            self._synced.set()
        elif message.retain and not self._synced.is_set():
            with contextlib.suppress(ValueError):
                self._state = json.loads(message.payload)

    def _published_cb(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._lock:
            self._acked.add(mid)
            self._lock.notify_all()

    # -- decisions ---------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            message = self._consumer.poll(0.1)
            if message is None:
                continue
            if message.error() is not None:
                log.warning("part-decisions consumer: %s", message.error())
                continue
            self.handle(message)

    def handle(self, message: Message) -> None:
        try:
            decision = self._read(message.value(), None)
        except Exception as exc:  # poison data: counted and committed, never a crash
            self.counters.undecodable += 1
            log.error("undecodable part decision at offset %s: %s", message.offset(), exc)
            decision = None
        if decision is not None:
            if decision.part_id == self.last_part or self._acks.find_one({"_id": decision.part_id}):
                self.counters.duplicates += 1
                log.info("part %s already handed over: not published again", decision.part_id)
                if decision.part_id == self.last_part:  # killed between the PUBACK and the insert
                    self._record(decision.part_id, self.sequence)
            else:
                self._hand_over(decision)
        self._consumer.commit(message=message, asynchronous=False)

    def _hand_over(self, decision: PartDecision) -> None:
        sequence = self.sequence + 1
        class_code = 0
        if decision.decision is PartOutcome.REJECT and decision.defect_label is not None:
            class_code = self._config.class_codes.get(decision.defect_label, UNKNOWN_CLASS_CODE)
        now = _now_ms()
        payload = {
            "timestamp": now,
            "seq": sequence % 256,  # Sparkplug's per-message 0..255 counter; `sequence` does not wrap
            "sequence": sequence,
            "part_id": decision.part_id,
            "metrics": [
                {"name": name, "timestamp": now, "value": value}
                for name, value in (
                    ("Decision", DECISION_CODES[decision.decision]),
                    ("ClassCode", class_code),
                    ("ErrorCode", ERROR_CODES[decision.reason]),
                    ("PartId", decision.part_id),
                    ("Sequence", sequence),
                )
            ],
        }
        published_at = time.time()
        info = self._client.publish(self._config.topic("DDATA"), json.dumps(payload), qos=QOS, retain=True)
        self._wait_for_puback(info.mid, decision.part_id, sequence)
        acked_at = time.time()
        self.sequence = sequence
        self.last_part = decision.part_id
        self._record(decision.part_id, sequence)
        self.counters.written += 1
        if self._on_publish is not None:
            self._on_publish(decision, published_at, acked_at)

    def _wait_for_puback(self, mid: int, part_id: str, sequence: int) -> None:
        started = time.monotonic()
        with self._lock:
            while mid not in self._acked:
                if not self.alarm and time.monotonic() - started > self._config.ack_timeout_s:
                    self.alarm = True
                    self.counters.alarms += 1
                    log.error(
                        "ALARM: the MQTT broker has not acknowledged part %s (sequence %d) for %.1f s; "
                        "holding the decisions in Kafka",
                        part_id,
                        sequence,
                        self._config.ack_timeout_s,
                    )
                self._lock.wait(0.05)
            self._acked.discard(mid)
        if self.alarm:
            self.alarm = False
            log.warning(
                "MQTT broker acknowledged part %s after %.1f s: alarm cleared",
                part_id,
                time.monotonic() - started,
            )

    def _record(self, part_id: str, sequence: int) -> None:
        with contextlib.suppress(DuplicateKeyError):  # recorded already (a replay, another bridge)
            self._acks.insert_one({"_id": part_id, "sequence": sequence, "acked_at": time.time()})


def _now_ms() -> int:
    return int(time.time() * 1000)
