"""Exceptions for bad input.

Every error about user input is an :class:`InputError` (a ``ValueError``) whose message names
the file, the frame index and/or the argument at fault, and the reason.
"""
from __future__ import annotations


class InputError(ValueError):
    """Bad input: names what is wrong (file, frame, argument) and why."""

    def __init__(self, reason: str, *, path: str | None = None, frame: int | None = None,
                 argument: str | None = None):
        self.reason = reason
        self.path = None if path is None else str(path)
        self.frame = frame
        self.argument = argument
        where = []
        if argument is not None:
            where.append(f"argument {argument!r}")
        if self.path is not None:
            where.append(f"file {self.path!r}")
        if frame is not None:
            where.append(f"frame {frame}")
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)

    def replaced(self, **changes) -> "InputError":
        """A copy of the same type with ``reason``, ``path``, ``frame`` or ``argument``
        changed (how each face re-spells an error in its own words)."""
        fields = {"reason": self.reason, "path": self.path, "frame": self.frame,
                  "argument": self.argument, **changes}
        new = type(self).__new__(type(self))
        InputError.__init__(new, fields.pop("reason"), **fields)
        return new


class FrameReadError(InputError):
    """A frame could not be read: missing, truncated or corrupt file, wrong shape or dtype."""


class FormatError(InputError):
    """Unknown or unsupported imageseries format, or a file that is not in the format claimed."""


class UnsafeInputError(InputError):
    """Input refused for safety: YAML with Python tags, npz holding pickled objects."""


def short_repr(value, limit: int = 80) -> str:
    """``repr(value)`` cut to at most about ``limit`` characters, for error messages.

    Messages never print unbounded input (a 1 MB header value, a YAML alias bomb): strings
    are cut before ``repr`` and containers go through :mod:`reprlib` (bounded depth/length).
    """
    import reprlib

    if isinstance(value, (str, bytes)) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    r = reprlib.Repr()
    r.maxstring = r.maxother = limit
    text = r.repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
