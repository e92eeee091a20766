"""Camera settings, size parsing and the `lineguard camera` command's handling of user mistakes."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from schemas.errors import ConfigurationError
from streams.settings import CameraSettings, parse_byte_size
from streams.spool import SpoolPolicy


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1048576", 1048576), ("8MiB", 8 * 1024 * 1024), ("500kb", 500_000), ("1.5 MB", 1_500_000), (42, 42)],
)
def test_parse_byte_size(text: str | int, expected: int) -> None:
    assert parse_byte_size(text) == expected


@pytest.mark.parametrize("text", ["", "eight", "8 parsecs", "-1MB"])
def test_parse_byte_size_rejects_nonsense(text: str) -> None:
    with pytest.raises(ConfigurationError, match="not a size"):
        parse_byte_size(text)


def test_settings_read_their_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LINEGUARD_CAMERA_CAMERA_ID", "cam-42")
    monkeypatch.setenv("LINEGUARD_CAMERA_FPS", "2.5")
    monkeypatch.setenv("LINEGUARD_CAMERA_SPOOL_POLICY", "block")
    monkeypatch.setenv("LINEGUARD_CAMERA_RESIZE", "320x240")
    monkeypatch.setenv("LINEGUARD_CAMERA_INLINE_LIMIT", "2MiB")
    settings = CameraSettings()
    assert settings.camera_id == "cam-42" and settings.fps == 2.5
    assert settings.spool_policy is SpoolPolicy.block
    assert settings.resize_to == (320, 240)
    assert settings.inline_limit_bytes == 2 * 1024 * 1024
    assert settings.spool_directory(tmp_path) == tmp_path / "spool" / "cam-42"


def test_spool_directory_name_is_safe_for_any_camera_id(tmp_path: Path) -> None:
    settings = CameraSettings(camera_id="line 3/cam:1")
    assert settings.spool_directory(tmp_path) == tmp_path / "spool" / "line_3_cam_1"


def _run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    from lineguard.cli import main

    monkeypatch.setattr(sys, "argv", ["lineguard", *args])
    root = logging.getLogger()
    # The CLI configures logging for the process; put the test session's handlers back afterwards.
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    with pytest.raises(SystemExit) as exit_info:
        main()
    return int(exit_info.value.code or 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "folder:/definitely/not/here"], "is not a directory"),
        (["--source", "opencv:not a url"], "neither a device index nor a stream URL"),
        (["--source", "webcam:0"], "unknown source kind"),
        (["--resize", "big"], "is not WIDTHxHEIGHT"),
        (["--fps", "-3"], "fps"),
        (["--inline-limit", "lots"], "not a size"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_code_2(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No Kafka is reachable here on purpose: mistakes must be reported before anything connects.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1")
    assert _run_cli(["camera", *args], monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert err.startswith("error:") and "Traceback" not in err
