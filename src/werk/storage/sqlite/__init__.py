"""The embedded store: one SQLite file per data directory (WAL, a writer thread with group
commit), with online backup and restore. :class:`SqliteStore` implements
:class:`~werk.storage.base.Store`."""

from werk.storage.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
