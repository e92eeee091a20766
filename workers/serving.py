"""Which model a worker serves, and switching models between batches without a restart.

Resolution order:

1. ``--model DIR``: that artifact, for the worker's lifetime;
2. ``--line L`` (or a registry with a fleet-wide ``*`` alias): the line's ``production`` alias in the model
   registry (``vision.registry``), polled between batches; a promote or rollback swaps the model in place;
   with a recipe book whose current recipe for that line names a ``model_alias`` (``workers.recipes``), that
   alias instead, so a changeover signal swaps the model the same way;
3. the shipped default model.

A :class:`Serving` bundles what depends on the model: the backend, the preprocessing, the decoder built
for its input size and the result builder with its thresholds. The worker swaps the whole bundle at once,
so no batch mixes models. Thresholds come, in that order, from ``--thresholds FILE``, the registry's live
per-line/camera entries (``lineguard thresholds set``), or the model's ``model.json``.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import vision
from infra.endpoints import resolve_endpoints
from infra.settings import KafkaSettings, RegistrySettings
from schemas.errors import ConfigurationError
from schemas.records import Frame
from schemas.serde import AvroRecordDeserializer, schema_registry_client
from vision.preprocess import PreprocessSpec, preprocess_batch
from vision.registry import DEFAULT_LINE, AliasWatcher, ModelRegistry, open_registry
from vision.thresholds import Thresholds, ThresholdStore
from workers.backends import LoadedModel, load_model
from workers.decode import ClaimCheckReader, FrameDecoder, ImageSpec
from workers.recipes import RecipeState, RecipeThresholds, follow_recipes
from workers.settings import WorkerSettings
from workers.verdicts import (
    ResultBuilder,
    ThresholdLookup,
    ThresholdSource,
    VerdictThresholds,
    model_thresholds,
)

log = logging.getLogger(__name__)

_generations = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Serving:
    """One model and everything built for it."""

    model: LoadedModel
    spec: PreprocessSpec
    decoder: FrameDecoder
    builder: ResultBuilder

    @property
    def generation(self) -> int:
        """Tells this model's frames from an earlier one's: each decoder stamps its own on what it decodes."""
        return self.decoder.generation

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        return preprocess_batch([image], self.spec)[0]


def default_model_path() -> Path:
    """The shipped default model: ``vision/shipped/<name>/``, preferring a classification model."""

    shipped = Path(vision.__file__).resolve().parent / "shipped"
    candidates = sorted(p.parent for p in shipped.glob("*/model.json"))
    if not candidates:
        raise ConfigurationError(f"no shipped model in {shipped}; pass --model <artifact directory>")
    preferred = [p for p in candidates if "classif" in p.name]
    return (preferred or candidates)[0]


class _RegistryThresholds:
    """Adapts ``vision.thresholds.ThresholdStore`` (live registry entries) to the verdict builder."""

    def __init__(self, store: ThresholdStore) -> None:
        self._store = store

    def for_frame(self, line_id: str, camera_id: str) -> VerdictThresholds:
        found = self._store.lookup(line_id, camera_id)
        return VerdictThresholds(defect=found.defect, uncertain=found.uncertain)

    def refresh(self) -> None:
        return  # the store re-reads the registry itself, at most once a second


class ModelSource:
    """Builds the first :class:`Serving` and, with a registry, the next one when the alias moves."""

    def __init__(
        self,
        settings: WorkerSettings,
        claim_check: ClaimCheckReader | None,
        registry: ModelRegistry | None = None,
        warm_up: bool = True,
    ) -> None:
        self._settings = settings
        self._claim_check = claim_check
        self._frame_deserializer = frame_deserializer()
        self._registry = registry
        self._warm_up = warm_up
        # The registry followed and its alias watcher, when the worker follows one (no --model).
        self._followed: tuple[ModelRegistry, AliasWatcher] | None = None
        if registry is not None and settings.model is None:
            self._followed = (registry, AliasWatcher(registry, settings.line or DEFAULT_LINE))
        # Recipe changeover of the model: only a worker serving one line (--line) from the registry.
        self._recipes: RecipeState | None = None
        self._alias = settings.line or DEFAULT_LINE  # the registry alias the watcher follows
        if self._followed is not None and settings.line and settings.recipes is not None:
            config = KafkaSettings().client_config(resolve_endpoints().kafka_bootstrap)
            self._recipes = follow_recipes(settings.recipes, settings.recipe_topic, config)

    def _follow_recipe_alias(self) -> None:
        """Point the watcher at the alias of the line's current recipe when that changed: its first poll
        then reports the production model there, which the caller loads like any promotion."""
        if self._recipes is None or self._followed is None or self._settings.line is None:
            return
        wanted = self._recipes.model_alias(self._settings.line) or self._settings.line
        if wanted == self._alias:
            return
        registry = self._followed[0]
        log.info("line %s: recipe %s serves the model of alias %s", self._settings.line,
                 self._recipes.current(self._settings.line), wanted)  # fmt: skip
        self._followed = (registry, AliasWatcher(registry, wanted))
        self._alias = wanted
        try:
            if registry.current_production(wanted) is None:
                log.error(
                    "alias %s has no production model yet: the current model stays until one is promoted "
                    "there (`lineguard models promote --line %s ...`)",
                    wanted,
                    wanted,
                )
        except Exception as exc:  # the watcher logs an unreachable registry on its own polls
            log.debug("registry check of alias %s failed: %s", wanted, exc)

    def initial(self, preloaded: LoadedModel | None = None) -> Serving:
        if preloaded is not None:
            return self._serving(preloaded)
        if self._followed is not None:
            if self._recipes is not None:
                self._recipes.caught_up.wait(10)  # start with the line's current recipe when Kafka answers
                self._follow_recipe_alias()
            registry, watcher = self._followed
            alias = watcher.poll()
            if alias is not None:
                return self._serving(self._load(registry.fetch(alias.model, alias.version)))
            if self._settings.line:
                raise ConfigurationError(
                    f"line {self._settings.line!r} has no production model in the registry "
                    f"{registry.location} (promote one with `lineguard models promote`) or pass --model"
                )
        return self._serving(self._load(self._settings.model or default_model_path()))

    def poll(self) -> Serving | None:
        """Between batches: a new Serving when the production alias names another model, else None."""
        if self._followed is None:
            return None
        self._follow_recipe_alias()
        registry, watcher = self._followed
        alias = watcher.poll()
        if alias is None:
            return None
        try:
            serving = self._serving(self._load(registry.fetch(alias.model, alias.version)))
        except Exception as exc:  # a broken promotion must not stop inspection: keep the current model
            log.error(
                "cannot load %s %s from the registry, keeping the current model: %s",
                alias.model,
                alias.version,
                exc,
            )
            return None
        log.info("line %s: now serving %s %s", alias.line, alias.model, alias.version)
        return serving

    def _load(self, path: Path) -> LoadedModel:
        s = self._settings
        return load_model(
            path,
            s.backend,
            s.inference_threads,
            warm_up_batch=s.max_batch_size if self._warm_up else 1,
            device=s.device,
        )

    def _serving(self, model: LoadedModel) -> Serving:
        s = self._settings
        meta = model.metadata
        spec = meta.preprocess
        builder = ResultBuilder(
            meta,
            self._thresholds(model),
            worker_id=s.worker_id,
            crop_size=s.crop_size,
            uncertain_events=s.uncertain_events,
        )

        def preprocess_one(image: np.ndarray) -> np.ndarray:
            return preprocess_batch([image], spec)[0]

        decoder = FrameDecoder(
            preprocess_one,
            ImageSpec(width=spec.width, height=spec.height, grayscale=spec.channels == 1),
            max_image_pixels=s.max_image_pixels,
            max_image_bytes=s.max_message_bytes,
            claim_check=self._claim_check,
            generation=next(_generations),
            deserializer=self._frame_deserializer,
        )
        return Serving(model=model, spec=spec, decoder=decoder, builder=builder)

    def _thresholds(self, model: LoadedModel) -> ThresholdLookup:
        lookup = self._base_thresholds(model)
        if self._settings.recipes is None:
            return lookup
        # Recipe changeover (workers.recipes): the line's recipe thresholds first, switched by a signal.

        config = KafkaSettings().client_config(resolve_endpoints().kafka_bootstrap)
        return RecipeThresholds(
            lookup, follow_recipes(self._settings.recipes, self._settings.recipe_topic, config)
        )

    def _base_thresholds(self, model: LoadedModel) -> ThresholdLookup:
        default = model_thresholds(model.metadata)
        if self._settings.thresholds is not None or self._registry is None:
            return ThresholdSource(default, self._settings.thresholds)

        store = ThresholdStore(
            self._registry,
            model.metadata.name,
            Thresholds(defect=default.defect, uncertain=default.uncertain),
        )
        return _RegistryThresholds(store)


def open_worker_registry(settings: WorkerSettings) -> ModelRegistry | None:
    """The model registry when the worker should follow one (``--line`` or ``--registry``), else None."""
    if settings.model is not None and settings.line is None:
        return None
    if settings.registry is None and settings.line is None:
        return None

    return open_registry(settings.registry)


def frame_deserializer() -> AvroRecordDeserializer[Frame]:
    """Reads frames in either wire format; Confluent-framed ones need LINEGUARD_SCHEMA_REGISTRY_URL."""

    settings = RegistrySettings()
    auth = settings.basic_auth_user_info
    registry = schema_registry_client(settings.url, auth.get_secret_value() if auth else None)
    return AvroRecordDeserializer(Frame, registry)
