"""What every page module is handed: the server, the query API and the page renderer.

It lives apart from :mod:`werk.webui.app` (which builds the app from the page modules) so
that the page modules' imports point one way: app → pages → ui.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from werk.manager.queries import Queries
from werk.webui.render import Renderer

if TYPE_CHECKING:
    from werk.server.server import Server


@dataclass(frozen=True, slots=True)
class Ui:
    """What every view needs: the server, the query API and the page renderer."""

    server: Server
    queries: Queries
    renderer: Renderer
