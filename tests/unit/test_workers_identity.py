"""Stable worker ids (workers.identity): a slot per live process, the same slot again after a SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from workers.identity import release_all, stable_worker_id

REPO_ROOT = Path(__file__).resolve().parents[2]
HOLDER = (
    "import sys, time; from pathlib import Path; from workers.identity import stable_worker_id; "
    "print(stable_worker_id(sys.argv[1], slot_dirs=[Path(sys.argv[2])], hostname='host'), flush=True); "
    "time.sleep(600)"
)


def _holder(group: str, slot_dir: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, group, str(slot_dir)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def test_live_workers_get_distinct_ids_and_a_killed_ones_id_is_taken_by_its_restart(tmp_path: Path) -> None:
    first, first_id = _holder("inspectors", tmp_path)
    second, second_id = _holder("inspectors", tmp_path)
    other_group, other_id = _holder("another group", tmp_path)
    try:
        assert (first_id, second_id, other_id) == ("host-0", "host-1", "host-0")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        restarted, restarted_id = _holder("inspectors", tmp_path)
        try:
            assert restarted_id == first_id  # the dead one's slot, so its transactional.id: it fences it
        finally:
            restarted.kill()
            restarted.wait(10)
    finally:
        for process in (first, second, other_group):
            process.kill()
            process.wait(10)


def test_one_process_keeps_one_id_per_group(tmp_path: Path) -> None:
    try:
        ids = [stable_worker_id("g", slot_dirs=[tmp_path], hostname="h") for _ in range(3)]
        assert ids == ["h-0", "h-0", "h-0"]
    finally:
        release_all()


def test_an_unusable_directory_falls_through_to_the_next_then_to_the_pid(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    try:
        assert stable_worker_id("g", slot_dirs=[blocker / "slots", tmp_path / "ok"], hostname="h") == "h-0"
        release_all()
        assert stable_worker_id("g", slot_dirs=[blocker / "slots"], hostname="h") == f"h-{os.getpid()}"
    finally:
        release_all()
