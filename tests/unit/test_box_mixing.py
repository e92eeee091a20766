"""Mosaic, copy-paste and class-balanced sampling (vision.box_mixing, vision.balanced_sampling,
vision.crops.origin_containing): hand-computed boxes and weights."""

from __future__ import annotations

import numpy as np
import pytest

from vision.balanced_sampling import BalancedSampler, class_probabilities, instance_probabilities
from vision.box_mixing import (
    copy_paste,
    cut_patch,
    mosaic,
    mosaic_centre,
    mosaic_regions,
    paste_patch,
    place_boxes,
)
from vision.crops import Crop, crop_at, origin_containing
from vision.samples import BoxLabel


def _coords(box: BoxLabel) -> tuple[float, float, float, float]:
    return (box.x_min, box.y_min, box.x_max, box.y_max)


def test_mosaic_regions_split_the_canvas_at_the_centre() -> None:
    assert mosaic_regions((100, 80), (30, 50)) == [
        (0, 0, 30, 50),
        (30, 0, 70, 50),
        (0, 50, 30, 30),
        (30, 50, 70, 30),
    ]
    with pytest.raises(ValueError, match="not inside"):
        mosaic_regions((100, 80), (0, 50))


def test_a_piece_box_moves_by_its_region_offset() -> None:
    # Piece 70x30 in the bottom-right region at (30, 50) of a 100x80 canvas; box pixels x 7..35, y 3..15
    # in the piece -> canvas pixels x 37..65, y 53..65.
    box = BoxLabel("spur", 0.1, 0.1, 0.5, 0.5)
    (moved,) = place_boxes((box,), (30, 50, 70, 30), (100, 80))
    assert _coords(moved) == pytest.approx((0.37, 53 / 80, 0.65, 65 / 80))


def test_mosaic_tiles_pieces_and_keeps_every_box_exact() -> None:
    # Four 200x200 frames of constant value k, each with one box; canvas 100x80 split at (30, 50).
    frames = [np.full((200, 200), k, np.uint8) for k in (1, 2, 3, 4)]
    # Frame 0 box pixels x 10..20, y 10..30; cut at (0, 0) to 30x50: inside, renormalized to the piece.
    pieces = [crop_at(frames[0], (BoxLabel("open", 0.05, 0.05, 0.1, 0.15),), None, (0, 0), (30, 50))]
    # Frame 1 box pixels x 60..80, y 20..40 in a 70x50 cut at (50, 0): box x 10..30, y 20..40 in the piece.
    pieces.append(crop_at(frames[1], (BoxLabel("short", 0.3, 0.1, 0.4, 0.2),), None, (50, 0), (70, 50)))
    # Frame 2 box x 0..40 across a 30x30 cut at (20, 0): x 20..40 stays (half of it), clipped.
    pieces.append(crop_at(frames[2], (BoxLabel("spur", 0.0, 0.0, 0.2, 0.1),), None, (20, 0), (30, 30)))
    pieces.append(crop_at(frames[3], (), None, (0, 0), (70, 30)))
    tiled = mosaic(pieces, (30, 50))
    assert tiled.image.shape == (80, 100)
    assert tiled.image[0, 0] == 1 and tiled.image[49, 30] == 2 and tiled.image[50, 29] == 3
    assert tiled.image[79, 99] == 4
    labels = [b.label for b in tiled.boxes]
    assert labels == ["open", "short", "spur"]
    # Canvas pixels: open x 10..20, y 10..30; short x 40..60, y 20..40; spur x 0..20, y 50..70.
    assert _coords(tiled.boxes[0]) == pytest.approx((0.1, 10 / 80, 0.2, 30 / 80))
    assert _coords(tiled.boxes[1]) == pytest.approx((0.4, 20 / 80, 0.6, 40 / 80))
    assert _coords(tiled.boxes[2]) == pytest.approx((0.0, 50 / 80, 0.2, 70 / 80))


def test_mosaic_tiles_masks_with_the_pixels() -> None:
    pieces = []
    for k, (w, h) in enumerate([(2, 3), (4, 3), (2, 1), (4, 1)]):
        pieces.append(Crop(np.full((h, w), k, np.float32), (), np.full((h, w), k, np.uint8)))
    tiled = mosaic(pieces, (2, 3))
    assert tiled.mask is not None
    np.testing.assert_array_equal(tiled.mask, tiled.image.astype(np.uint8))
    assert tiled.mask[3, 5] == 3 and tiled.mask[0, 2] == 1


def test_a_piece_of_the_wrong_size_is_refused() -> None:
    # Top row 2 + 2 wide, 3 high; the bottom-right piece is 3 wide where its region is 2.
    pieces = [Crop(np.zeros(shape), (), None) for shape in [(3, 2), (3, 2), (1, 2), (1, 3)]]
    with pytest.raises(ValueError, match="region"):
        mosaic(pieces, (2, 3))


def test_mosaic_centres_stay_in_the_middle_half() -> None:
    centres = [mosaic_centre((320, 160), np.random.default_rng([1, i])) for i in range(200)]
    assert all(80 <= x <= 240 and 40 <= y <= 120 for x, y in centres)


def test_a_cut_patch_keeps_a_margin_and_its_box() -> None:
    # 100x100 image, box pixels x 40..60, y 45..55 (longer side 20): margin 0.25 -> 5 px each side.
    image = np.arange(100 * 100, dtype=np.int64).reshape(100, 100)
    patch = cut_patch(image, BoxLabel("pin-hole", 0.4, 0.45, 0.6, 0.55), margin=0.25)
    assert patch.image.shape == (20, 30)
    np.testing.assert_array_equal(patch.image, image[40:60, 35:65])
    assert patch.box == pytest.approx((5.0, 5.0, 25.0, 15.0))
    # At the image edge the margin is what the image has.
    edge = cut_patch(image, BoxLabel("open", 0.0, 0.0, 0.1, 0.1), margin=0.5)
    assert edge.image.shape == (15, 15) and edge.box == pytest.approx((0.0, 0.0, 10.0, 10.0))


def test_a_pasted_patch_brings_its_box_to_where_it_lands() -> None:
    source = np.zeros((100, 100), np.uint8)
    source[45:55, 40:60] = 255
    patch = cut_patch(source, BoxLabel("copper", 0.4, 0.45, 0.6, 0.55), margin=0.25)
    host = np.full((50, 200), 7, np.uint8)
    kept = (BoxLabel("spur", 0.0, 0.0, 0.1, 0.2),)
    out, boxes = paste_patch(host, kept, patch, (150, 10))
    assert boxes[0] == kept[0]
    # Patch box pixels 5..25 x, 5..15 y at (150, 10) -> host pixels x 155..175, y 15..25.
    assert _coords(boxes[1]) == pytest.approx((155 / 200, 15 / 50, 175 / 200, 25 / 50))
    assert boxes[1].label == "copper"
    assert (out[15:25, 155:175] == 255).all() and out[14, 155] == 0 and out[0, 0] == 7
    assert host[15, 155] == 7  # the host is not written in place


def test_copy_paste_never_covers_a_box() -> None:
    host = np.zeros((64, 64), np.uint8)
    held = (BoxLabel("short", 0.0, 0.0, 0.5, 1.0),)  # the left half is taken
    donor = np.full((64, 64), 9, np.uint8)
    patch = cut_patch(donor, BoxLabel("spur", 0.0, 0.0, 0.125, 0.125), margin=0.0)  # 8x8
    for seed in range(20):
        out, boxes = copy_paste(host, held, [patch, patch], np.random.default_rng(seed))
        assert out[:, :32].max() == 0
        for box in boxes[1:]:
            assert box.x_min >= 0.5 and box.x_max - box.x_min == pytest.approx(0.125)
        # The second patch never covers the first one's box either.
        if len(boxes) == 3:
            a, b = boxes[1], boxes[2]
            assert a.x_max <= b.x_min or b.x_max <= a.x_min or a.y_max <= b.y_min or b.y_max <= a.y_min


def test_a_crop_around_an_instance_holds_it_whole() -> None:
    # 640x640 image, box pixels x 100..140, y 600..630; 320 crops: x0 in 0..100, y0 in 310..320.
    box = BoxLabel("short", 100 / 640, 600 / 640, 140 / 640, 630 / 640)
    origins = [
        origin_containing(box, (640, 640), (320, 320), np.random.default_rng([2, i])) for i in range(300)
    ]
    assert all(0 <= x <= 100 and 310 <= y <= 320 for x, y in origins)
    assert min(x for x, _ in origins) == 0 and max(x for x, _ in origins) == 100
    # A box longer than the crop: the crop lies inside it (x 0..500 in 320 crops: x0 in 0..180).
    long_box = BoxLabel("scratch", 0.0, 0.5, 500 / 640, 0.6)
    xs = [
        origin_containing(long_box, (640, 640), (320, 320), np.random.default_rng(i))[0] for i in range(200)
    ]
    assert all(0 <= x <= 180 for x in xs)


def test_class_probabilities_move_from_instance_shares_to_uniform() -> None:
    # Counts 1, 3, 0, 4: natural shares 1/8, 3/8, 0, 4/8; uniform over the three that occur.
    assert class_probabilities([1, 3, 0, 4], 0.0) == pytest.approx([0.125, 0.375, 0.0, 0.5])
    assert class_probabilities([1, 3, 0, 4], 1.0) == pytest.approx([1 / 3, 1 / 3, 0.0, 1 / 3])
    # Half strength: sqrt counts 1, sqrt 3, 0, 2 over 3 + sqrt 3.
    total = 3 + np.sqrt(3)
    assert class_probabilities([1, 3, 0, 4], 0.5) == pytest.approx(
        [1 / total, np.sqrt(3) / total, 0.0, 2 / total]
    )
    with pytest.raises(ValueError):
        class_probabilities([1], 1.5)


def test_instance_probabilities_share_a_class_among_its_instances() -> None:
    # a: 1 instance, b: 3; balanced: each class 1/2 -> a's instance 1/2, each b 1/6; unknown "z" 0.
    probs = instance_probabilities(["b", "a", "b", "z", "b"], ["a", "b"], 1.0)
    assert probs == pytest.approx([1 / 6, 1 / 2, 1 / 6, 0.0, 1 / 6])


def test_the_balanced_sampler_draws_classes_alike_and_keeps_the_negatives_share() -> None:
    box = {c: BoxLabel(c, 0.1, 0.1, 0.2, 0.2) for c in "ab"}
    # Image 0: three a; image 1: one b; images 2 and 3: no box (half the images are negatives).
    images = [(box["a"], box["a"], box["a"]), (box["b"],), (), ()]
    sampler = BalancedSampler.build(images, ["a", "b"], strength=1.0)
    assert sampler.negative_share == 0.5
    assert sampler.class_shares(images, ["a", "b"]) == pytest.approx({"a": 0.5, "b": 0.5})
    rng = np.random.default_rng(0)
    draws = [sampler.draw(rng) for _ in range(4000)]
    negatives = sum(focus is None for _, focus in draws)
    b_draws = sum(i == 1 for i, _ in draws)
    assert negatives / 4000 == pytest.approx(0.5, abs=0.03)
    assert b_draws / 4000 == pytest.approx(0.25, abs=0.03)
    assert all(i in (2, 3) for i, focus in draws if focus is None)
    assert {focus for i, focus in draws if i == 0} == {0, 1, 2}


def test_the_mixed_pipeline_builds_every_example_around_an_instance() -> None:
    # Two 128x128 grey frames, each with one 8x8 bright square (its box); 64x64 crops, no augmentation:
    # with balanced sampling every crop holds its drawn instance, so every target has positives, and a
    # mosaic's positives all sit on the bright pixels.
    from vision.nets.assigner import level_points
    from vision.preprocess import PreprocessSpec
    from vision.train_config import TrainConfig
    from vision.training_data import Prepared, training_pipeline

    pixels = np.zeros((2, 128, 128, 1), np.uint8)
    pixels[0, 16:24, 100:108] = 255
    pixels[1, 96:104, 8:16] = 255
    boxes = (
        (BoxLabel("a", 100 / 128, 16 / 128, 108 / 128, 24 / 128),),
        (BoxLabel("b", 8 / 128, 0.75, 16 / 128, 104 / 128),),
    )
    data = Prepared(pixels=pixels, labels=("a", "b"), boxes=boxes, masks=None)
    common = dict(
        input_width=128, input_height=128, channels=1, batch_size=8, detector_head="fcos", augment=False
    )
    spec = PreprocessSpec.for_input(64, 64, 1)
    points = level_points(64, 64)
    for mixing in (dict(balance=1.0), dict(balance=1.0, mosaic=1.0, copy_paste=1)):
        config = TrainConfig(task="detect", crop=(64, 64), **common, **mixing)  # type: ignore[arg-type]
        x, y = next(iter(training_pipeline(data, ("a", "b"), spec, config)))
        x, y = x.numpy(), y.numpy()
        assert x.shape == (8, 64, 64, 1) and y.shape == (8, len(points.xy), 6)
        for image, target in zip(x, y, strict=True):
            positive = target[:, :2].max(axis=1) > 0
            assert positive.any()
            # Each positive's assigned box (input fractions) covers bright pixels of the example.
            for x0, y0, x1, y1 in np.round(target[positive, 2:] * 64).astype(int):
                assert image[y0:y1, x0:x1].max() > image.min()
