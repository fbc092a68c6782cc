"""Watching a unified_db database: the dashboard figures (``collect``), the terminal
dashboard (``dashboard``), Prometheus metrics (``metrics``, extra ``unified-db[metrics]``)
and the maintenance runs behind ``unified-db cleanup`` / ``maintain`` (``maintenance``)."""
