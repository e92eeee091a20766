"""Recipe changeover: thresholds per (line, recipe), switched by a signal on a Kafka control topic.

A line that changes product changes recipe; the PLC or the MES says so by writing one record to the recipe
topic (default ``lineguard.recipes``, best compacted): key = line id, value = ``{"recipe": "B"}`` (JSON).
Workers follow the topic from its beginning (no consumer group: every worker needs every line's latest
recipe, and a restarted worker reads the current one back), and from the next batch on the frames of that
line are judged with the recipe's thresholds, without a restart.

The recipe book (``LINEGUARD_WORKER_RECIPES``, YAML or JSON)::

    lines:
      line-1:
        default: A            # before any signal
        recipes:
          A: {thresholds: {defect: 0.5}}
          B: {thresholds: {defect: 0.9, uncertain: 0.8}, model_alias: line-1.B}

``model_alias`` (optional) names the registry alias whose production model the line's worker serves under
that recipe (``lineguard models promote --line line-1.B ...``); without it the worker follows the line's own
alias. Only a worker that serves one line from the registry (``--line``) switches models this way; see
:class:`workers.serving.ModelSource`.

A line not in the book, or whose recipe names no thresholds, keeps the worker's other thresholds (file,
registry, model). A signal naming a recipe the book does not know is logged and ignored (the line keeps its
recipe): a typo at the MES must not change what the line rejects.

Signal from the command line: ``python -m workers.recipes set <line> <recipe>``.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.endpoints import resolve_endpoints
from schemas.errors import ConfigurationError
from schemas.recipe_signal import RECIPE_TOPIC, recipe_signal
from workers.verdicts import ThresholdLookup, VerdictThresholds
from workers.verdicts import _read_mapping as read_mapping

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LineRecipes:
    default: str | None
    thresholds: Mapping[str, Mapping[str, Any]]  # recipe -> {"defect": x, "uncertain": y}
    model_aliases: Mapping[str, str] = field(default_factory=dict)  # recipe -> registry alias (its "line")


@dataclass(frozen=True, slots=True)
class RecipeBook:
    lines: Mapping[str, LineRecipes] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RecipeBook:
        unknown = set(data) - {"lines"}
        if unknown:
            raise ConfigurationError(f"unknown recipe book sections {sorted(unknown)} (expected lines)")
        lines: dict[str, LineRecipes] = {}
        for line, entry in (data.get("lines") or {}).items():
            if not isinstance(entry, Mapping) or set(entry) - {"default", "recipes"}:
                raise ConfigurationError(f"recipe book line {line!r}: expected 'default' and 'recipes'")
            recipes = entry.get("recipes") or {}
            thresholds: dict[str, Mapping[str, Any]] = {}
            aliases: dict[str, str] = {}
            for name, recipe in recipes.items():
                if not isinstance(recipe, Mapping) or set(recipe) - {"thresholds", "model_alias"}:
                    raise ConfigurationError(
                        f"recipe {line}/{name}: expected only 'thresholds' and 'model_alias'"
                    )
                alias = recipe.get("model_alias")
                if alias is not None:
                    if not isinstance(alias, str) or not alias.strip():
                        raise ConfigurationError(f"recipe {line}/{name}: model_alias must be an alias name")
                    aliases[str(name)] = alias.strip()
                limits = recipe.get("thresholds") or {}
                VerdictThresholds.from_mapping(limits, VerdictThresholds(0.5, 0.4))  # checked now, not later
                thresholds[str(name)] = limits
            default = entry.get("default")
            if default is not None and str(default) not in thresholds:
                raise ConfigurationError(
                    f"line {line!r}: default recipe {default!r} is not one of its recipes"
                )
            lines[str(line)] = LineRecipes(None if default is None else str(default), thresholds, aliases)
        return cls(lines)

    @classmethod
    def read(cls, path: Path) -> RecipeBook:
        try:
            return cls.from_mapping(read_mapping(path))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read recipe book {path}: {exc}") from exc


class RecipeState:
    """The current recipe of each line (thread-safe): the book's default until a signal arrives."""

    def __init__(self, book: RecipeBook) -> None:
        self.book = book
        self._current = {line: r.default for line, r in book.lines.items() if r.default is not None}
        self._lock = threading.Lock()
        self.changes = 0
        self.caught_up = threading.Event()  # set by the follower once the topic was read to its end

    def current(self, line_id: str) -> str | None:
        with self._lock:
            return self._current.get(line_id)

    def apply(self, line_id: str, value: bytes | None) -> bool:
        """One control record; True when the line's recipe changed."""
        try:
            recipe = str(json.loads(value or b"{}")["recipe"])
        except (ValueError, KeyError, TypeError):
            log.error('recipe signal for line %r is not {"recipe": ...}: %r; ignored', line_id, value)
            return False
        line = self.book.lines.get(line_id)
        if line is None or recipe not in line.thresholds:
            log.error(
                "recipe signal: line %r has no recipe %r in the book; keeping its recipe", line_id, recipe
            )
            return False
        with self._lock:
            if self._current.get(line_id) == recipe:
                return False
            self._current[line_id] = recipe
            self.changes += 1
        log.info("line %s changed over to recipe %s", line_id, recipe)
        return True

    def model_alias(self, line_id: str) -> str | None:
        """The registry alias the line's current recipe serves its model from, None for the line's own."""
        recipe = self.current(line_id)
        line = self.book.lines.get(line_id)
        return None if recipe is None or line is None else line.model_aliases.get(recipe)

    def thresholds(self, line_id: str, base: VerdictThresholds) -> VerdictThresholds | None:
        recipe = self.current(line_id)
        if recipe is None:
            return None
        limits = self.book.lines[line_id].thresholds.get(recipe)
        return VerdictThresholds.from_mapping(limits, base) if limits else None


class RecipeThresholds:
    """A :class:`~workers.verdicts.ThresholdLookup`: the line's recipe thresholds, else ``base``'s."""

    def __init__(self, base: ThresholdLookup, state: RecipeState) -> None:
        self._base = base
        self._state = state

    def for_frame(self, line_id: str, camera_id: str) -> VerdictThresholds:
        base = self._base.for_frame(line_id, camera_id)
        found = self._state.thresholds(line_id, base)
        return found if found is not None else base

    def refresh(self) -> object:
        return self._base.refresh()


class RecipeFollower:
    """Reads the recipe topic from its beginning on a daemon thread and applies every record to the state."""

    def __init__(self, client_config: Mapping[str, Any], topic: str, state: RecipeState) -> None:
        self._config = dict(client_config)
        self._topic = topic
        self.state = state
        self._stop = threading.Event()
        self.caught_up = threading.Event()  # the topic was read to its end once (the current recipes known)
        self._thread = threading.Thread(target=self._run, name="worker-recipes", daemon=True)

    def start(self) -> RecipeFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

        consumer = Consumer(
            {
                **self._config,
                "group.id": "lineguard-recipes-unused",  # required by the client; never joined or committed
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "topic.metadata.refresh.interval.ms": 5000,
            }
        )
        try:
            partitions: list[int] = []
            while not partitions and not self._stop.is_set():
                topic = consumer.list_topics(self._topic, timeout=5).topics.get(self._topic)
                partitions = list(topic.partitions) if topic is not None and not topic.error else []
                if not partitions:
                    self.caught_up.set()  # no topic yet: no signal yet, the defaults hold
                    self.state.caught_up.set()
                    self._stop.wait(1.0)
            consumer.assign([TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in partitions])
            at_end: set[int] = set()
            while not self._stop.is_set():
                message = consumer.poll(0.2)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(message.partition() or 0)
                        if at_end >= set(partitions):
                            self.caught_up.set()
                            self.state.caught_up.set()
                    else:
                        log.warning("recipe topic: %s", error.str())
                    continue
                key = message.key()
                if key:
                    self.state.apply(key.decode("utf-8", "replace"), message.value())
        except Exception:  # the worker keeps its current recipes; say why they no longer follow the topic
            log.exception("recipe follower stopped")
        finally:
            consumer.close()


_followers: dict[tuple[str, str], RecipeFollower] = {}
_followers_lock = threading.Lock()


def follow_recipes(book_path: Path, topic: str, client_config: Mapping[str, Any]) -> RecipeState:
    """The recipe state of this process for ``book_path``, followed from ``topic`` (one follower per book
    and topic, shared by every model the worker serves in turn)."""
    key = (str(book_path), topic)
    with _followers_lock:
        follower = _followers.get(key)
        if follower is None:
            follower = RecipeFollower(client_config, topic, RecipeState(RecipeBook.read(book_path))).start()
            _followers[key] = follower
        return follower.state


def publish_recipe(client_config: Mapping[str, Any], topic: str, line_id: str, recipe: str) -> None:
    """Write one changeover signal (what a PLC bridge or the MES does)."""
    from confluent_kafka import Producer

    producer = Producer({**client_config, "enable.idempotence": True})
    key, value = recipe_signal(line_id, recipe)  # the record the PLC bridge's recipe node writes too
    producer.produce(topic, key=key, value=value)
    if producer.flush(30) != 0:
        raise ConfigurationError(f"could not publish the recipe signal to {topic}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (3, 4) or args[0] != "set":
        print("usage: python -m workers.recipes set <line> <recipe> [topic]", file=sys.stderr)
        return 2
    from infra.settings import KafkaSettings  # pydantic-settings: only this entry point needs it

    config = KafkaSettings().client_config(resolve_endpoints().kafka_bootstrap)
    publish_recipe(config, args[3] if len(args) == 4 else RECIPE_TOPIC, args[1], args[2])
    print(f"line {args[1]}: recipe {args[2]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
