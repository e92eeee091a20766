"""A worker id that survives restarts: ``<hostname>-<slot>``, the slot locked for the process's life.

With ``--exactly-once`` the worker id is the stable part of the ``transactional.id``. A restarted worker must
come back under its predecessor's id, so that ``init_transactions`` fences the dead producer and aborts its
open transaction at once; under a new id (the old default was ``hostname-pid``) that transaction holds back
every ``read_committed`` reader of its partitions until ``transaction.timeout.ms`` expires.

Why a locked slot and not the alternatives:

* *a persisted id file* next to the worker's state survives restarts, but two workers started on one host
  from the same directory would read the same id and fence each other in a loop (each ``init_transactions``
  kills the other's producer): a live id must never be shared, and a file cannot tell live from dead.
* *the pod name* is stable only for a container restart inside one pod (a rescheduled pod of a Deployment
  gets a new name) and does not exist outside Kubernetes. It is covered anyway: the hostname *is* the pod
  name there, and deploy/k8s sets the id from it explicitly.
* *a slot*: workers of one group on one host take the lowest free slot ``0, 1, 2, ...`` by an exclusive,
  non-blocking ``flock`` on ``<slot dir>/<group>.<slot>.lock``. The kernel drops the lock the moment the
  process dies (SIGKILL, OOM kill included), so the restarted worker finds exactly the dead one's slot free
  and takes its id, while two live workers can never hold the same one. Nothing needs to persist: the lock
  directory may be wiped between runs.

An explicit ``LINEGUARD_WORKER_WORKER_ID`` still wins (settings); when no directory is writable the id falls
back to ``hostname-pid`` with one warning (fencing then waits for the transaction timeout, as before).
A process keeps one slot per (directory, group): settings built twice in one process name the same worker.
Locks are inherited by a ``fork`` without ``exec``; the worker forks no children, so none outlives it.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import socket
import tempfile
import threading
from pathlib import Path

from infra.settings import default_cache_dir

log = logging.getLogger(__name__)

MAX_SLOTS = 1024  # more workers of one group on one host than this is a configuration error, not a host
_lock = threading.Lock()
_claimed: dict[tuple[str, str], tuple[str, int]] = {}  # (slot dir, group) -> (worker id, lock fd), kept open


def default_slot_dirs() -> list[Path]:
    """Where slot locks live: the lineguard cache (shared by the host's workers), else the temp directory."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    temp = Path(tempfile.gettempdir()) / f"lineguard-worker-slots-{uid}"
    return [default_cache_dir() / "worker-slots", temp]


def _group_file_stem(group_id: str) -> str:
    # A group name may hold any character; the digest keeps two groups that slug alike apart.
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", group_id)[:64] or "group"
    return f"{slug}-{hashlib.sha256(group_id.encode()).hexdigest()[:8]}"


def claim_slot(group_id: str, slot_dir: Path) -> tuple[int, int]:
    """Lock the lowest free slot of ``group_id`` in ``slot_dir``; returns the slot and the lock's file
    descriptor, which holds the slot until it is closed or the process dies.

    Raises ``OSError`` when the directory cannot be used, ``RuntimeError`` when every slot is taken."""
    slot_dir.mkdir(parents=True, exist_ok=True)
    stem = _group_file_stem(group_id)
    for slot in range(MAX_SLOTS):
        fd = os.open(slot_dir / f"{stem}.{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        except OSError:
            os.close(fd)
            raise
        # Written for people looking at the directory; the lock, not the content, is what counts.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return slot, fd
    raise RuntimeError(f"all {MAX_SLOTS} worker slots of group {group_id!r} in {slot_dir} are taken")


def stable_worker_id(
    group_id: str, *, slot_dirs: list[Path] | None = None, hostname: str | None = None
) -> str:
    """``<hostname>-<slot>``: the same after a restart on the same host, never shared by two live workers."""
    host = hostname or socket.gethostname()
    with _lock:
        for slot_dir in slot_dirs if slot_dirs is not None else default_slot_dirs():
            known = _claimed.get((str(slot_dir), group_id))
            if known is not None:
                return known[0]
            try:
                slot, fd = claim_slot(group_id, slot_dir)
            except OSError as exc:
                log.debug("worker slot directory %s unusable: %s", slot_dir, exc)
                continue
            worker_id = f"{host}-{slot}"
            _claimed[(str(slot_dir), group_id)] = (worker_id, fd)
            return worker_id
    fallback = f"{host}-{os.getpid()}"
    log.warning(
        "no writable directory for worker slot locks: worker id %s changes on restart, so an exactly-once "
        "restart waits for transaction.timeout.ms; set LINEGUARD_WORKER_WORKER_ID or LINEGUARD_CACHE_DIR",
        fallback,
    )
    return fallback


def release_all() -> None:
    """Drop every slot this process holds (tests; a process's exit does the same)."""
    with _lock:
        for _, fd in _claimed.values():
            os.close(fd)
        _claimed.clear()
