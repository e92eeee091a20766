"""The report's intermediate form: counts per hour and dimension, per-part first/last verdicts, score bins.

Every table of the report is derived from these three frames, so a month of a plant reduces to a few
thousand rows however many documents it holds. :class:`CubeBuilder` folds inspection rows in chunks (each
chunk is grouped with pandas, then dropped), which keeps memory bounded by the number of distinct groups and
parts, not by the number of documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from schemas.inspections import defect_class, defect_score

DIMENSIONS = (
    "hour",
    "line_id",
    "station_id",
    "camera_id",
    "model_version",
    "verdict",
    "defect_class",
    "lot",
    "part_number",
)
SCORE_BINS = 20  # score histogram: 0.05 wide


def flat_row(document: Mapping[str, Any]) -> dict[str, Any]:
    """One inspection document as the flat row the cube folds."""
    metadata = document.get("metadata") or {}
    model = document.get("model") or {}
    return {
        "captured_at": document["captured_at"],
        "line_id": document.get("line_id") or "",
        "station_id": document.get("station_id") or "",
        "camera_id": document.get("camera_id") or "",
        "model_version": model.get("version") or "",
        "verdict": document.get("verdict") or "UNKNOWN",
        "defect_class": defect_class(document),
        "lot": metadata.get("lot") or "",
        "part_number": metadata.get("part_number") or "",
        "part_id": document.get("part_id") or "",
        "score": defect_score(document),
    }


@dataclass(slots=True)
class Cube:
    counts: pd.DataFrame  # DIMENSIONS + n
    parts: pd.DataFrame  # part (hash of part_id), first_at, first_ok, last_at, last_ok (times in ns)
    scores: pd.DataFrame  # model_version, bin, n

    @property
    def total(self) -> int:
        return int(self.counts["n"].sum()) if len(self.counts) else 0


class CubeBuilder:
    """Folds flat rows chunk by chunk into a :class:`Cube`."""

    def __init__(self, chunk_size: int = 50_000) -> None:
        self.chunk_size = chunk_size
        self._rows: list[dict[str, Any]] = []
        self._counts: list[pd.DataFrame] = []
        self._part_chunks: list[pd.DataFrame] = []
        self._scores: list[pd.DataFrame] = []

    def add_documents(self, documents: Iterable[Mapping[str, Any]]) -> None:
        for document in documents:
            self.add(flat_row(document))

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        if len(self._rows) >= self.chunk_size:
            self._fold()

    def _fold(self) -> None:
        if not self._rows:
            return
        frame = pd.DataFrame(self._rows)
        self._rows = []
        frame["captured_at"] = pd.to_datetime(frame["captured_at"], utc=True)
        frame["hour"] = frame["captured_at"].dt.floor("h")
        grouped = frame.groupby(list(DIMENSIONS), sort=False).size().rename("n").reset_index()
        self._counts.append(grouped)
        self._fold_parts(frame[frame["part_id"] != ""])
        scored = frame.dropna(subset=["score"])
        if len(scored):
            bins = (scored["score"].clip(0.0, 1.0) * SCORE_BINS).astype(int).clip(upper=SCORE_BINS - 1)
            self._scores.append(
                scored.assign(bin=bins).groupby(["model_version", "bin"]).size().rename("n").reset_index()
            )
        if len(self._counts) > 8:  # re-reduce so the partial results never outgrow the groups
            self._counts = [_sum_counts(self._counts, list(DIMENSIONS))]

    def _fold_parts(self, frame: pd.DataFrame) -> None:
        """Each chunk's first and last inspection per part, reduced again only when the list grows (a sort of
        every part per chunk made a 1M-document report quadratic). A part is kept as a 64-bit hash of its id,
        its time as int64 and its verdict as OK or not: 17 bytes a row instead of three Python objects."""
        if not len(frame):
            return
        chunk = pd.DataFrame(
            {
                "part": pd.util.hash_array(frame["part_id"].to_numpy(dtype=object)),
                "at": frame["captured_at"].astype("int64").to_numpy(),
                "ok": (frame["verdict"] == "OK").to_numpy(),
            }
        )
        self._part_chunks.append(_first_last(chunk))
        if len(self._part_chunks) >= 16:
            self._part_chunks = [_first_last(_unfold(pd.concat(self._part_chunks, ignore_index=True)))]

    def build(self) -> Cube:
        self._fold()
        counts = (
            _sum_counts(self._counts, list(DIMENSIONS))
            if self._counts
            else pd.DataFrame({**{name: [] for name in DIMENSIONS}, "n": []})
        )
        scores = (
            _sum_counts(self._scores, ["model_version", "bin"])
            if self._scores
            else pd.DataFrame({"model_version": [], "bin": [], "n": []})
        )
        parts = (
            _first_last(_unfold(pd.concat(self._part_chunks, ignore_index=True)))
            if self._part_chunks
            else pd.DataFrame({"part": [], "first_at": [], "first_ok": [], "last_at": [], "last_ok": []})
        )
        return Cube(counts=counts, parts=parts.reset_index(drop=True), scores=scores)


def _sum_counts(frames: list[pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    combined = pd.concat(frames, ignore_index=True)
    return combined.groupby(keys, sort=False)["n"].sum().reset_index()


def _unfold(parts: pd.DataFrame) -> pd.DataFrame:
    """Reduced parts as raw rows again (their first and last inspection), to reduce once more."""
    first = parts[["part", "first_at", "first_ok"]].set_axis(["part", "at", "ok"], axis=1)
    last = parts[["part", "last_at", "last_ok"]].set_axis(["part", "at", "ok"], axis=1)
    return pd.concat([first, last], ignore_index=True)


def _first_last(rows: pd.DataFrame) -> pd.DataFrame:
    ordered = rows.sort_values(["part", "at"], kind="stable")
    grouped = ordered.groupby("part", sort=False)
    first = grouped.first()
    last = grouped.last()
    return pd.DataFrame(
        {
            "part": first.index.to_numpy(),
            "first_at": first["at"].to_numpy(),
            "first_ok": first["ok"].to_numpy(),
            "last_at": last["at"].to_numpy(),
            "last_ok": last["ok"].to_numpy(),
        }
    )
