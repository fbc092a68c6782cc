#!/usr/bin/env python3
"""Delete expired rows: the same as ``unified-db cleanup [--dry-run] [--batch-size N]``.

Exit code 0 when there was nothing to delete, 3 when rows were deleted, 1 on failure.
"""

import sys

from unified_db.cli_ops import main_for_script

if __name__ == "__main__":
    main_for_script("cleanup", sys.argv[1:])
