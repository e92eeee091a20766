"""Which TCP ports a process is connected to, read from ``/proc`` (Linux): the proof that a worker's traffic
goes through the fault proxies and never around them.

A process's sockets are the ``socket:[inode]`` links in ``/proc/<pid>/fd``; ``/proc/<pid>/net/tcp`` and
``tcp6`` map each inode to its local and remote address. Only established connections count (a listening
socket has no peer).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

_ESTABLISHED = "01"


def parse_tcp_table(text: str) -> dict[int, int]:
    """``/proc/net/tcp`` text -> {socket inode: remote port} of the established connections (pure)."""
    peers: dict[int, int] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != _ESTABLISHED:
            continue
        remote_port = int(fields[2].rpartition(":")[2], 16)
        peers[int(fields[9])] = remote_port
    return peers


def socket_inodes(pid: int, proc: Path = Path("/proc")) -> set[int]:
    inodes: set[int] = set()
    try:
        names = os.listdir(proc / str(pid) / "fd")
    except OSError:  # the process is gone (or not ours)
        return inodes
    for name in names:
        try:
            target = os.readlink(proc / str(pid) / "fd" / name)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def peer_ports(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """The remote port of each established TCP connection ``pid`` holds (empty if it is gone)."""
    inodes = socket_inodes(pid, proc)
    peers: dict[int, int] = {}
    for table in ("tcp", "tcp6"):
        try:
            peers.update(parse_tcp_table((proc / str(pid) / "net" / table).read_text()))
        except OSError:
            continue
    return [peers[inode] for inode in inodes if inode in peers]


class PeerSampler:
    """Samples the peer ports of a changing set of processes every ``interval_s`` on a thread; ``seen``
    counts (port -> sampled connections) over the whole run."""

    def __init__(self, pids: Callable[[], list[int]], interval_s: float = 1.0) -> None:
        self._pids = pids
        self._interval_s = interval_s
        self.seen: Counter[int] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-peers", daemon=True)

    def start(self) -> PeerSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            for pid in self._pids():
                self.seen.update(peer_ports(pid))
            self.samples += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
