"""The exceptions of the toolkit, defined here so that ``metrics`` depends on nothing else.

``UserError`` is bad input or a missing resource: its message is complete and is shown as is,
in one line, without a traceback (the command-line tools exit with status 2). ``aesthetic4k``
raises the same classes.
"""


class UserError(Exception):
    """Bad input or a missing resource: the message is shown to the user as is."""


class ImageError(UserError):
    """An image file that cannot be used (corrupt, truncated, too small, too large, not an image)."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class WeightUnavailable(UserError):
    """No source provides a weight file; the message says what is missing and how to provide it."""


class MetricUnavailable(UserError):
    """A metric cannot run here (weights or a package missing); a run reports it and goes on."""
