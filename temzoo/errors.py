"""Errors users see: one line saying what is wrong and what to do.

Every failure that comes from the user's input or environment is raised as a :class:`TemzooError` subclass, so the
CLI prints ``error: <message>`` and the app shows the message, never a traceback.
"""


class TemzooError(Exception):
    """Base class: ``str(err)`` is a single line meant for the user."""

    def __init__(self, message: str) -> None:
        # Keep it to one line: the CLI contract is exactly one ``error:`` line on stderr.
        super().__init__(" ".join(str(message).split()))


class ReadError(TemzooError):
    """A file could not be read as a micrograph (missing, corrupt, unsupported, not real-space)."""


class ModelError(TemzooError):
    """A checkpoint could not be found, loaded or saved (unknown id, pickle file, bad config)."""


class DataError(TemzooError):
    """A labelled set or mask is unusable (size mismatch, bad values, broken polygons)."""


class JobError(TemzooError):
    """A background job could not start, run or resume."""
