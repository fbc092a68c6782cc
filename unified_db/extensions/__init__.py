"""Feature mixins. Each adds methods to ``UnifiedDB`` and talks to the database only
through the base's helpers (see ``_protocol.DBProtocol`` and docs/architecture.md)."""
