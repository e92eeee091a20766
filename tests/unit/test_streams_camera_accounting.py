"""The camera tells the truth about lost frames, survives a damaged or full spool, and never reuses a frame
number when its clock steps back (issue 19, items 6 and 8).

The full disk is real: the spool's temporary file is made a link to ``/dev/full``, so the kernel itself
answers ENOSPC to the write. The producer is the publisher tests' fake (a broker that is down on demand).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import KafkaError

from schemas.errors import LineguardError
from streams.encoder import FrameEncoder
from streams.runner import CameraRunner
from streams.sequence import FrameSequence
from streams.settings import CameraSettings
from streams.spool import (
    DiskSpool,
    FsyncPolicy,
    SpooledMessage,
    SpoolPolicy,
    SpoolWriteError,
)
from tests.unit.test_streams_publisher import _frame, _publisher
from tests.unit.test_streams_runner import ListSource

HOUR_NS = 3600 * 10**9


def _message(seq: int, size: int = 100) -> SpooledMessage:
    return SpooledMessage(seq=seq, topic="frames", key=b"cam", value=bytes([seq % 256]) * size)


def _fill(directory: Path, seqs: range) -> DiskSpool:
    spool = DiskSpool(directory, max_bytes=1_000_000)
    for seq in seqs:
        spool.append(_message(seq))
    return spool


def _disk_full_for(spool: DiskSpool, seq: int) -> None:
    """The next write of ``seq`` goes to /dev/full: the kernel answers ENOSPC."""
    (spool.directory / f"{seq:020d}.msg.tmp").symlink_to("/dev/full")


# -- item 6: damaged files are quarantined, not fatal ------------------------------------------------------


def test_empty_torn_and_corrupt_spool_files_are_quarantined_on_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _fill(tmp_path, range(6))
    path = {seq: tmp_path / f"{seq:020d}.msg" for seq in range(6)}
    path[1].write_bytes(b"")  # power cut after the rename, before the data reached the disk
    whole = path[2].read_bytes()
    path[2].write_bytes(whole[: len(whole) - 30])  # torn inside the value
    path[3].write_bytes(b"LGSPOOL2\x00\x00")  # torn inside the header
    flipped = bytearray(path[4].read_bytes())
    flipped[-1] ^= 0xFF  # same length, one bad byte: only the CRC can tell
    path[4].write_bytes(bytes(flipped))
    with caplog.at_level(logging.WARNING, logger="streams.spool"):
        spool = DiskSpool(tmp_path, max_bytes=1_000_000)
        assert spool.quarantined == 3  # empty, torn value, torn header: seen from the file's size and header
        assert [m.seq for m in spool.oldest(10)] == [0, 5]  # the bad CRC is found on reading
    assert spool.quarantined == 4 and len(spool) == 2
    assert sorted(p.name for p in (tmp_path / "quarantine").iterdir()) == [path[s].name for s in (1, 2, 3, 4)]
    assert sum("moved to" in r.getMessage() for r in caplog.records) == 4


def test_a_version_1_spool_file_from_an_older_camera_is_still_sent(tmp_path: Path) -> None:
    import base64
    import json
    import struct

    meta = json.dumps({"topic": "frames", "key": base64.b64encode(b"cam").decode(), "headers": []}).encode()
    (tmp_path / f"{7:020d}.msg").write_bytes(b"LGSPOOL1" + struct.pack(">I", len(meta)) + meta + b"payload")
    assert DiskSpool(tmp_path, max_bytes=10_000).oldest(5) == [
        SpooledMessage(seq=7, topic="frames", key=b"cam", value=b"payload")
    ]


def test_quarantined_files_count_as_lost_in_the_camera_summary(tmp_path: Path) -> None:
    _fill(tmp_path, range(3))
    (tmp_path / f"{1:020d}.msg").write_bytes(b"")
    publisher, _producer = _publisher(tmp_path)
    runner = CameraRunner(ListSource(2), FrameEncoder("cam-1", "l", "s", next_frame_number=10), publisher)
    summary = runner.run()
    assert summary.publisher.spool_quarantined == 1 and summary.close.delivered == 4  # 2 spooled + 2 new
    assert summary.lost == 1 and summary.exit_code == 1
    assert "lost 1" in summary.describe() and "1 damaged spool files quarantined" in summary.describe()


# -- item 6: a full disk is handled by the policy and counted ------------------------------------------------


def test_full_disk_under_drop_oldest_drops_the_oldest_and_keeps_the_new_frame(tmp_path: Path) -> None:
    spool = _fill(tmp_path, range(3))
    _disk_full_for(spool, 3)
    spool.append(_message(3), protected={0})
    assert [m.seq for m in spool.oldest(10)] == [0, 2, 3]  # 1 made room (0 is in flight)
    assert spool.dropped == 1 and spool.write_errors == 0


def test_full_disk_under_block_refuses_and_counts(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1_000_000, policy=SpoolPolicy.block)
    spool.append(_message(0))
    _disk_full_for(spool, 1)
    with pytest.raises(SpoolWriteError, match="No space left") as refused:
        spool.append(_message(1))
    assert refused.value.disk_full and spool.write_errors == 1 and spool.dropped == 0
    assert [m.seq for m in spool.oldest(10)] == [0] and not list(tmp_path.glob("*.tmp"))


def test_full_disk_inside_a_delivery_callback_is_counted_not_raised(tmp_path: Path) -> None:
    publisher, producer = _publisher(tmp_path, policy=SpoolPolicy.block)
    producer.broker_up = False
    publisher.publish(_frame(0))  # sent directly (seq 0); its delivery will time out
    assert publisher._spool is not None
    _disk_full_for(publisher._spool, 0)
    producer.fail(KafkaError._MSG_TIMED_OUT)  # the callback tries to spool it: ENOSPC
    stats = publisher.stats
    assert stats.failed == 1 and stats.spool_write_errors == 1 and publisher.spool_backlog == 0
    assert stats.lost == 1


# -- item 6: drop-oldest drops are lost frames: "lost N" and exit 1 ------------------------------------------


def test_frames_dropped_by_drop_oldest_are_lost_in_the_summary_and_the_exit_code(tmp_path: Path) -> None:
    encoder = FrameEncoder("cam-1", "l", "s", next_frame_number=0)
    # One spooled frame's size, measured by spooling one (whatever headers the publisher adds).
    probe, probe_producer = _publisher(tmp_path / "probe")
    probe_producer.broker_up = False
    probe._on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    probe.publish(encoder.encode(next(iter(ListSource(1)))))
    assert probe._spool is not None and len(probe._spool) == 1
    record = probe._spool.size_bytes
    encoder.next_frame_number = 0
    publisher, producer = _publisher(
        tmp_path / "spool", spool_bytes=10 * record + record // 2, drain_window=1
    )
    producer.broker_up = False
    publisher._on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    runner = CameraRunner(ListSource(50), encoder, publisher, close_timeout_s=0.0)
    summary = runner.run()
    close = summary.close
    assert close.delivered == 0 and close.failed == 0 and close.undelivered == 0
    assert close.in_spool == 10  # what fits in the spool waits for the broker...
    assert summary.publisher.spool_dropped == 40  # ...the other 40 frames were dropped to make room
    assert summary.lost == 40 and summary.exit_code == 1
    assert "lost 40" in summary.describe() and "40 dropped from a full spool" in summary.describe()


def test_fsync_policy_is_a_camera_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert CameraSettings().spool_fsync is FsyncPolicy.always  # durable unless asked otherwise
    monkeypatch.setenv("LINEGUARD_CAMERA_SPOOL_FSYNC", "never")
    assert CameraSettings().spool_fsync is FsyncPolicy.never
    spool = DiskSpool(tmp_path, 10_000, fsync=FsyncPolicy.never)
    spool.append(_message(0))
    assert spool.fsync is FsyncPolicy.never and spool.oldest(1) == [_message(0)]


# -- item 8: frame numbers never go back when the clock does -------------------------------------------------


class SteppingClock:
    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def _numbers(sequence: FrameSequence, frames: int) -> list[int]:
    from datetime import UTC, datetime

    from streams.sources.base import CapturedFrame

    encoder = FrameEncoder("cam", "l", "s", next_frame_number=sequence.start(), reserve=sequence.reserve)
    image = np.zeros((8, 8, 3), np.uint8)
    return [encoder.encode(CapturedFrame(datetime.now(UTC), image)).frame_number for _ in range(frames)]


def test_frame_numbers_survive_the_clock_stepping_back_across_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = SteppingClock(1_800_000_000 * 10**9)
    state = tmp_path / "cam.seq"
    first_run = _numbers(FrameSequence(state, block=4, clock_ns=clock), 10)  # crosses two blocks
    assert first_run == list(range(first_run[0], first_run[0] + 10))
    clock.now_ns -= HOUR_NS  # NTP steps the host clock back an hour while the camera is down
    with caplog.at_level(logging.WARNING, logger="streams.sequence"):
        second_run = _numbers(FrameSequence(state, block=4, clock_ns=clock), 10)
    assert second_run[0] > first_run[-1]  # without the guard it would start an hour (3.6e9 numbers) lower
    assert "behind the frame numbers already used" in caplog.text
    clock.now_ns += 2 * HOUR_NS  # and a clock that is ahead again wins: numbers track time when they can
    assert _numbers(FrameSequence(state, block=4, clock_ns=clock), 1)[0] == clock.now_ns // 1000


def test_the_reservation_is_on_disk_before_its_numbers_are_used(tmp_path: Path) -> None:
    clock = SteppingClock(10**15)
    state = tmp_path / "cam.seq"
    used = _numbers(FrameSequence(state, block=3, clock_ns=clock), 7)
    # A crash right now (no clean shutdown) leaves a reservation above every number used.
    assert int(state.read_text()) > used[-1]
    clock.now_ns = 0  # a dead RTC battery: the clock is back at 1970
    assert _numbers(FrameSequence(state, clock_ns=clock), 1)[0] > used[-1]


def test_an_unreadable_sequence_file_is_set_aside_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "cam.seq"
    state.write_bytes(b"12\x00garbage")
    with caplog.at_level(logging.WARNING, logger="streams.sequence"):
        first = FrameSequence(state, clock_ns=SteppingClock(5_000_000)).start()
    assert first == 5_000 and (tmp_path / "cam.seq.damaged").exists()
    assert "unreadable" in caplog.text


def test_an_unwritable_reservation_stops_numbering(tmp_path: Path) -> None:
    state = tmp_path / "cam.seq"
    sequence = FrameSequence(state, block=2, clock_ns=SteppingClock(10**12))
    first = sequence.start()
    (tmp_path / "cam.seq.tmp").symlink_to("/dev/full")  # the disk is full when the next block is due
    sequence.reserve(first + 1)
    with pytest.raises(LineguardError, match="cannot write frame sequence"):
        sequence.reserve(first + 2)


def test_build_camera_numbers_from_the_persisted_sequence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.camera import build_camera

    clock = SteppingClock(1_900_000_000 * 10**9)
    monkeypatch.setattr("streams.sequence.time.time_ns", clock)
    settings = CameraSettings(camera_id="cam/7", claim_check=False, spool=False, count=1)
    config = {"bootstrap.servers": "127.0.0.1:1"}  # never reached: no frame is published here
    first = build_camera(settings, config, None, "db", tmp_path, create_topic=False)
    first.source.close()
    assert first.encoder.next_frame_number == clock.now_ns // 1000
    clock.now_ns -= HOUR_NS
    second = build_camera(settings, config, None, "db", tmp_path, create_topic=False)
    second.source.close()
    assert second.encoder.next_frame_number > first.encoder.next_frame_number
    assert (tmp_path / "frame-sequence" / "cam_7").exists()
    assert os.path.getsize(tmp_path / "frame-sequence" / "cam_7") > 0
