"""CLI commands of the data and versions side of the vision team, registered on the root ``lineguard`` app:
``lineguard evaluate`` (:mod:`vision.evaluate_cli`), ``lineguard dataset check|clean|restore|export``
(:mod:`vision.dataset_cli`), ``lineguard models ...`` and ``lineguard thresholds set|show``
(:mod:`vision.models_cli`).

Heavy imports (OpenCV, TensorFlow, ONNX Runtime, pymongo) happen inside the commands, so ``lineguard --help``
stays fast. User mistakes raise :class:`ConfigurationError`, which the root CLI turns into one line, exit 2.
"""

from __future__ import annotations

import typer

from vision.dataset_cli import dataset_app
from vision.evaluate_cli import evaluate_command
from vision.models_cli import models_app, open_cli_registry, thresholds_app

__all__ = ["dataset_app", "evaluate_command", "models_app", "open_cli_registry", "register", "thresholds_app"]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root ``lineguard`` app."""
    app.command("evaluate")(evaluate_command)
    app.add_typer(dataset_app, name="dataset")
    from vision.model_import_cli import models_import

    models_app.command("import")(models_import)
    app.add_typer(models_app, name="models")
    app.add_typer(thresholds_app, name="thresholds")
