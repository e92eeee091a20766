"""A recipe's optional `model_alias`: read from the book, reported for the line's current recipe, refused
when it is not a name."""

from __future__ import annotations

import pytest

from schemas.errors import ConfigurationError
from workers.recipes import RecipeBook, RecipeState

BOOK = {"lines": {"line-1": {"default": "A", "recipes": {"A": {}, "B": {"model_alias": " line-1.B "}}}}}


def test_the_current_recipe_names_the_alias_the_line_serves_from() -> None:
    state = RecipeState(RecipeBook.from_mapping(BOOK))
    assert state.model_alias("line-1") is None  # recipe A: the line's own alias
    assert state.apply("line-1", b'{"recipe": "B"}')
    assert state.model_alias("line-1") == "line-1.B"
    assert state.model_alias("line-2") is None  # not in the book


@pytest.mark.parametrize("alias", ["", "  ", 7])
def test_a_model_alias_that_is_not_a_name_is_refused(alias: object) -> None:
    book = {"lines": {"line-1": {"recipes": {"B": {"model_alias": alias}}}}}
    with pytest.raises(ConfigurationError, match="model_alias must be an alias name"):
        RecipeBook.from_mapping(book)
