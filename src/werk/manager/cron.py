"""Cron: the ``[[cron]]`` entries of the configuration, and firing their ticks exactly once.

Entries use Faktory Enterprise's format (``schedule``, ``[cron.job]`` with ``type``,
``queue``, ``args``, ``retry``, ``reserve_for``, ``[cron.job.custom]``) plus Werk's optional
``name``, ``timezone`` (a zoneinfo key, default UTC) and ``catch_up``. Every server runs
every entry; a tick enqueues one job across all servers sharing a store because firing
takes the entry's lock and compares the tick with the entry's record (last tick and recent
runs), all through the store's coordination primitives.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from werk.cronexpr import CronExpr, CronSyntaxError, describe, parse
from werk.errors import CommandError, WerkError, did_you_mean
from werk.job import check_queue_name, format_time, new_jid, validate
from werk.manager.manager import Manager
from werk.protocol import jsonwire

log = logging.getLogger("werk.cron")

HISTORY: Final = 25
"""How many recent runs each entry's record keeps."""
LOCK_TTL: Final = 30.0
LOCK_TRIES: Final = 50
LOCK_WAIT: Final = 0.02
MAX_CATCH_UP: Final = 31 * 24 * 3600.0
"""``catch_up`` looks back at most this far (seconds) for a missed tick."""
RECORD_PREFIX: Final = "cron:entry:"
LOCK_PREFIX: Final = "cron:lock:"
JOB_KEYS: Final = ("type", "queue", "args", "retry", "reserve_for", "custom", "priority")
ENTRY_KEYS: Final = ("schedule", "job", "name", "timezone", "catch_up")
"""The keys of a ``[[cron]]`` entry: Faktory Enterprise's ``schedule`` and ``job``, and
Werk's ``name``, ``timezone`` and ``catch_up``. Any other key is refused, naming it."""
JOB_TYPES: Final[dict[str, tuple[type, str]]] = {
    "type": (str, 'a string, the jobtype (type = "Report")'),
    "queue": (str, 'a string (queue = "default")'),
    "args": (list, "an array (args = [1, 2])"),
    "retry": (int, "an integer (retry = 5)"),
    "reserve_for": (int, "an integer number of seconds (reserve_for = 600)"),
    "custom": (dict, "a table ([cron.job.custom])"),
    "priority": (int, "an integer 1-9 (priority = 5)"),
}
"""What each ``[cron.job]`` key must be, checked before the job rules so the message names
the TOML key (``type``, not the wire's ``jobtype``) and what is expected."""
ENTRY_TYPES: Final[dict[str, tuple[type, str]]] = {
    "name": (str, 'a string (name = "nightly")'),
    "timezone": (str, 'a string, a zoneinfo key (timezone = "Europe/Berlin")'),
    "catch_up": (bool, "a TOML boolean, true or false (catch_up = true)"),
}


class CronConfigError(WerkError, ValueError):
    """A ``[[cron]]`` entry is invalid; the message names the entry."""


class CronNameTakenError(CronConfigError):
    """Two ``[[cron]]`` entries have one ``name`` (Werk's rule: the name is the entry's
    stable id, its history and web UI row, so two entries cannot share it).

    Attributes:
        name: the name.
        first: the 1-based index of the entry that has it first.
        index: the 1-based index of the entry that has it again.
    """

    def __init__(self, message: str, name: str, first: int, index: int) -> None:
        super().__init__(message)
        self.name, self.first, self.index = name, first, index


@dataclass(frozen=True, slots=True)
class CronEntry:
    """One ``[[cron]]`` entry, validated.

    Attributes:
        id: stable key of the entry's record: its ``name``, else a digest of its content.
        label: what the UI and logs call it (``name``, else the job type).
        expr: the parsed schedule.
        timezone: the zoneinfo key the schedule is read in.
        catch_up: after downtime, enqueue one job for the latest missed tick.
        job: the job template (``jobtype``, ``args``, ``queue`` ...), without a jid.
    """

    id: str
    label: str
    expr: CronExpr
    timezone: str
    catch_up: bool
    job: dict[str, Any] = field(hash=False)

    @property
    def zone(self) -> ZoneInfo:
        """The entry's time zone."""
        return ZoneInfo(self.timezone)

    def next_after(self, after: float) -> float | None:
        """Return the entry's first tick strictly after ``after``."""
        return self.expr.next_after(after, self.zone)


def _where(index: int, raw: Any) -> str:
    if not isinstance(raw, dict):
        return f"cron entry {index}"
    job = raw.get("job")
    jobtype = job.get("type") if isinstance(job, dict) else None
    label = raw.get("name") or jobtype or "?"
    return f'cron entry {index} ("{label}", schedule "{raw.get("schedule", "")}")'


def _job_template(raw: dict[str, Any]) -> dict[str, Any]:
    job = raw.get("job")
    if not isinstance(job, dict):
        raise ValueError("needs a [cron.job] table")
    _check_keys(job, JOB_KEYS, JOB_TYPES, "[cron.job] ")
    template = {"jobtype": job.get("type"), "args": job.get("args", [])}
    template.update({k: job[k] for k in JOB_KEYS[1:] if k in job and k != "args"})
    try:
        checked = validate({**template, "jid": "cron-check"}, 0.0)
        check_queue_name(str(template.get("queue") or "default"))
        # TOML allows nan and inf, and any nesting: the job must be strict JSON that fits.
        jsonwire.check_depth(checked)
        jsonwire.dumps(checked)
    except CommandError as exc:
        raise ValueError(exc.message) from exc
    return template


def _check_keys(
    table: dict[str, Any],
    known: tuple[str, ...],
    types: dict[str, tuple[type, str]],
    where: str,
) -> None:
    """Refuse a key not in ``known`` (with a did-you-mean) and a value of the wrong TOML
    type: ``catch_up = "no"`` is an error, not true; ``args = "1,2"`` is not an array.

    Raises:
        ValueError: naming the key (``where`` says which table) and what it must be.
    """
    for key in table:
        if key not in known:
            raise ValueError(
                f"unknown {where}key {key!r}{did_you_mean(key, known)} (known: {', '.join(known)})"
            )
    for key, (kind, expected) in types.items():
        value = table.get(key)
        if key in table and (
            not isinstance(value, kind) or isinstance(value, bool) != (kind is bool)
        ):
            raise ValueError(f"{where}{key} must be {expected}, not {value!r}")


def _entry(index: int, raw: Any) -> CronEntry:
    if not isinstance(raw, dict):
        raise ValueError("must be a table")
    _check_keys(raw, ENTRY_KEYS, ENTRY_TYPES, "")
    schedule = raw.get("schedule")
    if not isinstance(schedule, str):
        raise ValueError('needs a schedule string (schedule = "0 3 * * *")')
    expr = parse(schedule)
    timezone = raw.get("timezone") or "UTC"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {timezone!r}") from exc
    template = _job_template(raw)
    name = raw.get("name")
    content = json.dumps([schedule, timezone, template], sort_keys=True, default=str)
    digest = hashlib.sha256(content.encode()).hexdigest()[:16]
    return CronEntry(
        id=str(name) if name else digest,
        label=str(name or template["jobtype"]),
        expr=expr,
        timezone=timezone,
        catch_up=raw.get("catch_up", False),
        job=template,
    )


def parse_cron(settings: dict[str, Any]) -> list[CronEntry]:
    """Validate the ``[[cron]]`` entries of the parsed configuration.

    Entries without a ``name`` may be identical (each runs, as in Faktory Enterprise);
    a ``name`` must be unique.

    Raises:
        CronConfigError: an entry is invalid; the message names it (1-based index, name
            or job type, schedule) and says what is wrong.
        CronNameTakenError: two entries have the same ``name``.
    """
    raw_entries = settings.get("cron", [])
    if not isinstance(raw_entries, list):
        raise CronConfigError("cron must be an array of tables ([[cron]])")
    entries: list[CronEntry] = []
    seen: dict[str, int] = {}
    named: dict[str, int] = {}
    for index, raw in enumerate(raw_entries, start=1):
        try:
            entry = _entry(index, raw)
        except (ValueError, CronSyntaxError) as exc:
            raise CronConfigError(f"{_where(index, raw)}: {exc}") from exc
        name = raw.get("name")
        if name and name in named:
            raise CronNameTakenError(
                f"{_where(index, raw)}: the name {name!r} is taken by cron entry"
                f" {named[name]}; a cron entry's name must be unique",
                name,
                named[name],
                index,
            )
        if name:
            named[name] = index
        seen[entry.id] = seen.get(entry.id, 0) + 1
        if seen[entry.id] > 1:
            entry = CronEntry(
                f"{entry.id}-{seen[entry.id]}",
                entry.label,
                entry.expr,
                entry.timezone,
                entry.catch_up,
                entry.job,
            )
        entries.append(entry)
    return entries


class Cron:
    """Fires the ticks of cron entries through a manager, once across all servers.

    Args:
        manager: pushes the jobs (through the push middleware).
        entries: the validated entries (see :func:`parse_cron`).
    """

    def __init__(self, manager: Manager, entries: list[CronEntry]) -> None:
        self.manager = manager
        self.entries = entries
        self.owner = uuid.uuid4().hex
        self._cursor: dict[str, float] = {}

    def replace(self, entries: list[CronEntry]) -> None:
        """Swap in new entries; unchanged ones keep their position in time."""
        self.entries = entries
        ids = {entry.id for entry in entries}
        self._cursor = {k: v for k, v in self._cursor.items() if k in ids}

    async def _record(self, entry_id: str, now: float) -> dict[str, Any]:
        raw = await self.manager.store.get_record(RECORD_PREFIX + entry_id, now)
        return json.loads(raw) if raw else {"last": None, "runs": []}

    async def tick(self, now: float) -> int:
        """Fire every entry with a tick due by ``now``; return how many jobs were pushed.

        An entry first seen starts from ``now`` (missed ticks are skipped), or with
        ``catch_up`` from its last fired tick, so the latest missed tick fires once.
        """
        pushed = 0
        for entry in list(self.entries):
            since = self._cursor.get(entry.id)
            if since is None:
                since = await self._start(entry, now)
                self._cursor[entry.id] = since
            due = entry.expr.latest_at_or_before(now, since, entry.zone)
            if due is None:
                continue
            fired = await self.fire(entry, due, now)
            if fired is not None:
                self._cursor[entry.id] = due
                pushed += bool(fired)
        return pushed

    async def _start(self, entry: CronEntry, now: float) -> float:
        if not entry.catch_up:
            return now
        last = (await self._record(entry.id, now)).get("last")
        if last is None:
            return now
        return max(float(last), now - MAX_CATCH_UP)

    async def fire(self, entry: CronEntry, due: float, now: float) -> str | None:
        """Enqueue the job of ``entry`` for tick ``due`` unless some server already did.

        Returns:
            The new job's jid; ``""`` when the tick had already fired (or the push was
            refused, which is recorded); ``None`` when another server is firing the
            entry right now (try again shortly).
        """
        store = self.manager.store
        lock = LOCK_PREFIX + entry.id
        if not await store.claim(lock, self.owner, LOCK_TTL, now):
            return None
        try:
            record = await self._record(entry.id, now)
            if record.get("last") is not None and float(record["last"]) >= due:
                return ""
            if record.get("disabled"):
                # A disabled entry lets its ticks pass: enabling it does not catch them up.
                await self._save(entry.id, {**record, "last": due}, now)
                return ""
            jid = await self._push(entry, due, record, now)
            await self._save(entry.id, {**record, "last": due}, now)
            return jid
        finally:
            await store.release(lock, self.owner)

    async def _push(self, entry: CronEntry, tick: float, record: dict[str, Any], now: float) -> str:
        """Push the entry's job and add the run to ``record["runs"]``; return its jid."""
        jid = new_jid()
        run: dict[str, Any] = {"at": format_time(tick), "jid": jid, "enqueued_at": ""}
        try:
            await self.manager.push({**entry.job, "jid": jid})
            run["enqueued_at"] = format_time(now)
        except CommandError as exc:
            log.warning("cron %s: job refused: %s", entry.label, exc.wire())
            run["error"], jid = exc.wire(), ""
        record["runs"] = [run, *record.get("runs", [])][:HISTORY]
        return jid

    async def _save(self, entry_id: str, record: dict[str, Any], now: float) -> None:
        value = json.dumps(record, separators=(",", ":")).encode()
        await self.manager.store.put_record(RECORD_PREFIX + entry_id, value, None, now)

    def entry(self, entry_id: str) -> CronEntry | None:
        """Return the entry with this id, if configured."""
        return next((e for e in self.entries if e.id == entry_id), None)

    async def _locked(self, entry_id: str, now: float) -> dict[str, Any]:
        lock = LOCK_PREFIX + entry_id
        for _ in range(LOCK_TRIES):
            if await self.manager.store.claim(lock, self.owner, LOCK_TTL, now):
                return await self._record(entry_id, now)
            await asyncio.sleep(LOCK_WAIT)
        raise CommandError(f"cron entry {entry_id} is busy, try again")

    async def set_enabled(self, entry_id: str, enabled: bool) -> None:
        """Enable or disable an entry on every server sharing the store.

        The choice is kept in the entry's record, so it survives restarts and reloads
        (Werk's extension; Faktory's cron has no such switch). A disabled entry skips its
        ticks; the ``[[cron]]`` entry in the configuration stays as written.

        Raises:
            CommandError: no entry has this id, or its lock stayed busy.
        """
        if self.entry(entry_id) is None:
            raise CommandError(f"no cron entry {entry_id}")
        now = self.manager.clock()
        record = await self._locked(entry_id, now)
        try:
            record["disabled"] = not enabled
            await self._save(entry_id, record, now)
        finally:
            await self.manager.store.release(LOCK_PREFIX + entry_id, self.owner)

    async def enqueue_now(self, entry_id: str) -> str:
        """Push the entry's job now, outside its schedule (also when disabled).

        The run is listed in the entry's history with ``manual`` set; the next scheduled
        tick is unchanged. Returns the new jid (``""`` when the push was refused).

        Raises:
            CommandError: no entry has this id, or its lock stayed busy.
        """
        entry = self.entry(entry_id)
        if entry is None:
            raise CommandError(f"no cron entry {entry_id}")
        now = self.manager.clock()
        record = await self._locked(entry_id, now)
        try:
            jid = await self._push(entry, now, record, now)
            record["runs"][0]["manual"] = True
            await self._save(entry_id, record, now)
            return jid
        finally:
            await self.manager.store.release(LOCK_PREFIX + entry_id, self.owner)

    def next_due(self, now: float) -> float | None:
        """Return the earliest upcoming tick of any entry after ``now``."""
        ticks = [t for t in (entry.next_after(now) for entry in self.entries) if t is not None]
        return min(ticks) if ticks else None

    async def status(self) -> list[dict[str, Any]]:
        """Return every entry for the web UI: schedule in words, next run, recent runs.

        Each item has ``id``, ``name``, ``schedule``, ``description``, ``timezone``,
        ``catch_up``, ``job`` (the template), ``next_run`` (RFC 3339 UTC, ``""`` if
        never), ``last_run``, ``enabled`` and ``runs`` (newest first: ``at``, ``jid``,
        ``enqueued_at``, ``error`` when the push was refused, ``manual`` for an
        enqueue-now).
        """
        now = self.manager.clock()
        records = dict(await self.manager.store.records(RECORD_PREFIX, now))
        rows = []
        for entry in self.entries:
            raw = records.get(RECORD_PREFIX + entry.id)
            record = json.loads(raw) if raw else {"last": None, "runs": []}
            upcoming = entry.next_after(now)
            rows.append(
                {
                    "id": entry.id,
                    "name": entry.label,
                    "schedule": entry.expr.source,
                    "description": describe(entry.expr),
                    "timezone": entry.timezone,
                    "catch_up": entry.catch_up,
                    "job": dict(entry.job),
                    "next_run": format_time(upcoming) if upcoming is not None else "",
                    "last_run": format_time(record["last"]) if record["last"] else "",
                    "runs": record["runs"],
                    "enabled": not record.get("disabled", False),
                }
            )
        return rows
