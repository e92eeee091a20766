"""A bounded on-disk spool for messages the broker could not take (store-and-forward).

One file per message, named by a sequence number the publisher assigns when it first tries to send the
message; the spool hands messages back in sequence order, so a camera's frames drain in the order they were
captured even when some of them failed late (after newer ones were already spooled). Files are written to a
temporary name and renamed, so a crash leaves either a whole message or none; a spool directory left behind by
a previous run is picked up and drained on the next start.

Durability (:class:`FsyncPolicy`): ``always`` (the default) fsyncs each file and the directory before
``append`` returns, so a spooled frame survives a power cut; ``never`` leaves it to the page cache (a
process crash loses nothing, a power cut may). Either way, a file that is empty, torn or fails its CRC (a
power cut under ``never``, a damaged disk) is moved to ``quarantine/`` with a warning and counted, never
fatal: the camera must keep starting.

When full, the policy decides: ``drop-oldest`` deletes the oldest messages that are not being sent right now
(counted in ``dropped``), ``block`` refuses the message (:class:`SpoolFullError`) so the caller can wait.
A full disk (``ENOSPC``/``EDQUOT`` before the size cap is reached) is handled by the same policy; any other
write error refuses the message (:class:`SpoolWriteError`, counted in ``write_errors``).
"""

from __future__ import annotations

import base64
import bisect
import errno
import json
import logging
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from schemas.errors import ConfigurationError, LineguardError

logger = logging.getLogger(__name__)

_MAGIC_V1 = b"LGSPOOL1"  # read for spools left by older versions (no length or CRC)
_MAGIC = b"LGSPOOL2"  # meta carries the value's length and CRC32
_LENGTH = struct.Struct(">I")
_HEADER_BYTES = len(_MAGIC) + _LENGTH.size
_SUFFIX = ".msg"
_QUARANTINE = "quarantine"
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class SpoolPolicy(StrEnum):
    block = "block"
    drop_oldest = "drop-oldest"


class FsyncPolicy(StrEnum):
    always = "always"  # fsync file + directory per message: survives a power cut
    never = "never"  # page cache only: survives a process crash, not a power cut


class SpoolFullError(LineguardError):
    """No room for a message under the ``block`` policy, or a message larger than the whole spool."""


class SpoolWriteError(SpoolFullError):
    """The disk refused the write (full under ``block``, read-only, I/O error)."""

    def __init__(self, message: str, disk_full: bool) -> None:
        super().__init__(message)
        self.disk_full = disk_full


class CorruptSpoolFileError(ValueError):
    """A spool file that is not a whole message (empty, torn, wrong CRC)."""


@dataclass(frozen=True, slots=True)
class SpooledMessage:
    """A Kafka message waiting in the spool."""

    seq: int
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def file_size(self) -> int:
        """Bytes this message takes in the spool (what the size cap counts)."""
        return len(self.to_bytes())

    def to_bytes(self) -> bytes:
        meta = {
            "topic": self.topic,
            "key": None if self.key is None else base64.b64encode(self.key).decode("ascii"),
            "headers": [[name, base64.b64encode(value).decode("ascii")] for name, value in self.headers],
            "length": len(self.value),
            "crc32": f"{zlib.crc32(self.value):08x}",  # fixed width: equal values, equal file sizes
        }
        meta_bytes = json.dumps(meta, separators=(",", ":")).encode()
        return b"".join((_MAGIC, _LENGTH.pack(len(meta_bytes)), meta_bytes, self.value))

    @classmethod
    def from_bytes(cls, seq: int, data: bytes) -> SpooledMessage:
        """Raises :class:`CorruptSpoolFileError` for anything but a whole message."""
        meta, start = _parse_header(data, len(data))
        value = data[start:]
        if "length" in meta and (len(value) != meta["length"] or f"{zlib.crc32(value):08x}" != meta["crc32"]):
            raise CorruptSpoolFileError(f"torn: {len(value)} of {meta['length']} bytes, or a bad CRC")
        try:
            key = meta["key"]
            return cls(
                seq=seq,
                topic=meta["topic"],
                key=None if key is None else base64.b64decode(key),
                value=value,
                headers=tuple((name, base64.b64decode(v)) for name, v in meta["headers"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptSpoolFileError(f"bad spool file metadata: {exc}") from exc


def _parse_header(data: bytes, file_size: int) -> tuple[dict[str, Any], int]:
    """The metadata and where the value starts; checks what a prefix of the file can tell."""
    if not data:
        raise CorruptSpoolFileError("empty spool file")
    if not data.startswith((_MAGIC, _MAGIC_V1)) or len(data) < _HEADER_BYTES:
        raise CorruptSpoolFileError("not a spool file (torn before its header)")
    (meta_length,) = _LENGTH.unpack_from(data, len(_MAGIC))
    start = _HEADER_BYTES + meta_length
    if len(data) < start:
        raise CorruptSpoolFileError("torn inside its metadata")
    try:
        meta = json.loads(data[_HEADER_BYTES:start])
    except ValueError as exc:
        raise CorruptSpoolFileError(f"unreadable metadata: {exc}") from exc
    if not isinstance(meta, dict):
        raise CorruptSpoolFileError("unreadable metadata")
    length = meta.get("length")
    if isinstance(length, int) and file_size != start + length:
        raise CorruptSpoolFileError(f"torn: {file_size - start} of {length} value bytes")
    return meta, start


class DiskSpool:
    """Messages on disk, ordered by sequence number, within ``max_bytes``.

    Not thread-safe: the publisher owns it and calls it from its own thread (delivery callbacks run inside
    ``Producer.poll``, on the caller's thread).
    """

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        policy: SpoolPolicy = SpoolPolicy.drop_oldest,
        fsync: FsyncPolicy | bool = FsyncPolicy.always,
    ) -> None:
        if max_bytes <= 0:
            raise ConfigurationError(f"spool size cap must be positive, got {max_bytes} bytes")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot create spool directory {directory}: {exc.strerror}") from exc
        self.directory = directory
        self.max_bytes = max_bytes
        self.policy = policy
        if isinstance(fsync, bool):
            fsync = FsyncPolicy.always if fsync else FsyncPolicy.never
        self.fsync = fsync
        self.dropped = 0  # messages deleted to make room (drop-oldest; size cap or full disk)
        self.refused = 0  # messages refused because the spool was full (block) or they alone exceed the cap
        self.write_errors = 0  # messages the disk refused (full under block, read-only, I/O error)
        self.quarantined = 0  # files found empty, torn or corrupt (moved to quarantine/)
        self._sizes: dict[int, int] = {}  # seq -> file size
        self._order: list[int] = []  # the same seqs, sorted (late failures insert below newer messages)
        self._bytes = 0
        self._recover()

    def _recover(self) -> None:
        for leftover in self.directory.glob(f"*{_SUFFIX}.tmp"):
            leftover.unlink(missing_ok=True)  # a write interrupted by a crash: the message was never accepted
        for path in self.directory.glob(f"*{_SUFFIX}"):
            try:
                seq = int(path.stem)
            except ValueError:
                continue
            try:
                size = path.stat().st_size
                with open(path, "rb") as handle:
                    head = handle.read(64 * 1024)  # header + metadata; the CRC is checked when it is read
                _parse_header(head, size)
            except CorruptSpoolFileError as exc:
                self._quarantine(path, str(exc))
                continue
            except FileNotFoundError:
                continue
            self._sizes[seq] = size
            self._bytes += size
        self._order = sorted(self._sizes)
        if self._sizes:
            logger.info(
                "spool %s holds %d messages (%.1f MB) from a previous run; they will be sent first",
                self.directory,
                len(self._sizes),
                self._bytes / 1e6,
            )

    def _quarantine(self, path: Path, why: str) -> None:
        """Move a damaged file aside (kept for a post-mortem) and count it: a lost frame, not a dead camera"""
        self.quarantined += 1
        target_dir = self.directory / _QUARANTINE
        if not path.exists():
            logger.warning("spool file %s vanished (%s): that frame is lost", path.name, why)
            return
        try:
            target_dir.mkdir(exist_ok=True)
            os.replace(path, target_dir / path.name)
        except OSError:
            path.unlink(missing_ok=True)
        logger.warning(
            "spool file %s is damaged (%s): moved to %s/, that frame is lost", path.name, why, target_dir
        )

    def __len__(self) -> int:
        return len(self._sizes)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def next_seq(self) -> int:
        """The first sequence number above everything stored (a publisher continues numbering from here)."""
        return self._order[-1] + 1 if self._order else 0

    def has_room_for(self, size: int) -> bool:
        return self._bytes + size <= self.max_bytes

    def append(self, message: SpooledMessage, protected: Iterable[int] = ()) -> None:
        """Store a message. Under drop-oldest, older messages (except ``protected`` ones, being sent right
        now) are deleted to make room (for the size cap, or on a full disk); under block, a full spool raises
        :class:`SpoolFullError` and a full disk :class:`SpoolWriteError`."""
        data = message.to_bytes()
        spared = set(protected)
        if len(data) > self.max_bytes:
            self.refused += 1
            raise SpoolFullError(
                f"a {len(data)}-byte message is larger than the whole spool ({self.max_bytes} bytes)"
            )
        if not self.has_room_for(len(data)):
            if self.policy is SpoolPolicy.block:
                self.refused += 1
                raise SpoolFullError(
                    f"spool {self.directory} is full ({self._bytes} of {self.max_bytes} bytes)"
                )
            self._make_room(len(data), spared)
        while True:
            try:
                self._write(message.seq, data)
                break
            except OSError as exc:
                disk_full = exc.errno in _DISK_FULL
                if disk_full and self.policy is SpoolPolicy.drop_oldest and self._drop_one(spared):
                    continue  # the disk filled up below the cap: the policy makes room the same way
                self.write_errors += 1
                raise SpoolWriteError(
                    f"cannot write to spool {self.directory}: {exc.strerror or exc}", disk_full
                ) from exc
        previous = self._sizes.get(message.seq)
        if previous is None:
            bisect.insort(self._order, message.seq)
        else:
            self._bytes -= previous
        self._sizes[message.seq] = len(data)
        self._bytes += len(data)

    def _write(self, seq: int, data: bytes) -> None:
        path = self._path(seq)
        temporary = path.with_name(path.name + ".tmp")
        try:
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                if self.fsync is FsyncPolicy.always:
                    os.fsync(handle.fileno())
            os.replace(temporary, path)
        except OSError:
            temporary.unlink(missing_ok=True)  # frees what the failed write took
            raise
        if self.fsync is FsyncPolicy.always:
            # The rename is durable only once the directory entry is: without this a power cut can lose it.
            descriptor = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def _drop_one(self, protected: set[int]) -> bool:
        for seq in self._order:
            if seq not in protected:
                self.remove(seq)
                self.dropped += 1
                return True
        return False

    def _make_room(self, size: int, protected: set[int]) -> None:
        while not self.has_room_for(size):
            if not self._drop_one(protected):
                self.refused += 1
                raise SpoolFullError(f"spool {self.directory} is full of messages being sent right now")

    def oldest(self, limit: int, exclude: Sequence[int] | set[int] = ()) -> list[SpooledMessage]:
        """Up to ``limit`` messages in sequence order, skipping ``exclude`` (already being sent); a damaged
        file met on the way is quarantined and skipped."""
        excluded = set(exclude)
        messages: list[SpooledMessage] = []
        for seq in list(self._order):
            if len(messages) >= limit:
                break
            if seq in excluded:
                continue
            path = self._path(seq)
            try:
                messages.append(SpooledMessage.from_bytes(seq, path.read_bytes()))
            except (CorruptSpoolFileError, FileNotFoundError) as exc:
                self._forget(seq)
                self._quarantine(path, str(exc))
        return messages

    def remove(self, seq: int) -> None:
        """Forget a message (delivered, or dropped)."""
        if self._forget(seq):
            self._path(seq).unlink(missing_ok=True)

    def _forget(self, seq: int) -> bool:
        size = self._sizes.pop(seq, None)
        if size is None:
            return False
        self._bytes -= size
        del self._order[bisect.bisect_left(self._order, seq)]
        return True

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:020d}{_SUFFIX}"
