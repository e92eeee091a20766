"""The textured surfaces and the hard defect kinds of the synthetic generator (issue 11, item 5).

Each texture is checked for the structure that makes it what it is (grout lines, rolling direction, weave,
copper on green), each hard defect for the geometry that makes it hard (a long one-pixel line, a faint
cloud, a pit of a few pixels), and the camera's source options for clear errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from schemas.errors import ConfigurationError
from streams.sources import open_source
from vision.synthetic import SyntheticDefectGenerator
from vision.synthetic_defects import RENDERERS, DefectPatch
from vision.synthetic_kinds import DEFECT_CLASSES, SURFACES, TEXTURED_SURFACES
from vision.synthetic_surfaces import render_texture

HEIGHT, WIDTH = 192, 256


def _texture_pattern(kind: str, seed: int) -> np.ndarray:
    return render_texture(kind, np.random.default_rng(seed), HEIGHT, WIDTH).pattern


def test_every_named_defect_kind_has_a_renderer_and_every_renderer_a_name() -> None:
    assert set(RENDERERS) == set(DEFECT_CLASSES)


@pytest.mark.parametrize("surface", TEXTURED_SURFACES)
def test_a_textured_frame_is_the_same_for_the_same_seed_and_differs_for_another(surface: str) -> None:
    def frame(seed: int, channels: int) -> np.ndarray:
        generator = SyntheticDefectGenerator(
            width=WIDTH,
            height=HEIGHT,
            channels=channels,
            seed=seed,
            surface=surface,  # type: ignore[arg-type]
        )
        image = generator.generate(3).image
        assert image is not None
        return image

    assert frame(4, 3).shape == (HEIGHT, WIDTH, 3)
    assert frame(4, 1).shape == (HEIGHT, WIDTH)
    assert np.array_equal(frame(4, 3), frame(4, 3))
    assert not np.array_equal(frame(4, 3), frame(5, 3))


def test_tiles_have_grout_lines_across_the_whole_frame() -> None:
    for seed in range(10):
        grout = _texture_pattern("tile", seed) <= -25.0
        # A grout row or column is grout from edge to edge (speckle may touch 0.5 % of its pixels).
        full_rows = np.mean(grout, axis=1) >= 0.97
        full_cols = np.mean(grout, axis=0) >= 0.97
        assert full_rows.any() and full_cols.any(), seed
        assert grout.mean() < 0.3  # lines between tiles, not a dark surface


def test_rolled_steel_varies_across_the_rolling_direction_much_more_than_along_it() -> None:
    for seed in range(10):
        pattern = _texture_pattern("steel", seed)
        down = float(np.abs(np.diff(pattern, axis=0)).mean())
        across = float(np.abs(np.diff(pattern, axis=1)).mean())
        assert max(down, across) > 2.5 * min(down, across), (seed, down, across)


def test_fabric_has_a_weave_in_both_directions() -> None:
    for seed in range(10):
        pattern = _texture_pattern("fabric", seed)
        down = float(np.abs(np.diff(pattern, axis=0)).mean())
        across = float(np.abs(np.diff(pattern, axis=1)).mean())
        assert min(down, across) > 3.0, (seed, down, across)  # threads a few pixels wide, both ways
        assert max(down, across) < 1.6 * min(down, across), (seed, down, across)


def test_a_pcb_is_green_with_copper_on_part_of_it() -> None:
    for seed in range(10):
        texture = render_texture("pcb", np.random.default_rng(seed), HEIGHT, WIDTH)
        blue, green, red = (float(gain) for gain in texture.tint)
        assert green > 1.5 * red and green > 1.4 * blue
        copper = texture.pattern >= 30.0
        assert 0.02 < copper.mean() < 0.6, seed


def test_an_unknown_texture_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown texture 'wood'"):
        render_texture("wood", np.random.default_rng(0), HEIGHT, WIDTH)


def _patches(kind: str, seeds: range, width: int = 640, height: int = 480) -> list[DefectPatch]:
    return [RENDERERS[kind](np.random.default_rng(seed), width, height, 1.0) for seed in seeds]


def test_a_hairline_is_long_and_one_or_two_pixels_wide() -> None:
    scale = 480
    for patch in _patches("hairline", range(30)):
        rows, cols = np.nonzero(patch.footprint)
        extent = math.hypot(cols.max() - cols.min() + 1, rows.max() - rows.min() + 1)
        assert extent >= 0.45 * scale  # across much of the part (the line's chord, from its bounding box)
        assert patch.footprint.sum() <= 2.5 * extent  # a thin line, not a band
        assert 15.0 <= float(np.abs(patch.delta).max()) <= 40.0  # low contrast


def test_haze_is_large_and_faint() -> None:
    scale = 480
    for patch in _patches("haze", range(30)):
        assert float(np.abs(patch.delta).max()) <= 14.0
        assert patch.footprint.sum() >= (0.05 * scale) ** 2


def test_a_pit_is_a_few_pixels_across_and_dark() -> None:
    for patch in _patches("pit", range(30)):
        rows, cols = np.nonzero(patch.footprint)
        assert 1 <= rows.max() - rows.min() + 1 <= 7 and 1 <= cols.max() - cols.min() + 1 <= 7
        assert float(patch.delta.min()) <= -35.0


def test_frames_with_the_hard_kinds_carry_boxes_that_enclose_their_mask() -> None:
    classes = ("hairline", "haze", "pit")
    generator = SyntheticDefectGenerator(
        width=WIDTH, height=HEIGHT, defect_rate=1.0, seed=2, classes=classes, surface="all"
    )
    seen = set()
    for index in range(40):
        sample = generator.generate(index)
        seen.add(sample.surface)
        class_id = classes.index(sample.label) + 1
        rows, cols = np.nonzero(sample.mask == class_id)
        assert len(rows) > 0 and sample.boxes
        assert min(b.x_min for b in sample.boxes) * WIDTH <= cols.min()
        assert max(b.x_max for b in sample.boxes) * WIDTH >= cols.max() + 1
        assert min(b.y_min for b in sample.boxes) * HEIGHT <= rows.min()
        assert max(b.y_max for b in sample.boxes) * HEIGHT >= rows.max() + 1
    assert seen == {"metal", "plastic", *TEXTURED_SURFACES}  # "all" draws every surface


def test_the_camera_source_takes_the_new_materials_and_defects() -> None:
    source = open_source("synthetic:?material=tile&defects=hairline,pit&defect_rate=1&size=64x48")
    assert source.name.endswith("surface=tile,defects=hairline+pit")
    assert set(SURFACES) >= {"steel", "tile", "fabric", "pcb", "all"}
    with pytest.raises(ConfigurationError, match="synthetic defects hair unknown"):
        open_source("synthetic:?defects=hair")
    with pytest.raises(ConfigurationError, match="synthetic material must be one of"):
        open_source("synthetic:?material=wood")
