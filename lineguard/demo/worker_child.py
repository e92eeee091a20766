"""``python -m lineguard.demo.worker_child``: the demo's worker process, ``python -m workers`` that also ends
when the demo process dies.

On Linux it asks the kernel for SIGTERM when its parent exits (``PR_SET_PDEATHSIG``), so a demo killed
without a chance to clean up (SIGKILL, a closed terminal) leaves no worker consuming in the background; the
SIGTERM makes the worker drain and commit as usual. This runs after ``exec``, in the child itself: a
``preexec_fn`` would run Python between fork and exec, which is unsafe in the multi-threaded demo process.
"""

from __future__ import annotations

import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(expected_parent: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != expected_parent:  # the demo died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    parent = int(os.environ.get("LINEGUARD_DEMO_PARENT_PID", os.getppid()))
    die_with_parent(parent)
    from workers.cli import main as worker_main

    worker_main()


if __name__ == "__main__":
    main()
