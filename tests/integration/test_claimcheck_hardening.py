"""Issue 19, item 2: claim-check references are pinned to the store's database and bucket, only network and
server errors count as an outage, sizes are checked before reading, and a re-upload after an interrupted put
leaves a complete file. Real MongoDB (or FerretDB) from the shared stack."""

from __future__ import annotations

import dataclasses
import hashlib
import socket
from datetime import UTC, datetime
from typing import Any

import cv2
import numpy as np
import pytest
from pymongo import MongoClient
from pymongo.database import Database

from infra.claimcheck import ClaimCheckError, GridFSClaimCheckStore
from schemas.errors import ServiceUnavailableError
from schemas.records import DeadLetterReason, Frame, ImageEncoding, ImageReference
from schemas.serde import AvroRecordSerializer
from vision.preprocess import PreprocessSpec, preprocess_batch
from workers.decode import FrameDecoder, FrameRejected, ImageSpec
from workers.offsets import Ticket

pytestmark = pytest.mark.integration

IMAGE = cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))[1].tobytes()


def _reference(database: str, bucket: str, data: bytes = IMAGE) -> ImageReference:
    digest = hashlib.sha256(data).hexdigest()
    return ImageReference(uri=f"gridfs://{database}/{bucket}/{digest}", sha256=digest, size_bytes=len(data))


def test_a_reference_outside_the_configured_database_or_bucket_is_refused(
    mongo_db: Database[dict[str, Any]],
) -> None:
    other = f"{mongo_db.name}_other"
    try:
        # The file really exists elsewhere: following the reference would have found it.
        GridFSClaimCheckStore(mongo_db.client, other).put(IMAGE)
        GridFSClaimCheckStore(mongo_db.client, mongo_db.name, "elsewhere").put(IMAGE)
        store = GridFSClaimCheckStore(mongo_db.client, mongo_db.name)
        for database, bucket in ((other, "frames"), (mongo_db.name, "elsewhere"), ("admin", "frames")):
            with pytest.raises(ClaimCheckError, match="outside this store"):
                store.get(_reference(database, bucket))
        store.put(IMAGE)
        assert store.get(_reference(mongo_db.name, "frames")) == IMAGE
    finally:
        mongo_db.client.drop_database(other)


@pytest.mark.parametrize("database", ["a$b", "a.b", "a b"])
def test_names_mongodb_refuses_are_a_dead_letter_not_an_outage(
    mongo_db: Database[dict[str, Any]], database: str
) -> None:
    store = GridFSClaimCheckStore(mongo_db.client, mongo_db.name)
    with pytest.raises(ClaimCheckError):
        store.get(_reference(database, "frames"))
    decoder = FrameDecoder(
        lambda image: preprocess_batch([image], PreprocessSpec.for_input(32, 32))[0],
        ImageSpec(32, 32),
        max_image_pixels=1_000_000,
        max_image_bytes=1_000_000,
        claim_check=store.get,
    )
    frame = Frame(
        camera_id="cam",
        line_id="l",
        station_id="s",
        frame_number=1,
        captured_at=datetime.now(UTC),
        width=64,
        height=64,
        channels=3,
        encoding=ImageEncoding.JPEG,
        image=b"",
        image_ref=_reference(database, "frames"),
    )
    with pytest.raises(FrameRejected) as caught:
        decoder.decode(AvroRecordSerializer(Frame)(frame), Ticket("frames", 0, 0, 1))
    assert caught.value.reason is DeadLetterReason.CLAIM_CHECK_FAILED
    good = dataclasses.replace(frame, image_ref=store.put(IMAGE))
    assert decoder.decode(AvroRecordSerializer(Frame)(good), Ticket("frames", 0, 1, 2)).image.size > 0


def test_the_stored_size_is_checked_before_reading(mongo_db: Database[dict[str, Any]]) -> None:
    store = GridFSClaimCheckStore(mongo_db.client, mongo_db.name)
    big = bytes(3_000_000)
    reference = store.put(big)
    lying = dataclasses.replace(reference, size_bytes=1000)  # a small image by the record, 3 MB stored
    with pytest.raises(ClaimCheckError, match="has 3000000 bytes, the record says 1000"):
        store.get(lying)
    with pytest.raises(ClaimCheckError, match="SHA-256"):  # file id and hash must agree
        store.get(dataclasses.replace(reference, sha256="0" * 64))


def test_put_after_an_interrupted_upload_stores_a_complete_file(mongo_db: Database[dict[str, Any]]) -> None:
    data = np.random.default_rng(7).integers(0, 256, 600_000, dtype=np.uint8).tobytes()
    digest = hashlib.sha256(data).hexdigest()
    chunk = 255 * 1024  # GridFS's default chunk size
    # What a producer that died mid-upload leaves: the first chunks, no files document (GridFS writes it
    # last). Putting the same bytes again collides with them (FileExists), which used to be swallowed.
    mongo_db["frames.chunks"].insert_many(
        [{"files_id": digest, "n": n, "data": data[n * chunk : (n + 1) * chunk]} for n in range(2)]
    )
    assert mongo_db["frames.files"].count_documents({"_id": digest}) == 0
    store = GridFSClaimCheckStore(mongo_db.client, mongo_db.name)
    reference = store.put(data)
    assert store.get(reference) == data
    # A file whose files document exists but a chunk is gone (a partial restore, a manual delete).
    mongo_db["frames.chunks"].delete_one({"files_id": digest, "n": 0})
    with pytest.raises(ClaimCheckError):
        store.get(reference)
    assert store.get(store.put(data)) == data


def test_an_unreachable_server_is_an_outage_not_a_dead_letter() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client: MongoClient[dict[str, Any]] = MongoClient(
        f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=300, connectTimeoutMS=300
    )
    try:
        store = GridFSClaimCheckStore(client, "lineguard")
        with pytest.raises(ServiceUnavailableError):
            store.get(_reference("lineguard", "frames"))
        with pytest.raises(ServiceUnavailableError):
            store.put(IMAGE)
    finally:
        client.close()
