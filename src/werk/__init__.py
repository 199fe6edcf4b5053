"""Werk: a background job server that speaks the Faktory work protocol.

The server lives in :mod:`werk.server`; the Python client and worker library in
:mod:`werk.client`. Both share the sans-IO wire code in :mod:`werk.protocol`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
