"""Dataset loaders on tiny datasets written into tmp_path: every format, grey and colour, odd sizes, and the
one-line errors a user sees for a wrong path, format or file."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from schemas.errors import ConfigurationError
from schemas.vocabulary import Task
from vision.datasets import DatasetFormat, guess_format, load_dataset
from vision.datasets.coco import decode_compressed_rle, load_coco_dataset, rle_to_mask
from vision.datasets.images import ImageReadError, read_image
from vision.datasets.labels import IssueLog
from vision.datasets.voc import load_voc_dataset


def write_image(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def grey(height: int, width: int, value: int = 128) -> np.ndarray:
    return np.full((height, width), value, dtype=np.uint8)


def colour(height: int, width: int) -> np.ndarray:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[..., 2] = 200  # red in BGR
    return image


def voc_xml(filename: str, width: int, height: int, objects: list[tuple[str, int, int, int, int]]) -> str:
    parts = [
        f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for name, x0, y0, x1, y1 in objects
    ]
    return (
        f"<annotation><filename>{filename}</filename><size><width>{width}</width><height>{height}</height>"
        f"<depth>3</depth></size>{''.join(parts)}</annotation>"
    )


# ---------------------------------------------------------------- folder per class


def test_folder_dataset_reads_grey_and_colour_images_of_any_size_lazily(tmp_path: Path) -> None:
    write_image(tmp_path / "scratch" / "a.png", colour(30, 41))
    write_image(tmp_path / "good" / "b.png", grey(17, 23))
    write_image(tmp_path / "good" / "c.jpg", colour(64, 48))
    write_image(tmp_path / "dent" / "d.bmp", grey(8, 8))
    (tmp_path / "good" / "notes.txt").write_text("not an image")

    dataset = load_dataset(tmp_path, "classify", "folder")

    assert dataset.task is Task.CLASSIFICATION
    assert dataset.classes == ("good", "dent", "scratch")  # good first, the rest sorted
    assert sorted(s.key for s in dataset.samples) == [
        "dent/d.bmp",
        "good/b.png",
        "good/c.jpg",
        "scratch/a.png",
    ]
    by_key = {s.key: s for s in dataset.samples}
    assert by_key["good/b.png"].label == "good"
    assert by_key["good/b.png"].load_image().shape == (17, 23)
    red = by_key["scratch/a.png"].load_image()
    assert red.shape == (30, 41, 3) and red.dtype == np.uint8
    assert tuple(red[0, 0]) == (0, 0, 200)  # BGR order


def test_sixteen_bit_and_alpha_images_arrive_as_uint8(tmp_path: Path) -> None:
    deep = np.full((5, 6), 0x8000, dtype=np.uint16)
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 10
    rgba[..., 3] = 255
    deep_image = read_image(write_image(tmp_path / "deep.png", deep))
    alpha_image = read_image(write_image(tmp_path / "alpha.png", rgba))
    assert deep_image.dtype == np.uint8 and int(deep_image[0, 0]) == 0x80
    assert alpha_image.shape == (4, 4, 3) and int(alpha_image[0, 0, 0]) == 10


def test_corrupt_image_fails_when_loaded_naming_the_file(tmp_path: Path) -> None:
    write_image(tmp_path / "good" / "ok.png", grey(4, 4))
    (tmp_path / "good" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    dataset = load_dataset(tmp_path, Task.CLASSIFICATION, DatasetFormat.folder)
    broken = next(s for s in dataset.samples if s.key.endswith("broken.png"))
    with pytest.raises(ImageReadError, match=r"broken\.png"):
        broken.load_image()


@pytest.mark.parametrize(
    ("layout", "task", "fmt", "message"),
    [
        ("missing", "classify", "folder", "does not exist"),
        ("empty", "classify", "folder", "no class folders"),
        ("empty-classes", "classify", "folder", "no images"),
        ("empty", "classify", "parquet", "unknown dataset format 'parquet'"),
        ("empty", "cluster", "folder", "unknown task 'cluster'"),
        ("empty", "segment", "voc", "cannot serve task 'segment'"),
        ("empty", "detect", "voc", "no VOC annotation files"),
        ("empty", "detect", "coco", "no COCO annotation file"),
        ("empty", "segment", "masks", "images"),
        ("empty", "anomaly", "goodonly", "not a good-only dataset"),
    ],
)
def test_user_mistakes_are_one_clear_configuration_error(
    tmp_path: Path, layout: str, task: str, fmt: str, message: str
) -> None:
    root = tmp_path / "data"
    if layout != "missing":
        root.mkdir()
    if layout == "empty-classes":
        (root / "good").mkdir()
    with pytest.raises(ConfigurationError, match=message):
        load_dataset(root, task, fmt)


# ---------------------------------------------------------------- Pascal VOC


def test_voc_boxes_are_normalized_from_one_based_pixels(tmp_path: Path) -> None:
    write_image(tmp_path / "JPEGImages" / "p1.jpg", colour(50, 100))
    write_image(tmp_path / "JPEGImages" / "p2.png", grey(50, 100))
    ann = tmp_path / "Annotations"
    ann.mkdir()
    # x: (11 - 1) / 100 = 0.1 .. 50 / 100 = 0.5; y: (6 - 1) / 50 = 0.1 .. 25 / 50 = 0.5
    (ann / "p1.xml").write_text(
        voc_xml(
            "p1.jpg", 100, 50, [("scratch", 11, 6, 50, 25), ("dent", 1, 1, 100, 50), ("scratch", 1, 1, 2, 2)]
        )
    )
    (ann / "p2.xml").write_text(voc_xml("p2.png", 100, 50, []))

    dataset = load_dataset(tmp_path, "detect", None)

    assert dataset.classes == ("dent", "scratch")
    p1, p2 = sorted(dataset.samples, key=lambda s: s.key)
    assert p1.label == "scratch"  # two scratches beat one dent
    assert p2.label == "good" and p2.boxes == ()
    first, whole = p1.boxes[0], p1.boxes[1]
    assert (first.label, first.x_min, first.y_min, first.x_max, first.y_max) == pytest.approx(
        ("scratch", 0.1, 0.1, 0.5, 0.5)
    )
    assert (whole.x_min, whole.y_min, whole.x_max, whole.y_max) == (0.0, 0.0, 1.0, 1.0)
    assert p1.load_image().shape == (50, 100, 3)


def test_voc_box_outside_image_is_clipped_and_reported(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", grey(10, 10))
    (tmp_path / "a.xml").write_text(
        voc_xml("a.png", 10, 10, [("spot", 6, 6, 15, 10), ("spot", 20, 20, 30, 30), ("blob", 1, 1, 2, 2)])
    )
    (tmp_path / "classes.txt").write_text("spot\n")
    issues = IssueLog()
    dataset = load_voc_dataset(tmp_path, issues=issues)
    (sample,) = dataset.samples
    assert [(b.x_min, b.y_min, b.x_max, b.y_max) for b in sample.boxes] == [(0.5, 0.5, 1.0, 1.0)]
    assert sorted(i.kind for i in issues.issues) == [
        "box_outside_image",
        "box_outside_image",
        "degenerate_box",
        "unknown_class",
    ]


def test_voc_unreadable_annotation_names_the_file(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", grey(10, 10))
    (tmp_path / "a.xml").write_text("<annotation><object>")
    with pytest.raises(ConfigurationError, match=r"cannot read annotation file .*a\.xml"):
        load_dataset(tmp_path, "detect", "voc")


# ---------------------------------------------------------------- COCO


def coco_document() -> dict:
    return {
        "images": [
            {"id": 1, "file_name": "one.png", "width": 20, "height": 10},
            {"id": 2, "file_name": "two.png", "width": 20, "height": 10},
        ],
        "categories": [{"id": 7, "name": "stain"}, {"id": 3, "name": "crack"}],
        "annotations": [
            # A 4x4 square polygon at x 2..6, y 2..6 (fillPoly fills the boundary pixels too: 5x5 = 25 px).
            {
                "id": 1,
                "image_id": 1,
                "category_id": 7,
                "bbox": [2, 2, 4, 4],
                "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]],
            },
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [10, 0, 10, 10], "segmentation": []},
        ],
    }


def test_coco_boxes_and_polygon_masks(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "one.png", colour(10, 20))
    write_image(tmp_path / "images" / "two.png", grey(10, 20))
    (tmp_path / "instances.json").write_text(json.dumps(coco_document()))

    dataset = load_dataset(tmp_path, "segment", "coco")

    assert dataset.classes == ("crack", "stain")  # ordered by category id: 3, then 7
    one, two = sorted(dataset.samples, key=lambda s: s.key)
    assert one.label in {"crack", "stain"} and two.label == "good"
    stain, crack = one.boxes
    assert (stain.label, stain.x_min, stain.y_min, stain.x_max, stain.y_max) == ("stain", 0.1, 0.2, 0.3, 0.6)
    assert (crack.x_min, crack.x_max, crack.y_min, crack.y_max) == (0.5, 1.0, 0.0, 1.0)
    assert one.load_mask is not None
    mask = one.load_mask()
    assert mask.shape == (10, 20)
    assert int((mask == 2).sum()) == 25 and int(mask[4, 4]) == 2 and int(mask[0, 0]) == 0
    assert int((mask == 1).sum()) == 0  # the crack has a box but no polygon
    assert two.load_mask is not None and int(two.load_mask().sum()) == 0


def test_coco_file_path_and_unreadable_json(tmp_path: Path) -> None:
    write_image(tmp_path / "one.png", grey(10, 20))
    write_image(tmp_path / "two.png", grey(10, 20))
    (tmp_path / "a.json").write_text(json.dumps(coco_document()))
    assert len(load_dataset(tmp_path / "a.json", "detect", "coco")) == 2
    assert guess_format(tmp_path / "a.json", Task.DETECTION) is DatasetFormat.coco
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigurationError, match=r"cannot read annotation file .*bad\.json"):
        load_dataset(tmp_path / "bad.json", "detect", "coco")
    with pytest.raises(ConfigurationError, match="several JSON files"):
        load_dataset(tmp_path, "detect", "coco")


def encode_compressed_rle(runs: list[int]) -> str:
    """pycocotools' rleToString, to check the decoder against the encoder it inverts."""
    chars = []
    for i, run in enumerate(runs):
        value = run - runs[i - 2] if i > 2 else run
        more = True
        while more:
            chunk = value & 0x1F
            value >>= 5
            more = value != -1 if chunk & 0x10 else value != 0
            chars.append(chr(chunk + (0x20 if more else 0) + 48))
    return "".join(chars)


def test_compressed_rle_round_trip_and_column_major_order() -> None:
    runs = [3, 2, 40, 1000, 7, 5, 1, 0, 123456]
    assert decode_compressed_rle(encode_compressed_rle(runs)) == runs
    # 3x2 image, column-major: pixels (0,0),(1,0),(2,0),(0,1),(1,1),(2,1); runs 1 bg, 2 fg, 3 bg.
    mask = rle_to_mask({"counts": [1, 2, 3], "size": [3, 2]}, height=3, width=2)
    assert mask.tolist() == [[0, 0], [1, 0], [1, 0]]


def test_coco_unknown_category_is_reported(tmp_path: Path) -> None:
    document = coco_document()
    document["annotations"].append({"id": 3, "image_id": 2, "category_id": 99, "bbox": [0, 0, 1, 1]})
    write_image(tmp_path / "one.png", grey(10, 20))
    write_image(tmp_path / "two.png", grey(10, 20))
    (tmp_path / "a.json").write_text(json.dumps(document))
    issues = IssueLog()
    load_coco_dataset(tmp_path, issues=issues)
    assert {i.kind for i in issues.issues} == {"unknown_class", "empty_annotation"}


# ---------------------------------------------------------------- masks and good-only


def test_binary_mask_folders(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.png", colour(6, 8))
    write_image(tmp_path / "images" / "b.jpg", grey(6, 8))
    write_image(tmp_path / "images" / "c.png", grey(6, 8))
    mask = np.zeros((6, 8), dtype=np.uint8)
    mask[1:3, 2:5] = 255
    write_image(tmp_path / "masks" / "a.png", mask)
    write_image(tmp_path / "masks" / "b_mask.png", np.zeros((6, 8), dtype=np.uint8))

    dataset = load_dataset(tmp_path, "segment", None)

    assert dataset.classes == ("defect",)
    by_key = {s.key: s for s in dataset.samples}
    assert [by_key[k].label for k in ("a.png", "b.jpg", "c.png")] == ["defect", "good", "good"]
    load_a, load_c = by_key["a.png"].load_mask, by_key["c.png"].load_mask
    assert load_a is not None and load_c is not None
    loaded = load_a()
    assert loaded.dtype == np.uint8 and int(loaded.sum()) == 6 and int(loaded.max()) == 1
    assert load_c().shape == (6, 8)  # no mask file: all background


def test_multi_class_masks_with_class_list(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("# defect classes\nscratch\ncrack\n")
    write_image(tmp_path / "images" / "a.png", grey(6, 8))
    mask = np.zeros((6, 8), dtype=np.uint8)
    mask[0, :3] = 1
    mask[1:, :] = 2
    write_image(tmp_path / "masks" / "a.png", mask)
    dataset = load_dataset(tmp_path, "segment", "masks")
    assert dataset.classes == ("scratch", "crack")
    (sample,) = dataset.samples
    assert sample.label == "crack"  # 40 crack pixels beat 3 scratch pixels
    assert sample.load_mask is not None and int(sample.load_mask().max()) == 2
    as_classes = load_dataset(tmp_path, "classify", "masks")
    assert as_classes.classes == ("good", "crack", "scratch")


def test_good_only_layouts(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    write_image(flat / "1.png", grey(5, 5))
    write_image(flat / "2.png", colour(7, 9))
    flat_set = load_dataset(flat, "anomaly", None)
    assert flat_set.classes == ("good",) and {s.label for s in flat_set.samples} == {"good"}

    mvtec = tmp_path / "mvtec"
    write_image(mvtec / "good" / "g.png", grey(5, 5))
    write_image(mvtec / "scratch" / "s.png", grey(5, 5))
    gt = np.zeros((5, 5), dtype=np.uint8)
    gt[2, 2] = 255
    write_image(mvtec / "ground_truth" / "scratch" / "s_mask.png", gt)
    dataset = load_dataset(mvtec, "anomaly", "goodonly")
    assert dataset.classes == ("good", "scratch")
    scratch = next(s for s in dataset.samples if s.label == "scratch")
    assert scratch.load_mask is not None and scratch.load_mask().tolist()[2][2] == 1
    from vision.datasets.goodonly import good_samples

    assert [s.key for s in good_samples(dataset).samples] == ["good/g.png"]
