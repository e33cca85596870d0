"""hexrd-compatible image series: ``open``, ``write``, ``formats`` and the format entries.

>>> from xrsmap_dask import imageseries
>>> ims = imageseries.open(None, 'array', data=stack, meta={'omega': om})   # doctest: +SKIP
>>> ims = imageseries.open('scan.h5', 'hdf5', path='/imageseries')           # doctest: +SKIP
>>> ims = imageseries.open('scan.h5:/imageseries/images')    # format guessed  # doctest: +SKIP
>>> ims = imageseries.open('scan/*.edf', on_error='fill')    # the 'files' format  # doctest: +SKIP
>>> imageseries.write(ims, 'scan.npz', 'frame-cache', threshold=10)          # doctest: +SKIP
>>> lazy = ims.to_dask(roi=(slice(100, 612), slice(200, 712)))             # doctest: +SKIP

The format registry (API for the faces: CLI, job specs, ``Mapper``)
--------------------------------------------------------------------
Every format is one :class:`~xrsmap_dask.imageseries.registry.ImageSeriesFormat` entry
(``name``, ``description``, ``suffixes``, ``guess_can_open(path)``, ``open(filename, **kw)``,
``write(ims, filename, **kw)`` when ``can_write``, ``accepts_on_error``, ``open_keywords``,
``write_keywords``, ``inner_path``).  Nothing else holds a suffix table:

``open(filename, format=None, **kw)``
    The format is guessed when omitted (:func:`guess_format`).  ``filename`` may be
    ``'file.h5:/path/to/dataset'`` or ``'store.zarr:/group'`` (split by
    :func:`split_inner_path`; a group means its ``images`` dataset), a list of image paths or
    a glob (the ``files`` format), ``None`` with ``format='array'``.  ``on_error='raise'`` is
    accepted by every format; ``on_error='fill'`` only by formats with ``accepts_on_error``
    (``InputError`` naming the format otherwise).  Unknown keywords raise
    ``KeywordArgumentError`` (an ``InputError`` and a ``TypeError``) naming format and
    keyword; an unknown format ``UnknownFormatError`` (an ``InputError`` and a ``KeyError``).
``write(ims, filename, format, **kw)``
    Keywords checked the same way.
``formats()``
    ``{name: entry}`` of every registered format (for ``info --formats`` and ``convert``:
    ``entry.can_write``, ``entry.description``, ``entry.suffixes``).
``guess_format(filename) -> str``, ``split_inner_path(item) -> (path, inner or None)``
    The one name splitter every face uses.
``register(entry)`` / ``unregister(name)``
    Add a format: subclass ``ImageSeriesFormat`` and register an instance.

Formats: ``array``, ``function``, ``hdf5``, ``frame-cache``, ``image-files``, ``raw-image``,
``eiger-stream-v1``, ``eiger-stream-v2`` (hexrd's), ``nexus`` (Eiger master / LIMA / NeXus
files), ``zarr`` (ours) and ``files`` (a plain list of image paths or a glob; anything fabio
reads).  ``imageseries.formats()`` is the authoritative list.  hexrd's ``load`` (adapter classes and its
adapter ``Registry``), ``save``, ``stats``, ``process`` and ``omega`` are submodules.
"""
from __future__ import annotations

import os
from typing import Any

from .base import ImageSeries
from .filelist import FileListImageSeries, from_files
from .registry import (ImageSeriesFormat, formats, get_format, guess_format, open_series,
                       register, split_inner_path, unregister, write_series)

# format modules register their entries on import
from . import array as _array  # noqa: F401,E402
from . import eigerstream as _eigerstream  # noqa: F401,E402
from . import files as _files  # noqa: F401,E402
from . import function as _function  # noqa: F401,E402
from . import framecache as _framecache  # noqa: F401,E402
from . import hdf5 as _hdf5  # noqa: F401,E402
from . import nexus as _nexus  # noqa: F401,E402
from . import imagefiles as _imagefiles  # noqa: F401,E402
from . import nexus as _nexus  # noqa: F401,E402
from . import rawimage as _rawimage  # noqa: F401,E402
from . import zarrseries as _zarrseries  # noqa: F401,E402


def open(filename, format: str | None = None, **kwargs: Any) -> ImageSeries:  # noqa: A001
    """Open an image series (hexrd's ``imageseries.open``); see the module docstring.

    ``filename`` is a path (or, for ``image-files``, the YAML text itself), ``None`` for the
    ``array`` format, a list of image paths or a glob.  An ImageSeries is returned as it is.
    """
    if isinstance(filename, ImageSeries):
        return filename
    return open_series(filename, format, **kwargs)


def write(ims, filename, format: str, **kwargs: Any) -> None:  # noqa: A002
    """Write an image series (hexrd's ``imageseries.write``); see each format's writer."""
    write_series(as_imageseries(ims), filename, format, **kwargs)


def as_imageseries(obj) -> ImageSeries:
    """Accept an ImageSeries, a list of image paths, a glob string or a (frames, y, x) array."""
    if isinstance(obj, ImageSeries):
        return obj
    if isinstance(obj, (list, tuple)):
        return from_files(obj)
    if not isinstance(obj, (str, bytes)) and hasattr(obj, "__len__") \
            and hasattr(obj, "__getitem__") and not isinstance(obj, __import__("numpy").ndarray):
        from .wrapped import as_series  # a hexrd-style series object (or a test double)

        return as_series(obj)
    if isinstance(obj, (str, os.PathLike)):
        name = os.fspath(obj)
        return open(name)
    import numpy as np

    if isinstance(obj, np.ndarray):
        return _array.ArrayImageSeries(obj)  # a view: no copy of the caller's stack
    from .wrapped import as_series

    return as_series(obj)


def read_image(path, argument: str | None = None):
    """One 2-D image from a file (a mask, dark, flat or background image).

    EDF goes through the header-checked reader (a truncated file is an error, never
    zero-padded); other formats through fabio.  The file must hold exactly one frame.  Errors
    are :class:`~xrsmap_dask.errors.InputError` naming the file and ``argument``.
    """
    from ..errors import FrameReadError, InputError

    path = os.fspath(path)
    try:
        ims = from_files([path])
    except FrameReadError as exc:
        raise InputError(exc.reason, path=path, argument=argument) from None
    if len(ims) != 1:
        raise InputError(f"expected one image, the file holds {len(ims)} frames", path=path,
                         argument=argument)
    try:
        return ims[0]
    except FrameReadError as exc:
        raise InputError(exc.reason, path=path, argument=argument) from None


# hexrd's submodules are attributes of the package (``imageseries.stats`` ...)
from . import load, omega, process, save, stats  # noqa: E402

__all__ = ["read_image", "ImageSeries", "FileListImageSeries", "ImageSeriesFormat", "open",
           "write", "from_files", "as_imageseries", "formats", "get_format", "guess_format",
           "split_inner_path", "register", "unregister"]
