"""Format registry: one :class:`ImageSeriesFormat` object per image-series format.

Modelled on xarray's ``BackendEntrypoint``: each format module defines one entry (name,
suffixes, description, :meth:`~ImageSeriesFormat.guess_can_open`, ``open``, optional
``write``, whether it takes an ``on_error`` policy, the keywords it accepts) and registers it
at import with :func:`register`.  :func:`open_series`, :func:`write_series` and
:func:`guess_format` only look entries up; no suffix table lives anywhere else, and the rest of
the library never imports a format module directly.

Keyword arguments are checked here once for every format: an unknown one raises
:class:`~xrsmap_dask.imageseries._errors.KeywordArgumentError` (an ``InputError`` and a
``TypeError``) naming the format and the keyword.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable

from ..errors import InputError
from ._errors import KeywordArgumentError, UnknownFormatError

_REGISTRY: dict[str, "ImageSeriesFormat"] = {}
#: extra lookups for names not registered here (the hexrd ``Registry`` of adapter classes)
_FALLBACKS: list[Callable[[str], "ImageSeriesFormat | None"]] = []


class ImageSeriesFormat:
    """One image-series format.  Subclass, set the attributes, implement :meth:`open` (and
    :meth:`write` when ``write_keywords`` is not ``None``), then ``register(MyFormat())``.

    Attributes
    ----------
    name : str
        Format name (hexrd's where hexrd has the format: ``'hdf5'``, ``'frame-cache'`` ...).
    description : str
        One line for ``xrsmap-dask info --formats``.
    suffixes : tuple of str
        Lower-case file name endings this format claims (``'.h5'``); used by the default
        :meth:`guess_can_open`.
    open_keywords : frozenset of str or None
        Keyword arguments :meth:`open` accepts (besides ``on_error``, see below); ``None``
        accepts any (hexrd adapter classes registered through ``imageseries.load``).
    write_keywords : frozenset of str or None
        Keyword arguments :meth:`write` accepts; ``None``: the format cannot be written.
    accepts_on_error : bool
        :meth:`open` takes ``on_error='raise'|'fill'``.  Every format accepts
        ``on_error='raise'``; ``'fill'`` on a format without the policy is an ``InputError``.
    inner_path : bool
        The format takes ``file:/inner/path`` names (HDF5 datasets, zarr groups); see
        :meth:`inner_path_keywords`.
    guess_priority : int
        When several formats claim a path, the highest priority wins (content-specific
        formats such as ``frame-cache`` above the generic ``hdf5``).
    needs_filename : bool
        ``False`` for formats opened from keywords alone (``array``, ``function``).
    """

    name: str = ""
    description: str = ""
    suffixes: tuple[str, ...] = ()
    open_keywords: frozenset[str] = frozenset()
    write_keywords: frozenset[str] | None = None
    accepts_on_error: bool = False
    inner_path: bool = False
    guess_priority: int = 0
    needs_filename: bool = True

    # -- override ----------------------------------------------------------------------------
    def guess_can_open(self, path: str) -> bool:
        """True when ``path`` looks like this format (default: its suffix)."""
        return has_suffix(path, self.suffixes)

    def open(self, filename, **kwargs: Any):
        """Open ``filename`` as an :class:`~xrsmap_dask.imageseries.base.ImageSeries`."""
        raise NotImplementedError

    def write(self, ims, filename, **kwargs: Any) -> None:
        """Write ``ims`` to ``filename``."""
        raise UnknownFormatError(f"format {self.name!r} cannot be written; writable: "
                                 f"{', '.join(writable_formats())}", argument="format")

    def inner_path_keywords(self, filename: str, inner: str) -> dict:
        """Open keywords selecting ``inner`` (``'/group/images'``) inside ``filename``."""
        raise InputError(f"format {self.name!r} takes no inner path ({inner!r})",
                         path=filename)

    # -- derived -----------------------------------------------------------------------------
    @property
    def can_write(self) -> bool:
        return self.write_keywords is not None

    def __repr__(self) -> str:
        return f"<imageseries format {self.name!r}: {self.description}>"


# -- registry --------------------------------------------------------------------------------
def register(entry: ImageSeriesFormat) -> ImageSeriesFormat:
    """Add ``entry`` to the registry (replacing one of the same name); returns it."""
    if not isinstance(entry, ImageSeriesFormat) or not entry.name:
        raise InputError(f"expected a named ImageSeriesFormat, got {entry!r}",
                         argument="entry")
    _REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove format ``name`` (tests registering toy formats clean up with this)."""
    _REGISTRY.pop(name, None)


def get_format(name: str) -> ImageSeriesFormat:
    """The entry of format ``name``; unknown names raise
    :class:`~xrsmap_dask.imageseries._errors.UnknownFormatError` (also a ``KeyError``)."""
    entry = _REGISTRY.get(name) if isinstance(name, str) else None
    for fallback in _FALLBACKS if entry is None else ():
        entry = fallback(name)
        if entry is not None:
            break
    if entry is None:
        raise UnknownFormatError(f"unknown imageseries format; known: "
                                 f"{', '.join(sorted(_REGISTRY))}", argument=f"format={name!r}")
    return entry


def formats() -> dict[str, ImageSeriesFormat]:
    """Every registered format: ``{name: entry}``, sorted by name."""
    return {name: _REGISTRY[name] for name in sorted(_REGISTRY)}


def writable_formats() -> list[str]:
    return [name for name, entry in formats().items() if entry.can_write]


# -- names and guessing ----------------------------------------------------------------------
def has_suffix(path, suffixes: Iterable[str]) -> bool:
    low = os.fspath(path).lower().rstrip("/")
    return any(low.endswith(s) for s in suffixes)


def split_inner_path(item) -> tuple[str, str | None]:
    """``'scan.h5:/entry/data'`` -> ``('scan.h5', '/entry/data')``; ``'store.zarr:/g'`` ->
    ``('store.zarr', '/g')``; anything else -> ``(item, None)``.

    The split happens only when the part after the last ``:`` starts with ``/`` and the part
    before it ends with a suffix of a format that takes inner paths (so ``C:/data.edf`` and
    plain file names are left whole).
    """
    item = os.fspath(item)
    head, sep, tail = item.rpartition(":")
    if sep and tail.startswith("/") and any(
            e.inner_path and has_suffix(head, e.suffixes) for e in _REGISTRY.values()):
        return head, tail
    return item, None


def guess_format(filename) -> str:
    """Name of the format of ``filename``: ``'files'`` for a list of paths or a glob, else
    the highest-priority entry whose :meth:`~ImageSeriesFormat.guess_can_open` accepts it
    (``file:/inner`` names are guessed from the file)."""
    from ..errors import FormatError

    if isinstance(filename, (list, tuple)):
        return "files"
    name, _ = split_inner_path(filename)
    if any(ch in os.path.basename(name) for ch in "*?[") and not os.path.exists(name):
        return "files"
    if os.path.exists(name) and not (os.path.isfile(name) or os.path.isdir(name)):
        # a FIFO or device: sniffing its first bytes would block
        raise InputError("is not a regular file", path=name, argument="filename")
    found = [e for e in _REGISTRY.values() if e.needs_filename and e.guess_can_open(name)]
    if not found:
        raise FormatError("cannot guess the imageseries format; pass format= (one of "
                          f"{', '.join(sorted(_REGISTRY))})", path=name)
    return max(found, key=lambda e: e.guess_priority).name


# -- open / write ----------------------------------------------------------------------------
def check_keywords(entry: ImageSeriesFormat, kwargs: dict, allowed, verb: str) -> None:
    """Raise :class:`KeywordArgumentError` for a keyword not in ``allowed``."""
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise KeywordArgumentError(
            f"format {entry.name!r} {verb} takes no keyword argument{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; accepted: {', '.join(sorted(allowed)) or 'none'}",
            argument=unknown[0])


def open_series(filename, format: str | None = None, **kwargs: Any):  # noqa: A002
    """Open ``filename`` with format ``format`` (guessed when ``None``); see
    :func:`xrsmap_dask.imageseries.open`."""
    if format is None:
        format = "array" if filename is None else guess_format(filename)  # noqa: A001
    entry = get_format(format)
    if isinstance(filename, (str, os.PathLike)) and entry.inner_path:
        name, inner = split_inner_path(filename)
        if inner is not None:
            selected = entry.inner_path_keywords(name, inner)
            clash = sorted(set(selected) & set(kwargs))
            if clash:
                raise KeywordArgumentError(f"{filename!r} names the inner path already; "
                                           f"drop {', '.join(clash)}", argument=clash[0])
            filename, kwargs = name, {**kwargs, **selected}
    if "on_error" in kwargs and not entry.accepts_on_error:
        policy = kwargs.pop("on_error")
        if policy != "raise":
            raise InputError(f"format {entry.name!r} has no on_error policy (its frames are "
                             f"all read or checked at open); only on_error='raise' is accepted, "
                             f"got {policy!r}", argument="on_error")
    if entry.open_keywords is not None:  # None: any (hexrd adapter classes)
        allowed = entry.open_keywords | ({"on_error"} if entry.accepts_on_error else set())
        check_keywords(entry, kwargs, allowed, "open")
    ims = entry.open(filename, **kwargs)
    if len(ims) == 0:
        from ._errors import SeriesRuntimeError

        raise SeriesRuntimeError(f"zero length imageseries ({entry.name!r} format)",
                                 path=None if filename is None else os.fspath(filename)
                                 if isinstance(filename, (str, os.PathLike)) else None)
    return ims


def write_series(ims, filename, format: str, **kwargs: Any) -> None:  # noqa: A002
    """Write ``ims`` with format ``format``; see :func:`xrsmap_dask.imageseries.write`."""
    entry = get_format(format)
    if not entry.can_write:
        entry.write(ims, filename)  # raises: not writable
    check_keywords(entry, kwargs, entry.write_keywords, "write")
    entry.write(ims, filename, **kwargs)
