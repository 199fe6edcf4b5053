"""Five-field cron expressions on cronsim and cron-descriptor: parse, next tick, in words.

The grammar is cronsim's, which is Vixie cron's (cronie's), as Faktory Enterprise's
``[[cron]]`` entries use it: minute, hour, day of month, month, day of week; each field a
list of ``*``, ``n``, ``a-b`` with an optional ``/step``; month and weekday names (``JAN``,
``MON``) in any case; weekday 7 is Sunday; when both day fields are restricted (neither
starts with ``*``) a day matches either. cronsim also reads ``L``, ``LW`` and ``#``
(``5L`` the last Friday, ``5#2`` the second). Werk adds the ``@hourly``-style macros, the
error messages that name the field and the value, and the time zone rule below.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from cron_descriptor import CasingTypeEnum, ExpressionDescriptor, Options
from cronsim import CronSim, CronSimError

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
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
    """One parsed field: the plain values it allows (cronsim's sets, weekday 7 as 0; ``L``
    and ``#`` items are left out), the source text, and whether it starts with ``*``."""

    values: frozenset[int]
    text: str
    star: bool


@dataclass(frozen=True, slots=True)
class CronExpr:
    """A parsed cron expression; build one with :func:`parse`."""

    source: str
    """The expression as written (``@daily`` stays ``@daily``)."""
    fields: str
    """The five fields (a macro expanded)."""
    minute: Field
    hour: Field
    day: Field
    month: Field
    weekday: Field

    def ticks_after(self, after: float, tz: tzinfo) -> Iterator[float]:
        """Yield the ticks strictly after ``after`` (Unix seconds), in order, for five years.

        cronsim walks the wall clock of zone ``tz``; each local time becomes an instant
        with the offset in force before any change (PEP 495 ``fold=0``), Werk's rule since
        its first cron: a local time that daylight saving skips fires as far after the
        jump as it lies inside the gap (02:30 fires at 03:30 when 02:00 jumps to 03:00),
        and a local time that occurs twice fires once. cronsim's own time zone mode
        follows cronie instead (02:30 fires at 03:00; ``*/30`` fires in both passes of
        the repeated hour).
        """
        wall = datetime.fromtimestamp(after, tz).replace(tzinfo=None, fold=0)
        limit = wall + timedelta(days=SEARCH_DAYS)
        last = after
        for local in CronSim(self.fields, wall):
            if local > limit:
                return
            tick = local.replace(tzinfo=tz, fold=0).timestamp()
            if tick > last:  # the gap rule can map a later local time to an earlier instant
                last = tick
                yield tick

    def next_after(self, after: float, tz: tzinfo) -> float | None:
        """Return the first tick strictly after ``after`` (Unix seconds) in zone ``tz``,
        or ``None`` if there is none within five years."""
        return next(self.ticks_after(after, tz), None)

    def latest_at_or_before(self, now: float, since: float, tz: tzinfo) -> float | None:
        """Return the last tick in ``(since, now]``, or ``None`` when there is none."""
        latest = None
        for tick in self.ticks_after(since, tz):
            if tick > now:
                break
            latest = tick
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
    try:
        sim = CronSim(" ".join(fields), datetime(2000, 1, 1))
    except CronSimError as exc:
        raise CronSyntaxError(_explain(fields) or f"{source!r} never fires") from exc
    weekdays = {0 if day == 7 else day for day in sim.weekdays if isinstance(day, int)}
    sets = (sim.minutes, sim.hours, sim.days, sim.months, weekdays)
    parsed = [
        Field(frozenset(v for v in values if isinstance(v, int) and v >= 0), text, text[0] == "*")
        for values, text in zip(sets, fields, strict=True)
    ]
    expr = CronExpr(source, " ".join(fields), *parsed)
    if expr.next_after(0.0, UTC) is None:
        raise CronSyntaxError(f"{source!r} never fires")
    return expr


# -- error messages -----------------------------------------------------------------------
# cronsim says which field is bad ("Bad minute"); these say what in it, and why.

_SPECS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, DAYS),
)


def _explain(fields: list[str]) -> str | None:
    """Return what is wrong with the first bad field, or ``None`` if the fields read well
    (then the expression is valid but never fires, such as February 31)."""
    for text, (name, low, high, names) in zip(fields, _SPECS, strict=True):
        for part in text.split(","):
            problem = _problem(part, low, high, names) if part else f"empty list item in {text!r}"
            if problem:
                return f"{name}: {problem}"
    return None


def _problem(part: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    base, slash, step = part.partition("/")
    if slash and (not step.isdigit() or int(step) == 0):
        return f"bad step {step!r}"
    if base == "*":
        return None
    first, dash, last = base.partition("-")
    values = []
    for item in (first, last) if dash else (first,):
        if item.upper() in names:
            values.append(names.index(item.upper()) + low)
            continue
        if not item.isdigit():
            return f"{item!r} is not a number"
        if not low <= int(item) <= high:
            return f"{int(item)} is out of range {low}-{high}"
        values.append(int(item))
    if dash and values[1] < values[0]:
        return f"range {base!r} runs backwards"
    return None


# -- in words -----------------------------------------------------------------------------
# Werk words the time of day itself (its wording since its first cron: "every hour at minute
# 15", "at minute 0,30 past hour 9-17"); cron-descriptor words the days and the months (names,
# ranges, steps, L, W and #), and Werk joins the parts without cron-descriptor's commas.

_WORDS = Options()
_WORDS.use_24hour_time_format = True
_WORDS.casing_type = CasingTypeEnum.LowerCase
_WORDS.verbose = False


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _step(field: Field) -> int | None:
    base, slash, step = field.text.partition("/")
    return int(step) if base == "*" and slash and step.isdigit() else None


def _clock(expr: CronExpr) -> str:
    """Return the time of day in Werk's words, or ``""`` to take cron-descriptor's."""
    minute, hour = expr.minute, expr.hour
    minutes = sorted(minute.values)
    first = minutes[0] if len(minutes) == 1 and minute.text.isdigit() else None
    if hour.text != "*" and _step(minute):
        return ""  # cron-descriptor's "every 10 minutes, between 08:00 and 17:59"
    if hour.text == "*":
        if minute.text == "*":
            return "every minute"
        if _step(minute):
            return f"every {_step(minute)} minutes"
        if first is not None:
            return "every hour" if first == 0 else f"every hour at minute {first}"
        return f"at minutes {minute.text} of every hour"
    if first is not None and _step(hour):
        every = f"every {_step(hour)} hours"
        return every if first == 0 else f"{every} at minute {first}"
    if first is not None and hour.text.replace(",", "").isdigit() and len(hour.values) <= 4:
        return "at " + _join([f"{h:02d}:{first:02d}" for h in sorted(hour.values)])
    return f"at minute {minute.text} past hour {hour.text}"


def _segment(words: str, preposition: str) -> str:
    """Turn one of cron-descriptor's segments (``, only on Monday``, ``, January through
    March``, ``, every 2 days``) into a phrase that follows the time of day."""
    words = words.removeprefix(", ").removeprefix("or ").removeprefix("only ")
    if words[:1].isupper() or words[:1].isdigit():  # a bare name or number: "Monday ..."
        words = f"{preposition} {words}"
    return words


def describe(expr: CronExpr) -> str:
    """Describe a schedule in words: ``every 5 minutes``, ``at 03:00 every day``,
    ``at 09:00 on Monday through Friday``, ``at 00:00 on the last day of the month``.

    The time of day is Werk's wording; the days and months are cron-descriptor's
    (``CasingTypeEnum.LowerCase``, 24-hour clock), joined by Werk. An expression the
    library cannot word (a cronsim-only form) is shown as written.
    """
    try:
        words = ExpressionDescriptor(expr.fields, _WORDS)
        day = str(words.get_day_of_month_description()) if expr.day.text != "*" else ""
        weekday = str(words.get_day_of_week_description()) if expr.weekday.text != "*" else ""
        month = str(words.get_month_description()) if expr.month.text != "*" else ""
        clock = _clock(expr) or str(words.get_time_of_day_description()).replace(",", "")
    except Exception:  # cron-descriptor raises its own FormatException and plain errors
        return expr.source
    text = clock
    days = [_segment(part, "on") for part in (day, weekday) if part]
    if days:
        text += " " + " or ".join(days)
    elif not text.startswith("every") and not month.startswith(", every"):
        text += " every day"
    if month:
        text += " " + _segment(month, "in")
    return text
