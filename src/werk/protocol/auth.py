"""Password hashing for the handshake: salted, iterated SHA-256, as Faktory does it.

``pwdhash`` is SHA-256 of ``password + salt``, then SHA-256 of the raw digest again,
``iterations`` times in all, in lower-case hex. Clients that send no ``v`` (or ``v`` < 2)
hash once, and the server checks them with one iteration.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

MIN_ITERATIONS = 4000
ITERATION_SPREAD = 4096


def hash_password(password: str, salt: str, iterations: int) -> str:
    """Return the hex ``pwdhash`` a client sends for this password, salt and count."""
    digest = hashlib.sha256((password + salt).encode()).digest()
    for _ in range(iterations - 1):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def new_challenge() -> tuple[int, str]:
    """Return a fresh ``(iterations, salt)`` pair for a ``+HI``.

    The count is in [4000, 8095]; the salt is the hex of a random 63-bit integer.
    """
    return MIN_ITERATIONS + secrets.randbelow(ITERATION_SPREAD), format(secrets.randbits(63), "x")


def check_password(password: str, salt: str, iterations: int, given: str) -> bool:
    """Compare a client's ``pwdhash`` with the expected one in constant time."""
    expected = hash_password(password, salt, iterations)
    return hmac.compare_digest(expected.encode(), given.encode())
