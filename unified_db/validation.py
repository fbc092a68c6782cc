"""Argument checks shared by several features (pure, no I/O)."""

from __future__ import annotations

import uuid

from .errors import InvalidInputError


def check_uuid(value: object, name: str, what: str = "a UUID or its string form") -> uuid.UUID:
    """*value* as a UUID: a ``uuid.UUID`` or its string form; InvalidInputError otherwise.

    *name* is the argument's name and *what* the kind of id, for the message.
    """
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidInputError(f"{name} must be {what}, got {value!r:.80}")
