"""The demo's worker process ends when the demo process dies, even by SIGKILL (Linux)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")

# The "demo": starts a child that asks for SIGTERM on its parent's death, prints the child's PID, then waits.
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", {child!r}])
print(child.pid, flush=True)
child.wait()
"""
CHILD = """
import os, time
from lineguard.demo.worker_child import die_with_parent
die_with_parent(os.getppid())
print("armed", flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_the_worker_child_gets_sigterm_when_the_demo_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT.format(child=CHILD)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert parent.stdout.readline().strip() == "armed"  # the child shares the pipe
    assert _alive(child_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child_pid)
