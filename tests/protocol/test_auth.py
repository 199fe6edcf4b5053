"""Password hashing: Faktory's test vector and the challenge's shape."""

from __future__ import annotations

import re

from werk.protocol.auth import check_password, hash_password, new_challenge
from werk.protocol.commands import encode_command, hi_payload, split_command


def test_faktory_vector() -> None:
    assert (
        hash_password("foobar", "55104dc76695721d", 1545)
        == "6d877f8e5544b1f2598768f817413ab8a357afffa924dedae99eb91472d4ec30"
    )


def test_one_iteration_is_plain_sha256() -> None:
    import hashlib

    assert hash_password("pw", "salt", 1) == hashlib.sha256(b"pwsalt").hexdigest()


def test_challenge_range_and_salt() -> None:
    for _ in range(200):
        iterations, salt = new_challenge()
        assert 4000 <= iterations <= 8095
        assert re.fullmatch(r"[0-9a-f]{1,16}", salt)


def test_check_password() -> None:
    given = hash_password("secret", "abc", 4000)
    assert check_password("secret", "abc", 4000, given)
    assert not check_password("secret", "abc", 4001, given)
    assert not check_password("Secret", "abc", 4000, given)


def test_hi_payload_is_compact_and_ordered() -> None:
    assert hi_payload() == 'HI {"v":2}'
    assert hi_payload(4000, "ff") == 'HI {"v":2,"i":4000,"s":"ff"}'


def test_split_and_encode_command() -> None:
    assert split_command(b'PUSH {"a": 1}') == ("PUSH", b'{"a": 1}')
    assert split_command(b"INFO") == ("INFO", b"")
    assert encode_command("FETCH", "a b") == b"FETCH a b\r\n"
    assert encode_command("INFO") == b"INFO\r\n"
