"""The PLC config's `recipe` section: read into a RecipeNodeConfig, and every malformed form refused with one
clear ConfigurationError."""

from __future__ import annotations

import pytest

from parts.plc_config import plc_config_from_dict
from parts.plc_recipes import recipe_node_from_dict
from parts.plc_sim import node_ids
from schemas.errors import ConfigurationError
from schemas.recipe_signal import RECIPE_TOPIC, recipe_signal


def test_the_recipe_section_is_optional_and_read() -> None:
    base = {"endpoint": "opc.tcp://plc:4840", "nodes": node_ids()}
    assert plc_config_from_dict(base).recipe is None
    found = plc_config_from_dict(
        {**base, "recipe": {"line": "L1", "node": "ns=2;s=R", "recipes": {"1": "A", 2: "B"}}}
    )
    assert found.recipe is not None
    assert (found.recipe.line_id, found.recipe.node, dict(found.recipe.recipes)) == (
        "L1",
        "ns=2;s=R",
        {1: "A", 2: "B"},
    )
    assert (found.recipe.topic, found.recipe.poll_s) == (RECIPE_TOPIC, 0.2)


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ("L1", "must be a mapping"),
        ({"node": "n", "recipes": {1: "A"}}, "needs `line` and `node`"),
        ({"line": "L1", "node": "n"}, "must map recipe indexes"),
        ({"line": "L1", "node": "n", "recipes": {"one": "A"}}, "indexes must be integers"),
        ({"line": "L1", "node": "n", "recipes": {1: "A"}, "poll_s": 0}, "poll_s must be > 0"),
        ({"line": "L1", "node": "n", "recipes": {1: "A"}, "nodes": "x"}, "unknown recipe keys nodes"),
    ],
)
def test_a_malformed_recipe_section_is_refused(section: object, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        recipe_node_from_dict(section)


def test_the_signal_is_the_line_and_a_json_recipe() -> None:
    assert recipe_signal("line-1", "B") == (b"line-1", b'{"recipe": "B"}')
