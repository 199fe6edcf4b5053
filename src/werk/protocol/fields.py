"""Field types as Faktory's Go decoder sees them, for the small payloads of the protocol.

Faktory decodes HELLO, BEAT and FAIL into Go structs: a value of the wrong type refuses
the whole payload, ``null`` leaves a field at its zero value, and keys match without
regard to case (``"WID"`` fills ``wid``). :func:`typed_payload` does the same, so Werk
accepts and refuses what Faktory 1.10 does. Go's ``int`` is 64 bits: a fraction or a
number outside ``[-2**63, 2**63)`` is refused.
"""

from __future__ import annotations

from typing import Any, Final, Literal

Kind = Literal["str", "int", "bool", "str_list", "object"]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


def is_int64(value: Any) -> bool:
    """Whether ``value`` is what Go decodes into an ``int`` (no bool, no fraction)."""
    return type(value) is int and INT64_MIN <= value <= INT64_MAX


def _fits(value: Any, kind: Kind) -> bool:
    if value is None:
        return True
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return is_int64(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def typed_payload(payload: dict[str, Any], spec: dict[str, Kind]) -> dict[str, Any] | None:
    """Return ``payload`` with the keys of ``spec`` matched as Go matches them, or ``None``
    when a value has the wrong type.

    An exact key wins over a key that differs only in case; other keys are kept as they
    are. ``null`` values are dropped (Go leaves the zero value).
    """
    result: dict[str, Any] = {}
    folded: dict[str, Any] = {}
    for key, value in payload.items():
        if key in spec:
            target = result
        else:
            lower = key.lower()
            if lower not in spec:
                result[key] = value
                continue
            key, target = lower, folded
        if not _fits(value, spec[key]):
            return None
        if value is not None:
            target[key] = value
    for key, value in folded.items():
        result.setdefault(key, value)
    return result
