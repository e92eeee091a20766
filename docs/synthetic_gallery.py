"""Writes docs/synthetic-surfaces.jpg: every surface of the synthetic generator with each hard defect kind.

``.venv/bin/python docs/synthetic_gallery.py`` (seeded: the same picture every time). Rows: metal, plastic,
rolled steel, tile, fabric, PCB; columns: a scratch (a default kind), a hairline, haze, pits; the red boxes
are the ground truth that comes with each frame.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vision.synthetic import Surface, SyntheticDefectGenerator

SURFACES: tuple[Surface, ...] = ("metal", "plastic", "steel", "tile", "fabric", "pcb")
KINDS = ("scratch", "hairline", "haze", "pit")
WIDTH, HEIGHT = 320, 240


def gallery() -> np.ndarray:
    rows = []
    for surface in SURFACES:
        cells = []
        for kind in KINDS:
            generator = SyntheticDefectGenerator(
                width=WIDTH,
                height=HEIGHT,
                defect_rate=1.0,
                seed=3,
                surface=surface,
                classes=(kind,),
            )
            sample = generator.generate(1)
            assert sample.image is not None
            image = sample.image.copy()
            for box in sample.boxes:
                top_left = (int(box.x_min * WIDTH) - 2, int(box.y_min * HEIGHT) - 2)
                bottom_right = (int(box.x_max * WIDTH) + 1, int(box.y_max * HEIGHT) + 1)
                cv2.rectangle(image, top_left, bottom_right, (0, 0, 255), 1)
            cv2.putText(
                image, f"{surface} / {kind}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1
            )
            cells.append(image)
        rows.append(np.hstack(cells))
    return np.vstack(rows)


if __name__ == "__main__":
    out = Path(__file__).with_name("synthetic-surfaces.jpg")
    cv2.imwrite(str(out), gallery(), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {out}")
