"""Query parameters the Platform APIs share: paging counts (`limit`, `start`, `offset`), read
the same way everywhere so a bad value gets the same 400 from every endpoint."""

from __future__ import annotations

from collections.abc import Mapping

from inlet.outcomes import Reason, Rejected


def count(params: Mapping[str, str], name: str, default: int) -> int:
    """The non-negative integer `name`, or `default` when absent or empty."""
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise Rejected(Reason.invalid_parameter, f"{name} must be an integer, got {value!r}") from None
    if number < 0:
        raise Rejected(Reason.invalid_parameter, f"{name} must not be negative")
    return number
