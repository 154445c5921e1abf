"""The command line: one module per command with its rendering, the shared options, the
live display, errors and exit codes.
"""
