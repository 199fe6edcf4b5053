"""Helpers of the browser tests: headless Chromium via Playwright, a filler of jobs.

Chromium is the one ``WERK_CHROMIUM`` names, else the first of ``chromium``,
``chromium-browser`` and ``google-chrome`` on PATH (``scripts/test-deps`` installs Debian's);
Playwright drives it without downloading a browser of its own. Both are optional locally
(the tests skip) and required in CI and by ``make test``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.helpers import Peer, ServerProcess
from werk.protocol.resp import Simple

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
CHROMIUM = os.environ.get("WERK_CHROMIUM") or next(
    filter(None, map(shutil.which, CHROMIUM_NAMES)), "chromium"
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(
    os.environ.get("WERK_ARTIFACTS") or Path(tempfile.gettempdir()) / "werk-test-artifacts"
)
SCREENSHOTS = ARTIFACTS / "screenshots"
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
"""Where ``WERK_DOCS_SCREENSHOTS=1`` also puts the pictures that docs/webui.md shows."""
OK = Simple("OK")


def browser_missing() -> str | None:
    """Return why the browser tests cannot run here, or ``None`` when they can."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install playwright)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium ({CHROMIUM}): run scripts/test-deps, or set WERK_CHROMIUM"
    return None


def launch() -> Iterator[Any]:
    """Start Playwright and headless Chromium; yield the browser; stop both."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Any, name: str, docs: bool = False) -> None:
    """Save a full-page screenshot as a test artifact, ``<artifacts>/screenshots/<name>.png``
    (``$WERK_ARTIFACTS``, else ``werk-test-artifacts`` in the temporary directory).

    With ``docs`` and ``WERK_DOCS_SCREENSHOTS=1`` in the environment, also save what the
    window shows as ``docs/screenshots/<name>.jpg``, the picture docs/webui.md shows.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    if docs and os.environ.get("WERK_DOCS_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = DOCS_SCREENSHOTS / f"{name}.jpg"
        page.screenshot(path=str(path), type="jpeg", quality=70, animations="disabled")


class Filler:
    """Puts jobs where a test wants them, through the real work protocol."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.peer = Peer(server.host, server.port)
        assert self.peer.hello() == OK

    def push(self, jid: str, **fields: Any) -> None:
        """PUSH one job."""
        job = {"jid": jid, "jobtype": "Report", "args": [jid, 1], **fields}
        assert self.peer.call("PUSH " + json.dumps(job)) == OK

    def fail(self, jid: str, queue: str, **fields: Any) -> None:
        """PUSH a job to an otherwise empty queue, FETCH it and FAIL it once."""
        self.push(jid, queue=queue, **fields)
        fetched = self.peer.call(f"FETCH {queue}")
        assert isinstance(fetched, bytes) and json.loads(fetched)["jid"] == jid
        report = {"jid": jid, "errtype": "KeyError", "message": f"no {jid}", "backtrace": ["a:1"]}
        assert self.peer.call("FAIL " + json.dumps(report)) == OK

    def fill(self, name: str, jids: list[str], queues: list[str]) -> None:
        """Put jobs into a set (``retries``, ``scheduled`` or ``dead``), cycling queues."""
        for i, jid in enumerate(jids):
            queue = queues[i % len(queues)]
            if name == "scheduled":
                self.push(jid, queue=queue, at="2999-01-01T00:00:00Z")
            else:
                self.fail(jid, queue, retry=-1 if name == "dead" else 25)

    def info(self) -> dict[str, Any]:
        """Return the INFO document's ``faktory`` section."""
        reply = self.peer.call("INFO")
        assert isinstance(reply, bytes)
        faktory: dict[str, Any] = json.loads(reply)["faktory"]
        return faktory

    def worker(self, wid: str, **hello: Any) -> Peer:
        """Connect a worker process ``wid``; return its connection."""
        peer = Peer(self.server.host, self.server.port)
        assert peer.hello(wid=wid, hostname="box", pid=os.getpid(), **hello) == OK
        return peer

    def close(self) -> None:
        """Close the connection."""
        self.peer.close()


def wait_for(check: Any, timeout: float = 5.0) -> None:
    """Wait until ``check()`` is true (a page-independent condition)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
