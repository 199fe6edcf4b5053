"""Selectors: which jobs or queues a command names, parsed strictly before anything acts.

The rule (Werk's, stricter than Faktory where Faktory would widen): a selector that does
not parse is refused with ``-ERR`` and changes nothing; a selector never names more than a
valid input spells out. "Everything" is only ever said explicitly: MUTATE without a
filter (or with ``{}``), ``QUEUE <sub> *`` with ``*`` alone. Werk's MUTATE target
``queue`` never means "everything": it names jobs by jid only. docs/protocol.md lists where
this differs from Faktory 1.10.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from werk.errors import CommandError
from werk.job import QUEUE_NAME, QUEUE_RULE

FILTER_KEYS = ("jids", "regexp", "jobtype")
MAX_FILTER_JIDS = 10_000
"""The most jids one MUTATE filter may list."""
ALL_QUEUES = "*"
QUEUE_TARGET = "queue"
"""Werk's MUTATE target for jobs still waiting in a queue (``discard`` by ``jids`` only)."""


@dataclass(frozen=True, slots=True)
class JobFilter:
    """A MUTATE filter: every criterion given must hold (they combine with AND).

    Attributes:
        jids: the jobs named by id, or ``None`` for any id (``[]`` names no job).
        regexp: a glob (``*``, ``?``, ``[...]``, as Redis MATCH) over the job's JSON.
        jobtype: the exact job type.
    """

    jids: frozenset[str] | None = None
    regexp: str | None = None
    jobtype: str | None = None

    @property
    def selects_all(self) -> bool:
        """Whether the filter has no criterion at all (Faktory's ``{}``: every job)."""
        return self.jids is None and self.regexp is None and self.jobtype is None


def _string(flt: dict[str, Any], key: str) -> str | None:
    value = flt.get(key)
    if value is None or value == "":
        return None  # Go's zero value: the criterion is not given
    if not isinstance(value, str):
        raise CommandError(f"invalid filter: {key} must be a string")
    return value


def parse_filter(raw: Any) -> JobFilter | None:
    """Parse a MUTATE ``filter``: absent or ``null`` is ``None`` (the whole set).

    Types follow Faktory's ``JobFilter``: ``jids`` a list of strings, ``regexp`` and
    ``jobtype`` strings (``null`` or ``""`` leave a criterion out). Werk also refuses keys
    it does not know, since an ignored misspelt key would widen the selection, and a filter
    whose keys are all empty (``{"jobtype": ""}``, a blank form field, say): Faktory takes
    it for the whole set. ``{}``, with no key at all, stays the whole set, as Faktory's
    clients send it for "everything".

    Raises:
        CommandError: the filter is not an object, has an unknown key or a wrong type, or
            names criteria that are all empty.
    """
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise CommandError("invalid filter: must be a JSON object or null")
    unknown = sorted(str(key) for key in raw if key not in FILTER_KEYS)
    if unknown:
        raise CommandError(
            f"invalid filter: unknown key {unknown[0]!r} (known: {', '.join(FILTER_KEYS)})"
        )
    jids = raw.get("jids")
    if jids is not None:
        if not isinstance(jids, list) or not all(isinstance(j, str) for j in jids):
            raise CommandError("invalid filter: jids must be a list of strings")
        if len(jids) > MAX_FILTER_JIDS:
            raise CommandError(f"invalid filter: more than {MAX_FILTER_JIDS} jids")
    parsed = JobFilter(
        # A jid holding NUL names no job (PUSH refuses it) and no store can look it up.
        jids=None if jids is None else frozenset(j for j in jids if "\x00" not in j),
        regexp=_string(raw, "regexp"),
        jobtype=_string(raw, "jobtype"),
    )
    if raw and parsed.selects_all:
        given = ", ".join(sorted(str(key) for key in raw))
        raise CommandError(
            f"invalid filter: {given} {'is' if len(raw) == 1 else 'are'} empty, so it names"
            " no job; leave the filter out to act on the whole set"
        )
    return parsed


def queue_selection(names: Sequence[str]) -> list[str] | None:
    """Turn the names of ``QUEUE PAUSE|RESUME|REMOVE`` into a list, ``None`` for ``*``.

    ``*`` means every queue only when it is the only name.

    Raises:
        CommandError: no name, or ``*`` given together with other names.
    """
    listed = [name for name in names if name]
    if not listed:
        raise CommandError("needs at least one queue name")
    if ALL_QUEUES in listed:
        if len(listed) > 1:
            raise CommandError("'*' (every queue) must be the only queue name")
        return None
    return listed


def queued_selection(cmd: str, payload: dict[str, Any]) -> tuple[str, list[str]]:
    """Parse a MUTATE on Werk's target ``queue``: the queue name and the jids to discard.

    Only ``discard`` applies, the payload's ``queue`` names one queue (Faktory's rule for
    names), and the filter must be ``{"jids": [...]}``: no filter, ``{}``, ``regexp`` or
    ``jobtype`` are refused (deleting a whole queue is ``QUEUE REMOVE``). ``"jids": []``
    names no job.

    Raises:
        CommandError: any other command, queue or filter.
    """
    if cmd != "discard":
        raise CommandError(f"only discard applies to target {QUEUE_TARGET} (not {cmd})")
    queue = payload.get("queue")
    if not isinstance(queue, str) or not QUEUE_NAME.match(queue):
        raise CommandError(f"target {QUEUE_TARGET} needs a queue: {QUEUE_RULE}")
    flt = parse_filter(payload.get("filter"))
    if flt is None or flt.jids is None or flt.regexp is not None or flt.jobtype is not None:
        raise CommandError(
            f'invalid filter: target {QUEUE_TARGET} takes jids only, as {{"jids": [...]}}'
        )
    return queue, sorted(flt.jids)
