"""A bounded on-disk spool for messages the broker could not take (store-and-forward).

One file per message, named by a sequence number the publisher assigns when it first tries to send the
message; the spool hands messages back in sequence order, so a camera's frames drain in the order they were
captured even when some of them failed late (after newer ones were already spooled). Files are written to a
temporary name and renamed, so a crash leaves either a whole message or none; a spool directory left behind by
a previous run is picked up and drained on the next start.

When full, the policy decides: ``drop-oldest`` deletes the oldest messages that are not being sent right now
(counted in ``dropped``), ``block`` refuses the message (:class:`SpoolFullError`) so the caller can wait.
"""

from __future__ import annotations

import base64
import bisect
import json
import logging
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from schemas.errors import ConfigurationError, LineguardError

logger = logging.getLogger(__name__)

_MAGIC = b"LGSPOOL1"
_LENGTH = struct.Struct(">I")
_SUFFIX = ".msg"


class SpoolPolicy(StrEnum):
    block = "block"
    drop_oldest = "drop-oldest"


class SpoolFullError(LineguardError):
    """No room for a message under the ``block`` policy, or a message larger than the whole spool."""


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
        }
        meta_bytes = json.dumps(meta, separators=(",", ":")).encode()
        return b"".join((_MAGIC, _LENGTH.pack(len(meta_bytes)), meta_bytes, self.value))

    @classmethod
    def from_bytes(cls, seq: int, data: bytes) -> SpooledMessage:
        if not data.startswith(_MAGIC):
            raise ValueError("not a spool file")
        start = len(_MAGIC) + _LENGTH.size
        (meta_length,) = _LENGTH.unpack_from(data, len(_MAGIC))
        meta = json.loads(data[start : start + meta_length])
        key = meta["key"]
        return cls(
            seq=seq,
            topic=meta["topic"],
            key=None if key is None else base64.b64decode(key),
            value=data[start + meta_length :],
            headers=tuple((name, base64.b64decode(value)) for name, value in meta["headers"]),
        )


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
        fsync: bool = False,
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
        self.fsync = fsync
        self.dropped = 0  # messages deleted to make room (drop-oldest)
        self.refused = 0  # messages refused because the spool was full (block) or they alone exceed the cap
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
            size = path.stat().st_size
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
        now) are deleted to make room; under block, a full spool raises :class:`SpoolFullError`."""
        data = message.to_bytes()
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
            self._make_room(len(data), set(protected))
        path = self._path(message.seq)
        temporary = path.with_name(path.name + ".tmp")
        with open(temporary, "wb") as handle:
            handle.write(data)
            if self.fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
        previous = self._sizes.get(message.seq)
        if previous is None:
            bisect.insort(self._order, message.seq)
        else:
            self._bytes -= previous
        self._sizes[message.seq] = len(data)
        self._bytes += len(data)

    def _make_room(self, size: int, protected: set[int]) -> None:
        for seq in list(self._order):
            if self.has_room_for(size):
                return
            if seq in protected:
                continue
            self.remove(seq)
            self.dropped += 1
        if not self.has_room_for(size):
            self.refused += 1
            raise SpoolFullError(f"spool {self.directory} is full of messages being sent right now")

    def oldest(self, limit: int, exclude: Sequence[int] | set[int] = ()) -> list[SpooledMessage]:
        """Up to ``limit`` messages in sequence order, skipping ``exclude`` (already being sent)."""
        excluded = set(exclude)
        messages: list[SpooledMessage] = []
        for seq in self._order:
            if len(messages) >= limit:
                break
            if seq in excluded:
                continue
            messages.append(SpooledMessage.from_bytes(seq, self._path(seq).read_bytes()))
        return messages

    def remove(self, seq: int) -> None:
        """Forget a message (delivered, or dropped)."""
        size = self._sizes.pop(seq, None)
        if size is None:
            return
        self._bytes -= size
        del self._order[bisect.bisect_left(self._order, seq)]
        self._path(seq).unlink(missing_ok=True)

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:020d}{_SUFFIX}"
