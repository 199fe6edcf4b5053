"""One exception tree for Werk, server and client alike.

Errors a client should react to carry a protocol code (``ERR``, ``NOTUNIQUE`` ...): the
server writes them as ``-CODE message`` and the client maps the code back to a class
through :data:`CODES`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class WerkError(Exception):
    """Base class of every error Werk raises."""


class ProtocolError(WerkError):
    """The peer broke the wire protocol (bad framing, a reply we cannot parse)."""


class LineTooLongError(ProtocolError):
    """A command line exceeded the configured maximum length."""


class SlowLineError(ProtocolError):
    """A command line was begun and not finished in time (a Werk rule against clients that
    hold a connection by sending a line a byte at a time)."""


class StorageError(WerkError):
    """The store failed to read or write; the operation did not take effect."""


class StoreCorruptError(StorageError):
    """The data directory holds a database that is corrupt, truncated or not Werk's."""


class CommandError(WerkError):
    """An error with a protocol code, sent to a client as ``-CODE message``.

    Args:
        message: the human-readable text after the code.
        code: the protocol code, ``ERR`` unless a subclass says otherwise.
    """

    code = "ERR"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def wire(self) -> str:
        """Return the error as it goes on the wire, without the ``-`` and CRLF."""
        return f"{self.code} {self.message}"


class InvalidJSONError(CommandError):
    """A command argument (or a stored document) is not JSON Werk accepts."""


class JSONDepthError(InvalidJSONError):
    """JSON nested deeper than the documented limit (``werk.protocol.jsonwire.MAX_DEPTH``)."""


class JobTypeError(CommandError):
    """A job field has a type Faktory's decoder refuses: PUSHB then refuses every job."""


class NotUniqueError(CommandError):
    """A unique job was pushed while an equal one holds the lock."""

    code = "NOTUNIQUE"

    def __init__(self, message: str = "Job not unique", code: str | None = None) -> None:
        super().__init__(message, code)


class LimitedError(CommandError):
    """A rate limiter had no free unit (``-LIMITED retry after <seconds>``).

    Attributes:
        retry_after: seconds until a unit is expected to free up (0 if unknown).
    """

    code = "LIMITED"

    def __init__(self, message: str = "retry after 0", code: str | None = None) -> None:
        super().__init__(message, code)
        _, _, seconds = message.rpartition(" ")
        try:
            self.retry_after = max(0.0, float(seconds))
        except ValueError:
            self.retry_after = 0.0

    @classmethod
    def after(cls, seconds: float) -> LimitedError:
        """Build the error for a wait of ``seconds`` (rounded up to milliseconds)."""
        return cls(f"retry after {max(0.0, -(-seconds * 1000 // 1) / 1000):.3f}")


class ResultTooLargeError(CommandError):
    """An ACK's result is over the server's size limit (``-TOOLARGE ...``, a Werk
    extension); the ACK did nothing and the job is still reserved."""

    code = "TOOLARGE"


class AuthenticationError(CommandError):
    """The password hash in HELLO was wrong, or a password was needed and missing."""


class ServerShutdownError(CommandError):
    """The server is shutting down and takes no more commands."""


STORAGE_ERROR = "storage error"
"""How the message of the server's reply to a command its store failed begins (``-ERR storage
error: <cause>``): the store was cut, frozen or restarting, and the command may be sent
again."""
SHUTTING_DOWN = "shutdown in progress"
"""The message of the server's reply to a command that came while it was stopping."""


def is_temporary(error: CommandError) -> bool:
    """Whether the server refused a command for a passing reason (its store failed, or it
    was stopping), so the same command sent again later may be carried out."""
    message = error.message
    return error.code == "ERR" and (message.startswith(STORAGE_ERROR) or message == SHUTTING_DOWN)


CODES: dict[str, type[CommandError]] = {
    "ERR": CommandError,
    "NOTUNIQUE": NotUniqueError,
    "LIMITED": LimitedError,
    "TOOLARGE": ResultTooLargeError,
}


def error_from_wire(text: str) -> CommandError:
    """Turn the text of a ``-CODE message`` reply into the matching exception."""
    code, _, message = text.partition(" ")
    if code == "ERR" and message == "Invalid password":
        return AuthenticationError(message)
    cls = CODES.get(code)
    if cls is None:
        return CommandError(message, code)
    return cls(message, code)


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest of ``known`` to a misspelt ``word``
    (difflib's ratio 0.6 or more), else an empty string; for messages about unknown keys."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
