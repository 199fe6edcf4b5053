"""The Redis store: every Werk server sharing one Redis (key layout in :mod:`.keys`, each
multi-step change one Lua script). :class:`RedisStore` implements
:class:`~werk.storage.base.Store`."""

from werk.storage.redis.store import RedisStore
from werk.storage.redis.url import RedisURL, parse_url

__all__ = ["RedisStore", "RedisURL", "parse_url"]
