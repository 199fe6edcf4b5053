"""Paging of the web UI's listings: one page of items, its number and the range shown.

Every paged listing (a queue, the retry, scheduled and dead sets, the jobs running now,
the batches) asks for its page through :func:`clamp` once it knows the total, so a page
number past the end shows the last page (and one below 1 the first): a listing never
shows a range outside ``1..total``. The page number comes from the query string
(:func:`werk.webui.render.int_param` turns a non-numeric, zero or negative one into 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

PER_PAGE = 25
"""Items per page of every listing."""

T = TypeVar("T")


def page_count(total: int, per_page: int = PER_PAGE) -> int:
    """Return the number of pages of ``total`` items (at least 1: an empty listing has one
    empty page)."""
    return max(1, math.ceil(max(0, total) / per_page))


def clamp(page: int, total: int, per_page: int = PER_PAGE) -> int:
    """Return ``page`` moved into ``1..page_count(total, per_page)``."""
    return min(max(1, page), page_count(total, per_page))


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing, numbered from 1, with the total it was cut from.

    ``total`` is raised to cover the items shown when the listing grew between counting
    and reading it (so ``last <= total`` always holds).
    """

    items: list[T]
    page: int
    total: int
    per_page: int = PER_PAGE
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "page", max(1, self.page))
        object.__setattr__(self, "total", max(self.total, self.offset + len(self.items)))

    @property
    def pages(self) -> int:
        """The number of pages (at least 1)."""
        return page_count(self.total, self.per_page)

    @property
    def offset(self) -> int:
        """The index of this page's first item in the whole listing."""
        return (self.page - 1) * self.per_page

    @property
    def first(self) -> int:
        """The 1-based position of the first item shown (0 when none is)."""
        return self.offset + 1 if self.items else 0

    @property
    def last(self) -> int:
        """The 1-based position of the last item shown (0 when none is)."""
        return self.offset + len(self.items) if self.items else 0


def cut(rows: Sequence[T], page: int, per_page: int = PER_PAGE) -> Page[T]:
    """Return page ``page`` (clamped) of a listing held in memory."""
    number = clamp(page, len(rows), per_page)
    start = (number - 1) * per_page
    return Page(list(rows[start : start + per_page]), number, len(rows), per_page)
