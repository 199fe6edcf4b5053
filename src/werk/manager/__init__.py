"""The manager: every job rule, independent of the storage backend and of the wire."""

from werk.manager.manager import Manager

__all__ = ["Manager"]
