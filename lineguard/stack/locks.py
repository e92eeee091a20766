"""An exclusive lock on a file, held across processes: two `lineguard stack up` never race."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from schemas.errors import ServiceUnavailableError


@contextmanager
def file_lock(
    path: Path, timeout_s: float, what: str, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold an flock on ``path`` (created if needed); the kernel drops it if the holder dies. ``on_wait``
    hears once that the lock is busy, so a waiting command can say why it does nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if on_wait is not None and not told:
                    on_wait(f"waiting for another lineguard process that holds the {what} lock")
                    told = True
                if time.monotonic() >= deadline:
                    raise ServiceUnavailableError(
                        f"another lineguard process holds the {what} lock ({path}) for more than "
                        f"{timeout_s:.0f} s"
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
