"""hexrd-compatible image series: ``open``, ``write``, ``from_files`` and the adapters.

>>> from xrsmap_dask import imageseries
>>> ims = imageseries.open(None, 'array', data=stack, meta={'omega': om})   # doctest: +SKIP
>>> ims = imageseries.open('scan.h5', 'hdf5', path='/imageseries')           # doctest: +SKIP
>>> ims = imageseries.from_files(sorted(glob.glob('scan/*.edf')))          # doctest: +SKIP
>>> imageseries.write(ims, 'scan.npz', 'frame-cache', threshold=10)          # doctest: +SKIP
>>> lazy = ims.to_dask(roi=(slice(100, 612), slice(200, 712)))             # doctest: +SKIP

Formats: ``array``, ``hdf5``, ``frame-cache``, ``image-files``, ``raw-image``, ``zarr``, and a
plain list of image paths (anything fabio reads).
"""
from __future__ import annotations

import os
from typing import Any

from ..errors import FormatError
from .base import ImageSeries
from .filelist import FileListImageSeries, from_files
from .registry import formats, get_opener, get_writer

# adapter modules register their formats on import
from . import array as _array  # noqa: F401,E402

for _name in ("hdf5", "framecache", "imagefiles", "rawimage", "zarrseries"):
    try:
        __import__(f"{__name__}.{_name}")
    except ModuleNotFoundError as _exc:  # adapters land one by one
        if _exc.name != f"{__name__}.{_name}":
            raise

_SUFFIX_FORMATS = {".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5", ".nxs": "hdf5",
                   ".npz": "frame-cache", ".fch5": "frame-cache", ".zarr": "zarr"}


def guess_format(filename) -> str:
    """Format name from a file name (and, for YAML, from its top-level keys)."""
    if isinstance(filename, (list, tuple)):
        return "files"
    name = os.fspath(filename)
    low = name.lower().rstrip("/")
    for suffix, fmt in _SUFFIX_FORMATS.items():
        if low.endswith(suffix):
            return fmt
    if low.endswith((".yml", ".yaml")):
        from ._yaml import load_yaml

        doc = load_yaml(name)
        if isinstance(doc, dict):
            if "image-files" in doc:
                return "image-files"
            if "data" in doc:
                return "frame-cache"
            if "scalar" in doc or "skip" in doc:
                return "raw-image"
    raise FormatError("cannot guess the imageseries format; pass format=",
                      path=name)


def open(filename, format: str | None = None, **kwargs: Any) -> ImageSeries:  # noqa: A001
    """Open an image series (hexrd's ``imageseries.open``).

    ``filename`` is a path (or, for ``image-files``, the YAML text itself), ``None`` for the
    ``array`` format, or a list of image paths.  ``format`` is one of :func:`formats`; when
    omitted it is guessed from the file name.
    """
    if isinstance(filename, ImageSeries):
        return filename
    if format is None:
        format = "array" if filename is None else guess_format(filename)
    if format == "files" or isinstance(filename, (list, tuple)):
        return from_files(filename, **kwargs)
    return get_opener(format)(filename, **kwargs)


def write(ims, filename, format: str, **kwargs: Any) -> None:
    """Write an image series (hexrd's ``imageseries.write``); see each format's writer."""
    ims = as_imageseries(ims)
    get_writer(format)(ims, filename, **kwargs)


def as_imageseries(obj) -> ImageSeries:
    """Accept an ImageSeries, a list of image paths, a glob string or a (frames, y, x) array."""
    if isinstance(obj, ImageSeries):
        return obj
    if isinstance(obj, (list, tuple)):
        return from_files(obj)
    if isinstance(obj, (str, os.PathLike)):
        name = os.fspath(obj)
        if any(ch in name for ch in "*?["):
            return from_files(name)
        return open(name)
    import numpy as np

    if isinstance(obj, np.ndarray):
        return get_opener("array")(None, data=obj)
    raise TypeError(f"cannot make an image series from {type(obj).__name__}")


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


__all__ = ["read_image", "ImageSeries", "FileListImageSeries", "open", "write", "from_files",
           "as_imageseries", "formats", "guess_format"]
