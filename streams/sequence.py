"""Frame numbers that never go back for a camera, even when its host's clock does.

A restarted camera numbers from ``max(clock in microseconds, the persisted reservation)``. The reservation
is a number above every frame number handed out so far, written durably (temporary file, fsync, rename,
directory fsync) *before* any number below it is used; it is moved up a block at a time, so a camera pays one
small synchronous write per ``block`` frames, not one per frame. A crash at any point leaves a reservation
above every number used, so a clock stepped back across a restart (NTP correction, a dead RTC battery, a
replaced host with the camera's state directory) cannot reissue an old (camera id, frame number), which the
sink would otherwise take for a replay of an older frame and drop the new inspection.

An unreadable state file (torn by a power cut before its rename, edited by hand) is quarantined with a
warning and numbering falls back to the clock: the one case the guard cannot cover, said out loud.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from schemas.errors import ConfigurationError, LineguardError

logger = logging.getLogger(__name__)

DEFAULT_BLOCK = 10_000  # frames per durable write: ~17 min at 10 fps


class FrameSequence:
    """Hands out a camera's frame numbers; ``start()`` once, then ``reserve(n)`` before ``n`` is used."""

    def __init__(
        self,
        path: Path,
        block: int = DEFAULT_BLOCK,
        clock_ns: Callable[[], int] | None = None,
    ) -> None:
        if block < 1:
            raise ConfigurationError(f"frame sequence block must be >= 1, got {block}")
        self.path = path
        self.block = block
        self._clock_ns = clock_ns or time.time_ns  # looked up now: a test can step the clock back
        self.reserved = 0  # every number below this may have been used; none at or above it has

    def start(self) -> int:
        """The first frame number of this run: never below one a previous run may have used."""
        clock_us = self._clock_ns() // 1000
        persisted = self._load()
        if persisted > clock_us:
            logger.warning(
                "camera clock is %.1f s behind the frame numbers already used (%s): numbering continues "
                "from %d, not from the clock",
                (persisted - clock_us) / 1e6,
                self.path,
                persisted,
            )
        first = max(clock_us, persisted)
        try:
            self._persist(first + self.block)
        except LineguardError as exc:
            raise ConfigurationError(str(exc)) from exc  # an unwritable state directory: fix, then start
        return first

    def reserve(self, number: int) -> None:
        """Called before ``number`` goes into a frame: moves the durable reservation past it when needed."""
        if number >= self.reserved:
            self._persist(number + self.block)

    def _load(self) -> int:
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read frame sequence {self.path}: {exc}") from exc
        if text.isdigit():
            return int(text)
        damaged = self.path.with_name(self.path.name + ".damaged")
        os.replace(self.path, damaged)
        logger.warning(
            "frame sequence %s is unreadable (%r): moved to %s; numbering from the clock",
            self.path,
            text[:40],
            damaged,
        )
        return 0

    def _persist(self, reserved: int) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(self.path.name + ".tmp")
            with open(temporary, "w", encoding="ascii") as handle:
                handle.write(f"{reserved}\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
            descriptor = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        except OSError as exc:
            # Without the reservation on disk the guard would be a promise it cannot keep: stop numbering.
            raise LineguardError(f"cannot write frame sequence {self.path}: {exc.strerror or exc}") from exc
        self.reserved = reserved
