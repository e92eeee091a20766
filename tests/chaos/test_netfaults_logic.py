"""Pure parts of the network-fault run: plan parsing, recovery from progress times, the proxied addresses,
the /proc TCP table; and peer_ports against a real loopback connection."""

from __future__ import annotations

import os
import socket

import pytest

from chaos.netfault_report import settled, stall_and_recovery
from chaos.netfaults import parse_plan, proxied_mongodb_uri
from chaos.peer_ports import parse_tcp_table, peer_ports
from chaos.private_kafka import add_proxied_listener
from schemas.errors import ConfigurationError


def test_plan_is_every_kind_on_every_link_with_its_length() -> None:
    faults = parse_plan("kafka,mongodb", "latency,partition,reset", 10.0, 30.0)
    assert [(f.link, f.kind, f.duration_s) for f in faults] == [
        ("kafka", "latency", 10.0),
        ("kafka", "partition", 30.0),
        ("kafka", "reset", 0.0),
        ("mongodb", "latency", 10.0),
        ("mongodb", "partition", 30.0),
        ("mongodb", "reset", 0.0),
    ]


@pytest.mark.parametrize(("links", "kinds"), [("kafka,redis", "reset"), ("kafka", "jitter"), ("", "reset")])
def test_plan_refuses_unknown_names(links: str, kinds: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_plan(links, kinds, 10.0, 30.0)


def test_recovery_runs_to_the_end_of_the_stall_not_to_the_first_result_after_the_fault() -> None:
    # A reset at t=10: one result in flight lands at 10.1, then nothing until 25.
    progress = [9.0, 9.5, 10.1, 25.0, 25.5, 26.0]
    stall, recovery = stall_and_recovery(progress, started=10.0, ended=10.0, until=40.0)
    assert stall == pytest.approx(14.9)
    assert recovery == pytest.approx(15.0)


def test_no_stall_longer_than_a_healthy_pace_is_no_recovery_time() -> None:
    progress = [float(t) / 2 for t in range(0, 80)]  # every 0.5 s
    stall, recovery = stall_and_recovery(progress, started=10.0, ended=20.0, until=35.0)
    assert stall == pytest.approx(0.5)
    assert recovery == 0.0


def test_a_stall_over_before_the_fault_ended_costs_nothing_after_it() -> None:
    progress = [0.0, 1.0, 8.0, 8.5, 9.0, 9.5, 10.0, 10.5, 11.0]
    stall, recovery = stall_and_recovery(progress, started=1.0, ended=10.0, until=11.0)
    assert stall == pytest.approx(7.0)
    assert recovery == 0.0


def test_nothing_after_the_fault_is_never_recovered() -> None:
    assert stall_and_recovery([1.0, 2.0], started=3.0, ended=5.0, until=9.0) == (None, None)


def test_a_fault_settles_only_after_a_whole_window_of_healthy_progress_after_its_end() -> None:
    steady = [10.0 + 0.5 * i for i in range(40)]  # every 0.5 s from 10 to 29.5
    assert settled(steady, now=30.0, since=20.0, window_s=8.0)
    assert not settled(steady, now=27.0, since=20.0, window_s=8.0)  # the window reaches back before the end
    # The first result after a half-open lands at once, then the stall: not settled until progress resumes.
    after_half_open = [20.1, *[26.0 + 0.5 * i for i in range(30)]]
    assert not settled(after_half_open, now=28.2, since=20.0, window_s=8.0)
    # Settled once the window holds no more than a healthy pace's worth of the stall (2 s before 26.0).
    assert not settled(after_half_open, now=31.9, since=20.0, window_s=8.0)
    assert settled(after_half_open, now=32.1, since=20.0, window_s=8.0)
    assert not settled([], now=40.0, since=20.0, window_s=8.0)  # nothing at all


def test_proxied_mongodb_uri_keeps_credentials_and_options() -> None:
    uri = proxied_mongodb_uri(
        "mongodb://u:p@db.example:27017/x?tls=false", 4242, {"socketTimeoutMS": "10000"}
    )
    assert uri == "mongodb://u:p@127.0.0.1:4242/x?tls=false&directConnection=true&socketTimeoutMS=10000"


def test_proxied_listener_is_bound_privately_and_advertised_at_the_proxy() -> None:
    text = (
        "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n"
        "advertised.listeners=PLAINTEXT://127.0.0.1:9092\n"
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
    )
    lines = add_proxied_listener(text, bind_port=7001, advertised_port=7002).splitlines()
    assert lines[0].endswith(",PROXIED://127.0.0.1:7001")
    assert lines[1] == "advertised.listeners=PLAINTEXT://127.0.0.1:9092,PROXIED://127.0.0.1:7002"
    assert lines[2].endswith(",PROXIED:PLAINTEXT")


def test_tcp_table_keeps_established_connections_by_inode() -> None:
    header = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    )
    established = "   0: 0100007F:A1B2 0100007F:1F90 01 00000000:00000000 00:00000000 00000000 0 0 555 1\n"
    listening = "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 666 1\n"
    assert parse_tcp_table(header + established + listening) == {555: 0x1F90}


def test_peer_ports_sees_a_real_loopback_connection() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            accepted, _ = server.accept()
            with accepted:
                assert port in peer_ports(os.getpid())
    assert port not in peer_ports(os.getpid())
