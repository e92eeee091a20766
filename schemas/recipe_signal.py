"""The recipe changeover signal: one record per line on the recipe topic, the contract between whoever
decides the product (the PLC bridge, the MES, `python -m workers.recipes set`) and the workers.

Key = line id (UTF-8), value = ``{"recipe": "<name>"}`` (JSON). The topic is best compacted: its latest
record per line is that line's current recipe.
"""

from __future__ import annotations

import json

RECIPE_TOPIC = "lineguard.recipes"


def recipe_signal(line_id: str, recipe: str) -> tuple[bytes, bytes]:
    """(key, value) of the record that switches ``line_id`` to ``recipe``."""
    return line_id.encode("utf-8"), json.dumps({"recipe": recipe}).encode("utf-8")
