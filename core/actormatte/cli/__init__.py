"""The ``actormatte`` command-line program: argument parsing, the progress protocol, exit codes.

Only this package prints. ``main.py`` holds the argparse tree; each sub-command has its own module
with an ``add_parser(subparsers)`` function; ``protocol.py`` writes the NDJSON events.
"""
