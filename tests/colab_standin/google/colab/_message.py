"""Stand-in for ``google.colab._message`` (see the package docstring)."""

from google.colab import errors


class MessageError(errors.Error):
    """Thrown on error response from frontend."""
