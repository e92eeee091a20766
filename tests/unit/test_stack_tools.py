"""Missing or too-old tools give one message that names them and the alternatives."""

from __future__ import annotations

import pytest

from lineguard.stack import tools
from lineguard.stack.tools import GO, JAVA, MAVEN, parse_java_major, require
from schemas.errors import ConfigurationError


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ("something else entirely", None),
    ],
)
def test_parse_java_major(output: str, major: int | None) -> None:
    assert parse_java_major(output) == major


def test_all_missing_tools_are_named_at_once_with_the_alternatives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "which", lambda program: None)

    with pytest.raises(ConfigurationError) as caught:
        require([JAVA, MAVEN, GO])

    message = str(caught.value)
    assert "\n" not in message
    for program in ("java", "mvn", "go"):
        assert f"{program} — " in message
    assert "docker compose" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message and "MONGODB_URI" in message


def test_present_tools_are_returned_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "which", lambda program: f"/opt/bin/{program}")

    assert require([MAVEN, GO]) == {"mvn": "/opt/bin/mvn", "go": "/opt/bin/go"}
