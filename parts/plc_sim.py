"""A stand-in PLC for tests, the benchmark and the chaos fault: an asyncua OPC UA server with the handshake
nodes and a little PLC logic that takes every result over and acknowledges it (unless paused).

``received`` is the PLC's memory of what it acted on, in order: a test compares it with what was sent, so a
second write for the same part (a duplicate reject) or a missing one shows.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

from asyncua import Server, ua

NAMESPACE_URI = "urn:lineguard:plc-sim"

_NODES: dict[str, tuple[Any, ua.VariantType]] = {
    "decision": (0, ua.VariantType.Int16),
    "class_code": (0, ua.VariantType.Int16),
    "error_code": (0, ua.VariantType.Int16),
    "part_id": ("", ua.VariantType.String),
    "sequence": (0, ua.VariantType.UInt32),
    "request": (False, ua.VariantType.Boolean),
    "ack_sequence": (0, ua.VariantType.UInt32),
    "ack_part_id": ("", ua.VariantType.String),
    "heartbeat": (0, ua.VariantType.UInt32),
}


@dataclass(frozen=True, slots=True)
class Received:
    part_id: str
    decision: int
    class_code: int
    error_code: int
    sequence: int
    at: float


RECIPE_NODE = "Line.RecipeIndex"  # Int16: the recipe index of the product the line runs


def node_ids(namespace_index: int = 2) -> dict[str, str]:
    """The node ids of the simulator, as a bridge config's ``nodes``."""
    return {name: f"ns={namespace_index};s=Gate.{name}" for name in _NODES}


class SimulatedPlc:
    """Runs the server and its logic on a thread of its own; ``start()`` returns once it listens."""

    def __init__(self, port: int, scan_s: float = 0.002) -> None:
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/plc"
        self.received: list[Received] = []
        self.acknowledging = threading.Event()
        self.acknowledging.set()
        self._scan_s = scan_s
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="plc-sim", daemon=True)
        self.namespace_index = 2
        self.ignored_scans = 0
        self._recipe_node: Any = None

    def start(self) -> SimulatedPlc:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("simulated PLC did not start")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    @property
    def recipe_node_id(self) -> str:
        return f"ns={self.namespace_index};s={RECIPE_NODE}"

    def set_recipe_index(self, index: int) -> None:
        """What the PLC program does at a product change: write the new recipe index (from any thread)."""
        value = ua.Variant(index, ua.VariantType.Int16)
        asyncio.run_coroutine_threadsafe(self._recipe_node.write_value(value), self._loop).result(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        self.namespace_index = await server.register_namespace(NAMESPACE_URI)
        gate = await server.nodes.objects.add_object(self.namespace_index, "Gate")
        nodes = {}
        for name, (initial, variant_type) in _NODES.items():
            node_id = f"ns={self.namespace_index};s=Gate.{name}"
            node = await gate.add_variable(node_id, name, ua.Variant(initial, variant_type))
            await node.set_writable()
            nodes[name] = node
        line = await server.nodes.objects.add_object(self.namespace_index, "Line")
        self._recipe_node = await line.add_variable(
            f"ns={self.namespace_index};s={RECIPE_NODE}", "RecipeIndex", ua.Variant(0, ua.VariantType.Int16)
        )
        await self._recipe_node.set_writable()
        async with server:
            self._ready.set()
            while not self._stop.is_set():
                await self._scan(nodes)
                await asyncio.sleep(self._scan_s)

    async def _scan(self, nodes: dict[str, Any]) -> None:
        # The PLC's cycle: a raised request with a sequence it has not acknowledged is a new result.
        if not await nodes["request"].read_value():
            return
        if not self.acknowledging.is_set():
            self.ignored_scans += 1  # a result is waiting and this PLC is not answering
            return
        sequence = await nodes["sequence"].read_value()
        if sequence == await nodes["ack_sequence"].read_value():
            return
        part_id = await nodes["part_id"].read_value()
        self.received.append(
            Received(
                part_id=part_id,
                decision=await nodes["decision"].read_value(),
                class_code=await nodes["class_code"].read_value(),
                error_code=await nodes["error_code"].read_value(),
                sequence=sequence,
                at=time.time(),
            )
        )
        await nodes["ack_part_id"].write_value(ua.Variant(part_id, ua.VariantType.String))
        await nodes["ack_sequence"].write_value(ua.Variant(sequence, ua.VariantType.UInt32))
