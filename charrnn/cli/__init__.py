"""The command line: one module per command with its rendering, the shared options, the
live display, errors and exit codes.
"""

import time

# When the command started (before torch is imported): a --time budget is the whole
# command's, start-up included.
STARTED = time.monotonic()
