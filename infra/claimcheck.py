"""Claim-check for frames too large to travel inline: the image goes to MongoDB GridFS, the record carries a
reference (URI, SHA-256, size), and readers fetch and verify it.

Producers (``streams``) and consumers (``workers``) both use this module, which is why it lives on the
``infra`` floor below both of them: they never import each other.

Files are content-addressed (the GridFS ``_id`` is the SHA-256 of the bytes), so a frame that is published
again after a spool replay or a producer retry reuses the stored file instead of storing a second copy.
URIs look like ``gridfs://<database>/<bucket>/<sha256>``.

Every put, first or repeated, stamps ``metadata.referenced_at``: the pruner
(:mod:`infra.claimcheck_retention`) keeps an object while a retained record may still point at it. A full
store (MongoDB refusing the write for disk or quota, or the configured ``max_store_bytes`` reached) is a
:class:`ClaimCheckStoreFullError`: the frame is refused at once and counted, never retried in a loop and
never waited for.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from schemas.errors import LineguardError, ServiceUnavailableError
from schemas.records import Frame, ImageReference

if (
    TYPE_CHECKING
):  # pymongo and gridfs load with the first store: a camera without claim-check never needs them
    from gridfs import GridFSBucket
    from pymongo import MongoClient
    from pymongo.database import Database

#: A MongoDB document as pymongo reads and writes it (BSON values of any kind).
Document = dict[str, Any]

logger = logging.getLogger(__name__)

URI_SCHEME = "gridfs"
DEFAULT_BUCKET = "frames"


class ClaimCheckError(LineguardError):
    """A referenced image is missing, malformed or does not match its recorded hash or size."""


class ClaimCheckStoreFullError(ServiceUnavailableError):
    """The store refused a new image: MongoDB is out of disk or quota, or ``max_store_bytes`` is reached.

    A :class:`~schemas.errors.ServiceUnavailableError`, so a camera loses (and counts) this frame only and
    keeps capturing: images already stored, and inline frames, still flow. Pruning frees the room.
    """


@dataclass(frozen=True, slots=True)
class GridFSLocation:
    database: str
    bucket: str
    file_id: str

    @property
    def uri(self) -> str:
        return f"{URI_SCHEME}://{self.database}/{self.bucket}/{self.file_id}"


def parse_gridfs_uri(uri: str) -> GridFSLocation:
    """``gridfs://db/bucket/id`` -> its parts; anything else is a :class:`ClaimCheckError`."""
    parts = urlsplit(uri)
    segments = [segment for segment in parts.path.split("/") if segment]
    if parts.scheme != URI_SCHEME or not parts.netloc or len(segments) != 2:
        raise ClaimCheckError(f"not a claim-check URI (expected gridfs://<database>/<bucket>/<id>): {uri!r}")
    return GridFSLocation(database=parts.netloc, bucket=segments[0], file_id=segments[1])


_SHA256_HEX = frozenset("0123456789abcdef")
# Server answers that say "the store is not usable right now", not "this reference is bad": the record must be
# retried, never dead-lettered (auth and primary changes, shutdowns, time limits).
_TRANSIENT_CODES = frozenset({6, 7, 13, 18, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})
_INTERRUPTED_UPLOAD_WAIT_S = 2.0  # how long an upload without its files document may be another's, live
_STORE_FULL_CODES = frozenset({14031})  # OutOfDiskSpace
_STORE_FULL_HINTS = ("space quota", "no space left", "outofdiskspace", "quota exceeded", "disk full")
_SIZE_CACHE_S = 5.0  # how long a measured store size is trusted before max_store_bytes is checked again


def is_store_full(exc: BaseException) -> bool:
    """Whether a PyMongo write error says the server has no room (disk or quota), rather than an outage."""
    import pymongo.errors

    code = getattr(exc, "code", None)
    if isinstance(exc, pymongo.errors.OperationFailure) and code in _STORE_FULL_CODES:
        return True
    return isinstance(exc, pymongo.errors.PyMongoError) and any(
        hint in str(exc).lower() for hint in _STORE_FULL_HINTS
    )


def is_transient(exc: BaseException) -> bool:
    """Whether a PyMongo error is the server's or the network's (retry) rather than the reference's."""
    import pymongo.errors

    if isinstance(exc, pymongo.errors.ConnectionFailure):  # includes AutoReconnect, timeouts, selection
        return True
    if isinstance(exc, pymongo.errors.OperationFailure):
        labels = ("RetryableWriteError", "TransientTransactionError", "ResumableChangeStreamError")
        return exc.code in _TRANSIENT_CODES or any(exc.has_error_label(label) for label in labels)
    return False


class GridFSClaimCheckStore:
    """Stores and fetches claim-checked images in GridFS.

    ``client`` is a ``pymongo.MongoClient``; ``database`` and ``bucket`` say where images go *and* the only
    place they are read from: a reference naming another database or bucket (or a name MongoDB would refuse)
    is a :class:`ClaimCheckError`, so a record can neither make a worker read arbitrary collections nor raise
    a client-side error that looks like an outage. Every failure that is not the network's or the server's
    is a :class:`ClaimCheckError` (the worker dead-letters it as ``CLAIM_CHECK_FAILED``); only those are a
    :class:`~schemas.errors.ServiceUnavailableError` (the worker retries, then stops without committing).
    """

    def __init__(
        self,
        client: MongoClient[Document],
        database: str,
        bucket: str = DEFAULT_BUCKET,
        max_store_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.database = database
        self.bucket = bucket
        self.max_store_bytes = max_store_bytes  # None: only MongoDB's own disk or quota limits the store
        self.full_refusals = 0  # new images refused because the store was full
        self._clock = clock
        self._size: tuple[float, int] | None = None  # (measured at, bytes)

    def _bucket(self) -> GridFSBucket:
        import gridfs

        return gridfs.GridFSBucket(self._client[self.database], bucket_name=self.bucket)

    def put(
        self, data: bytes, filename: str = "", metadata: Mapping[str, Any] | None = None
    ) -> ImageReference:
        """Store ``data`` (once per content) and return the reference a record carries.

        The file is complete when this returns: a stored file whose chunks are not all there (an upload
        interrupted after its files document, or chunks left behind by one interrupted before it) is removed
        and uploaded again, rather than returning a reference to bytes that cannot be read.
        """
        import pymongo.errors

        digest = hashlib.sha256(data).hexdigest()
        location = GridFSLocation(self.database, self.bucket, digest)
        try:
            self._store(digest, data, filename, metadata)
        except ClaimCheckStoreFullError:
            self.full_refusals += 1
            raise
        except pymongo.errors.PyMongoError as exc:
            if is_store_full(exc):
                self.full_refusals += 1
                raise ClaimCheckStoreFullError(f"claim-check store is full (MongoDB: {exc})") from exc
            raise ServiceUnavailableError(f"cannot store a claim-checked image in GridFS: {exc}") from exc
        return ImageReference(uri=location.uri, sha256=digest, size_bytes=len(data))

    def _store(self, digest: str, data: bytes, filename: str, metadata: Mapping[str, Any] | None) -> None:
        import gridfs.errors
        import pymongo.errors

        bucket = self._bucket()
        database = self._client[self.database]
        for attempt in range(3):
            if self._complete(database, digest, len(data)) and self._touch(database, digest):
                return
            if self._leftovers(database, digest):
                # An earlier upload was interrupted (chunks without a files document, or missing chunks), or
                # another producer is storing the same bytes right now: give a live upload time to finish,
                # then replace what is still incomplete.
                if attempt == 0 and self._wait_complete(database, digest, len(data)):
                    return
                logger.warning("claim-check %s: replacing an incomplete earlier upload", digest)
                database[f"{self.bucket}.files"].delete_one({"_id": digest})
                database[f"{self.bucket}.chunks"].delete_many({"files_id": digest})
            self._check_room(database, len(data))
            stamp = {"sha256": digest, "referenced_at": datetime.now(UTC)}
            try:
                bucket.upload_from_stream_with_id(
                    digest, filename or digest, data, metadata={**dict(metadata or {}), **stamp}
                )
                self._size = None if self._size is None else (self._size[0], self._size[1] + len(data))
            except (gridfs.errors.FileExists, pymongo.errors.DuplicateKeyError):
                continue  # a concurrent producer won the race: check its file on the next round
        if not self._complete(database, digest, len(data)):
            raise ServiceUnavailableError(f"claim-checked image {digest} could not be stored completely")

    def _touch(self, database: Database[Document], digest: str) -> bool:
        """Refresh a stored object's reference time; False when the pruner removed it in the meantime."""
        now = datetime.now(UTC)
        result = database[f"{self.bucket}.files"].update_one(
            {"_id": digest}, {"$set": {"metadata.referenced_at": now}}
        )
        return bool(result.matched_count)

    def _check_room(self, database: Database[Document], size: int) -> None:
        if self.max_store_bytes is None:
            return
        now = self._clock()
        if self._size is None or now - self._size[0] > _SIZE_CACHE_S:
            # One aggregate per few seconds, not per frame: the sum is over every file in the bucket.
            totals = list(
                database[f"{self.bucket}.files"].aggregate(
                    [{"$group": {"_id": None, "bytes": {"$sum": "$length"}}}]
                )
            )
            self._size = (now, int(totals[0]["bytes"]) if totals else 0)
        if self._size[1] + size > self.max_store_bytes:
            raise ClaimCheckStoreFullError(
                f"claim-check store gridfs://{self.database}/{self.bucket} is full: {self._size[1]} bytes "
                f"stored, a {size}-byte image would pass the limit of {self.max_store_bytes} bytes "
                "(run `lineguard claimcheck prune`, or raise the limit)"
            )

    def _leftovers(self, database: Database[Document], digest: str) -> bool:
        files = database[f"{self.bucket}.files"].find_one({"_id": digest}, {"_id": 1})
        return (
            files is not None or database[f"{self.bucket}.chunks"].find_one({"files_id": digest}) is not None
        )

    def _complete(self, database: Database[Document], digest: str, size: int) -> bool:
        files = database[f"{self.bucket}.files"].find_one({"_id": digest}, {"length": 1, "chunkSize": 1})
        if files is None or files.get("length") != size:
            return False
        chunk_size = int(files.get("chunkSize") or 1)
        expected = -(-size // chunk_size)  # exactly: duplicated chunks (no unique index) are not complete
        return bool(database[f"{self.bucket}.chunks"].count_documents({"files_id": digest}) == expected)

    def _wait_complete(self, database: Database[Document], digest: str, size: int) -> bool:
        deadline = time.monotonic() + _INTERRUPTED_UPLOAD_WAIT_S
        while time.monotonic() < deadline:
            if self._complete(database, digest, size):
                return True
            time.sleep(0.2)
        return False

    def locate(self, reference: ImageReference) -> GridFSLocation:
        """The reference's location, checked: this store's database and bucket, a SHA-256 file id."""
        location = parse_gridfs_uri(reference.uri)
        if (location.database, location.bucket) != (self.database, self.bucket):
            raise ClaimCheckError(
                f"claim-check reference {reference.uri!r} is outside this store "
                f"(gridfs://{self.database}/{self.bucket}/...)"
            )
        file_id = location.file_id
        if len(file_id) != 64 or not set(file_id) <= _SHA256_HEX or file_id != reference.sha256.lower():
            raise ClaimCheckError(
                f"claim-check reference {reference.uri!r} does not name its SHA-256 ({reference.sha256!r})"
            )
        return location

    def get(self, reference: ImageReference) -> bytes:
        """The referenced bytes, after checking the stored size (before reading) and the SHA-256."""
        import gridfs.errors
        import pymongo.errors

        location = self.locate(reference)
        try:
            stream = self._bucket().open_download_stream(location.file_id)
            if stream.length != reference.size_bytes:  # before reading: a huge file costs nothing
                raise ClaimCheckError(
                    f"claim-checked image {reference.uri} has {stream.length} bytes, "
                    f"the record says {reference.size_bytes}"
                )
            data: bytes = stream.read()
        except gridfs.errors.NoFile:
            raise ClaimCheckError(f"claim-checked image {reference.uri} does not exist") from None
        except pymongo.errors.PyMongoError as exc:
            if is_transient(exc):
                raise ServiceUnavailableError(
                    f"cannot read claim-checked image {reference.uri}: {exc}"
                ) from exc
            # InvalidName, CorruptGridFile (missing chunks), an unexpected server answer: the reference's
            # fault, and retrying would only crash-loop every worker on the same record.
            raise ClaimCheckError(f"cannot read claim-checked image {reference.uri}: {exc}") from exc
        if len(data) != reference.size_bytes:
            raise ClaimCheckError(
                f"claim-checked image {reference.uri} has {len(data)} bytes, "
                f"the record says {reference.size_bytes}"
            )
        digest = hashlib.sha256(data).hexdigest()
        if digest != reference.sha256.lower():
            raise ClaimCheckError(f"claim-checked image {reference.uri} fails its SHA-256 check")
        return data


def resolve_image(frame: Frame, store: GridFSClaimCheckStore | None) -> bytes:
    """A frame's encoded image, inline or fetched through its claim-check (verified)."""
    if frame.image_ref is None:
        return frame.image
    if store is None:
        raise ClaimCheckError(
            f"frame {frame.camera_id}#{frame.frame_number} is claim-checked ({frame.image_ref.uri}) "
            "but no claim-check store is configured"
        )
    return store.get(frame.image_ref)
