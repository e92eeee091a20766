"""Report tables against hand-computed cases (pure: the cube is built from generated documents in memory)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from quality.cube import CubeBuilder, defect_class
from quality.generate import generate
from quality.shifts import ShiftCalendar
from quality.spc import p_chart, western_electric
from quality.tables import build_report
from schemas.errors import ConfigurationError

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
CALENDAR = ShiftCalendar.parse("early=06,late=14,night=22")


def _cube(documents, chunk_size: int = 1000):
    builder = CubeBuilder(chunk_size=chunk_size)
    builder.add_documents(documents)
    return builder.build()


def test_a_generated_week_has_the_yields_computed_by_hand() -> None:
    # 2 lines x 168 h x 100 parts; per line and hour 5 DEFECT, 2 UNCERTAIN re-inspected OK, 93 OK.
    cube = _cube(generate(MONDAY), chunk_size=7_000)  # several chunks: the fold must be exact across them
    report = build_report(cube, CALENDAR)
    s = report.summary
    hours = 2 * 168
    assert s["inspections"] == hours * 102
    assert s["defect"] == hours * 5 and s["uncertain"] == hours * 2 and s["ok"] == hours * 95
    assert s["inspection_yield"] == pytest.approx(95 / 102)
    assert s["parts"] == hours * 100
    assert s["first_pass_yield"] == pytest.approx(0.93)
    assert s["final_yield"] == pytest.approx(0.95)
    assert s["defect_rate"] == pytest.approx(5 / 102)
    # classes rotate scratch, scratch, dent, stain, scratch, dent, crack over 840 defects per line
    pareto = report.tables["pareto_class"].set_index("defect_class")["defects"].to_dict()
    assert pareto == {"scratch": 720, "dent": 480, "stain": 240, "crack": 240}
    assert report.tables["pareto_class"]["cumulative_share"].iloc[-1] == pytest.approx(1.0)
    stations = report.tables["pareto_station"]
    assert stations["defects"].tolist() == [840, 840]
    shifts = report.tables["by_shift"].set_index("shift")
    assert shifts.loc["early", "n"] == 2 * 7 * 8 * 102  # 8 hours a day of each shift
    assert shifts["defect_rate"].tolist() == pytest.approx([5 / 102] * 3)
    assert len(report.tables["by_shift_instance"]) == 7 * 3 + 1  # Monday 00-06 is Sunday's night shift
    lots = report.tables["by_lot"]
    assert lots["n"].tolist() == [2 * 24 * 102] * 7
    assert report.tables["by_part_number"]["n"].tolist() == [168 * 102] * 2
    assert len(report.tables["hourly"]) == 168 and len(report.tables["daily"]) == 7
    assert report.tables["daily"]["n"].tolist() == [2 * 24 * 102] * 7
    # every hour has the same rate: the p-chart sits on its centre line and flags nothing
    assert s["spc_points_flagged"] == 0
    assert report.p_bar == pytest.approx(5 / 102)


def test_a_shifted_process_is_flagged_by_the_p_chart_rules() -> None:
    # 48 in-control hours at 5 %, then 6 hours at 15 % (rule 1), against the in-control baseline.
    shifted = {hour: 15 for hour in range(48, 54)}
    cube = _cube(generate(MONDAY, hours=54, lines=("L1",), uncertain=0, shifted=shifted))
    report = build_report(cube, CALENDAR, spc_baseline=0.05)
    chart = report.tables["p_chart"]
    flagged = [i for i, rules in enumerate(chart["rules"]) if rules]
    assert flagged == list(range(48, 54))
    assert all("1" in rules.split(",") for rules in chart["rules"][48:])
    assert (chart["p"][48:] > chart["ucl"][48:]).all()


def test_a_small_sustained_shift_trips_the_run_rules_not_rule_one() -> None:
    # 8 hours at 8 % against a 5 % baseline: z = 1.38, never beyond 3 sigma
    cube = _cube(generate(MONDAY, hours=16, lines=("L1",), uncertain=0, shifted={h: 8 for h in range(8, 16)}))
    chart = build_report(cube, CALENDAR, spc_baseline=0.05).tables["p_chart"]
    rules = [set(r.split(",")) - {""} for r in chart["rules"]]
    assert rules[:8] == [set()] * 8
    assert "1" not in set().union(*rules)
    assert "3" in rules[11]  # 4 of 5 beyond 1 sigma completes at the 4th shifted hour
    assert "4" in rules[15]  # 8 in a row above the centre line


def test_western_electric_rules_on_standardized_points() -> None:
    z = np.array([0.0, 3.5, 0.0, 2.5, -0.5, 2.2, 0.0, -3.1])
    assert western_electric(z) == [[], [1], [], [2], [], [2], [], [1]]
    assert western_electric(np.full(8, -0.2))[-1] == [4]


def test_p_chart_limits_follow_the_subgroup_size() -> None:
    table, centre = p_chart(pd.DataFrame({"period": ["a", "b"], "n": [100, 400], "defective": [10, 40]}))
    assert centre == pytest.approx(0.1)
    assert table["ucl"].tolist() == pytest.approx([0.1 + 3 * 0.03, 0.1 + 3 * 0.015])
    assert table["lcl"].tolist() == pytest.approx([0.01, 0.055])


def test_a_range_with_one_class_only() -> None:
    documents = [d for d in generate(MONDAY, hours=3, lines=("L1",), uncertain=0) if d["verdict"] == "OK"]
    for d in documents[:4]:
        d["verdict"] = "DEFECT"
        d["detections"] = [{"label": "dent", "score": 0.9}]
    report = build_report(_cube(documents), CALENDAR)
    pareto = report.tables["pareto_class"]
    assert pareto["defect_class"].tolist() == ["dent"]
    assert pareto["share"].tolist() == [1.0] and pareto["cumulative_share"].tolist() == [1.0]
    assert report.summary["defect"] == 4


def test_an_empty_cube_has_no_inspections() -> None:
    assert _cube([]).total == 0


def test_defect_class_falls_back_to_the_best_non_good_class_score() -> None:
    doc = {
        "verdict": "DEFECT",
        "class_scores": [{"label": "good", "score": 0.6}, {"label": "dent", "score": 0.3}],
    }
    assert defect_class(doc) == "dent"
    assert defect_class({"verdict": "DEFECT"}) == "unclassified"
    assert defect_class({"verdict": "OK", "detections": [{"label": "dent"}]}) == ""


def test_model_health_drift_and_label_agreement() -> None:
    documents = list(generate(MONDAY, hours=24, lines=("L1",), uncertain=0, defects=10))  # 10 % defects
    labels = [
        {
            "camera_id": "c",
            "frame_number": 1,
            "model_version": "v1",
            "verdict": "DEFECT",
            "model_class": "dent",
            "human_label": "dent",
        },
        {
            "camera_id": "c",
            "frame_number": 2,
            "model_version": "v1",
            "verdict": "DEFECT",
            "model_class": "dent",
            "human_label": "good",
        },
        {
            "camera_id": "c",
            "frame_number": 3,
            "model_version": "v1",
            "verdict": "OK",
            "model_class": "",
            "human_label": "good",
        },
        {
            "camera_id": "c",
            "frame_number": 4,
            "model_version": "v1",
            "verdict": "UNCERTAIN",
            "model_class": "",
            "human_label": "scratch",
        },
    ]
    report = build_report(_cube(documents), CALENDAR, expected_rates={"v1": 0.05}, labels=labels)
    health = report.tables["model_health"].iloc[0]
    assert health["defect_rate"] == pytest.approx(0.10)
    assert health["drift"] == pytest.approx(0.05)
    assert health["drift_z"] == pytest.approx(0.05 / np.sqrt(0.05 * 0.95 / 2400))
    assert bool(health["drift_flag"])
    assert report.summary["label_agreement"] == pytest.approx(0.75)
    assert report.summary["labels_reviewed"] == 4
    histogram = report.tables["score_histogram"]
    assert histogram["n"].sum() == 2400
    assert histogram.set_index("bin_low")["n"].to_dict() == pytest.approx(
        {0.05: 2160, 0.9: 240}
    )  # 0.05 opens the second bin


def test_shift_calendar_dates_a_night_shift_by_its_start() -> None:
    calendar = ShiftCalendar.parse("day=06:00,night=18", "Europe/Berlin")
    hours = pd.Series(
        pd.to_datetime(["2026-01-05T16:00Z", "2026-01-05T17:00Z", "2026-01-06T04:00Z"], utc=True)
    )
    labelled = calendar.label(hours)  # Berlin is UTC+1 in January
    assert labelled["shift"].tolist() == ["day", "night", "night"]
    assert [str(d) for d in labelled["shift_date"]] == ["2026-01-05", "2026-01-05", "2026-01-05"]


@pytest.mark.parametrize("text", ["early=6:30", "early", "=06", "a=06,b=06", "a=24"])
def test_a_bad_shift_calendar_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigurationError):
        ShiftCalendar.parse(text)


def test_an_unknown_time_zone_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="time zone"):
        ShiftCalendar.parse("a=06", "Mars/Olympus")


def test_report_outputs_every_table(tmp_path) -> None:
    from quality.output import write_tables
    from quality.render import render_html

    report = build_report(_cube(generate(MONDAY, hours=30, lines=("L1",))), CALENDAR)
    files = write_tables(report, "q", tmp_path)
    assert {f.name for f in files if f.suffix == ".csv"} == {f"{name}.csv" for name in report.tables}
    hourly = pd.read_csv(tmp_path / "tables" / "hourly.csv")
    assert hourly["n"].sum() == 30 * 102
    html = render_html(report, "q")
    assert html.count("data:image/png;base64,") == 4 and "p-chart per hour" in html
    assert MONDAY + timedelta(hours=29) == pd.Timestamp(hourly["hour"].iloc[-1]).to_pydatetime()
