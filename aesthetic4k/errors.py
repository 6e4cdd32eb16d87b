"""The one exception type that the command-line tools turn into a one-line message and exit 2."""


class UserError(Exception):
    """Bad input or a missing resource: the message is shown to the user as is, without a traceback."""


class ImageError(UserError):
    """An image file that cannot be used (corrupt, truncated, too small, not an image)."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
