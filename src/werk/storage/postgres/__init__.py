"""The PostgreSQL storage backend (several servers, transactional enqueue); see store.py."""

from werk.storage.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
