"""Date arithmetic: the ``add_days`` tool's function and the schema the model is shown.

The agent lab's second task (beyond arithmetic): "what date is N days after D?". Fine-tune trains
on calls to this schema; the agent runs the function. The weekday comes back in Chinese and English, and so
does a refusal (a :class:`DateError` is an :class:`~puyu_lab.errors.InputError`: the model reads ``err.en``).
"""
from __future__ import annotations

import datetime as dt

from ..errors import InputError

WEEKDAYS = ["星期一 Monday", "星期二 Tuesday", "星期三 Wednesday", "星期四 Thursday", "星期五 Friday",
            "星期六 Saturday", "星期日 Sunday"]
MAX_DAYS = 3_660_000  # ±10,000 years


class DateError(InputError):
    """A date or a number of days the date tools refuse, and why."""


def parse_date(s, field: str = "date") -> dt.date:
    try:
        return dt.date.fromisoformat(str(s).strip())
    except ValueError:
        raise DateError(f"{field} must be an ISO date like 2024-05-01, got {s!r}",
                        zh=f"{field} 必须是 ISO 格式的日期，例如 2024-05-01；收到的是 {s!r}") from None


def add_days(date: str, days: int) -> dict:
    """The date ``days`` after ``date`` (negative goes back), with its weekday."""
    d = parse_date(date, "date")
    if abs(days) > MAX_DAYS:
        raise DateError("days must be within ±10,000 years", zh="days 必须在 ±10,000 年以内")
    try:
        r = d + dt.timedelta(days=days)
    except OverflowError:
        raise DateError("the result is outside the years 1–9999", zh="结果超出了公元 1–9999 年的范围") from None
    return {"date": r.isoformat(), "weekday": WEEKDAYS[r.weekday()]}


# an ISO date constrained decoding lets a call write: months 01–12, days that every year has in that
# month (02-29 is left out), years 1000–9999
DATE_PATTERN = ("[1-9][0-9]{3}-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)"
                "|(0[13578]|1[02])-31)")

ADD_DAYS_DESCRIPTION = "日期加上天数 (负数往前)，给出新日期和星期"
ADD_DAYS_SCHEMA = {
    "name": "add_days",
    "description": ADD_DAYS_DESCRIPTION,
    "parameters": {"type": "object",
                   "properties": {"date": {"type": "string", "description": "ISO date, e.g. 2024-05-01"},
                                  "days": {"type": "integer"}},
                   "required": ["date", "days"]},
}
