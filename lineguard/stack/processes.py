"""Starting, stopping and watching the stack's server processes.

Servers run in a session of their own (``start_new_session``), so they outlive the ``lineguard stack up``
command that started them, do not get the terminal's Ctrl-C, and can be signalled as a process group (the
JVM and anything it forks).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from schemas.errors import LineguardError

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

# Children started by this Python process. Kept so they can be reaped when stopped (a dead child that is
# never waited for stays a zombie) and so Popen does not warn about dropping a running child.
_children: dict[int, subprocess.Popen[bytes]] = {}


def spawn(argv: Sequence[str], log_path: Path, cwd: Path, env: Mapping[str, str] | None = None) -> int:
    """Start a detached server process with stdout and stderr appended to ``log_path``; returns its PID."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        child = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[child.pid] = child
    return child.pid


def reap_exited() -> None:
    """Collect children of this process that have exited (e.g. a broker a chaos test killed with -9), so
    they do not linger as zombies for the rest of a test session."""
    for pid in list(_children):
        _reap(pid)


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group the server leads (it was started with a session of its own)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:  # not a group leader we own: signal just the process
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def stop_process(
    pid: int, is_alive: Callable[[], bool], term_timeout_s: float, kill_timeout_s: float = 10.0
) -> bool:
    """SIGTERM, wait up to ``term_timeout_s`` for a clean exit, then SIGKILL. Returns True if the process
    exited on SIGTERM. ``is_alive`` must check that the PID still belongs to the server, so that a
    recycled PID is never signalled."""
    if not is_alive():
        _reap(pid)
        return True
    _signal_group(pid, signal.SIGTERM)
    if _wait_gone(pid, is_alive, term_timeout_s):
        return True
    log.warning("process %d did not exit within %.0f s of SIGTERM; sending SIGKILL", pid, term_timeout_s)
    _signal_group(pid, signal.SIGKILL)
    if not _wait_gone(pid, is_alive, kill_timeout_s):
        raise LineguardError(f"process {pid} is still running after SIGKILL")
    return False


def _wait_gone(pid: int, is_alive: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        _reap(pid)
        if not is_alive():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _pump(child: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        lines.put(line)
    lines.put(None)


def tail(path: Path, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a text file ([] if it does not exist)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return [line.rstrip("\n") for line in deque(handle, maxlen=lines)]
    except FileNotFoundError:
        return []


def run_step(
    argv: Sequence[str],
    label: str,
    log_path: Path,
    progress: Progress,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    heartbeat_s: float = 15.0,
    on_line: Callable[[str], str | None] | None = None,
) -> None:
    """Run a long setup command (Maven, go build) to completion, its output going to ``log_path``.

    Progress is reported every ``heartbeat_s`` (with the newest message ``on_line`` made of an output line,
    e.g. "42 files downloaded"), so a cold first start never looks hung. On failure the error carries the
    output's last lines.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    last_report = started
    latest: str | None = None  # the newest progress message on_line made of the output
    try:
        child = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise LineguardError(f"{label}: could not run {argv[0]}: {exc}") from exc
    # A reader thread, so that heartbeats keep coming while the command prints nothing (go build).
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(child, lines), daemon=True)
    reader.start()
    with open(log_path, "w", encoding="utf-8") as out:
        out.write(f"$ {' '.join(argv)}\n")
        while True:
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                line = ""
            if line is None:
                break
            out.write(line)
            now = time.monotonic()
            if line and on_line is not None:
                latest = on_line(line) or latest
            if now - last_report >= heartbeat_s:
                progress(f"{label}: {latest or 'still working'} ({now - started:.0f} s)")
                last_report = now
    returncode = child.wait()
    if returncode != 0:
        output = "\n".join(f"    {line}" for line in tail(log_path, 15))
        raise LineguardError(f"{label} failed (exit {returncode}); full output in {log_path}:\n{output}")
