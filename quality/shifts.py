"""The shift calendar: named shifts starting at whole hours of the plant's local time.

``early=06,late=14,night=22`` in ``Europe/Berlin``: a shift runs from its start to the next one's; the last
one runs past midnight, and a shift instance is dated by the day it started (night 22:00 on the 5th to
06:00 on the 6th is the night shift of the 5th). Starts are whole hours because the report's finest
grouping is the hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from schemas.errors import ConfigurationError

DEFAULT_SHIFTS = "early=06,late=14,night=22"


@dataclass(frozen=True, slots=True)
class ShiftCalendar:
    starts: tuple[tuple[int, str], ...]  # (hour, name), sorted by hour
    timezone: str = "UTC"

    @classmethod
    def parse(cls, text: str, timezone: str = "UTC") -> ShiftCalendar:
        starts: list[tuple[int, str]] = []
        for item in text.split(","):
            name, sep, hour_text = item.strip().partition("=")
            hour_text = hour_text.strip()
            if hour_text.endswith(":00"):
                hour_text = hour_text[:-3]
            if not sep or not name.strip() or not hour_text.isdigit() or not 0 <= int(hour_text) <= 23:
                raise ConfigurationError(
                    f"shift calendar: {item.strip()!r} is not NAME=HOUR (a whole hour 0-23, e.g. early=06)"
                )
            starts.append((int(hour_text), name.strip()))
        if len({hour for hour, _ in starts}) != len(starts):
            raise ConfigurationError("shift calendar: two shifts start at the same hour")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(f"shift calendar: unknown time zone {timezone!r}") from None
        return cls(tuple(sorted(starts)), timezone)

    def label(self, hours: pd.Series) -> pd.DataFrame:
        """``shift`` and ``shift_date`` of each UTC hour bucket."""
        local = hours.dt.tz_convert(self.timezone)
        hour_of_day = local.dt.hour
        names = pd.Series(self.starts[-1][1], index=hours.index)  # before the first start: the last shift
        for start, name in self.starts:
            names = names.where(hour_of_day < start, name)
        before_first = hour_of_day < self.starts[0][0]
        day = local.dt.tz_localize(None).dt.normalize()
        shift_date = day.where(~before_first, day - timedelta(days=1)).dt.date
        return pd.DataFrame({"shift": names, "shift_date": shift_date}, index=hours.index)
