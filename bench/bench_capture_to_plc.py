"""Capture -> PLC end to end through a real worker (issue 16, "Targets"): camera publisher (streams)
-> ``python -m workers`` (shipped model, a capture -> verdict deadline) -> ``lineguard parts``
-> ``lineguard plc`` -> stand-in PLC (asyncua server, parts.plc_sim), each service its own process.

    nice -n 10 .venv/bin/python bench/bench_capture_to_plc.py [--load 0.7] [--deadline-ms 200] [--seconds 40]

Each part is three 1280x1024 JPEG frames (three cameras, one ``part_id``, one capture time). Phases:

1. drained rate, with a worker WITHOUT a deadline (a deadline would decide an overload fail-safe, which is
   cheap, and inflate the rate), the parts joiner and the PLC bridge running:
   a. ``backlog_fps``: a backlog published before the worker starts, drained with nothing else publishing
      (what ``bench_workers.py`` calls pipeline_fps);
   b. ``with_publisher_fps``: parts published at ``--overload`` x backlog_fps while the worker drains: the
      results per second while the publisher runs. The publisher, Kafka and MongoDB share the cores with
      the worker, so this is the rate the whole line gets; ``--base`` says which one the load is a share of.
2. latency: a worker WITH ``--deadline-ms`` (fail-safe ``reject``), parts at ``--load`` x the base rate for
   ``--seconds`` (the first ``--warm-up-s`` not counted). Per part, p50/p99 of: capture -> result (the
   last view's result record), result -> decided (PartDecision.decided_at), decided -> PLC write (the stand-in
   PLC sees the raised request), write -> ack (the bridge saw the ack: MongoDB plc_acks.acked_at), and
   capture -> PLC write against ``--deadline-ms``; the share of frames and parts decided fail-safe.

The 1-minute load average and the cores each process used are in the report: other work on the machine
changes every figure here.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from workerbench.common import CAMERAS, say  # noqa: E402
from workerbench.frames import cached_frames  # noqa: E402
from workerbench.plc_path import LINE, PartCamera, ResultWatch, Service, read_decisions, write_json  # noqa: E402
from workerbench.worker_process import BenchWorker, Deployment, _local_stack_pids, process_cpu_s  # noqa: E402

from infra.settings import default_cache_dir  # noqa: E402
from lineguard.stack.endpoints import resolve_endpoints  # noqa: E402
from parts.plc_sim import SimulatedPlc, node_ids  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pct(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else None


class Cores:
    """Cores each process used between construction and :meth:`read`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._started = time.monotonic()
        self._before = {name: process_cpu_s(pid) for name, pid in pids.items()}

    def read(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._started
        shares = {}
        for name, pid in self._pids.items():
            before, now = self._before[name], process_cpu_s(pid)
            if before is not None and now is not None and elapsed > 0:
                shares[name] = round((now - before) / elapsed, 2)
        return shares


def _wait(what: str, done: Any, timeout_s: float, *services: Any) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        for service in services:
            service.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pymongo import MongoClient

    from workers.pipeline import default_model_path

    endpoints = resolve_endpoints()
    deployment = Deployment.create(endpoints, "c2plc")
    config, topics = deployment.kafka_config, deployment.topics
    prefix = topics.frames.removesuffix(".frames")
    decisions_topic = f"{prefix}.part-decisions"
    log_dir = default_cache_dir() / "bench" / "logs"
    work = Path(tempfile.mkdtemp(prefix="bench-c2plc-"))
    frames = cached_frames(200, 1280, 1024, 80)
    mongo: Any = MongoClient(endpoints.mongodb_uri)
    plc = SimulatedPlc(_free_port()).start()
    rules = {"lines": {LINE: {"expected_views": list(CAMERAS), "rule": "any-ng", "timeout_ms": 2000}}}
    plc_config = {"endpoint": plc.endpoint, "nodes": node_ids(plc.namespace_index), "ack_timeout_s": 1.0}
    group = f"bench-c2plc-{os.getpid()}"
    services: list[Any] = []
    worker: BenchWorker | None = None
    watch = ResultWatch(config, topics.results).start()
    camera = PartCamera(config, topics.frames, frames)
    report: dict[str, Any] = {"load_avg_start": os.getloadavg()[0], "deadline_ms": args.deadline_ms}
    try:
        parts = Service(
            [
                "parts",
                "--rules",
                str(write_json(work / "rules.json", rules)),
                "--topic-prefix",
                prefix,
                "--group",
                f"{group}-parts",
            ],
            endpoints,
            deployment.database,
            log_dir,
        )
        bridge = Service(
            [
                "plc",
                "--config",
                str(write_json(work / "plc.json", plc_config)),
                "--topic",
                decisions_topic,
                "--group",
                f"{group}-plc",
            ],
            endpoints,
            deployment.database,
            log_dir,
        )
        services += [parts, bridge]
        model = default_model_path()
        worker = BenchWorker(endpoints, topics, deployment.database, model, log_dir, f"{group}-worker")
        worker.wait_ready(config, topics.frames)
        pids = {
            "worker": worker.process.pid,
            "parts": parts.process.pid,
            "plc bridge": bridge.process.pid,
            "bench (publisher, PLC)": os.getpid(),
            **_local_stack_pids(endpoints),
        }

        # One part through everything before any clock starts (groups joining, topics being created).
        camera.publish_part("W")
        camera.flush()
        _wait(
            "the warm-up part at the PLC",
            lambda: len(plc.received) >= 1,
            180,
            *services,
            worker_check(worker),
        )

        # 1a: a backlog drained with no publisher running (the worker is paused by being stopped first).
        worker.stop()
        backlog = [camera.publish_part("D") for _ in range(args.backlog_parts)]
        camera.flush()
        say(f"backlog of {len(backlog)} parts ({3 * len(backlog)} frames) published; worker restarts")
        worker = BenchWorker(endpoints, topics, deployment.database, model, log_dir, f"{group}-worker")
        pids["worker"] = worker.process.pid
        cores = Cores(pids)
        _wait(
            "the backlog's results",
            lambda: watch.count(backlog) >= 3 * len(backlog),
            900,
            worker_check(worker),
        )
        first, last = watch.first_last(backlog)
        backlog_fps = (3 * len(backlog) - 1) / (last - first)
        report["backlog"] = {
            "frames": 3 * len(backlog),
            "fps": round(backlog_fps, 1),
            "cores": cores.read(),
            "load_avg": os.getloadavg()[0],
        }
        say(f"1a drained (no publisher): {backlog_fps:.1f} frames/s")

        # 1b: the publisher running at --overload x that rate while the same worker drains.
        rate = args.overload * backlog_fps
        cores = Cores(pids)
        started = time.time()
        loaded = camera.paced("O", rate / 3, args.overload_s)
        ended = time.time()
        with_publisher = watch.rate_between(started + args.warm_up_s, ended)
        report["with_publisher"] = {
            "published_fps": round(rate, 1),
            "fps": round(with_publisher, 1),
            "kept_up": with_publisher >= 0.97 * rate,
            "cores": cores.read(),
            "load_avg": os.getloadavg()[0],
        }
        say(f"1b drained while publishing {rate:.0f} frames/s: {with_publisher:.1f} frames/s")
        _wait("phase 1's results", lambda: watch.count(loaded) >= 3 * len(loaded), 900, worker_check(worker))
        expected_at_plc = 1 + len(backlog) + len(loaded)
        _wait(
            "phase 1's decisions at the PLC",
            lambda: len({r.part_id for r in plc.received}) >= expected_at_plc,
            300,
            *services,
        )

        # 2: the deadline worker at --load x the base rate.
        worker.stop()
        deadline_env = {
            "LINEGUARD_WORKER_DEADLINE_MS": str(args.deadline_ms),
            "LINEGUARD_WORKER_DEADLINE_FAIL_SAFE": "reject",
        }
        worker = BenchWorker(
            endpoints, topics, deployment.database, model, log_dir, f"{group}-worker", deadline_env
        )
        pids["worker"] = worker.process.pid
        worker.wait_ready(config, topics.frames)
        base = with_publisher if args.base == "publisher" else backlog_fps
        rate = args.load * base
        say(
            f"2: {rate:.1f} frames/s ({args.load:.0%} of {args.base} {base:.1f}) for {args.seconds:.0f} s, "
            f"deadline {args.deadline_ms:.0f} ms"
        )
        camera.paced("X", rate / 3, args.warm_up_s)  # the worker's estimates settle; not counted
        cores = Cores(pids)
        load_before = os.getloadavg()[0]
        measured = camera.paced("M", rate / 3, args.seconds)
        latency_cores = cores.read()
        at_plc = lambda: {r.part_id for r in plc.received}  # noqa: E731
        _wait("the measured parts at the PLC", lambda: set(measured) <= at_plc(), 300, *services)
        report["latency"] = {
            "base": args.base,
            "base_fps": round(base, 1),
            "load": args.load,
            "fps": round(rate, 1),
            "parts_per_s": round(rate / 3, 1),
            "parts": len(measured),
            "cores": latency_cores,
            "load_avg": round((load_before + os.getloadavg()[0]) / 2, 2),
            **_stages(
                camera,
                watch,
                plc,
                read_decisions(config, decisions_topic),
                mongo[deployment.database]["plc_acks"],
                measured,
                args.deadline_ms,
            ),
        }
        return report
    finally:
        for service in services:
            service.stop()
        if worker is not None:
            worker.stop()
        watch.stop()
        camera.close()
        plc.stop()
        deployment.remove()
        for topic in ("part-views", "part-changelog", "part-decisions"):
            from infra.kafka_topics import delete_topics

            delete_topics(config, [f"{prefix}.{topic}"])
        mongo.close()


def worker_check(worker: BenchWorker) -> Any:
    class _Check:
        def check(self) -> None:
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker exited ({worker.process.returncode}); see {worker.log_path}")

    return _Check()


def _stages(
    camera: PartCamera,
    watch: ResultWatch,
    plc: SimulatedPlc,
    decisions: dict[str, Any],
    acks: Any,
    parts: list[str],
    deadline_ms: float,
) -> dict[str, Any]:
    written: dict[str, float] = {}
    duplicates = 0
    for received in plc.received:
        if received.part_id in written:
            duplicates += 1
        written.setdefault(received.part_id, received.at)
    acked = {doc["_id"]: doc["acked_at"] for doc in acks.find({"_id": {"$in": parts}})}
    stages: dict[str, list[float]] = {
        name: []
        for name in (
            "capture->result",
            "result->decided",
            "decided->plc_write",
            "plc_write->ack",
            "capture->plc_write",
            "capture->plc_write inspected",
        )
    }
    frames_fail_safe = parts_fail_safe = 0
    reasons: dict[str, int] = {}
    for part in parts:
        captured = camera.captured[part]
        views = [watch.seen[(part, c)] for c in CAMERAS]
        result_at = max(stamp for stamp, _ in views)
        missed = sum(1 for _, flag in views if flag)
        frames_fail_safe += missed
        parts_fail_safe += 1 if missed else 0
        decision = decisions[part]
        reasons[decision.reason.value] = reasons.get(decision.reason.value, 0) + 1
        decided_at = decision.decided_at.timestamp()
        stages["capture->result"].append((result_at - captured) * 1000)
        stages["result->decided"].append((decided_at - result_at) * 1000)
        stages["decided->plc_write"].append((written[part] - decided_at) * 1000)
        stages["plc_write->ack"].append((acked[part] - written[part]) * 1000)
        stages["capture->plc_write"].append((written[part] - captured) * 1000)
        if not missed:
            stages["capture->plc_write inspected"].append((written[part] - captured) * 1000)
    total = stages["capture->plc_write"]
    # When a stage falls behind, its output rate over the run is its throughput on this machine.
    writes = sorted(written[p] for p in parts)
    decided = sorted(decisions[p].decided_at.timestamp() for p in parts)
    return {
        "parts_per_s_decided": round((len(parts) - 1) / (decided[-1] - decided[0]), 1),
        "parts_per_s_written_to_plc": round((len(parts) - 1) / (writes[-1] - writes[0]), 1),
        "stages_ms": {
            name: {"n": len(v), "p50": _pct(v, 0.5), "p99": _pct(v, 0.99), "max": _pct(v, 1.0)}
            for name, v in stages.items()
        },
        "within_deadline": sum(1 for t in total if t <= deadline_ms),
        "frames_fail_safe_share": round(frames_fail_safe / (3 * len(parts)), 3),
        "parts_with_a_fail_safe_view_share": round(parts_fail_safe / len(parts), 3),
        "decision_reasons": reasons,
        "plc_duplicates": duplicates,
        "lost": sum(1 for p in parts if p not in written),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--load", type=float, default=0.7, help="share of the base drained rate")
    parser.add_argument(
        "--base",
        choices=("publisher", "backlog"),
        default="publisher",
        help="drained rate the load is a share of: with the publisher running, or a backlog",
    )
    parser.add_argument("--deadline-ms", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=40.0, help="measured publishing time")
    parser.add_argument("--warm-up-s", type=float, default=5.0)
    parser.add_argument("--backlog-parts", type=int, default=400)
    parser.add_argument("--overload", type=float, default=1.3, help="phase 1b: x the backlog rate")
    parser.add_argument("--overload-s", type=float, default=30.0)
    args = parser.parse_args()
    if not 0 < args.load <= 1.5 or args.deadline_ms <= 0 or args.seconds <= 0:
        raise SystemExit("error: --load in (0, 1.5], --deadline-ms and --seconds > 0")
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
