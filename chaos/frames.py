"""Good frames with known identities: synthetic 128x128 JPEGs from the project's defect generator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from schemas.records import Frame, GroundTruth, ImageEncoding

FRAME_SIZE = 128


def camera_of(index: int, cameras: int) -> str:
    return f"chaos-cam-{index % cameras}"


def frame_identity(index: int, cameras: int) -> tuple[str, int]:
    """Frame ``index`` of a run is (camera, number): cameras take turns, numbers increase per camera."""
    return camera_of(index, cameras), index // cameras


def good_frames(
    start: int, count: int, cameras: int = 6, seed: int = 11, distinct: int = 64
) -> Iterator[Frame]:
    """Frames ``start`` .. ``start + count - 1``; pixels cycle through ``distinct`` generated images (the
    harness measures delivery, so encoding thousands of different images would only burn the CPU it needs)."""
    import cv2

    from vision.synthetic import SyntheticDefectGenerator

    generator = SyntheticDefectGenerator(width=FRAME_SIZE, height=FRAME_SIZE, defect_rate=0.4, seed=seed)
    bank: dict[int, tuple[bytes, str]] = {}
    for index in range(start, start + count):
        slot = index % distinct
        if slot not in bank:
            sample = generator.generate(slot)
            assert sample.image is not None
            ok, jpeg = cv2.imencode(".jpg", sample.image, [cv2.IMWRITE_JPEG_QUALITY, 85])
            assert ok
            bank[slot] = (jpeg.tobytes(), sample.label)
        image, label = bank[slot]
        camera, number = frame_identity(index, cameras)
        yield Frame(
            camera_id=camera,
            line_id="line-chaos",
            station_id="station-1",
            frame_number=number,
            captured_at=datetime.now(UTC),
            width=FRAME_SIZE,
            height=FRAME_SIZE,
            channels=3,
            encoding=ImageEncoding.JPEG,
            image=image,
            ground_truth=GroundTruth(labels=(label,) if label != "good" else ()),
        )
