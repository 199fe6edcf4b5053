"""The web UI's audit lines: every action that changes jobs, queues or processes is logged
with what it did, to how many, and from which client address (Werk's own addition: Faktory
logs nothing for them). Logger ``werk.webui.audit``, level info, one line per action::

    web UI action from 10.0.0.7: delete 15 jobs from the dead set (jobtype=Report)
"""

from __future__ import annotations

import logging

from starlette.requests import Request

log = logging.getLogger("werk.webui.audit")


def jobs(count: int) -> str:
    """``1 job``, ``15 jobs``."""
    return f"{count} job" if count == 1 else f"{count} jobs"


def audit(request: Request, what: str) -> None:
    """Log ``what`` (e.g. ``pause queue default``) with the client's address."""
    client = request.client.host if request.client is not None else "an unknown address"
    log.info("web UI action from %s: %s", client, what)
