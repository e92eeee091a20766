"""Claim-check for frames too large to travel inline: the image goes to MongoDB GridFS, the record carries a
reference (URI, SHA-256, size), and readers fetch and verify it.

Producers (``streams``) and consumers (``workers``) both use this module, which is why it lives in
``lineguard`` and not in either of them: they never import each other.

Files are content-addressed (the GridFS ``_id`` is the SHA-256 of the bytes), so a frame that is published
again after a spool replay or a producer retry reuses the stored file instead of storing a second copy.
URIs look like ``gridfs://<database>/<bucket>/<sha256>``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from schemas.errors import LineguardError, ServiceUnavailableError
from schemas.records import Frame, ImageReference

logger = logging.getLogger(__name__)

URI_SCHEME = "gridfs"
DEFAULT_BUCKET = "frames"


class ClaimCheckError(LineguardError):
    """A referenced image is missing, malformed or does not match its recorded hash or size."""


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


class GridFSClaimCheckStore:
    """Stores and fetches claim-checked images in GridFS.

    ``client`` is a ``pymongo.MongoClient``; ``database`` and ``bucket`` say where new images go. Reads follow
    the database and bucket named in each reference, so a reader needs no configuration beyond the client.
    """

    def __init__(self, client: Any, database: str, bucket: str = DEFAULT_BUCKET) -> None:
        self._client = client
        self.database = database
        self.bucket = bucket

    def _bucket(self, database: str, bucket: str) -> Any:
        import gridfs

        return gridfs.GridFSBucket(self._client[database], bucket_name=bucket)

    def put(
        self, data: bytes, filename: str = "", metadata: Mapping[str, Any] | None = None
    ) -> ImageReference:
        """Store ``data`` (once per content) and return the reference a record carries."""
        import gridfs.errors
        import pymongo.errors

        digest = hashlib.sha256(data).hexdigest()
        location = GridFSLocation(self.database, self.bucket, digest)
        bucket = self._bucket(self.database, self.bucket)
        try:
            if bucket.find({"_id": digest}).limit(1).to_list():
                return ImageReference(uri=location.uri, sha256=digest, size_bytes=len(data))
            bucket.upload_from_stream_with_id(
                digest, filename or digest, data, metadata={"sha256": digest, **dict(metadata or {})}
            )
        except (gridfs.errors.FileExists, pymongo.errors.DuplicateKeyError):
            pass  # another producer stored the same bytes first: same content, same id
        except pymongo.errors.PyMongoError as exc:
            raise ServiceUnavailableError(f"cannot store a claim-checked image in GridFS: {exc}") from exc
        return ImageReference(uri=location.uri, sha256=digest, size_bytes=len(data))

    def get(self, reference: ImageReference) -> bytes:
        """The referenced bytes, after checking their size and SHA-256 against the reference."""
        import gridfs.errors
        import pymongo.errors

        location = parse_gridfs_uri(reference.uri)
        try:
            data: bytes = (
                self._bucket(location.database, location.bucket).open_download_stream(location.file_id).read()
            )
        except gridfs.errors.NoFile:
            raise ClaimCheckError(f"claim-checked image {reference.uri} does not exist") from None
        except pymongo.errors.PyMongoError as exc:
            raise ServiceUnavailableError(f"cannot read claim-checked image {reference.uri}: {exc}") from exc
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
