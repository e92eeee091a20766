"""The PLC's recipe node: when the PLC writes a recipe index, the bridge publishes the changeover signal.

Configured by the ``recipe`` section of the bridge's config::

    recipe:
      line: line-1                         # the line this PLC runs
      node: "ns=2;s=Line.RecipeIndex"      # an integer node the PLC writes (the product's recipe index)
      recipes: {1: A, 2: B}                # index -> recipe name of the workers' recipe book
      topic: lineguard.recipes             # default
      poll_s: 0.2                          # how often the node is read

The node is read every ``poll_s`` (the bridge reads its ack nodes the same way; no subscription to lose on
a reconnect). The current index is published once at start and then on every change, as
`schemas.recipe_signal` records: workers ignore a signal for the recipe a line already runs, so a restarted
bridge re-sending the current one changes nothing. An index the config does not map is logged and not
published: the line keeps its recipe rather than a guess. A failed publish is retried at the next read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemas.errors import ConfigurationError
from schemas.recipe_signal import RECIPE_TOPIC, recipe_signal

if TYPE_CHECKING:  # asyncua loads with the bridge, not with its config (plc_config imports this module)
    from asyncua import Client, Node

log = logging.getLogger(__name__)

Publish = Callable[[str, str], None]  # (line id, recipe name); raises when the signal was not delivered


@dataclass(frozen=True, slots=True)
class RecipeNodeConfig:
    line_id: str
    node: str
    recipes: Mapping[int, str]
    topic: str = RECIPE_TOPIC
    poll_s: float = 0.2


def recipe_node_from_dict(data: object) -> RecipeNodeConfig | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise ConfigurationError("PLC config: `recipe` must be a mapping (line, node, recipes)")
    unknown = set(data) - {"line", "node", "recipes", "topic", "poll_s"}
    if unknown:
        raise ConfigurationError(f"PLC config: unknown recipe keys {', '.join(sorted(map(str, unknown)))}")
    line, node, recipes = data.get("line"), data.get("node"), data.get("recipes")
    if not isinstance(line, str) or not line or not isinstance(node, str) or not node:
        raise ConfigurationError("PLC config: recipe needs `line` and `node` (strings)")
    if not isinstance(recipes, Mapping) or not recipes:
        raise ConfigurationError("PLC config: recipe.recipes must map recipe indexes to recipe names")
    try:
        mapping = {int(index): str(name) for index, name in recipes.items()}
        poll_s = float(data.get("poll_s", 0.2))
    except (TypeError, ValueError):
        raise ConfigurationError("PLC config: recipe indexes must be integers, poll_s a number") from None
    if poll_s <= 0:
        raise ConfigurationError("PLC config: recipe.poll_s must be > 0")
    return RecipeNodeConfig(line, node, mapping, str(data.get("topic", RECIPE_TOPIC)), poll_s)


def kafka_publisher(client_config: Mapping[str, Any], topic: str) -> Publish:
    """Publish a signal and wait for the broker's ack (idempotent producer)."""
    from confluent_kafka import Producer

    producer = Producer({**client_config, "enable.idempotence": True})

    def publish(line_id: str, recipe: str) -> None:
        key, value = recipe_signal(line_id, recipe)
        producer.produce(topic, key=key, value=value)
        if producer.flush(10) != 0:
            raise RuntimeError(f"recipe signal for {line_id} not delivered to {topic}")

    return publish


class RecipeWatcher:
    """Follows the recipe node of one OPC UA session and publishes each change."""

    def __init__(self, config: RecipeNodeConfig, publish: Publish) -> None:
        self.config = config
        self._publish = publish
        self._node: Node | None = None
        self._last: int | None = None  # the last index handled (published, or refused as unmapped)
        self.published: list[tuple[int, str]] = []
        self.unmapped = 0

    async def check(self, client: Client) -> None:
        """The node exists and holds an integer: else ConfigurationError (one line, exit 2)."""
        from asyncua import ua

        try:
            node = client.get_node(self.config.node)
            value = await node.read_value()
        except (ua.UaError, ValueError) as exc:
            raise ConfigurationError(f"PLC recipe node {self.config.node!r} is not usable: {exc}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigurationError(
                f"PLC recipe node {self.config.node!r} holds {type(value).__name__}, not an integer index"
            )
        self._node = node

    async def poll_once(self) -> None:
        assert self._node is not None, "check() first"
        index = int(await self._node.read_value())
        if index == self._last:
            return
        recipe = self.config.recipes.get(index)
        if recipe is None:
            self.unmapped += 1
            log.error(
                "PLC recipe index %d of line %s has no recipe in the config; not published (the line keeps "
                "its recipe)", index, self.config.line_id,
            )  # fmt: skip
        else:
            await asyncio.to_thread(self._publish, self.config.line_id, recipe)
            self.published.append((index, recipe))
            log.info("PLC recipe index %d: line %s -> recipe %s", index, self.config.line_id, recipe)
        self._last = index

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.poll_once()
            except Exception as exc:  # a lost session or broker: say so, try again at the next read
                log.warning("recipe node: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.poll_s)
