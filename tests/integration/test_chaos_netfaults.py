"""A short network-fault run (``python -m chaos net-faults`` is the full version): exactly-once workers whose
every Kafka and MongoDB connection goes through the fault proxies; a reset of the Kafka link and a 10 s
partition of the MongoDB link while frames flow; then the outside audit.

Asserted: the traffic really went through the proxies (their byte counters, and no sampled worker connection
to the servers' own ports), nothing lost or duplicated, no dead letter, no unplanned exit, both faults hit
open connections and both links recovered. The recovery bound here is loose (60 s): the 10 s target is the
full run's figure, reported in the README.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.netfaults import NetConfig, NetFault, run_net_faults
from lineguard.stack.endpoints import Endpoints
from tests.integration.test_workers_support import cached_test_model

pytestmark = pytest.mark.integration


def test_reset_and_partition_lose_nothing_and_all_traffic_goes_through_the_proxies(
    endpoints: Endpoints, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = NetConfig(
        exactly_once=True,
        frames=240,
        model=cached_test_model(tmp_path_factory.getbasetemp()),
        work_dir=tmp_path,
        faults=[NetFault("kafka", "reset"), NetFault("mongodb", "partition", 10.0)],
        fps=10,
        gap_s=4,
        recovery_bound_s=60,
        recovery_wait_s=60,
        idle_timeout_s=60,
    )
    report = run_net_faults(config, endpoints)
    figures = report.to_json()
    print(json.dumps(figures))  # the figures, with `pytest -s`
    routing = report.routing
    assert routing.around_proxies == 0 and routing.through_proxies > 0
    assert min(*routing.kafka_proxy_bytes, *routing.mongodb_proxy_bytes) > 0
    f = report.figures
    assert (f.frames, f.lost, f.duplicate_documents, f.duplicate_results) == (240, 0, 0, 0)
    assert f.spurious_dead_letters == 0 and report.worker_unplanned_exits == 0
    assert [o.connections_hit > 0 for o in report.faults] == [True, True]
    assert all(o.recovery_s is not None for o in report.faults)
    assert report.failures == [], json.dumps(figures, indent=1)
