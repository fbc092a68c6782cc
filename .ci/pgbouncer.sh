#!/usr/bin/env bash
# The integration and quick reliability suites again, through PgBouncer in transaction
# mode with statement_cache_size=0. Installs PgBouncer from the system packages when it
# is missing; tests/pgbouncer.py starts it on a free port and stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
  echo "== installing PgBouncer"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq pgbouncer >/dev/null
  # The package enables a system service on port 6432; this suite starts its own.
  $SUDO systemctl disable --now pgbouncer >/dev/null 2>&1 || true
fi

# Deselected: it counts client connections lost when backends are killed, and behind
# PgBouncer the client connection survives (the reads it checks are in test_faults.py).
.venv/bin/python -m tests.pgbouncer tests/integration tests/reliability \
  --deselect tests/integration/test_core.py::test_every_pooled_backend_killed_then_100_reads_succeed \
  "$@"
