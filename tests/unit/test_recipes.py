"""Recipe book and changeover state (workers.recipes), pure logic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.errors import ConfigurationError
from workers.recipes import RecipeBook, RecipeState, RecipeThresholds, main
from workers.verdicts import ThresholdPolicy, VerdictThresholds

BOOK = {
    "lines": {
        "line-1": {
            "default": "A",
            "recipes": {
                "A": {"thresholds": {"defect": 0.5}},
                "B": {"thresholds": {"defect": 0.9, "uncertain": 0.8}},
            },
        },
        "line-2": {"recipes": {"C": {"thresholds": {"defect": 0.3}}}},
    }
}


class _Base:
    def __init__(self) -> None:
        self.policy = ThresholdPolicy(default=VerdictThresholds(0.6, 0.48))
        self.refreshed = 0

    def for_frame(self, line_id: str, camera_id: str) -> VerdictThresholds:
        return self.policy.for_frame(line_id, camera_id)

    def refresh(self) -> object:
        self.refreshed += 1
        return self.policy


def test_default_recipe_then_a_signal_switches_the_line() -> None:
    state = RecipeState(RecipeBook.from_mapping(BOOK))
    lookup = RecipeThresholds(_Base(), state)

    assert lookup.for_frame("line-1", "cam") == VerdictThresholds(0.5, 0.4)
    assert lookup.for_frame("line-2", "cam") == VerdictThresholds(0.6, 0.48)  # no recipe yet: the base
    assert state.apply("line-1", json.dumps({"recipe": "B"}).encode())
    assert lookup.for_frame("line-1", "cam") == VerdictThresholds(0.9, 0.8)
    assert not state.apply("line-1", b'{"recipe": "B"}')  # the same recipe again: no change
    assert state.apply("line-2", b'{"recipe": "C"}')
    assert lookup.for_frame("line-2", "cam") == VerdictThresholds.from_mapping({"defect": 0.3})
    assert state.changes == 2


@pytest.mark.parametrize("value", [b'{"recipe": "Z"}', b"not json", b'{"other": 1}', b"[1]", None], ids=str)
def test_a_bad_signal_keeps_the_current_recipe(value: bytes | None) -> None:
    state = RecipeState(RecipeBook.from_mapping(BOOK))

    assert not state.apply("line-1", value)
    assert not state.apply("line-9", b'{"recipe": "A"}')  # a line the book does not know
    assert state.current("line-1") == "A"


def test_refresh_reaches_the_base_lookup() -> None:
    base = _Base()
    RecipeThresholds(base, RecipeState(RecipeBook())).refresh()

    assert base.refreshed == 1


@pytest.mark.parametrize(
    ("book", "message"),
    [
        ({"line": {}}, "unknown recipe book sections"),
        ({"lines": {"l": {"recipes": {}, "extra": 1}}}, "expected 'default' and 'recipes'"),
        ({"lines": {"l": {"default": "X", "recipes": {"A": {}}}}}, "default recipe 'X'"),
        ({"lines": {"l": {"recipes": {"A": {"model": "m"}}}}}, "expected only 'thresholds'"),
        ({"lines": {"l": {"recipes": {"A": {"thresholds": {"defect": 0.5, "uncertain": 0.7}}}}}}, "above"),
    ],
)
def test_bad_book_is_a_configuration_error(book: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RecipeBook.from_mapping(book)


def test_book_from_yaml_and_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "recipes.yaml"
    path.write_text("lines:\n  line-1:\n    default: A\n    recipes:\n      A: {thresholds: {defect: 0.7}}\n")

    assert RecipeBook.read(path).lines["line-1"].default == "A"
    with pytest.raises(ConfigurationError, match="cannot read recipe book"):
        RecipeBook.read(tmp_path / "missing.yaml")


def test_cli_usage_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["switch", "line-1"]) == 2
    assert "usage" in capsys.readouterr().err
