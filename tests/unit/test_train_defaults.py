"""The recipe `lineguard train` chooses from the data (vision.train_defaults), on hand-computed sizes."""

from __future__ import annotations

import numpy as np

from schemas.vocabulary import Task
from vision.samples import LabeledDataset, Sample
from vision.train_defaults import choose_recipe, choose_schedule, fitted_size, sample_shapes

SPINDLE = (460, 1130, 3)  # a 1130x460 colour photograph (HxWxC)
PCB = (640, 640)  # a 640x640 grey scan


def test_fitted_size_shrinks_to_the_cap_keeps_the_aspect_and_never_enlarges() -> None:
    # 1130x460 to a 320 cap: x 0.283 -> 320 x 130.3, rounded to multiples of 16 -> 320 x 128.
    assert fitted_size(1130, 460, 320, 16) == (320, 128)
    assert fitted_size(640, 640, 640, 32) == (640, 640)
    # 200x100 is under the cap: kept, only rounded to the multiple (6.25 -> 6, 3.125 -> 3 times 32).
    assert fitted_size(200, 100, 640, 32) == (192, 96)
    assert fitted_size(20, 10, 640, 32) == (32, 32)  # at least one multiple


def test_anomaly_on_photographs_gets_the_aspect_kept_colour_input_without_crops() -> None:
    recipe = choose_recipe(Task.ANOMALY, [SPINDLE] * 3)

    assert (recipe.input_size, recipe.channels, recipe.crop) == ((320, 128), 3, None)
    assert recipe.notes[0].startswith("input 320x128 (images 1130x460")
    assert "channels 3 (colour images)" in recipe.notes


def test_detection_on_grey_scans_gets_fcos_grey_full_size_and_crops() -> None:
    recipe = choose_recipe(Task.DETECTION, [PCB, PCB])

    assert (recipe.input_size, recipe.channels, recipe.detector_head, recipe.crop) == (
        (640, 640),
        1,
        "fcos",
        (320, 320),
    )
    assert "crops 320x320 (served whole at 640x640)" in recipe.notes


def test_what_the_user_gives_wins_and_a_given_input_gets_no_automatic_crop() -> None:
    recipe = choose_recipe(
        Task.SEGMENTATION, [PCB], input_size=(480, 480), channels=3, detector_head=None, crop=None
    )

    assert (recipe.input_size, recipe.channels, recipe.crop) == ((480, 480), 3, None)
    assert recipe.notes == ["input 480x480 (given)", "channels 3 (given)"]
    given_crop = choose_recipe(Task.DETECTION, [PCB], crop=(256, 256), detector_head="centernet")
    assert given_crop.crop == (256, 256) and given_crop.detector_head == "centernet"


def test_classification_and_generated_data_keep_the_fixed_default_input() -> None:
    assert choose_recipe(Task.CLASSIFICATION, [SPINDLE]).input_size == (160, 160)
    generated = choose_recipe(Task.DETECTION, [])
    assert (generated.input_size, generated.channels, generated.crop) == ((160, 160), 3, None)


def test_sample_shapes_reads_colour_with_equal_channels_as_grey() -> None:
    grey_in_colour = np.repeat(np.arange(12, dtype=np.uint8).reshape(3, 4, 1), 3, axis=2)
    colour = grey_in_colour.copy()
    colour[0, 0, 2] = 99
    dataset = LabeledDataset(
        task=Task.CLASSIFICATION,
        classes=("good",),
        samples=(Sample("a", lambda: grey_in_colour, "good"), Sample("b", lambda: colour, "good")),
    )

    assert sample_shapes(dataset) == [(3, 4), (3, 4, 3)]
    assert choose_recipe(Task.ANOMALY, sample_shapes(dataset)).channels == 3  # one colour image: colour


def test_segmentation_of_real_photographs_gets_full_detail_crops_and_its_own_schedule() -> None:
    # 1130x460 to the 640 cap: x 0.566 -> 640 x 260.5 -> 640 x 256 (multiples of 16); 320 px crops, the
    # height (256) already under the crop side.
    recipe = choose_recipe(Task.SEGMENTATION, [SPINDLE] * 4)
    assert (recipe.input_size, recipe.channels, recipe.crop) == ((640, 256), 3, (320, 256))
    assert "crops 320x256 (served whole at 640x256)" in recipe.notes

    schedule = choose_schedule(Task.SEGMENTATION, [SPINDLE] * 4)
    assert (schedule.epochs, schedule.batch_size, schedule.patience, schedule.max_minutes) == (
        100,
        8,
        20,
        25.0,
    )
    assert schedule.notes == ["batch 8 (segmentation of real images)"]


def test_other_tasks_and_generated_data_keep_the_general_schedule_and_given_values_win() -> None:
    general = (20, 32, 5, None)
    for task, shapes in ((Task.DETECTION, [PCB]), (Task.ANOMALY, [SPINDLE]), (Task.SEGMENTATION, [])):
        schedule = choose_schedule(task, shapes)
        assert (schedule.epochs, schedule.batch_size, schedule.patience, schedule.max_minutes) == general
        assert schedule.notes == ["batch 32"]
    given = choose_schedule(Task.SEGMENTATION, [SPINDLE], epochs=3, batch_size=4, patience=2, max_minutes=1.5)
    assert (given.epochs, given.batch_size, given.patience, given.max_minutes) == (3, 4, 2, 1.5)
    assert given.notes == ["batch 4 (given)"]
