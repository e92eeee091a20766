"""Metrics on hand-made cases whose answers are worked out by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vision.metrics import (
    COCO_IOU_THRESHOLDS,
    ScoredBox,
    accuracy,
    all_point_average_precision,
    auroc,
    average_precision,
    box_iou,
    classification_metrics,
    confusion_matrix,
    detection_metrics,
    false_reject_threshold,
    mask_dice,
    mask_iou,
    max_f1_threshold,
    precision_recall_curve,
    roc_curve,
    segmentation_metrics,
)
from vision.samples import BoxLabel


def gt(label: str, x0: float, y0: float, x1: float, y1: float) -> BoxLabel:
    return BoxLabel(label, x0, y0, x1, y1)


def pred(label: str, score: float, x0: float, y0: float, x1: float, y1: float) -> ScoredBox:
    return ScoredBox(label, score, x0, y0, x1, y1)


# ------------------------------------------------------------------------------------------ classification


def test_classification_by_hand() -> None:
    # true [good, good, good, scratch, scratch, dent], predicted [good, good, scratch, scratch, dent, dent]
    # confusion (rows true): good [2, 1, 0], scratch [0, 1, 1], dent [0, 0, 1]; 4 of 6 right.
    # good:    P = 2/2 = 1,   R = 2/3, F1 = 2 * 1 * 2/3 / (5/3) = 0.8
    # scratch: P = 1/2,       R = 1/2, F1 = 0.5
    # dent:    P = 1/2,       R = 1/1, F1 = 2 * 0.5 / 1.5 = 2/3
    true, predicted = [0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2]
    result = classification_metrics(true, predicted, ["good", "scratch", "dent"])
    assert result["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert result["accuracy"] == pytest.approx(4 / 6)
    good, scratch, dent = (result["per_class"][c] for c in ("good", "scratch", "dent"))
    assert (good["precision"], good["recall"], good["f1"], good["support"]) == pytest.approx(
        (1.0, 2 / 3, 0.8, 3)
    )
    assert (scratch["precision"], scratch["recall"], scratch["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert (dent["precision"], dent["recall"], dent["f1"]) == pytest.approx((0.5, 1.0, 2 / 3))
    assert result["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_class_never_predicted_scores_zero_not_nan() -> None:
    matrix = confusion_matrix([0, 1], [0, 0], 3)
    assert matrix.tolist() == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]
    result = classification_metrics([0, 1], [0, 0], ["good", "a", "b"])
    assert result["per_class"]["a"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # Macro averages skip classes without support ("b"): good F1 = 2 * 0.5 * 1 / 1.5 = 2/3, a F1 = 0.
    assert result["macro_f1"] == pytest.approx(1 / 3)
    assert accuracy([0, 1], [0, 0]) == 0.5


# ------------------------------------------------------------------------------------------ detection


def test_iou_by_hand() -> None:
    # Overlap x 0.25..0.5, y 0..0.5: 0.125; areas 0.25 each; union 0.375.
    assert box_iou(gt("a", 0, 0, 0.5, 0.5), gt("a", 0.25, 0, 0.75, 0.5)) == pytest.approx(1 / 3)
    assert box_iou(gt("a", 0, 0, 0.1, 0.1), gt("a", 0.5, 0.5, 1, 1)) == 0.0


def test_two_ground_truths_three_predictions_ap_is_five_sixths() -> None:
    # GT: top-left and bottom-right quarter. Ranked predictions: 0.9 = top-left (TP), 0.8 = bottom-left
    # (no overlap, FP), 0.7 = bottom-right (TP).
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1. Envelope: 1 up to recall 1/2, then 2/3.
    # AP = 0.5 * 1 + 0.5 * 2/3 = 5/6.
    truth = [[gt("a", 0, 0, 0.5, 0.5), gt("a", 0.5, 0.5, 1, 1)]]
    predictions = [
        [pred("a", 0.7, 0.5, 0.5, 1, 1), pred("a", 0.9, 0, 0, 0.5, 0.5), pred("a", 0.8, 0, 0.5, 0.5, 1)]
    ]
    curve = precision_recall_curve(truth, predictions, "a", 0.5)
    assert curve.precision.tolist() == pytest.approx([1, 0.5, 2 / 3])
    assert curve.recall.tolist() == pytest.approx([0.5, 0.5, 1])
    assert curve.scores.tolist() == [0.9, 0.8, 0.7]
    assert average_precision(truth, predictions, "a", 0.5) == pytest.approx(5 / 6)
    # Every true positive has IoU 1, so each of the ten COCO thresholds gives 5/6 too.
    result = detection_metrics(truth, predictions)
    assert result["map50"] == pytest.approx(5 / 6) and result["map50_95"] == pytest.approx(5 / 6)


def test_interpolation_uses_the_precision_envelope() -> None:
    # Ranked FP, TP, TP over 2 GT: precision 0, 1/2, 2/3 at recall 0, 1/2, 1.
    # Envelope at recall 1/2 is max(1/2, 2/3) = 2/3, so AP = 0.5 * 2/3 + 0.5 * 2/3 = 2/3
    # (without interpolation it would be 0.5 * 1/2 + 0.5 * 2/3 = 7/12).
    assert all_point_average_precision(np.array([0, 0.5, 1]), np.array([0, 0.5, 2 / 3])) == pytest.approx(
        2 / 3
    )
    truth = [[gt("a", 0, 0, 0.5, 0.5)], [gt("a", 0, 0, 0.5, 0.5)]]
    predictions = [
        [pred("a", 0.9, 0.6, 0.6, 1, 1), pred("a", 0.8, 0, 0, 0.5, 0.5)],
        [pred("a", 0.7, 0, 0, 0.5, 0.5)],
    ]
    assert average_precision(truth, predictions, "a") == pytest.approx(2 / 3)


def test_map_50_95_counts_the_thresholds_a_match_survives() -> None:
    # GT 0.5 x 1.0, prediction 0.39 x 1.0 inside it: IoU = 0.39 / 0.5 = 0.78.
    # It is a hit at 0.50, 0.55, ..., 0.75 (6 thresholds, AP 1) and a miss at 0.80 ... 0.95 (4, AP 0).
    # mAP@0.5:0.95 = 6/10 = 0.6; AP@0.75 = 1.
    truth = [[gt("crack", 0, 0, 0.5, 1)]]
    predictions = [[pred("crack", 0.5, 0, 0, 0.39, 1)]]
    assert len(COCO_IOU_THRESHOLDS) == 10
    result = detection_metrics(truth, predictions)
    assert result["map50"] == 1.0
    assert result["map50_95"] == pytest.approx(0.6)
    assert result["per_class"]["crack"]["ap75"] == 1.0


def test_duplicates_missing_classes_and_classes_without_ground_truth() -> None:
    # Image 1: GT a. Image 2: GT a and GT b.
    # Class a ranked: 0.9 on image 1 (TP), 0.6 duplicate on image 1 (FP: that GT is taken),
    # 0.3 on image 2 (TP)
    # -> AP 5/6 as in the first case. Class b: ground truth but no prediction -> AP 0.
    # Class c: a prediction but no ground truth -> not averaged. mAP@0.5 = (5/6 + 0) / 2 = 5/12.
    truth = [[gt("a", 0, 0, 0.2, 0.2)], [gt("a", 0.5, 0.5, 0.7, 0.7), gt("b", 0, 0, 0.5, 0.5)]]
    predictions = [
        [pred("a", 0.6, 0, 0, 0.2, 0.2), pred("a", 0.9, 0, 0, 0.2, 0.2)],
        [pred("a", 0.3, 0.5, 0.5, 0.7, 0.7), pred("c", 0.99, 0, 0, 1, 1)],
    ]
    result = detection_metrics(truth, predictions, classes=["a", "b", "c"])
    assert result["per_class"]["a"]["ap50"] == pytest.approx(5 / 6)
    assert result["per_class"]["b"]["ap50"] == 0.0
    assert "c" not in result["per_class"] and result["classes_without_ground_truth"] == ["c"]
    assert result["map50"] == pytest.approx(5 / 12)


def test_prediction_matches_the_best_overlapping_unmatched_box() -> None:
    # GT A = x 0..0.4, GT B = x 0.2..0.6 (both full height 0.4). P1 (0.9) at x 0.15..0.55 overlaps A with
    # IoU 0.1/0.22 = 0.45 and B with 0.14/0.18 = 0.78: it takes B. P2 (0.8) = A exactly: TP. AP = 1.
    # Matching P1 to the first GT in the list instead would leave B unmatched and give AP 0.5.
    truth = [[gt("a", 0, 0, 0.4, 0.4), gt("a", 0.2, 0, 0.6, 0.4)]]
    predictions = [[pred("a", 0.9, 0.15, 0, 0.55, 0.4), pred("a", 0.8, 0, 0, 0.4, 0.4)]]
    assert average_precision(truth, predictions, "a", 0.4) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------ segmentation


def test_binary_mask_iou_and_dice_by_hand() -> None:
    # 4x4: prediction = left half (8 px), truth = top half (8 px); overlap = top-left 2x2 = 4 px.
    # IoU = 4 / 12 = 1/3, Dice = 2 * 4 / 16 = 1/2.
    predicted = np.zeros((4, 4), np.uint8)
    predicted[:, :2] = 1
    truth = np.zeros((4, 4), np.uint8)
    truth[:2, :] = 1
    assert mask_iou(predicted, truth) == pytest.approx(1 / 3)
    assert mask_dice(predicted, truth) == pytest.approx(0.5)
    assert mask_iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0


def test_multi_class_segmentation_by_hand() -> None:
    # truth [[a, a], [b, 0]], predicted [[a, b], [b, b]].
    # a: overlap 1, predicted 1, true 2 -> IoU 1/2, Dice 2/3.
    # b: overlap 1, predicted 3, true 1 -> IoU 1/3, Dice 1/2.
    # Defect vs background: true 3 px, predicted 4 px, overlap 3 -> IoU 3/4, Dice 6/7.
    truth = [np.array([[1, 1], [2, 0]], np.uint8)]
    predicted = [np.array([[1, 2], [2, 2]], np.uint8)]
    result = segmentation_metrics(predicted, truth, ["a", "b", "unused"])
    assert result["per_class"]["a"]["iou"] == pytest.approx(0.5)
    assert result["per_class"]["a"]["dice"] == pytest.approx(2 / 3)
    assert result["per_class"]["b"]["iou"] == pytest.approx(1 / 3)
    assert result["per_class"]["b"]["dice"] == pytest.approx(0.5)
    assert "unused" not in result["per_class"]
    assert result["mean_iou"] == pytest.approx(5 / 12)
    assert (result["defect_iou"], result["defect_dice"]) == pytest.approx((0.75, 6 / 7))


def test_segmentation_accumulates_over_images() -> None:
    # Image 1: perfect 1-pixel defect. Image 2: a 3-pixel defect missed entirely.
    # Dataset IoU = 1 / (1 + 3) = 1/4 (a mean of per-image IoUs would say 1/2).
    truth = [np.array([[1, 0]], np.uint8), np.array([[1, 1, 1]], np.uint8)]
    predicted = [np.array([[1, 0]], np.uint8), np.array([[0, 0, 0]], np.uint8)]
    assert segmentation_metrics(predicted, truth, ["d"])["per_class"]["d"]["iou"] == pytest.approx(0.25)


# ------------------------------------------------------------------------------------------ anomaly


def test_auroc_by_hand_with_and_without_ties() -> None:
    # Positives 0.35, 0.8; negatives 0.1, 0.4. Pairs won by the positive: (0.35>0.1), (0.8>0.1), (0.8>0.4)
    # = 3 of 4 -> 0.75.
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # Positives 0.5, 0.9; negatives 0.5, 0.2. Pairs: 0.5 vs 0.5 tie = 1/2, the other three won -> 3.5 / 4.
    assert auroc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1]) == pytest.approx(0.875)
    assert auroc([1, 1, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="both"):
        auroc([0.1, 0.2], [1, 1])


def test_roc_curve_by_hand() -> None:
    # Thresholds 0.8, 0.4, 0.35, 0.1: flagged positives 1, 1, 2, 2 of 2; flagged negatives 0, 1, 1, 2 of 2.
    curve = roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    assert curve.false_positive_rate.tolist() == [0, 0, 0.5, 0.5, 1]
    assert curve.true_positive_rate.tolist() == [0, 0.5, 0.5, 1, 1]
    area = float(
        np.sum(
            np.diff(curve.false_positive_rate)
            * (curve.true_positive_rate[1:] + curve.true_positive_rate[:-1])
            / 2
        )
    )
    assert area == pytest.approx(0.75)


def test_max_f1_threshold_by_hand() -> None:
    # Flag score >= t. t=0.8: P 1, R 1/2, F1 2/3. t=0.4: P 1/2, R 1/2, F1 1/2.
    # t=0.35: P 2/3, R 1, F1 0.8 (best). t=0.1: P 1/2, R 1, F1 2/3. At 0.35 one of two good parts is rejected.
    # With margin: halfway between 0.35 (lowest flagged) and 0.1 (highest not flagged) = 0.225.
    best = max_f1_threshold([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    assert best.threshold == pytest.approx(0.225)
    assert (best.precision, best.recall, best.f1, best.false_reject_rate) == pytest.approx(
        (2 / 3, 1, 0.8, 0.5)
    )


def test_false_reject_threshold_by_hand() -> None:
    # Good 0.1, 0.2, 0.3, 0.4; defects 0.35, 0.9. A 25 % budget allows one good part of four to be rejected:
    # the lowest threshold that rejects at most one is 0.35 (rejects 0.4), and it catches both defects.
    scores = [0.1, 0.2, 0.3, 0.4, 0.35, 0.9]
    labels = [0, 0, 0, 0, 1, 1]
    # With margin it sits halfway between 0.35 and the next lower score, 0.3: 0.325.
    loose = false_reject_threshold(scores, labels, 0.25)
    assert loose.threshold == pytest.approx(0.325) and loose.false_reject_rate == 0.25 and loose.recall == 1.0
    # No good part may be rejected: above 0.4, so only 0.9 is caught; halfway between them is 0.65.
    strict = false_reject_threshold(scores, labels, 0.0)
    assert (
        strict.threshold == pytest.approx(0.65) and strict.false_reject_rate == 0.0 and strict.recall == 0.5
    )


# ------------------------------------------------------------------------------------ against brute force

scores_and_labels = st.lists(
    st.tuples(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 2.5]), st.booleans()),
    min_size=2,
    max_size=40,
).filter(lambda pairs: len({label for _, label in pairs}) == 2)


@settings(max_examples=150, deadline=None)
@given(scores_and_labels)
def test_vectorized_anomaly_metrics_match_their_definitions(pairs: list[tuple[float, bool]]) -> None:
    # Few distinct values on purpose: ties are where rank and threshold code goes wrong.
    scores = [s for s, _ in pairs]
    labels = [y for _, y in pairs]
    positives = [s for s, y in pairs if y]
    negatives = [s for s, y in pairs if not y]
    pair_wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
    assert auroc(scores, labels) == pytest.approx(pair_wins / (len(positives) * len(negatives)))

    def f1_at(t: float) -> float:
        tp = sum(1 for s, y in pairs if s >= t and y)
        flagged = sum(1 for s in scores if s >= t)
        precision, recall = tp / flagged, tp / len(positives)
        return 2 * precision * recall / (precision + recall) if tp else 0.0

    best = max_f1_threshold(scores, labels)
    assert best.f1 == pytest.approx(max(f1_at(t) for t in set(scores)))
    # It flags exactly what the highest best observed threshold flags, from a point with margin below it.
    highest_best = max(t for t in set(scores) if f1_at(t) == pytest.approx(best.f1))
    assert [s >= best.threshold for s in scores] == [s >= highest_best for s in scores]
    assert best.threshold <= highest_best

    for rate in (0.0, 0.2, 0.5):
        found = false_reject_threshold(scores, labels, rate)
        assert sum(n >= found.threshold for n in negatives) / len(negatives) <= rate
        # No observed score below it would also do.
        lower = [t for t in set(scores) if t < found.threshold]
        assert all(sum(n >= t for n in negatives) / len(negatives) > rate for t in lower)

    curve = roc_curve(scores, labels)
    for fpr, tpr, t in zip(
        curve.false_positive_rate[1:], curve.true_positive_rate[1:], curve.thresholds[1:], strict=True
    ):
        assert tpr == pytest.approx(sum(p >= t for p in positives) / len(positives))
        assert fpr == pytest.approx(sum(n >= t for n in negatives) / len(negatives))


boxes = st.lists(
    st.tuples(st.floats(0, 0.8), st.floats(0, 0.8), st.floats(0.05, 0.2), st.floats(0.05, 0.2)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=100, deadline=None)
@given(boxes, st.floats(0.01, 0.5))
def test_ap_invariants(corners: list[tuple[float, float, float, float]], low_score: float) -> None:
    truth = [[gt("a", x, y, x + w, y + h) for x, y, w, h in corners]]
    exact = [[pred("a", 0.9 - 0.01 * i, b.x_min, b.y_min, b.x_max, b.y_max) for i, b in enumerate(truth[0])]]
    # Finding every box exactly, before any mistake, is perfect whatever else follows at a lower score.
    assert average_precision(truth, exact, "a") == pytest.approx(1.0)
    trailing = [[*exact[0], pred("a", low_score, 0.95, 0.95, 1.0, 1.0)]]
    assert average_precision(truth, trailing, "a") == pytest.approx(1.0)
    # A false positive ranked first costs precision at every recall: AP drops, but stays in (0, 1).
    leading = [[pred("a", 0.99, 0.95, 0.95, 1.0, 1.0), *exact[0]]]
    assert 0.0 < average_precision(truth, leading, "a") < 1.0
    assert detection_metrics(truth, [[]])["map50"] == 0.0


def test_threshold_margin_edge_cases() -> None:
    from vision.metrics import with_margin

    values = np.array([0.2, 0.5, 0.9])
    assert with_margin(values, 0.5) == pytest.approx(0.35)  # flags {0.5, 0.9}, halfway down to 0.2
    assert with_margin(values, 0.1) == 0.2  # flags everything: nothing below to leave a margin to
    assert with_margin(values, 0.95) == 0.95  # flags nothing: unchanged
    tight = np.array([1.0, np.nextafter(1.0, 2.0)])
    assert with_margin(tight, float(tight[1])) == tight[1]  # no float between neighbours
