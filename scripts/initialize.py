#!/usr/bin/env python3
"""Create the schema and apply every migration, for deployment pipelines.

The same as ``unified-db init [--dsn DSN] [--schema NAME]``; exits 1 when the database
cannot be reached or a migration fails.
"""

import sys

from unified_db.cli_ops import main_for_script

if __name__ == "__main__":
    main_for_script("init", sys.argv[1:])
