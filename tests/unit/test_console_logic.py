"""Pure logic of the console: password hashes, review parsing, queue rules, key cursors, overlay boxes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lineguard.console.auth import Principal, Role, hash_password, verify_password
from lineguard.console.queries import BadQuery, ListFilter, decode_cursor, encode_cursor, overlay_boxes
from lineguard.console.review import QueueRules, Review, _rule_queries, label_id


def test_password_hash_verifies_only_the_same_password_and_is_salted() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$")
    assert "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert hash_password("correct horse") != stored  # a fresh salt each time
    assert not verify_password("x", "not-a-hash")
    assert not verify_password("x", "md5$1$2$3$00$00")


def test_roles_are_ordered() -> None:
    reviewer = Principal("r", Role.reviewer, "t")
    assert reviewer.may(Role.viewer) and reviewer.may(Role.reviewer) and not reviewer.may(Role.admin)


def test_review_from_json_accepts_a_good_review_and_names_what_is_wrong() -> None:
    review = Review.from_json(
        {
            "camera_id": "cam-1",
            "frame_number": "7",
            "model_version": "t1",
            "label": " scratch ",
            "action": "relabel",
            "boxes": [{"label": "scratch", "x_min": 0.1, "y_min": 0.2, "x_max": 0.5, "y_max": 0.6}],
        }
    )
    assert (review.frame_number, review.label, review.boxes and review.boxes[0]["x_max"]) == (
        7,
        "scratch",
        0.5,
    )
    with pytest.raises(BadQuery, match="lacks camera_id"):
        Review.from_json({"frame_number": 1})
    with pytest.raises(BadQuery, match="JSON object"):
        Review.from_json([1, 2])
    with pytest.raises(BadQuery, match="action"):
        Review.from_json(
            {"camera_id": "c", "frame_number": 1, "model_version": "v", "label": "x", "action": "zap"}
        )
    with pytest.raises(BadQuery, match="'good'"):
        Review.from_json(
            {"camera_id": "c", "frame_number": 1, "model_version": "v", "label": "x", "action": "good"}
        )
    with pytest.raises(BadQuery, match="normalized"):
        Review.from_json(
            {
                "camera_id": "c",
                "frame_number": 1,
                "model_version": "v",
                "label": "x",
                "boxes": [{"label": "x", "x_min": 0.5, "y_min": 0, "x_max": 0.4, "y_max": 1}],
            }
        )


def test_label_ids_are_one_per_frame_and_reviewer() -> None:
    assert label_id("cam-1", 7, "ann") == "cam-1:7:ann"
    assert label_id("cam-1", 7, "ann") != label_id("cam-1", 7, "bob")


def test_queue_rules_build_one_query_per_rule_and_refuse_bad_bands() -> None:
    rules = QueueRules(uncertain=True, band_low=0.4, band_high=0.6, line_share={"line-1": 0.1})
    named = dict(_rule_queries(rules))
    assert named["uncertain"] == {"verdict": "UNCERTAIN"}
    assert named["score_band"] == {"metadata.defect_score": {"$gte": "0.4000", "$lte": "0.6000"}}
    assert named["share:line-1"] == {"line_id": "line-1", "frame_number": {"$mod": [10, 0]}}
    with pytest.raises(BadQuery, match="both"):
        QueueRules(band_low=0.2)
    with pytest.raises(BadQuery, match="band"):
        QueueRules(band_low=0.7, band_high=0.3)
    with pytest.raises(BadQuery, match="share"):
        QueueRules(line_share={"l": 0.0})


def test_cursor_round_trips_and_foreign_cursors_are_refused() -> None:
    moment = datetime(2026, 12, 2, 21, 0, 5, tzinfo=UTC)
    cursor = encode_cursor({"captured_at": moment, "_id": "cam:5:t1"})
    assert decode_cursor(cursor) == (moment, "cam:5:t1")
    with pytest.raises(BadQuery, match="cursor"):
        decode_cursor("bm90IGpzb24=")


def test_list_filter_refuses_an_unknown_verdict_and_builds_the_window() -> None:
    since = datetime(2026, 1, 1, tzinfo=UTC)
    assert ListFilter(line="l1", verdict="DEFECT", since=since).query() == {
        "line_id": "l1",
        "verdict": "DEFECT",
        "captured_at": {"$gte": since},
    }
    with pytest.raises(BadQuery, match="verdict"):
        ListFilter(verdict="MAYBE").query()


def test_overlay_boxes_are_detections_or_the_whole_frame_for_a_classifier_defect() -> None:
    box = {"x_min": 0.1, "y_min": 0.1, "x_max": 0.3, "y_max": 0.4}
    detections = {
        "verdict": "DEFECT",
        "detections": [{"label": "dent", "score": 0.9, "box": box}],
    }
    assert overlay_boxes(detections) == [{**box, "label": "dent", "score": 0.9}]
    classifier = {
        "verdict": "DEFECT",
        "class_scores": [{"label": "good", "score": 0.1}, {"label": "crack", "score": 0.9}],
    }
    assert overlay_boxes(classifier)[0]["label"] == "crack"
    assert overlay_boxes({"verdict": "OK", "class_scores": [{"label": "crack", "score": 0.2}]}) == []
