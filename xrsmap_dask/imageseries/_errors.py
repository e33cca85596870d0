"""Our error types that are also the builtin exception hexrd raises in the same place.

A hexrd user's ``except KeyError`` (unknown format, missing HDF5 path), ``except TypeError``
(unexpected keyword), ``except FileNotFoundError`` or ``except RuntimeError`` keeps working,
and so does our ``except InputError``: each class below subclasses both.
"""
from __future__ import annotations

from ..errors import FormatError, FrameReadError, InputError


class UnknownFormatError(FormatError, KeyError):
    """No registered format of that name (hexrd: ``KeyError`` from its adapter registry)."""

    __str__ = Exception.__str__  # KeyError would quote the message


class InputTypeError(InputError, TypeError):
    """An argument of the wrong type (Python and hexrd: ``TypeError``)."""


class KeywordArgumentError(InputTypeError):
    """A keyword argument the format does not take (Python: ``TypeError``)."""


class InputNotFoundError(InputError, FileNotFoundError):
    """An input file that does not exist (hexrd: ``FileNotFoundError``)."""

    __str__ = Exception.__str__


class FrameFileNotFoundError(FrameReadError, FileNotFoundError):
    """A frame's file that does not exist (a :class:`FrameReadError`, so ``on_error='fill'``
    applies; hexrd: ``FileNotFoundError``)."""

    __str__ = Exception.__str__


class MissingEntryError(InputError, KeyError):
    """A dataset, group or key missing inside a file (hexrd: ``KeyError`` from h5py/npz)."""

    __str__ = Exception.__str__


class SeriesRuntimeError(InputError, RuntimeError):
    """Bad content where hexrd raises ``RuntimeError`` (an empty series, a 4-D array, a
    dtype that would truncate the pixels)."""


class FrameRuntimeError(FrameReadError, RuntimeError):
    """A frame that cannot be delivered as asked where hexrd raises ``RuntimeError`` (its
    pixels do not fit the requested dtype)."""


class UnsupportedOptionError(InputError, NotImplementedError):
    """An option value hexrd refuses with ``NotImplementedError`` (unknown Eiger threshold
    setting, unsupported frame-cache version)."""
