"""`lineguard counters run` against real Kafka and a real redis-server: exact per-line, per-window counts
through a SIGKILL, a replay by a second group, duplicate records and a Redis outage; bad input is one line
and exit 2; `stack up --with redis` starts a server."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lineguard.stack.redis_server import RedisServer, local_server
from mes.samples import produce
from quality.counters.redis_store import RedisStore, connect
from quality.counters.store import InProcessStore
from quality.counters.tally import tally
from schemas.records import Box, Detection, InspectionResult, KafkaCoordinates, ModelInfo, Task, Verdict
from schemas.topics import TopicNames

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
CLASSES = ("scratch", "dent", "stain")
WINDOW_S = 60

Expected = dict[tuple[str, int], Counter[str]]


def _sample(count: int, seed: int = 15) -> tuple[list[InspectionResult], Expected]:
    """``count`` distinct results on 3 lines, 0.05 s apart (a window holds ~1,200), and their counts as a
    quality engineer would tally them by hand: per (line, minute) frames, verdicts and defects per class."""
    rng = random.Random(seed)
    model = ModelInfo(name="sample", version="v1", task=Task.DETECTION)
    results: list[InspectionResult] = []
    expected: Expected = {}
    for i in range(count):
        at = START + timedelta(seconds=i * 0.05)
        line = f"L{rng.randint(1, 3)}"
        roll = rng.random()
        verdict = Verdict.DEFECT if roll < 0.1 else Verdict.UNCERTAIN if roll < 0.15 else Verdict.OK
        label = rng.choice(CLASSES)
        box = Box(label=label, x_min=0.1, y_min=0.1, x_max=0.2, y_max=0.2)
        detections = (Detection(label=label, score=0.9, box=box),) if verdict is Verdict.DEFECT else ()
        results.append(
            InspectionResult(
                camera_id=f"cam-{line}", line_id=line, station_id="S1", frame_number=i,
                source=KafkaCoordinates(topic="frames", partition=0, offset=i), model=model,
                verdict=verdict, detections=detections, captured_at=at, received_at=at, inferred_at=at,
                batch_size=8, worker_id="sample",
            )
        )  # fmt: skip
        minute = int(at.timestamp()) // 60 * 60
        counts = expected.setdefault((line, minute), Counter())
        counts["frames"] += 1
        counts[verdict.value.lower()] += 1
        if verdict is Verdict.DEFECT:
            counts[f"class:{label}"] += 1
    return results, expected


def _stored(store: RedisStore) -> Expected:
    return {
        (w.line_id, w.window_start): Counter(w.counts)
        for line in store.lines()
        for w in store.recent(line, 10_000)
    }


def _frames(store: RedisStore) -> int:
    return sum(c["frames"] for c in _stored(store).values())


def _run(
    kafka_config: dict[str, Any], url: str, topic: str, group: str, prefix: str
) -> subprocess.Popen[str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_config["bootstrap.servers"]}
    return subprocess.Popen(
        [sys.executable, "-m", "lineguard.cli", "counters", "run", "--redis-url", url, "--topic", topic,
         "--group", group, "--prefix", prefix, "--batch-size", "300", "--window-s", str(WINDOW_S)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _wait_for(
    store: RedisStore, frames: int, process: subprocess.Popen[str], timeout_s: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while _frames(store) < frames:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, f"{_frames(store)} of {frames} frames counted after {timeout_s} s"
        time.sleep(0.05)


def _stop(process: subprocess.Popen[str]) -> dict[str, int]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _store(url: str, prefix: str) -> RedisStore:
    return RedisStore(connect(url), WINDOW_S, prefix=prefix)


def test_redis_store_agrees_with_the_in_process_store_and_counts_a_replay_once(redis_url: str) -> None:
    results, expected = _sample(3_000)
    tallies = [tally(result, WINDOW_S) for result in results]
    redis_store, memory = _store(redis_url, f"t-{uuid.uuid4().hex}"), InProcessStore(WINDOW_S)
    for store in (redis_store, memory):
        assert store.apply(tallies[:2_000], {0: 2_000}, "g:t") == 2_000
        assert store.apply(tallies[1_000:], {0: 1_500, 1: 9}, "g:t") == 1_000  # overlap: counted once
        assert store.offsets("g:t", [0, 1, 2]) == {0: 2_000, 1: 9}  # raised only
    assert _stored(redis_store) == expected
    memory_counts = {(w.line_id, w.window_start): Counter(w.counts) for line in memory.lines()
                     for w in memory.recent(line, 10_000)}  # fmt: skip
    assert memory_counts == expected
    newest = redis_store.recent("L1", 2)
    assert [w.window_start for w in newest] == sorted(
        (s for line, s in expected if line == "L1"), reverse=True
    )[:2]


def test_sigkill_restart_duplicates_and_a_second_group_count_every_result_once(
    kafka_config: dict[str, Any], topics: TopicNames, redis_url: str
) -> None:
    results, expected = _sample(9_000)
    produce(kafka_config, topics.results, results)
    produce(kafka_config, topics.results, results[::7])  # an at-least-once worker wrote these twice
    prefix, group = f"t-{uuid.uuid4().hex}", f"counters-{uuid.uuid4().hex[:8]}"
    store = _store(redis_url, prefix)
    first = _run(kafka_config, redis_url, topics.results, group, prefix)
    _wait_for(store, 1, first)
    first.send_signal(signal.SIGKILL)  # mid-stream: batches are being applied back to back
    first.wait(timeout=10)
    position = sum(store.offsets(f"{group}:{topics.results}", range(3)).values())  # stored with the counts
    second = _run(kafka_config, redis_url, topics.results, group, prefix)
    _wait_for(store, len(results), second)
    time.sleep(1.0)  # let it read the rest of the topic (the duplicates at the end) before stopping
    stats = _stop(second)
    assert _stored(store) == expected
    written = len(results) + len(results[::7])
    assert 0 < position < written and stats["records"] == written - position  # resumed at the store's offsets
    replay = _run(kafka_config, redis_url, topics.results, f"{group}-replay", prefix)  # reads from 0
    replay_deadline = time.monotonic() + 60
    while True:
        offsets = store.offsets(f"{group}-replay:{topics.results}", range(3))
        if sum(offsets.values()) >= written:
            break
        assert replay.poll() is None and time.monotonic() < replay_deadline, offsets
        time.sleep(0.1)
    replayed = _stop(replay)
    assert replayed["counted"] == 0 and replayed["duplicates"] == written
    assert _stored(store) == expected


def test_a_redis_outage_pauses_the_counters_and_they_resume_without_loss(
    kafka_config: dict[str, Any], topics: TopicNames, tmp_path: Path
) -> None:
    server = local_server(tmp_path / "state")
    server.start()
    try:
        results, expected = _sample(3_000, seed=16)
        produce(kafka_config, topics.results, results[:1_000])
        prefix = f"t-{uuid.uuid4().hex}"
        store = _store(server.uri, prefix)
        process = _run(kafka_config, server.uri, topics.results, f"c-{uuid.uuid4().hex[:8]}", prefix)
        _wait_for(store, 1_000, process)
        server.stop()  # SIGTERM: the AOF is fsynced (appendfsync always), the data survives
        produce(kafka_config, topics.results, results[1_000:])
        time.sleep(2.0)  # the consumer meets the outage and pauses
        assert process.poll() is None
        RedisServer(server.home, server.port).start()
        _wait_for(store, 3_000, process)
        stats = _stop(process)
        assert stats["outages"] >= 1
        assert _stored(store) == expected
    finally:
        server.purge()


@pytest.mark.parametrize(
    ("url", "words"),
    [("redis://127.0.0.1:1/0", "cannot reach Redis"), ("http://127.0.0.1:1/", "not a Redis URL")],
)
def test_bad_redis_url_is_one_line_and_exit_2(
    kafka_config: dict[str, Any], topics: TopicNames, url: str, words: str
) -> None:
    process = _run(kafka_config, url, topics.results, "g", "p")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert err.strip().count("\n") == 0 and words in err, err


def test_stack_up_with_redis_starts_a_server_and_down_purges_it(
    kafka_config: dict[str, Any], tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_config["bootstrap.servers"],  # set: the stack starts nothing else
        "MONGODB_URI": os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:1/"),
        "LINEGUARD_STACK_STATE_DIR": str(tmp_path / "stack"),
    }
    env.pop("REDIS_URL", None)
    command = [sys.executable, "-m", "lineguard.cli", "stack"]
    up = subprocess.run(
        [*command, "up", "--with", "redis"], capture_output=True, text=True, env=env, timeout=60
    )
    try:
        assert up.returncode == 0, up.stderr
        url = up.stdout.strip().removeprefix("export REDIS_URL=")
        assert connect(url).ping()
        assert json.loads((tmp_path / "stack" / "redis.json").read_text())["uri"] == url
    finally:
        down = subprocess.run(
            [*command, "down", "--with", "redis", "--purge"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert down.returncode == 0, down.stderr
    assert "stopped: redis (data purged)" in down.stdout
    assert not (tmp_path / "stack" / "redis").exists()
