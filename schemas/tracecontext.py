"""W3C Trace Context (`traceparent`) for Kafka records, so an OpenTelemetry trace follows a frame from the
camera to its result, defect event and dead letter.

The camera starts a trace per frame (its publish span); each worker output carries a child span of the
frame's: same trace id, a new span id, the frame's flags. Kafka header values are bytes; a header is
``00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`` (https://www.w3.org/TR/trace-context/). The older
``trace-id`` header (the bare trace id) is still written beside it for readers that know only that one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemas.topics import HEADER_TRACE_ID, HEADER_TRACEPARENT

SAMPLED = 0x01
# Version 00 exactly; a later version may append fields after the flags ("-..."), which a 00 reader ignores.
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_HEADER_BYTES = 512  # a traceparent is 55 bytes; a longer value is not one and is not carried

#: A Kafka header value as confluent-kafka hands it over (bytes read; str or bytes produced; None empty).
HeaderValue = bytes | str | None


@dataclass(frozen=True, slots=True)
class TraceParent:
    trace_id: str  # 32 lowercase hex digits, not all zero
    span_id: str  # 16 lowercase hex digits, not all zero
    flags: int = SAMPLED

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)

    def header(self) -> bytes:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}".encode()

    def child(self) -> TraceParent:
        """A span of the same trace whose parent is this one (the worker's span of a frame)."""
        return TraceParent(self.trace_id, new_span_id(), self.flags)


def new_trace_id() -> str:
    return _nonzero_hex(16)


def new_span_id() -> str:
    return _nonzero_hex(8)


def new_trace(trace_id: str | None = None) -> TraceParent:
    """The root span of a new trace (a camera's frame), sampled."""
    return TraceParent(trace_id or new_trace_id(), new_span_id(), SAMPLED)


def parse(value: bytes | str | None) -> TraceParent | None:
    """The trace context of a ``traceparent`` value, or None when it is not a valid one (the spec says to
    start a new trace then, not to guess)."""
    if value is None or len(value) > _MAX_HEADER_BYTES:
        return None
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    match = _TRACEPARENT.match(text.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):  # ff is forbidden; 00 has exactly four fields
        return None
    if set(trace_id) == {"0"} or set(span_id) == {"0"}:
        return None
    return TraceParent(trace_id, span_id, int(flags, 16))


def carried_context(
    headers: Iterable[tuple[str, HeaderValue]] | Mapping[str, HeaderValue],
) -> bytes | None:
    """The trace context a worker gives every output of one frame: its own span for the frame, a child of
    the frame's ``traceparent`` (same trace id and flags, a new span id; one span per frame, so the result
    and the defect event of a frame carry the same one). A frame with only a bare ``trace-id`` (a camera
    older than traceparent) carries that id; None when the frame has neither. Values that are neither
    (e.g. a hostile 200 KB header) are not carried."""
    bare: bytes | None = None
    pairs = headers.items() if isinstance(headers, Mapping) else headers  # produced records may use a dict
    for name, value in pairs:
        if name == HEADER_TRACEPARENT and isinstance(value, bytes):
            parent = parse(value)
            if parent is not None:
                return parent.child().header()
        if name == HEADER_TRACE_ID and isinstance(value, bytes) and len(value) <= 128:
            bare = value
    return bare


def output_headers(context: bytes | None) -> list[tuple[str, bytes]]:
    """The trace headers of an output carrying ``context`` (from :func:`carried_context`): ``trace-id`` and
    the ``traceparent`` itself; for a bare trace id, that id and, when it is a W3C one, a traceparent in
    that trace; else only the ``trace-id``, as before traceparent."""
    if not context:
        return []
    span = parse(context)
    if span is not None:
        return [(HEADER_TRACE_ID, span.trace_id.encode()), (HEADER_TRACEPARENT, context)]
    headers: list[tuple[str, bytes]] = [(HEADER_TRACE_ID, context)]
    bare = context.decode("ascii", "replace").lower()
    if _TRACE_ID.match(bare) and set(bare) != {"0"}:  # a W3C trace id: join that trace (no parent span known)
        headers.append((HEADER_TRACEPARENT, new_trace(bare).header()))
    return headers


def _nonzero_hex(size: int) -> str:
    while True:  # all-zero ids are invalid; 1 in 2**64 at worst
        value = os.urandom(size)
        if any(value):
            return value.hex()
