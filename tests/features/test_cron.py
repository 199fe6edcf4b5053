"""Cron on real stores with a controlled clock: on its minute, once, across servers."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.features.conftest import Clock
from tests.storage.conftest import Backend
from werk.manager.cron import ENTRY_KEYS, Cron, CronConfigError, CronNameTakenError, parse_cron
from werk.manager.manager import Manager
from werk.server.cron import CronScheduler
from werk.storage.base import Store


def ts(text: str, tz: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def entry(schedule: str = "* * * * *", **extra: Any) -> dict[str, Any]:
    job = {"type": "Report", "queue": "cron", "args": [1, "x"], "retry": 3, "reserve_for": 600}
    job.update(extra.pop("job", {}))
    return {"schedule": schedule, "job": job, **extra}


async def cron_on(store: Store, clock: Clock, *entries: dict[str, Any]) -> Cron:
    """A Cron started at ``clock()`` (its first tick: entries start from then)."""
    cron = Cron(Manager(store, clock=clock), parse_cron({"cron": list(entries)}))
    await cron.tick(clock())
    return cron


async def queued(store: Store, queue: str = "cron") -> list[dict[str, Any]]:
    return [json.loads(q.entry.body) for q in await store.queue_page(queue, 0, 100)]


async def test_fires_on_its_minute_once(store: Store) -> None:
    # Given an every-minute entry, started at 12:00:30
    clock = Clock(ts("2026-05-04 12:00:30"))
    cron = await cron_on(store, clock, entry(job={"custom": {"team": "ops"}, "priority": 7}))
    assert await cron.tick(clock()) == 0
    # When the clock nears, reaches and passes 12:01
    clock.now = ts("2026-05-04 12:00:59.999")
    assert await cron.tick(clock()) == 0
    clock.now = ts("2026-05-04 12:01:00")
    assert await cron.tick(clock()) == 1
    for later in ("12:01:00.5", "12:01:30", "12:01:59.9"):
        clock.now = ts(f"2026-05-04 {later}")
        assert await cron.tick(clock()) == 0
    # Then exactly one job was enqueued, built from the template
    jobs = await queued(store)
    assert len(jobs) == 1
    job = jobs[0]
    assert (job["jobtype"], job["args"], job["queue"]) == ("Report", [1, "x"], "cron")
    assert (job["retry"], job["reserve_for"], job["priority"]) == (3, 600, 7)
    assert job["custom"] == {"team": "ops"}
    # And the next minute fires again
    clock.now = ts("2026-05-04 12:02:00.2")
    assert await cron.tick(clock()) == 1
    assert len(await queued(store)) == 2


async def test_two_servers_fire_each_tick_once(feature_backend: Backend) -> None:
    # Given two servers (own store connections and managers) on the same data
    clock = Clock(ts("2026-05-04 12:00:10"))
    first = await feature_backend.open()
    second = first if feature_backend.name.startswith("sqlite") else await feature_backend.open()
    crons = [
        await cron_on(s, clock, entry(), entry("*/2 * * * *", name="even")) for s in (first, second)
    ]
    # When both tick at the same moments, concurrently, over five minutes
    for second_of_minute in range(0, 5 * 60, 15):
        clock.now = ts("2026-05-04 12:01:00") + second_of_minute
        await asyncio.gather(*(cron.tick(clock()) for cron in crons))
    # Then each tick enqueued one job: minutes 1..5, and 2 and 4 for the even entry
    jobs = await queued(first)
    assert len(jobs) == 5 + 2
    status = await crons[1].status()
    runs = {row["name"]: [run["at"] for run in row["runs"]] for row in status}
    assert runs["even"] == ["2026-05-04T12:04:00Z", "2026-05-04T12:02:00Z"]
    assert len(runs["Report"]) == 5
    assert {run["jid"] for row in status for run in row["runs"]} == {j["jid"] for j in jobs}


async def test_missed_ticks_are_skipped_after_downtime(store: Store) -> None:
    clock = Clock(ts("2026-05-04 12:00:30"))
    await (await cron_on(store, clock, entry())).tick(ts("2026-05-04 12:01:00"))
    assert len(await queued(store)) == 1
    # A restart (a new Cron) at 12:05:30: 12:02..12:05 are skipped
    clock.now = ts("2026-05-04 12:05:30")
    restarted = Cron(Manager(store, clock=clock), parse_cron({"cron": [entry()]}))
    assert await restarted.tick(clock()) == 0
    assert await restarted.tick(ts("2026-05-04 12:06:00")) == 1
    assert len(await queued(store)) == 2


async def test_catch_up_enqueues_the_latest_missed_tick(store: Store) -> None:
    clock = Clock(ts("2026-05-04 12:00:30"))
    await (await cron_on(store, clock, entry(catch_up=True))).tick(ts("2026-05-04 12:01:00"))
    clock.now = ts("2026-05-04 12:05:30")
    restarted = Cron(Manager(store, clock=clock), parse_cron({"cron": [entry(catch_up=True)]}))
    assert await restarted.tick(clock()) == 1
    assert await restarted.tick(ts("2026-05-04 12:05:45")) == 0
    status = await restarted.status()
    assert [run["at"] for run in status[0]["runs"]] == [
        "2026-05-04T12:05:00Z",
        "2026-05-04T12:01:00Z",
    ]
    # A new entry with catch_up has no history: nothing to catch up
    new_entry = parse_cron({"cron": [entry(catch_up=True, name="n")]})
    fresh = Cron(Manager(store, clock=clock), new_entry)
    assert await fresh.tick(clock()) == 0


async def test_timezone(store: Store) -> None:
    clock = Clock(ts("2026-01-15 00:00"))
    cron = await cron_on(store, clock, entry("0 3 * * *", timezone="America/New_York"))
    assert await cron.tick(ts("2026-01-15 03:00")) == 0  # 03:00 UTC is 22:00 in New York
    assert await cron.tick(ts("2026-01-15 08:00")) == 1  # 03:00 EST
    status = await cron.status()
    assert status[0]["timezone"] == "America/New_York"
    assert status[0]["description"] == "at 03:00 every day"
    assert status[0]["last_run"] == "2026-01-15T08:00:00Z"


async def test_status_for_the_ui(store: Store) -> None:
    clock = Clock(ts("2026-05-04 12:00:30"))
    cron = await cron_on(store, clock, entry("*/5 * * * *", name="five"), entry("0 3 * * *"))
    rows = await cron.status()
    assert [(r["name"], r["description"], r["next_run"]) for r in rows] == [
        ("five", "every 5 minutes", "2026-05-04T12:05:00Z"),
        ("Report", "at 03:00 every day", "2026-05-05T03:00:00Z"),
    ]
    assert rows[0]["runs"] == [] and rows[0]["last_run"] == ""
    assert rows[0]["job"]["jobtype"] == "Report"
    await cron.tick(ts("2026-05-04 12:05:00"))
    clock.now = ts("2026-05-04 12:05:01")
    rows = await cron.status()
    assert rows[0]["next_run"] == "2026-05-04T12:10:00Z"
    (run,) = rows[0]["runs"]
    assert run["at"] == "2026-05-04T12:05:00Z" and len(run["jid"]) >= 8


async def test_refused_push_is_recorded_not_retried(store: Store) -> None:
    from werk.errors import NotUniqueError
    from werk.manager.middleware import Middleware

    class Refuse(Middleware):
        async def push(self, job: dict[str, Any], now: float) -> None:
            raise NotUniqueError()

    clock = Clock(ts("2026-05-04 12:00:30"))
    manager = Manager(store, clock=clock, middleware=[Refuse()])
    cron = Cron(manager, parse_cron({"cron": [entry()]}))
    assert await cron.tick(clock()) == 0
    assert await cron.tick(ts("2026-05-04 12:01:00")) == 0
    assert await cron.tick(ts("2026-05-04 12:01:10")) == 0
    (row,) = await cron.status()
    assert [run.get("error") for run in row["runs"]] == ["NOTUNIQUE Job not unique"]


def test_bad_entries_name_the_entry() -> None:
    good = entry()
    with pytest.raises(CronConfigError) as bad:
        parse_cron({"cron": [good, entry("61 * * * *", job={"type": "Cleanup"})]})
    assert str(bad.value) == (
        'cron entry 2 ("Cleanup", schedule "61 * * * *"): minute: 61 is out of range 0-59'
    )
    cases = [
        (entry(timezone="Mars/Olympus"), "unknown timezone 'Mars/Olympus'"),
        ({"schedule": "* * * * *"}, "needs a [cron.job] table"),
        (entry(job={"type": ""}), "jobs must have a jobtype parameter"),
        (entry(job={"queue": "bad queue"}), "queue names must match"),
        (entry(job={"args": "1,2"}), "[cron.job] args must be an array (args = [1, 2]), not '1,2'"),
        (entry(job={"type": 5}), "[cron.job] type must be a string, the jobtype"),
        (entry(job={"retry": True}), "[cron.job] retry must be an integer"),
        (entry(job={"custom": "x"}), "[cron.job] custom must be a table"),
        (entry(job={"retries": 3}), "unknown [cron.job] key 'retries' (did you mean 'retry'?)"),
        ({"job": {"type": "X"}}, "needs a schedule string"),
        ({"shedule": "* * * * *", "job": {"type": "X"}}, "'shedule' (did you mean 'schedule'?)"),
        (entry(timezon="Europe/Berlin"), "unknown key 'timezon' (did you mean 'timezone'?)"),
        (entry(catchup=True), "unknown key 'catchup' (did you mean 'catch_up'?)"),
        (entry(catch_up="no"), "catch_up must be a TOML boolean, true or false"),
        (entry(catch_up=1), "catch_up must be a TOML boolean"),
        (entry(timezone=5), "timezone must be a string"),
        (entry(name=["x"]), "name must be a string"),
    ]
    for raw, message in cases:
        with pytest.raises(CronConfigError, match="cron entry 1") as bad:
            parse_cron({"cron": [raw]})
        assert message in str(bad.value)
    with pytest.raises(CronConfigError, match=r"array of tables"):
        parse_cron({"cron": {"schedule": "* * * * *"}})


def test_identical_entries_are_kept_apart() -> None:
    entries = parse_cron({"cron": [entry(), entry(), entry(name="x")]})
    assert len({e.id for e in entries}) == 3


def test_a_name_is_unique() -> None:
    with pytest.raises(CronNameTakenError) as taken:
        parse_cron({"cron": [entry(name="x"), entry(), entry("0 3 * * *", name="x")]})
    assert (taken.value.name, taken.value.first, taken.value.index) == ("x", 1, 3)
    assert (
        'cron entry 3 ("x", schedule "0 3 * * *"): the name \'x\' is taken by cron entry 1;'
        in str(taken.value)
    )


async def test_scheduler_reload_keeps_old_entries_on_error(store: Store) -> None:
    clock = Clock(ts("2026-05-04 12:00:30"))
    manager = Manager(store, clock=clock)
    scheduler = CronScheduler(manager, {"cron": [entry(name="a")]}, clock=clock)
    await scheduler.tick()
    with pytest.raises(CronConfigError, match='cron entry 1 \\("b"'):
        scheduler.reload({"cron": [entry("* * * 13 *", name="b")]})
    assert [e.id for e in scheduler.cron.entries] == ["a"]
    scheduler.reload({"cron": [entry(name="a"), entry("*/2 * * * *", name="c")]})
    await scheduler.tick()  # "c" starts now
    clock.now = ts("2026-05-04 12:02:00")
    assert await scheduler.tick() == 2
    scheduler.reload({})
    assert await scheduler.status() == []


async def test_scheduler_loop_fires_in_real_time(store: Store) -> None:
    # The loop wakes on its own; the clock is shifted so a minute starts in 0.3 s.
    start = ts("2026-05-04 12:00:59.7")
    loop = asyncio.get_running_loop()
    origin = loop.time()

    def clock() -> float:
        return start + (loop.time() - origin)

    manager = Manager(store, clock=clock)
    scheduler = CronScheduler(manager, {"cron": [entry()]})
    scheduler.start()
    try:
        for _ in range(60):
            await asyncio.sleep(0.05)
            if await queued(store):
                break
    finally:
        await scheduler.stop()
    assert len(await queued(store)) == 1
    assert scheduler.errors == 0


@settings(deadline=None)
@given(st.text(min_size=1, max_size=12).filter(lambda key: key not in ENTRY_KEYS))
def test_any_unknown_entry_key_is_refused_naming_it(key: str) -> None:
    # The finding: `timezon = ...` and `catchup = true` were ignored, the entry ran in UTC.
    with pytest.raises(CronConfigError, match="unknown key") as bad:
        parse_cron({"cron": [entry(**{key: "Europe/Berlin"})]})
    assert repr(key) in str(bad.value)


TOML_VALUES = st.one_of(
    st.text(max_size=5), st.integers(), st.floats(), st.lists(st.booleans(), max_size=2)
)


@settings(deadline=None)
@given(TOML_VALUES)
def test_catch_up_is_a_toml_boolean_or_an_error(value: Any) -> None:
    # The finding: catch_up = "no" was taken as true (bool("no")).
    with pytest.raises(CronConfigError, match="catch_up must be a TOML boolean"):
        parse_cron({"cron": [entry(catch_up=value)]})
    for flag in (True, False):
        assert parse_cron({"cron": [entry(catch_up=flag)]})[0].catch_up is flag
