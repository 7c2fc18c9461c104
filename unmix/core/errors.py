"""The one exception type the CLI turns into a one-line message (no traceback)."""


class UnmixError(Exception):
    """A user-facing error: bad input, missing file, unusable environment.

    The message must name the file (or option) and the problem, in one line.
    """


class Refused(UnmixError):
    """An input refused before the run began: nothing is written, not even a 'failed' record
    (there was no run to record)."""
