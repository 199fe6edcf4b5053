"""Paging: any page number (past the end, 0, negative, non-numeric, huge) shows a page of
the listing with a true range ("26–26 of 26", never "24,951–24,950 of 3").

Every paged listing goes through :mod:`werk.manager.paging`; the properties check its
arithmetic and the ``range_of`` macro's text over page numbers, sizes and totals, and the
page tests run each listing of the web UI on every backend.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.webui.conftest import Web
from werk.manager.batches import batches_of
from werk.manager.paging import Page, clamp, cut, page_count
from werk.webui import i18n
from werk.webui.render import MAX_INT_PARAM, _environment

RANGE = re.compile(r"(\d[\d,]*)–(\d[\d,]*) of (\d[\d,]*)")
MACRO = _environment().from_string(
    '{% from "_macros.html" import range_of with context %}{{ range_of(page) }}'
)


def number(text: str) -> int:
    return int(text.replace(",", ""))


def range_text(page: Page[int]) -> str:
    i18n.use("en")
    return MACRO.render(page=page)


@given(
    total=st.integers(0, 10**7),
    per_page=st.integers(1, 200),
    asked=st.integers(-(10**12), 10**12),
)
def test_a_clamped_page_shows_a_range_inside_the_listing(
    total: int, per_page: int, asked: int
) -> None:
    # Given any requested page of a listing of ``total`` items
    number_ = clamp(asked, total, per_page)
    pages = page_count(total, per_page)
    assert 1 <= number_ <= pages
    # When the store returns what lies at that page's offset
    offset = (number_ - 1) * per_page
    shown = max(0, min(per_page, total - offset))
    page = Page(list(range(shown)), number_, total, per_page)
    # Then the range is inside 1..total and matches the items, or says "none"
    text = range_text(page)
    if total == 0:
        assert text == "none" and page.first == page.last == 0
        return
    match = RANGE.fullmatch(text)
    assert match, text
    first, last, of = (number(g) for g in match.groups())
    assert 1 <= first <= last <= of == total
    assert last - first + 1 == shown > 0
    # And a page past the end is the last page, one below 1 the first
    assert number_ == (pages if asked > pages else 1 if asked < 1 else asked)


@given(
    total=st.integers(0, 10_000),
    per_page=st.integers(1, 100),
    asked=st.integers(-(10**6), 10**6),
    items=st.integers(0, 100),
)
def test_the_range_stays_true_when_the_listing_changed_under_the_page(
    total: int, per_page: int, asked: int, items: int
) -> None:
    # Given a count that no longer matches what the store returned (jobs came or went
    # between the count and the read)
    page = Page(list(range(min(items, per_page))), max(1, asked), total, per_page)
    text = range_text(page)
    # Then the text never shows a backwards range or a last item past the total
    if page.items:
        match = RANGE.fullmatch(text)
        assert match, text
        first, last, of = (number(g) for g in match.groups())
        assert 1 <= first <= last <= of
    else:
        assert text == (f"0 of {page.total:,}" if page.total else "none")


@given(rows=st.integers(0, 300), per_page=st.integers(1, 50), asked=st.integers(-50, 50))
def test_cut_pages_a_listing_in_memory(rows: int, per_page: int, asked: int) -> None:
    listing = list(range(rows))
    page = cut(listing, asked, per_page)
    assert page.items == listing[page.offset : page.offset + per_page]
    assert page.total == rows and 1 <= page.page <= page.pages
    assert bool(page.items) == (rows > 0)


async def fill_dead(web: Web) -> None:
    for i in range(26):
        await web.fail(f"dead-{i:04d}", retry=-1)


async def fill_retries(web: Web) -> None:
    for i in range(26):
        await web.fail(f"retry-{i:04d}")


async def fill_scheduled(web: Web) -> None:
    for i in range(26):
        await web.push(f"sched-{i:04d}", at="2999-01-01T00:00:00Z")


async def fill_queue(web: Web) -> None:
    for i in range(26):
        await web.push(f"queued-{i:04d}")


async def fill_busy(web: Web) -> None:
    await fill_queue(web)
    for _ in range(26):
        assert await web.server.manager.fetch(["default"], "wid-1", timeout=0) is not None


async def fill_batches(web: Web) -> None:
    batches = batches_of(web.server.manager)
    for i in range(26):
        spec = {"description": f"batch {i}", "complete": {"jobtype": "Tidy", "args": []}}
        await batches.new(spec, web.server.manager.clock())


LISTINGS: dict[str, Callable[[Web], Awaitable[None]]] = {
    "/dead": fill_dead,
    "/retries": fill_retries,
    "/scheduled": fill_scheduled,
    "/queues/default": fill_queue,
    "/busy": fill_busy,
    "/batches": fill_batches,
}
LAST = ["2", "3", "999", str(MAX_INT_PARAM), "99999999999999999999999"]
FIRST = ["1", "0", "-1", "abc", "", "1.5", "٣"]


@pytest.mark.parametrize("path", LISTINGS)
async def test_every_listing_shows_a_true_range_for_any_page_number(web: Web, path: str) -> None:
    # Given a listing of 26 items (two pages of 25)
    await LISTINGS[path](web)
    # Then a page past the end shows the last page, and a bad or low number the first
    for asked, expected in [
        *((a, "26–26 of 26") for a in LAST),
        *((a, "1–25 of 26") for a in FIRST),
    ]:
        response = await web.client.get(path, params={"page": asked})
        assert response.status_code == 200, (asked, response.text[:300])
        text = response.text
        assert expected in text, (path, asked, RANGE.findall(text))
        page = "2" if expected.startswith("26") else "1"
        assert f"Page {page} of 2" in text, (path, asked)
