"""The one exception type for a user's mistake (bad input, a wrong path, a bad setting).

The CLI turns it into one line on stderr and exit status 2, without a traceback; library
callers can catch it like any ``ValueError``.
"""


class SaeLiteError(ValueError):
    """Bad input: the message names the problem and how to fix it."""
