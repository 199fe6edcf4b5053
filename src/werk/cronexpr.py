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

_WORDS = Options()
_WORDS.use_24hour_time_format = True
_WORDS.casing_type = CasingTypeEnum.Sentence
_WORDS.verbose = False


def describe(expr: CronExpr) -> str:
    """Describe a schedule in words, as cron-descriptor does (24-hour clock): ``every 5
    minutes``, ``at 09:00, Monday through Friday``. Werk's own touches: the words start in
    lower case (they are shown inside a sentence or a table cell), and a clock time with no
    day restricted says ``every day`` (``at 03:00 every day``)."""
    try:
        words = str(ExpressionDescriptor(expr.fields, _WORDS).get_description())
    except Exception:  # the library cannot word it (a cronsim-only form): show the fields
        return expr.source
    words = words[0].lower() + words[1:]
    if not expr.hour.star and expr.day.star and expr.weekday.star and expr.month.star:
        words += " every day"
    return words
