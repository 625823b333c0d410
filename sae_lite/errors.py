"""The one exception type for a user's mistake (bad input, a wrong path, a bad setting), and how a
warning is shown on the command line.

The CLI turns it into one line on stderr and exit status 2, without a traceback; library
callers can catch it like any ``ValueError``.
"""

import sys


class SaeLiteError(ValueError):
    """Bad input: the message names the problem and how to fix it."""


def show_warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A `warnings.showwarning` that prints ``warning: MESSAGE`` as one line on stderr (the command line's
    and its worker processes' way; Python's default adds the file, line number and source)."""
    print(f"warning: {message}", file=file or sys.stderr)
