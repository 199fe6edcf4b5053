"""The cron expression parser: fields, names, steps, the day rule, time zones, words."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from werk.cronexpr import CronSyntaxError, describe, parse


def ts(text: str, tz: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def wall(t: float | None, tz: str = "UTC") -> str:
    assert t is not None
    return datetime.fromtimestamp(t, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %a")


@pytest.mark.parametrize(
    ("expr", "field", "values"),
    [
        ("*/15 * * * *", "minute", {0, 15, 30, 45}),
        ("5-20/5 * * * *", "minute", {5, 10, 15, 20}),
        ("1,2,30-32 * * * *", "minute", {1, 2, 30, 31, 32}),
        ("10/20 * * * *", "minute", {10, 30, 50}),
        ("0 9-17/4 * * *", "hour", {9, 13, 17}),
        ("0 0 * jan,Jul-SEP *", "month", {1, 7, 8, 9}),
        ("0 0 * * MON-fri", "weekday", {1, 2, 3, 4, 5}),
        ("0 0 * * 7", "weekday", {0}),
        ("0 0 * * 5-7", "weekday", {5, 6, 0}),
        ("@hourly", "minute", {0}),
    ],
)
def test_fields(expr: str, field: str, values: set[int]) -> None:
    assert set(getattr(parse(expr), field).values) == values


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("61 * * * *", "minute: 61 is out of range 0-59"),
        ("* 24 * * *", "hour: 24 is out of range 0-23"),
        ("* * 0 * *", "day of month: 0 is out of range 1-31"),
        ("* * * 13 *", "month: 13 is out of range 1-12"),
        ("* * * * 8", "day of week: 8 is out of range 0-7"),
        ("* * * * funday", "day of week: 'funday' is not a number"),
        ("*/0 * * * *", "minute: bad step '0'"),
        ("30-10 * * * *", "minute: range '30-10' runs backwards"),
        ("1,,2 * * * *", "minute: empty list item"),
        ("* * * *", "expected 5 fields, got 4"),
        ("* * * * * *", "expected 5 fields, got 6"),
        ("0 0 31 2 *", "never fires"),
        ("", "expected 5 fields, got 0"),
    ],
)
def test_errors(expr: str, message: str) -> None:
    with pytest.raises(CronSyntaxError, match=message.replace("*", r"\*")):
        parse(expr)


def test_next_after_is_strictly_later_and_minute_aligned() -> None:
    every = parse("* * * * *")
    assert wall(every.next_after(ts("2026-01-01 12:00:00"), UTC)) == "2026-01-01 12:01 Thu"
    assert wall(every.next_after(ts("2026-01-01 12:00:59.9"), UTC)) == "2026-01-01 12:01 Thu"
    five = parse("*/5 * * * *")
    assert wall(five.next_after(ts("2026-01-01 12:04:59"), UTC)) == "2026-01-01 12:05 Thu"
    assert wall(five.next_after(ts("2026-12-31 23:58"), UTC)) == "2027-01-01 00:00 Fri"


def test_day_of_month_or_day_of_week_when_both_restricted() -> None:
    # Vixie cron: 1st of the month OR any Monday.
    expr = parse("0 0 1 * MON")
    got = []
    t = ts("2026-01-01 00:00")
    for _ in range(4):
        t = expr.next_after(t, UTC)  # type: ignore[assignment]
        got.append(wall(t))
    assert got == [
        "2026-01-05 00:00 Mon",
        "2026-01-12 00:00 Mon",
        "2026-01-19 00:00 Mon",
        "2026-01-26 00:00 Mon",
    ]
    assert wall(expr.next_after(ts("2026-01-26 00:00"), UTC)) == "2026-02-01 00:00 Sun"
    # A field starting with '*' (even '*/2') makes both must match: odd-day Fridays.
    odd_fridays = parse("0 0 */2 * 5")
    assert wall(odd_fridays.next_after(ts("2026-01-01 00:00"), UTC)) == "2026-01-09 00:00 Fri"


def test_leap_day() -> None:
    expr = parse("0 12 29 2 *")
    assert wall(expr.next_after(ts("2026-01-01 00:00"), UTC)) == "2028-02-29 12:00 Tue"


def test_time_zone_and_daylight_saving() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    daily = parse("0 3 * * *")
    # 03:00 Berlin is 02:00 UTC in winter, 01:00 UTC in summer.
    assert wall(daily.next_after(ts("2026-01-10 00:00"), berlin)) == "2026-01-10 02:00 Sat"
    assert wall(daily.next_after(ts("2026-07-10 00:00"), berlin)) == "2026-07-10 01:00 Fri"
    # 02:30 does not exist on 2026-03-29 in Berlin: the tick lands after the jump.
    gap = parse("30 2 * * *")
    tick = gap.next_after(ts("2026-03-29 00:00", "Europe/Berlin"), berlin)
    assert wall(tick, "Europe/Berlin") == "2026-03-29 03:30 Sun"
    # 02:30 happens twice on 2026-10-25: it fires once.
    after = gap.next_after(ts("2026-10-25 00:00", "Europe/Berlin"), berlin)
    assert after is not None
    again = gap.next_after(after, berlin)
    assert wall(again, "Europe/Berlin") == "2026-10-26 02:30 Mon"


def test_latest_at_or_before() -> None:
    expr = parse("*/10 * * * *")
    now = ts("2026-01-01 12:37:00")
    assert wall(expr.latest_at_or_before(now, ts("2026-01-01 12:00"), UTC)) == (
        "2026-01-01 12:30 Thu"
    )
    assert expr.latest_at_or_before(now, ts("2026-01-01 12:30"), UTC) is None
    assert expr.latest_at_or_before(ts("2026-01-01 12:40"), now, UTC) == ts("2026-01-01 12:40")


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("* * * * *", "every minute"),
        ("*/5 * * * *", "every 5 minutes"),
        ("0 * * * *", "every hour"),
        ("15 * * * *", "every hour at minute 15"),
        ("0 */6 * * *", "every 6 hours"),
        ("0 3 * * *", "at 03:00 every day"),
        ("@daily", "at 00:00 every day"),
        ("30 9,18 * * *", "at 09:30 and 18:30 every day"),
        ("0 9 * * MON-FRI", "at 09:00 on Monday through Friday"),
        ("0 9 * * 1,3", "at 09:00 on Monday and Wednesday"),
        ("0 8 1 * *", "at 08:00 on day 1 of the month"),
        ("0 0 1 1 *", "at 00:00 on day 1 of the month in January"),
        ("0,30 9-17 * * 1-5", "at minute 0,30 past hour 9-17 on Monday through Friday"),
    ],
)
def test_describe(expr: str, words: str) -> None:
    assert describe(parse(expr)) == words


def test_last_day_and_nth_weekday() -> None:
    # cronsim's L, LW and #: the last day, the last weekday, the last Friday, the second Monday
    start = ts("2026-02-10 00:00")
    assert wall(parse("0 0 L * *").next_after(start, UTC)) == "2026-02-28 00:00 Sat"
    assert (
        wall(parse("0 0 LW * *").next_after(ts("2026-05-01 00:00"), UTC)) == "2026-05-29 00:00 Fri"
    )
    assert wall(parse("0 9 * * 5L").next_after(start, UTC)) == "2026-02-27 09:00 Fri"
    assert wall(parse("0 9 * * 1#2").next_after(start, UTC)) == "2026-03-09 09:00 Mon"
    assert describe(parse("0 9 * * 1#2")) == "at 09:00 on the second Monday of the month"


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        # cron-descriptor's words for the days and months, Werk's for the time of day
        ("0 0 L * *", "at 00:00 on the last day of the month"),
        ("0 9 * * 5L", "at 09:00 on the last Friday of the month"),
        ("0 0 */2 * *", "at 00:00 every 2 days"),
        ("0 0 * */3 *", "at 00:00 every 3 months"),
        ("0 0 * 1-3 *", "at 00:00 every day in January through March"),
        ("0 0 1 * 1", "at 00:00 on day 1 of the month or on Monday"),
        ("*/10 8-17 * * *", "every 10 minutes between 08:00 and 17:59"),
    ],
)
def test_describe_days_and_months_from_cron_descriptor(expr: str, words: str) -> None:
    assert describe(parse(expr)) == words
