"""The worker's Kafka outputs: results, defect events and dead letters, through one producer.

At least once (default): an idempotent producer (``acks=all``) whose delivery reports acknowledge the record's
outputs in the :class:`~workers.offsets.OffsetTracker`. Exactly once (``--exactly-once``): the same producer
is transactional; the pipeline wraps outputs and the consumer offsets in one transaction, so consumers reading
with ``isolation.level=read_committed`` see every output exactly once.

``send_offsets_to_transaction`` runs under a watchdog: librdkafka (2.16 and earlier) does not enforce that
call's timeout while the group coordinator it has cached is down (confluentinc/librdkafka#5456, #5511); after
a broker restart it blocked the sink thread, and with it every revoke, forever. Past the watchdog the stuck
producer is replaced by a new one with the same ``transactional.id``, whose ``init_transactions`` fences the
old one and aborts its open transaction, so the transaction's records can be written again, once. The call
gets at most ``SEND_OFFSETS_TIMEOUT_S`` (5 s; less if the transaction timeout is shorter): a healthy one
takes milliseconds (AddOffsetsToTxn and TxnOffsetCommit, two small round trips), and the network-fault
campaign saw it hang after a mere connection reset (every connection RST, the broker up all along) until
the watchdog fired, 17 s with the transaction timeout as the bound. The bound is per attempt: a
retriable error that returns in time is retried, not counted as stuck. A watchdog that fires on a call that
was only slow costs one producer replacement and one rewrite, never a record.

The same replacement recovers a producer that a network fault left *fatally* broken. Seen in the
network-fault campaign (chaos net-faults, half-open Kafka link): messages timed out inside the transaction
(abortable, "requires epoch bump"), ``send_offsets_to_transaction`` timed out, and the ``abort_transaction``
that followed got ``INVALID_TXN_STATE`` from the coordinator ("Failed to end transaction"), which librdkafka
treats as fatal: every later call, ``begin_transaction`` first, raised it and the worker exited. Now a
fatal error on any transactional call replaces the producer and counts as an aborted transaction, so the
writer rewrites the uncommitted records (still in flight since the last commit) in a new transaction. Only
being *fenced* (a newer producer with this transactional.id exists: another incarnation of this worker took
over) or not being allowed the transactional.id stays fatal: replacing would fence the rightful owner.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from schemas.errors import LineguardError, ServiceUnavailableError
from schemas.records import DeadLetter, DefectEvent, InspectionResult
from schemas.serde import AvroRecordSerializer
from schemas.topics import HEADER_SCHEMA, TopicNames
from schemas.tracecontext import output_headers
from workers.clients import ProducerFactory, kafka_producer
from workers.sinks.dead_letters import dead_letter_headers, record_bytes

log = logging.getLogger(__name__)

Ack = Callable[[], None]

_TRANSACTION_CALL_ATTEMPTS = 5
_WATCHDOG_GRACE_S = 2.0  # beyond the call's own timeout, before the call counts as stuck
SEND_OFFSETS_TIMEOUT_S = 5.0  # send_offsets_to_transaction's bound (see the module doc)
_DEFAULT_TRANSACTION_TIMEOUT_MS = 60_000  # librdkafka's transaction.timeout.ms


class DeliveryFailed(ServiceUnavailableError):
    """Kafka did not accept an output within the producer's bounds: the worker must not commit past it."""


class TransactionAborted(DeliveryFailed):
    """The transaction failed in a way that only requires aborting it: abort, then the same outputs may be
    written again in a new transaction. ``group_changed``: the broker refused the consumer offsets because the
    group moved on (a rebalance): the next attempt, with the new generation, is expected to succeed."""

    def __init__(self, message: str, group_changed: bool = False) -> None:
        super().__init__(message)
        self.group_changed = group_changed


_LIBRDKAFKA_DEFAULT_MESSAGE_MAX_BYTES = 1_000_000

Headers = list[tuple[str, str | bytes | None]]


class OutputTooLarge(LineguardError):
    """An output record is larger than the producer may send: the frame gets a dead letter instead (never a
    dead sink thread, which would stop the worker on the same record after every restart)."""

    def __init__(self, topic: str, size: int, limit: int) -> None:
        super().__init__(f"output for {topic} is {size} bytes, above the producer's {limit} byte limit")
        self.topic = topic
        self.size = size
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Output:
    """One serialized output record, its size known (and checked) before it is produced."""

    topic: str
    key: str | bytes | None
    value: bytes
    headers: Headers

    @property
    def size(self) -> int:
        return record_bytes(self.key, self.value, self.headers)


# The group coordinator's answers to offsets sent with a generation or member the group has left behind.
_GROUP_CHANGED = frozenset(
    {
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.FENCED_INSTANCE_ID,
    }
)


# Fatal errors a new producer would not cure: another producer owns the transactional.id now, or the broker's
# ACLs refuse it.
_NOT_RECOVERABLE = frozenset(
    {
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
)


class KafkaOutputs:
    """Produces the three output records; thread-safe (the producer is), transactional on request."""

    def __init__(
        self,
        config: dict[str, Any],
        topics: TopicNames,
        transactional: bool = False,
        producer_factory: ProducerFactory = kafka_producer,
    ) -> None:
        self._config = dict(config)
        self._producer_factory = producer_factory
        self._producer = producer_factory(config)
        # Past this the broker aborts the transaction anyway: waiting longer on a step of it is pointless.
        self._transaction_timeout_s = (
            int(config.get("transaction.timeout.ms", _DEFAULT_TRANSACTION_TIMEOUT_MS)) / 1000.0
        )
        self._open_transaction = False  # False once a replaced producer left nothing to abort
        self.producer_replacements = 0
        # librdkafka refuses (MSG_SIZE_TOO_LARGE, raised from produce()) any record above this.
        self.max_record_bytes = int(config.get("message.max.bytes", _LIBRDKAFKA_DEFAULT_MESSAGE_MAX_BYTES))
        self._topics = topics
        self.transactional = transactional
        self._results = AvroRecordSerializer(InspectionResult)
        self._events = AvroRecordSerializer(DefectEvent)
        self._dead_letters = AvroRecordSerializer(DeadLetter)
        self._failure: KafkaError | None = None
        self._lock = threading.Lock()
        if transactional:
            # Fences a previous incarnation with the same transactional.id and aborts its open transaction.
            self._init_transactions()

    @property
    def failure(self) -> KafkaError | None:
        """The first delivery failure seen, if any (the pipeline stops on it)."""
        return self._failure

    def encode_result(self, result: InspectionResult, trace_id: bytes | None) -> Output:
        """The result's record, checked against the producer's size limit (:class:`OutputTooLarge`)."""
        headers = _headers(InspectionResult.avro_name, trace_id)
        return self._checked(Output(self._topics.results, result.camera_id, self._results(result), headers))

    def encode_event(self, event: DefectEvent, trace_id: bytes | None) -> Output:
        headers = _headers(DefectEvent.avro_name, trace_id)
        return self._checked(
            Output(self._topics.defect_events, event.camera_id, self._events(event), headers)
        )

    def encode_dead_letter(self, letter: DeadLetter) -> Output:
        value = self._dead_letters(letter)
        output = Output(self._topics.dead_letters, letter.original_key, value, dead_letter_headers(letter))
        return self._checked(output)

    def send(self, output: Output, ack: Ack | None) -> None:
        """Produce an encoded output; ``ack`` runs on its successful delivery."""
        self._produce(output.topic, output.key, output.value, output.headers, ack)

    def result(self, result: InspectionResult, trace_id: bytes | None, ack: Ack | None) -> None:
        self.send(self.encode_result(result, trace_id), ack)

    def event(self, event: DefectEvent, trace_id: bytes | None, ack: Ack | None) -> None:
        self.send(self.encode_event(event, trace_id), ack)

    def dead_letter(self, letter: DeadLetter, ack: Ack | None) -> None:
        self.send(self.encode_dead_letter(letter), ack)

    def _checked(self, output: Output) -> Output:
        size = output.size
        if size > self.max_record_bytes:
            raise OutputTooLarge(output.topic, size, self.max_record_bytes)
        return output

    def serve(self, timeout_s: float = 0.0) -> int:
        """Run delivery callbacks; returns how many were served."""
        return int(self._producer.poll(timeout_s))

    def flush(self, timeout_s: float) -> int:
        """Wait for outstanding deliveries; returns how many are still outstanding."""
        return int(self._producer.flush(timeout_s))

    # -- transactions ----------------------------------------------------------------------------------
    def begin(self) -> None:
        self._transactional_call(self._producer.begin_transaction)
        self._open_transaction = True

    def commit(self, offsets: list[TopicPartition], group_metadata: Any, timeout_s: float = 30.0) -> None:
        """Add the consumer positions to the transaction and commit it."""
        if offsets:
            bound = min(timeout_s, self._transaction_timeout_s, SEND_OFFSETS_TIMEOUT_S)
            self._send_offsets(offsets, group_metadata, bound)
        self._transactional_call(self._producer.commit_transaction, timeout_s)
        self._open_transaction = False

    def abort(self, timeout_s: float = 30.0) -> None:
        if not self._open_transaction:
            return  # the producer was replaced: its init_transactions aborted the transaction already
        self._open_transaction = False
        try:
            self._producer.abort_transaction(timeout_s)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            log.warning("abort_transaction failed: %s", error.str())
            if error.fatal() and error.code() not in _NOT_RECOVERABLE:
                # The INVALID_TXN_STATE of the campaign: the new producer's init_transactions aborts what
                # the coordinator still holds of this transaction.
                self._replace_producer(f"abort_transaction failed fatally ({error.str()})")

    def _send_offsets(self, offsets: list[TopicPartition], group_metadata: Any, timeout_s: float) -> None:
        """``send_offsets_to_transaction`` on a thread of its own, waited for at most its timeout (plus a
        grace): see the module doc for why librdkafka's own timeout cannot be relied on here."""
        producer = self._producer
        outcome: list[BaseException | None] = []
        finished = threading.Event()
        # The watchdog bounds each attempt, not the retries: a retriable error (CONCURRENT_TRANSACTIONS while
        # the coordinator still completes the abort before it) returns within the call's timeout and is
        # retried. Bounding all attempts together replaced a producer that was only retrying, and the old
        # client's retries then kept the new one's init_transactions in CONCURRENT_TRANSACTIONS for minutes.
        attempt_started = [time.monotonic()]

        def send_offsets_to_transaction(*args: Any) -> None:
            attempt_started[0] = time.monotonic()
            producer.send_offsets_to_transaction(*args)

        def call() -> None:
            try:
                self._transactional_call(send_offsets_to_transaction, offsets, group_metadata, timeout_s)
                outcome.append(None)
            except BaseException as exc:  # handed to the sink thread below
                outcome.append(exc)
            finally:
                finished.set()

        threading.Thread(target=call, name="worker-txn-offsets", daemon=True).start()
        bound_s = timeout_s + _WATCHDOG_GRACE_S
        while True:
            left_s = attempt_started[0] + bound_s - time.monotonic()
            if finished.wait(max(left_s, 0.0)):
                if outcome[0] is not None:
                    raise outcome[0]
                return
            if time.monotonic() - attempt_started[0] >= bound_s:
                break  # this attempt is stuck (a new one would have moved attempt_started on)
        self._replace_producer(f"send_offsets_to_transaction still blocked after {timeout_s:.0f} s")
        raise TransactionAborted(
            f"Kafka transaction step send_offsets_to_transaction did not return within {timeout_s:.0f} s; "
            "the producer was replaced and its transaction aborted"
        )

    def _replace_producer(self, why: str) -> None:
        """A new transactional producer in place of a stuck one. Its ``init_transactions`` bumps the
        producer epoch, so the old one is fenced (nothing it still sends can commit) and its open transaction
        is aborted; the old client is left to its blocked thread (librdkafka cannot interrupt the call)."""
        log.warning("%s: replacing the transactional producer (the old one is fenced)", why)
        self._open_transaction = False
        self._producer = self._producer_factory(self._config)
        self.producer_replacements += 1
        self._init_transactions()

    def _init_transactions(self) -> None:
        # Fences a previous incarnation with the same transactional.id and aborts its open transaction. A
        # failure here is not cured by yet another producer: it is the worker's to report (DeliveryFailed).
        self._call(self._producer.init_transactions, 30.0)

    def _transactional_call(self, method: Callable[..., Any], *args: Any) -> Any:
        """:meth:`_call` on a step of the open transaction; a fatal error that a new producer cures (see the
        module doc) replaces the producer and becomes :class:`TransactionAborted`, so the records are
        rewritten instead of the worker exiting."""
        try:
            return self._call(method, *args)
        except DeliveryFailed as exc:
            cause = exc.__cause__
            if not isinstance(cause, KafkaException):
                raise
            error: KafkaError = cause.args[0]
            if not error.fatal() or error.code() in _NOT_RECOVERABLE:
                raise
            self._replace_producer(f"{method.__name__} failed fatally ({error.str()})")
            raise TransactionAborted(
                f"{exc}; the producer was replaced and its transaction aborted"
            ) from cause

    # -- internals -------------------------------------------------------------------------------------
    def _produce(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        headers: Headers,
        ack: Ack | None,
    ) -> None:
        callback = None if ack is None else self._delivery_callback(ack)
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=callback)
                return
            except BufferError:
                # The producer's queue is full: serve delivery reports until there is room (backpressure).
                self._producer.poll(0.05)
            except KafkaException as exc:
                # Refused synchronously: the size check above should have caught it (librdkafka counts a
                # little differently); the caller turns the frame into a dead letter, the thread lives on.
                if exc.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE:
                    size = len(value or b"") + (len(key) if key is not None else 0)
                    raise OutputTooLarge(topic, size, self.max_record_bytes) from exc
                raise

    def _delivery_callback(self, ack: Ack) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is None:
                ack()
                return
            with self._lock:
                if self._failure is None:
                    self._failure = error
            log.error("delivery to %s failed: %s", message.topic(), error.str())

        return on_delivery

    @staticmethod
    def _call(method: Callable[..., Any], *args: Any) -> Any:
        """One transactional API call, as librdkafka prescribes: a retriable error means *call it again*
        (a commit that timed out may have succeeded; aborting it could duplicate its outputs), an abortable
        one means abort and write the transaction again, anything else is fatal."""
        for attempt in range(1, _TRANSACTION_CALL_ATTEMPTS + 1):
            try:
                return method(*args)
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                message = f"Kafka transaction step {method.__name__} failed: {error.str()}"
                if error.fatal():
                    raise DeliveryFailed(message) from exc
                if error.txn_requires_abort():
                    raise TransactionAborted(message, group_changed=error.code() in _GROUP_CHANGED) from exc
                if not error.retriable() or attempt == _TRANSACTION_CALL_ATTEMPTS:
                    raise DeliveryFailed(message) from exc
                log.warning("%s; retrying (attempt %d)", message, attempt + 1)
        raise AssertionError("unreachable")


def _headers(schema_name: str, trace_id: bytes | None) -> list[tuple[str, str | bytes | None]]:
    headers: list[tuple[str, str | bytes | None]] = [(HEADER_SCHEMA, schema_name.encode())]
    headers.extend(output_headers(trace_id))  # trace-id and a child traceparent (the worker's span)
    return headers
