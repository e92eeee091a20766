"""Large frames through real Kafka and MongoDB GridFS (FerretDB or mongod): claim-check round trip, tamper
detection, and the clear refusal when claim-check is off."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from pymongo.database import Database

from infra.claimcheck import ClaimCheckError, GridFSClaimCheckStore, resolve_image
from schemas.errors import FrameTooLargeError
from schemas.records import Frame, ImageEncoding, ImageReference
from schemas.serde import AvroRecordSerializer
from schemas.topics import DEFAULT_MAX_MESSAGE_BYTES, TopicNames
from streams.encoder import EncoderOptions, encode_image
from streams.publisher import FramePublisher, PublisherOptions
from streams.sources.base import ImageFormat
from tests.integration.test_streams_support import consume_frames

pytestmark = pytest.mark.integration


def _frame(number: int, image: bytes, width: int, height: int) -> Frame:
    return Frame(
        camera_id="cam-big",
        line_id="line-1",
        station_id="st-1",
        frame_number=number,
        captured_at=datetime.now(UTC),
        width=width,
        height=height,
        channels=3,
        encoding=ImageEncoding.PNG,
        image=image,
    )


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    """A 2048x2048 noise PNG: about 12 MiB, above Kafka's 10 MiB record limit."""
    noise = np.random.default_rng(0).integers(0, 256, (2048, 2048, 3), dtype=np.uint8)
    data = encode_image(noise, EncoderOptions(format=ImageFormat.png, png_compression=0)).data
    assert len(data) > DEFAULT_MAX_MESSAGE_BYTES
    return data


def test_frame_above_the_inline_limit_travels_by_reference_and_resolves_verified(
    kafka_config: dict[str, Any], topics: TopicNames, mongo_db: Database[dict[str, Any]], huge_png: bytes
) -> None:
    store = GridFSClaimCheckStore(mongo_db.client, mongo_db.name)
    publisher = FramePublisher(
        PublisherOptions(topic=topics.frames), kafka_config, AvroRecordSerializer(Frame), claim_check=store
    )
    small = encode_image(np.zeros((16, 16, 3), np.uint8), EncoderOptions(format=ImageFormat.png)).data
    publisher.publish(_frame(0, huge_png, 2048, 2048))
    publisher.publish(_frame(1, small, 16, 16))
    report = publisher.close(30.0)
    assert report.clean and report.delivered == 2
    assert publisher.stats.claim_checked == 1

    big, inline = consume_frames(kafka_config, topics.frames, 2)
    assert big.frame.image == b""
    assert big.frame.image_ref is not None
    assert (
        big.frame.image_ref.uri == f"gridfs://{mongo_db.name}/frames/{hashlib.sha256(huge_png).hexdigest()}"
    )
    assert big.frame.image_ref.size_bytes == len(huge_png)
    assert resolve_image(big.frame, store) == huge_png
    assert inline.frame.image_ref is None and resolve_image(inline.frame, store) == small
    # A reader reads only from its own database and bucket (issue 19): a record cannot point it elsewhere.
    with pytest.raises(ClaimCheckError, match="outside this store"):
        GridFSClaimCheckStore(mongo_db.client, "elsewhere").get(big.frame.image_ref)


def test_reader_refuses_a_reference_whose_hash_or_size_does_not_match(
    mongo_db: Database[dict[str, Any]],
) -> None:
    store = GridFSClaimCheckStore(mongo_db.client, mongo_db.name)
    reference = store.put(b"some image bytes")
    assert store.put(b"some image bytes") == reference  # content-addressed: stored once
    wrong_hash = dataclasses.replace(reference, sha256="0" * 64)
    wrong_uri = ImageReference(
        uri=reference.uri.rsplit("/", 1)[0] + "/" + "0" * 64, sha256="0" * 64, size_bytes=16
    )
    with pytest.raises(ClaimCheckError, match="SHA-256"):
        store.get(wrong_hash)
    with pytest.raises(ClaimCheckError, match="bytes"):
        store.get(dataclasses.replace(reference, size_bytes=3))
    with pytest.raises(ClaimCheckError, match="does not exist"):
        store.get(wrong_uri)
    with pytest.raises(ClaimCheckError, match="no claim-check store"):
        resolve_image(dataclasses.replace(_frame(0, b"", 4, 4), image_ref=reference), None)


def test_oversize_frame_without_claim_check_is_refused_and_the_producer_carries_on(
    kafka_config: dict[str, Any], topics: TopicNames, huge_png: bytes
) -> None:
    publisher = FramePublisher(
        PublisherOptions(topic=topics.frames), kafka_config, AvroRecordSerializer(Frame)
    )
    with pytest.raises(FrameTooLargeError, match="claim-check is disabled"):
        publisher.publish(_frame(0, huge_png, 2048, 2048))
    small = encode_image(np.zeros((8, 8, 3), np.uint8), EncoderOptions(format=ImageFormat.png)).data
    publisher.publish(_frame(1, small, 8, 8))
    report = publisher.close(30.0)
    assert report.delivered == 1 and report.clean
    assert publisher.stats.too_large == 1
    (only,) = consume_frames(kafka_config, topics.frames, 1)
    assert only.frame.frame_number == 1


def test_image_just_under_the_kafka_limit_is_accepted_inline_by_producer_topic_and_consumer(
    kafka_config: dict[str, Any], topics: TopicNames
) -> None:
    # Producer, topic and consumer limits agree: the largest inline image the defaults allow goes through.
    options = PublisherOptions(topic=topics.frames)
    image = b"\x89PNG" + bytes(options.inline_limit_bytes - 4)
    publisher = FramePublisher(options, kafka_config, AvroRecordSerializer(Frame))
    publisher.publish(_frame(0, image, 4096, 4096))
    assert publisher.close(30.0).delivered == 1
    (only,) = consume_frames(kafka_config, topics.frames, 1)
    assert only.frame.image == image
