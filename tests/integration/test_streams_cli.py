"""`lineguard camera` as a user runs it: a real process, real Kafka, a signal to stop it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lineguard.stack.endpoints import Endpoints
from schemas.topics import TopicNames
from tests.integration.test_streams_support import consume_frames

pytestmark = pytest.mark.integration


def _camera(endpoints: Endpoints, args: list[str]) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
        "MONGODB_URI": endpoints.mongodb_uri,
    }
    command = [
        sys.executable,
        "-m",
        "lineguard.cli",
        "camera",
        "--no-progress",
        "--first-frame-number",
        "0",
        *args,
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigterm_flushes_reports_and_exits_0(
    endpoints: Endpoints, kafka_config: dict[str, Any], topics: TopicNames, tmp_path: Path
) -> None:
    camera = _camera(
        endpoints,
        [
            "--source",
            "synthetic:?size=64x48",
            "--topic",
            topics.frames,
            "--fps",
            "20",
            "--spool-dir",
            str(tmp_path),
        ],
    )
    deadline = time.monotonic() + 60
    # Stop it once it is publishing (its log names the topic when the loop starts).
    assert camera.stderr is not None
    for line in camera.stderr:
        if "-> " + topics.frames in line or time.monotonic() > deadline:
            break
    time.sleep(1.0)
    camera.send_signal(signal.SIGTERM)
    _, stderr = camera.communicate(timeout=60)
    assert camera.returncode == 0, stderr
    match = re.search(
        r"(\d+) frames published: (\d+) delivered, 0 in the spool, 0 failed, 0 undelivered", stderr
    )
    assert match, stderr
    published, delivered = int(match.group(1)), int(match.group(2))
    assert published == delivered > 0
    received = consume_frames(kafka_config, topics.frames, delivered)
    assert [r.frame.frame_number for r in received] == list(range(delivered))


def test_oversize_frames_without_claim_check_fail_clearly_with_exit_1(
    endpoints: Endpoints, topics: TopicNames, tmp_path: Path
) -> None:
    camera = _camera(
        endpoints,
        [
            "--source",
            "synthetic:?size=256x256",
            "--encoding",
            "png",
            "--inline-limit",
            "1KiB",
            "--no-claim-check",
            "--count",
            "3",
            "--fps",
            "0",
            "--topic",
            topics.frames,
            "--spool-dir",
            str(tmp_path),
        ],
    )
    _, stderr = camera.communicate(timeout=120)
    assert camera.returncode == 1, stderr
    assert stderr.count("above the inline limit of 1024 bytes, and claim-check is disabled") == 3
    assert re.search(r"0 frames published: .* 3 too large", stderr), stderr
