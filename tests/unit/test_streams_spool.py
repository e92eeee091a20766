"""The on-disk spool: order, cap, both policies, recovery after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.errors import ConfigurationError
from streams.spool import DiskSpool, SpooledMessage, SpoolFullError, SpoolPolicy


def _message(seq: int, size: int = 100, key: bytes | None = b"cam-1") -> SpooledMessage:
    return SpooledMessage(
        seq=seq,
        topic="frames",
        key=key,
        value=bytes([seq % 256]) * size,
        headers=(("content-type", b"image/jpeg"), ("trace-id", b"\x00\xff")),
    )


def _record_size(size: int = 100) -> int:
    return len(_message(0, size).to_bytes())


def test_round_trips_a_message_through_its_file_format() -> None:
    message = _message(7, key=None)
    assert SpooledMessage.from_bytes(7, message.to_bytes()) == message


def test_hands_messages_back_in_sequence_order_even_when_appended_out_of_order(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=10_000)
    for seq in (5, 6, 2, 7, 3):  # 2 and 3 failed late, after 5 and 6 were already spooled
        spool.append(_message(seq))
    assert [m.seq for m in spool.oldest(10)] == [2, 3, 5, 6, 7]
    assert [m.seq for m in spool.oldest(2, exclude={2})] == [3, 5]
    spool.remove(2)
    assert [m.seq for m in spool.oldest(10)] == [3, 5, 6, 7]
    assert len(spool) == 4
    assert spool.next_seq == 8


def test_drop_oldest_makes_room_and_counts_but_spares_messages_in_flight(tmp_path: Path) -> None:
    record = _record_size()
    spool = DiskSpool(tmp_path, max_bytes=3 * record, policy=SpoolPolicy.drop_oldest)
    for seq in range(3):
        spool.append(_message(seq))
    spool.append(_message(3), protected={0})  # 0 is being sent: 1 goes instead
    assert [m.seq for m in spool.oldest(10)] == [0, 2, 3]
    assert spool.dropped == 1
    assert spool.size_bytes == 3 * record


def test_block_policy_refuses_when_full(tmp_path: Path) -> None:
    record = _record_size()
    spool = DiskSpool(tmp_path, max_bytes=2 * record, policy=SpoolPolicy.block)
    spool.append(_message(0))
    spool.append(_message(1))
    assert not spool.has_room_for(record)
    with pytest.raises(SpoolFullError, match="full"):
        spool.append(_message(2))
    assert spool.refused == 1 and spool.dropped == 0
    assert [m.seq for m in spool.oldest(10)] == [0, 1]


def test_a_message_larger_than_the_whole_spool_is_refused(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=50, policy=SpoolPolicy.drop_oldest)
    with pytest.raises(SpoolFullError, match="larger than the whole spool"):
        spool.append(_message(0))


def test_a_new_spool_on_the_same_directory_recovers_the_messages(tmp_path: Path) -> None:
    first = DiskSpool(tmp_path, max_bytes=10_000)
    for seq in (10, 11, 12):
        first.append(_message(seq))
    (tmp_path / "00000000000000000013.msg.tmp").write_bytes(b"half-written")  # a crash mid-write
    second = DiskSpool(tmp_path, max_bytes=10_000)
    assert [m.seq for m in second.oldest(10)] == [10, 11, 12]
    assert second.oldest(1)[0] == _message(10)
    assert second.size_bytes == first.size_bytes
    assert second.next_seq == 13
    assert not list(tmp_path.glob("*.tmp"))


def test_invalid_cap_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        DiskSpool(tmp_path, max_bytes=0)
