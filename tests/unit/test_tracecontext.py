"""W3C traceparent: the camera starts a trace per frame, every worker output is a child span of it (same
trace id, new span id, same flags), dead letters too, and `lineguard tail` shows it split."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from lineguard.tail.reader import TopicReader
from schemas.records import DeadLetterReason
from schemas.topics import HEADER_SCHEMA, HEADER_TRACE_ID, HEADER_TRACEPARENT
from schemas.tracecontext import carried_context, new_trace, output_headers, parse
from tests.unit.test_streams_publisher import _frame, _publisher
from workers.pipeline import _trace_id
from workers.sinks.dead_letters import RawRecord, build_dead_letter, dead_letter_headers

SPEC_EXAMPLE = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"  # from the W3C recommendation


def test_parse_accepts_the_spec_example_and_refuses_what_the_spec_refuses() -> None:
    parent = parse(SPEC_EXAMPLE)
    assert parent is not None
    assert (parent.trace_id, parent.span_id, parent.sampled) == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
        True,
    )
    assert parent.header() == SPEC_EXAMPLE
    not_sampled = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
    assert not_sampled is not None and not not_sampled.sampled
    # a later version may add fields; version 00 may not, and ff is forbidden
    assert parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra") is not None
    for bad in (
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
        b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case is not allowed
        b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # 31 digits
        b"trace me",
        b"",
        bytes(200_000),
        None,
    ):
        assert parse(bad) is None, bad


def test_a_child_span_keeps_the_trace_and_flags_with_a_new_span_id() -> None:
    parent = parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
    assert parent is not None
    children = {parent.child() for _ in range(50)}
    assert {c.trace_id for c in children} == {parent.trace_id}
    assert {c.flags for c in children} == {0}
    assert len({c.span_id for c in children} | {parent.span_id}) == 51
    roots = {new_trace().trace_id for _ in range(50)}
    assert len(roots) == 50 and all(parse(new_trace().header()) is not None for _ in range(5))


def test_the_worker_carries_the_traceparent_else_the_bare_trace_id() -> None:
    def message(headers: list[tuple[str, Any]]) -> Any:
        return SimpleNamespace(headers=lambda: headers)

    both = [(HEADER_TRACE_ID, b"4bf92f3577b34da6a3ce929d0e0e4736"), (HEADER_TRACEPARENT, SPEC_EXAMPLE)]
    worker_span = parse(_trace_id(message(both)))  # the worker's span of this frame: a child of the camera's
    assert worker_span is not None and worker_span.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert worker_span.span_id != "00f067aa0ba902b7" and worker_span.sampled
    assert _trace_id(message([(HEADER_TRACE_ID, b"abc")])) == b"abc"  # a camera older than traceparent
    broken = [(HEADER_TRACEPARENT, b"00-junk"), (HEADER_TRACE_ID, b"abc")]
    assert _trace_id(message(broken)) == b"abc"
    assert _trace_id(message([(HEADER_TRACEPARENT, bytes(200_000))])) is None
    assert carried_context([]) is None


def test_every_output_of_a_frame_carries_the_worker_span_and_its_trace_id() -> None:
    worker_span = carried_context([(HEADER_TRACEPARENT, SPEC_EXAMPLE)])
    result, event = dict(output_headers(worker_span)), dict(output_headers(worker_span))
    assert result == event  # one span per frame: the result and the defect event share it
    assert result[HEADER_TRACEPARENT] == worker_span
    assert result[HEADER_TRACE_ID] == b"4bf92f3577b34da6a3ce929d0e0e4736"
    # a bare W3C trace id joins the same trace; a bare id that is not one keeps only its trace-id
    bare = dict(output_headers(b"4bf92f3577b34da6a3ce929d0e0e4736"))
    joined = parse(bare[HEADER_TRACEPARENT])
    assert joined is not None and joined.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert output_headers(b"abc") == [(HEADER_TRACE_ID, b"abc")]
    assert output_headers(None) == []


def test_the_camera_starts_one_trace_per_frame_with_both_headers() -> None:
    publisher, producer = _publisher()
    publisher.publish(_frame(1))
    publisher.publish(_frame(2))
    traces = []
    for _value, headers in producer.log:
        names = dict(headers)
        trace = parse(names[HEADER_TRACEPARENT])
        assert trace is not None and trace.sampled
        assert names[HEADER_TRACE_ID] == trace.trace_id.encode()
        traces.append(trace.trace_id)
    assert len(set(traces)) == 2
    publisher.close(1.0)


def test_a_dead_letter_is_a_child_span_of_its_frame() -> None:
    record = RawRecord("frames", 0, 5, 1, b"cam-1", b"\x00bad", ((HEADER_TRACEPARENT, SPEC_EXAMPLE),))
    letter = build_dead_letter(record, DeadLetterReason.CORRUPT_IMAGE, "E", "bad", worker_id="w-1")
    headers = dict(dead_letter_headers(letter))
    child = parse(headers[HEADER_TRACEPARENT])
    assert child is not None and child.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert child.span_id != "00f067aa0ba902b7"
    assert [(h.key, h.value) for h in letter.original_headers] == [(HEADER_TRACEPARENT, SPEC_EXAMPLE)]
    untraced = build_dead_letter(
        RawRecord("frames", 0, 6, 1, None, b"x", ()),
        DeadLetterReason.CORRUPT_IMAGE,
        "E",
        "bad",
        worker_id="w",
    )
    assert HEADER_TRACEPARENT not in dict(dead_letter_headers(untraced))


def test_tail_shows_the_trace_split() -> None:
    message = SimpleNamespace(
        headers=lambda: [(HEADER_TRACEPARENT, SPEC_EXAMPLE), (HEADER_SCHEMA, b"not.a.lineguard.Type")],
        topic=lambda: "x.frames",
        partition=lambda: 0,
        offset=lambda: 3,
        key=lambda: b"cam-1",
        value=lambda: None,
    )
    line = TopicReader({"bootstrap.servers": "unused:9092"}).describe(message)  # type: ignore[arg-type]
    assert line["trace"] == {
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "sampled": True,
    }
    assert line["headers"][HEADER_TRACEPARENT] == SPEC_EXAMPLE.decode()
