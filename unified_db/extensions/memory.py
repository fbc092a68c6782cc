"""MemorySnapshotMixin (filled by its feature issue)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._protocol import DBProtocol as _Base
else:
    _Base = object


class MemorySnapshotMixin(_Base):
    """Methods of this feature; see docs/architecture.md for the mixin rules."""
