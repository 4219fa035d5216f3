"""Error types raised by the Relief library.

Every problem a user can fix (a bad file, a photo that cannot be measured, a wrong option) raises a
subclass of :class:`ReliefError` whose message is one plain sentence that says what to do. Entry
points (CLI, dashboard) show ``str(err)`` and never a traceback.
"""


class ReliefError(Exception):
    """Base class for every error meant to be shown to a practitioner as one line."""


class ImageError(ReliefError, ValueError):
    """The photo cannot be read or is unusable for measurement (missing, corrupt, too small, ...)."""


class OptionError(ReliefError, ValueError):
    """An option has an impossible value (negative scale, ROI outside the photo, ...)."""
