"""Five-field cron expressions: parse, find the next tick, describe in words.

The grammar is Vixie cron's, as Faktory Enterprise's ``[[cron]]`` entries use it: minute,
hour, day of month, month, day of week; each field a list of ``*``, ``n``, ``a-b`` with an
optional ``/step``; month and weekday names (``JAN``, ``MON``) in any case; weekday 7 is
Sunday; ``@hourly``-style macros. When both day fields are restricted a day matches either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
SEARCH_DAYS = 366 * 5
"""How far ahead :meth:`CronExpr.next_after` looks before deciding a schedule never fires."""


class CronSyntaxError(ValueError):
    """A cron expression that cannot be parsed, or that never fires."""


@dataclass(frozen=True, slots=True)
class Field:
    """One parsed field: the allowed values, the source text, and whether it was ``*``."""

    values: frozenset[int]
    text: str
    star: bool


_SPECS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, DAYS),
)


def _number(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    upper = text.upper()
    if upper in names:
        return names.index(upper) + (1 if names is MONTHS else 0)
    if not text.isdigit():
        raise CronSyntaxError(f"{name}: {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise CronSyntaxError(f"{name}: {value} is out of range {low}-{high}")
    return value


def _part(part: str, spec: tuple[str, int, int, tuple[str, ...]]) -> range:
    name, low, high, names = spec
    base, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise CronSyntaxError(f"{name}: bad step {step_text!r}")
        step = int(step_text)
    if base == "*":
        return range(low, high + 1, step)
    first, dash, last = base.partition("-")
    start = _number(first, name, low, high, names)
    end = _number(last, name, low, high, names) if dash else (high if slash else start)
    if end < start:
        raise CronSyntaxError(f"{name}: range {base!r} runs backwards")
    return range(start, end + 1, step)


def _field(text: str, spec: tuple[str, int, int, tuple[str, ...]]) -> Field:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronSyntaxError(f"{spec[0]}: empty list item in {text!r}")
        values.update(_part(part, spec))
    if spec[0] == "day of week" and 7 in values:
        values = (values - {7}) | {0}
    return Field(frozenset(values), text, text.startswith("*"))


@dataclass(frozen=True, slots=True)
class CronExpr:
    """A parsed cron expression; build one with :func:`parse`."""

    source: str
    minute: Field
    hour: Field
    day: Field
    month: Field
    weekday: Field

    def matches_day(self, when: datetime) -> bool:
        """Return whether the date of ``when`` is one the expression fires on."""
        if when.month not in self.month.values:
            return False
        dom = when.day in self.day.values
        dow = (when.isoweekday() % 7) in self.weekday.values
        if self.day.star or self.weekday.star:
            return dom and dow
        return dom or dow

    def next_after(self, after: float, tz: tzinfo) -> float | None:
        """Return the first tick strictly after ``after`` (Unix seconds) in zone ``tz``,
        or ``None`` if there is none within five years."""
        wall = datetime.fromtimestamp(after, tz).replace(tzinfo=None, second=0, microsecond=0)
        wall += timedelta(minutes=1)
        limit = wall + timedelta(days=SEARCH_DAYS)
        while wall < limit:
            if not self.matches_day(wall):
                wall = wall.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if wall.hour not in self.hour.values:
                wall = wall.replace(minute=0) + timedelta(hours=1)
                continue
            later = [m for m in self.minute.values if m >= wall.minute]
            if not later:
                wall = wall.replace(minute=0) + timedelta(hours=1)
                continue
            tick = wall.replace(minute=min(later)).replace(tzinfo=tz).timestamp()
            if tick > after:
                return tick
            wall = wall.replace(minute=min(later)) + timedelta(minutes=1)
        return None

    def latest_at_or_before(self, now: float, since: float, tz: tzinfo) -> float | None:
        """Return the last tick in ``(since, now]``, or ``None`` when there is none."""
        latest = None
        tick = self.next_after(since, tz)
        while tick is not None and tick <= now:
            latest = tick
            tick = self.next_after(tick, tz)
        return latest


def parse(text: str) -> CronExpr:
    """Parse a five-field expression (or a macro such as ``@daily``).

    Raises:
        CronSyntaxError: the expression is malformed, out of range, or never fires.
    """
    source = text.strip()
    fields = MACROS.get(source.lower(), source).split()
    if len(fields) != 5:
        raise CronSyntaxError(f"expected 5 fields, got {len(fields)} in {source!r}")
    parsed = [_field(value, spec) for value, spec in zip(fields, _SPECS, strict=True)]
    expr = CronExpr(source, *parsed)
    if expr.next_after(0.0, UTC) is None:
        raise CronSyntaxError(f"{source!r} never fires")
    return expr


# -- in words ---------------------------------------------------------------------------


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _names(values: frozenset[int], names: tuple[str, ...], offset: int) -> str:
    ordered = sorted(values)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{names[ordered[0] - offset]} through {names[ordered[-1] - offset]}"
    return _join([names[v - offset] for v in ordered])


def _step(field: Field) -> int | None:
    base, slash, step = field.text.partition("/")
    return int(step) if base == "*" and slash else None


def _clock(expr: CronExpr) -> str:
    minute, hour = expr.minute, expr.hour
    single_minute = len(minute.values) == 1
    first_minute = min(minute.values)
    if hour.text == "*":
        if minute.text == "*":
            return "every minute"
        if _step(minute):
            return f"every {_step(minute)} minutes"
        if single_minute:
            return "every hour" if first_minute == 0 else f"every hour at minute {first_minute}"
        return f"at minutes {minute.text} of every hour"
    if single_minute and _step(hour):
        every = f"every {_step(hour)} hours"
        return every if first_minute == 0 else f"{every} at minute {first_minute}"
    if single_minute and len(hour.values) <= 4:
        times = [f"{h:02d}:{first_minute:02d}" for h in sorted(hour.values)]
        return "at " + _join(times)
    return f"at minute {minute.text} past hour {hour.text}"


def describe(expr: CronExpr) -> str:
    """Describe a schedule in words: ``every 5 minutes``, ``at 03:00 every day``,
    ``at 09:00 on Monday through Friday``. Unusual combinations fall back to the fields."""
    words = _clock(expr)
    days = []
    if not expr.day.star:
        label = "day" if len(expr.day.values) == 1 else "days"
        days.append(f"on {label} {expr.day.text} of the month")
    if not expr.weekday.star:
        days.append("on " + _names(expr.weekday.values, DAY_NAMES, 0))
    if days:
        words += " " + " or ".join(days)
    elif not words.startswith("every"):
        words += " every day"
    if not expr.month.star:
        words += " in " + _names(expr.month.values, MONTH_NAMES, 1)
    return words
