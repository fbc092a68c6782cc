#!/usr/bin/env python3
"""Live performance dashboard: the same as ``unified-db dashboard [--once] [--json]``."""

import sys

from unified_db.cli_ops import main_for_script

if __name__ == "__main__":
    main_for_script("dashboard", sys.argv[1:])
