"""The ``nexus`` format: frames of NeXus / Eiger master / LIMA / Bliss HDF5 files as one series.

>>> ims = imageseries.open('scan_master.h5', 'nexus')                  # doctest: +SKIP
>>> ims = imageseries.open('scan_master.h5', 'nexus', path='/entry/data')  # doctest: +SKIP
>>> ims = imageseries.open(['run_0000.h5', 'run_0001.h5'], 'nexus')   # doctest: +SKIP
>>> ims.detector_mask      # the master's pixel_mask as bool (True = excluded), or None

Where the frames are is found by :mod:`xrsmap_dask.io.nexus` (Eiger ``data_NNNNNN`` links in
order, LIMA, NeXus ``default``/``signal``, VDS sources, several files one after the other);
reads are those of :mod:`xrsmap_dask.io.hdf5` (raw chunks decoded in parallel where the filter
pipeline allows) through :class:`~._h5frames.H5FramesSeries`, which the hexrd ``hdf5``
format shares.

Damaged input is found at open: a missing data file or VDS source, chunks never written, a
short external raw file.  ``on_error='raise'`` (default): :class:`FrameReadError` naming the
file and the frames.  ``on_error='fill'``: those frames read as NaN and are listed in
``bad_frames``; never zeros.
"""
from __future__ import annotations

import glob as _glob
import os

from ..errors import FrameReadError, InputError
from ..io import h5info
from ..io import nexus as nx
from ..io.hdf5 import open_file
from ._h5frames import H5FramesSeries
from .registry import ImageSeriesFormat, register


class NexusImageSeries(H5FramesSeries):
    """One series from NeXus / Eiger master / LIMA / Bliss files (see module docstring).

    Parameters
    ----------
    filename : str, PathLike or list
        A file (``'scan_master.h5'`` or ``'scan_master.h5:/entry/data'``), a glob, or a
        list of files of one scan (their frames one after the other, in the order given;
        a glob is sorted).
    path : str, optional
        Dataset or group inside each file (a group: its ``data_NNNNNN`` links, its NXdata
        ``signal`` or its ``data`` dataset).  Default: found from the file's layout.
    on_error : {'raise', 'fill'}
    direct_chunks : bool
        Read raw chunks and decode them outside HDF5 where possible (default); ``False``
        reads every frame through h5py hyperslabs.
    """

    def __init__(self, filename, path: str | None = None, on_error: str = "raise",
                 direct_chunks: bool = True):
        files = nexus_files(filename, path)
        segments: list[nx.Segment] = []
        for name, inner in files:
            segs, _resolved = nx.open_segments(name, inner, bool(direct_chunks))
            segments.extend(segs)
        self.filename = files[0][0]
        self.sources = [f"{n}:{p}" if p else n for n, p in files]
        self._metadata = {}
        self._set_segments(segments, on_error)
        self.detector_mask = h5info.detector_mask(self.filename, self._shape)


def nexus_files(filename, path: str | None = None) -> list[tuple[str, str | None]]:
    """``[(absolute file, inner path or None)]`` from a name, ``file:/path``, glob or list."""
    items = [filename] if isinstance(filename, (str, os.PathLike)) else list(filename)
    if not items:
        raise InputError("no HDF5 file given", argument="filename")
    out = []
    for item in items:
        name, inner = nx.split_dataset_path(os.fspath(item))
        names = [name]
        if any(ch in os.path.basename(name) for ch in "*?[") and not os.path.exists(name):
            names = sorted(_glob.glob(name))
            if not names:
                raise FrameReadError("no file matches this pattern", path=name)
        for n in names:
            if inner is not None and path is not None and inner != path:
                raise InputError(f"both {n}:{inner} and path={path!r} given",
                                 argument="path")
            out.append((os.path.abspath(n), inner or path))
    return out


def open_nexus(filename, path: str | None = None, on_error: str = "raise",
               direct_chunks: bool = True) -> NexusImageSeries:
    """Open NeXus / Eiger / LIMA / Bliss frames (see :class:`NexusImageSeries`)."""
    return NexusImageSeries(filename, path=path, on_error=on_error,
                            direct_chunks=direct_chunks)


def nexus_layout(path: str) -> bool:
    """Whether ``path`` is an HDF5 file in a detector layout (NeXus ``default`` chain, Eiger
    master or data file, LIMA); other HDF5 files are the ``hdf5`` format's unless
    ``format='nexus'`` is given (which also takes the file's only 3-D dataset)."""
    if not nx.is_hdf5_file(path):
        return False
    try:
        with open_file(path) as f:
            return nx.detector_frames_path(f) is not None
    except InputError:
        return False


class NexusFormat(ImageSeriesFormat):
    """Registry entry: NeXus / Eiger master / LIMA / Bliss / VDS files (``file.h5``,
    ``file.h5:/path``, a glob or a list of files of one scan)."""

    name = "nexus"
    description = ("NeXus/Eiger master (data_NNNNNN links), LIMA, Bliss/VDS HDF5: one series; "
                   "file.h5[:/path], glob or list")
    suffixes = nx.HDF5_SUFFIXES
    open_keywords = frozenset({"path", "direct_chunks"})
    accepts_on_error = True
    inner_path = True
    guess_priority = 0  # above the generic hexrd 'hdf5' entry (-1) when the layout matches

    def guess_can_open(self, path: str) -> bool:
        return nexus_layout(path)

    def open(self, filename, **kwargs) -> NexusImageSeries:
        return open_nexus(filename, **kwargs)

    def inner_path_keywords(self, filename: str, inner: str) -> dict:
        return {"path": inner}


register(NexusFormat())
