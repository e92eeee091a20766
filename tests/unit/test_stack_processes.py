"""Process control for the stack: stop with a bound, setup steps that report progress and fail clearly."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from lineguard.stack import processes
from lineguard.stack.locks import file_lock
from lineguard.stack.state import process_cmdline
from schemas.errors import LineguardError, ServiceUnavailableError

SLEEPER = "import time; print('up', flush=True); time.sleep(60)"
IGNORES_SIGTERM = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); " + SLEEPER


def _alive(pid: int) -> bool:
    return process_cmdline(pid) is not None


def _wait_for_output(path: Path, text: str) -> None:
    deadline = time.monotonic() + 10
    while text not in path.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_spawned_server_writes_its_log_and_stops_on_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "server.log"
    pid = processes.spawn([sys.executable, "-c", SLEEPER], log, tmp_path)
    _wait_for_output(log, "up")

    assert processes.stop_process(pid, lambda: _alive(pid), term_timeout_s=10)
    assert not _alive(pid)


def test_a_server_that_ignores_sigterm_is_killed_after_the_bound(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    pid = processes.spawn([sys.executable, "-c", IGNORES_SIGTERM], log, tmp_path)
    _wait_for_output(log, "up")

    assert processes.stop_process(pid, lambda: _alive(pid), term_timeout_s=0.5) is False
    assert not _alive(pid)


def test_run_step_reports_progress_and_keeps_the_output(tmp_path: Path) -> None:
    messages: list[str] = []
    script = (
        "import time\n"
        "for n in range(3):\n"
        "    print(f'Downloaded from x: a{n}', flush=True)\n"
        "    time.sleep(0.4)\n"
    )

    processes.run_step(
        [sys.executable, "-c", script],
        "fetch",
        tmp_path / "step.log",
        messages.append,
        heartbeat_s=0.3,
        on_line=lambda line: "a file" if line.startswith("Downloaded") else None,
    )

    assert messages and all(m.startswith("fetch: ") for m in messages)
    assert "Downloaded from x: a2" in (tmp_path / "step.log").read_text()


def test_a_failed_step_raises_with_the_end_of_its_output(tmp_path: Path) -> None:
    script = "import sys; print('resolving'); print('ERROR: artifact missing', file=sys.stderr); sys.exit(3)"

    with pytest.raises(LineguardError, match=r"(?s)maven failed \(exit 3\).*artifact missing"):
        processes.run_step([sys.executable, "-c", script], "maven", tmp_path / "m.log", lambda _m: None)


def test_a_held_lock_makes_a_second_holder_wait_then_give_up(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    # flock locks belong to the open file description, so a second open in this process contends too
    with (
        file_lock(lock, timeout_s=1, what="test"),
        pytest.raises(ServiceUnavailableError, match="holds the test lock"),
        file_lock(lock, 0.3, "test"),
    ):
        pass
    with file_lock(lock, timeout_s=1, what="test"):  # released: free again
        pass
