"""The ``hdf5`` format: frames as a 3-D dataset ``GROUP/images`` ``(frame, y, x)``.

``open(f, 'hdf5', path=GROUP, dataname='images')`` (hexrd's names); metadata are the group's
attributes (numpy arrays allowed), read back as h5py gives them (as hexrd).  Reads are those
of every HDF5 series (:mod:`._h5frames`): one dask task reads the ROI of its run of frames,
raw chunks decoded in parallel where the filters allow, carrying only file names and chunk
addresses.  ``write(ims, f, 'hdf5', path=, gzip=1, chunk_rows=, shuffle=True)`` writes block by
block (never the whole stack in memory) and stores the metadata as group attributes.
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import InputError
from ..io import hdf5 as h5io
from ..io.nexus import dataset_segments
from ._h5frames import H5FramesSeries
from ._utils import check_regular_file, frames_per_write, meta_value_to_h5
from .registry import ImageSeriesFormat, has_suffix, register

# -- metadata <-> HDF5 ---------------------------------------------------------------------
def read_attrs(obj) -> dict:
    """Attributes of an h5py group/dataset as a metadata dict, as h5py gives them (numpy
    scalars and arrays, ``str`` for string scalars), which is what hexrd returns."""
    return dict(obj.attrs.items())


def write_attrs(obj, meta: dict, path: str) -> None:
    """Store ``meta`` as attributes of an h5py group/dataset (``None`` values skipped)."""
    for k, v in meta.items():
        if v is None:
            continue
        obj.attrs[str(k)] = meta_value_to_h5(k, v, path)


def _dataset_path(path, dataname: str) -> str:
    group = "" if path in (None, "", "/") else str(path).strip("/")
    return f"/{group}/{dataname}" if group else f"/{dataname}"


def _group_path(path) -> str:
    return "/" if path in (None, "", "/") else "/" + str(path).strip("/")


def _find_dataset(filename: str, dataname: str) -> str | None:
    """Without ``path=``: ``/dataname`` if present, else the one 3-D ``.../dataname`` in the
    file (``None`` when absent or ambiguous; opening then reports the missing dataset)."""
    import h5py

    try:
        f = h5py.File(filename, "r")
    except OSError:
        return None
    with f:
        if dataname in f:
            return "/" + dataname
        found = []

        def visit(name, obj):
            if name.split("/")[-1] == dataname and isinstance(obj, h5py.Dataset) \
                    and obj.ndim == 3:
                found.append("/" + name)

        f.visititems(visit)
    if len(found) > 1:
        raise InputError(f"several datasets named {dataname!r} ({', '.join(found)}); pass "
                         "path=GROUP", path=filename)
    return found[0] if found else None


# -- reader --------------------------------------------------------------------------------
class HDF5ImageSeries(H5FramesSeries):
    """Frames of a 3-D HDF5 dataset ``(frame, y, x)`` (a 2-D dataset is one frame).

    Parameters
    ----------
    filename : str or PathLike
    path : str, optional
        Group holding the dataset (hexrd's ``path=``).  When omitted: ``/dataname``, else
        the one 3-D dataset called ``dataname`` anywhere in the file.
    dataname : str
        Dataset name within the group (hexrd's default ``'images'``).
    on_error : {'raise', 'fill'}
        ``'fill'``: an unreadable frame reads as NaN (the series' blocks are then float).

    Reads are those of :class:`~._h5frames.H5FramesSeries`: raw chunks decoded in parallel
    where the filters allow, a VDS read from its sources, chunks never written found at open.
    """

    def __init__(self, filename, path=None, dataname: str = "images", on_error: str = "raise"):
        if hasattr(filename, "file") and hasattr(filename, "name"):
            # an open h5py File/Group (hexrd accepts one): tasks reopen it by name
            path = "/".join(p.strip("/") for p in (filename.name, path or "") if p.strip("/"))
            filename = filename.file.filename
        self.filename = os.path.abspath(os.fspath(filename))
        self.dataset = _dataset_path(path, dataname)
        if path is None:
            self.dataset = _find_dataset(self.filename, dataname) or self.dataset
        self._set_segments(dataset_segments(self.filename, self.dataset), on_error)
        f, ds = h5io.open_dataset(self.filename, self.dataset)
        with f:
            self.ndim = int(ds.ndim)
            self._metadata = read_attrs(ds.parent)


def open_hdf5(filename, path=None, dataname: str = "images", on_error: str = "raise",
              close_when_finished: bool = True) -> HDF5ImageSeries:
    """Open ``filename``'s dataset ``path/dataname`` as an image series (hexrd's arguments).

    A missing file raises :class:`FrameFileNotFoundError` (also a ``FileNotFoundError``); a
    missing dataset :class:`MissingEntryError` (also a ``KeyError``, as in hexrd); both name
    the file (and the dataset).
    """
    from ._errors import FrameFileNotFoundError, MissingEntryError, SeriesRuntimeError

    if isinstance(filename, (str, os.PathLike)):
        if not os.path.exists(filename):
            raise FrameFileNotFoundError("file not found", path=os.fspath(filename))
        check_regular_file(os.fspath(filename))
    try:
        return HDF5ImageSeries(filename, path=path, dataname=dataname, on_error=on_error)
    except InputError as exc:
        if type(exc) is InputError and "has no dataset" in exc.reason:
            raise MissingEntryError(exc.reason, path=exc.path) from None
        if type(exc) is InputError and "is not a 2-D or 3-D dataset" in exc.reason:
            raise SeriesRuntimeError(exc.reason, path=exc.path) from None
        raise


# -- writer --------------------------------------------------------------------------------
def _check_gzip(gzip) -> int:
    if isinstance(gzip, (bool, np.bool_)) or not isinstance(gzip, (int, np.integer)) \
            or not 0 <= int(gzip) <= 9:
        raise InputError(f"must be an int compression level 0-9, got {gzip!r}",
                         argument="gzip")
    return int(gzip)


def dataset_options(shape, gzip: int = 1, chunk_rows: int | None = 0, shuffle: bool = True,
                    compression=None) -> dict:
    """``create_dataset`` keywords for frames of ``shape`` (hexrd's options): an explicit
    ``compression`` mapping (e.g. ``hdf5plugin.Blosc(...)``) is used as it is; else gzip
    level ``gzip`` (0: none) with ``shuffle``.  Chunks are ``(1, chunk_rows, cols)``;
    ``chunk_rows`` 0 or ``None`` (or more than the rows) means whole frames."""
    nrows, ncols = (int(v) for v in shape)
    if compression is not None:
        try:
            opts = dict(compression)
        except (TypeError, ValueError):
            raise InputError(f"must be a mapping of create_dataset compression keywords "
                             f"(e.g. hdf5plugin.Blosc()), got {compression!r}",
                             argument="compression") from None
    else:
        level = _check_gzip(gzip)
        opts = {"shuffle": bool(shuffle)}
        if level > 0:
            opts.update(compression="gzip", compression_opts=level)
    if chunk_rows is None:
        chunk_rows = 0
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) \
            or chunk_rows < 0:
        raise InputError(f"must be an int >= 0, got {chunk_rows!r}", argument="chunk_rows")
    rows = nrows if chunk_rows < 1 or chunk_rows > nrows else int(chunk_rows)
    opts["chunks"] = (1, rows, ncols)
    return opts


def write_hdf5(ims, filename, path=None, gzip: int = 1, chunk_rows: int | None = None,
               shuffle: bool = True, dataname: str = "images", meta: dict | None = None,
               compression=None) -> None:
    """Write ``ims`` as dataset ``path/dataname`` of ``filename``.

    A file name is created or truncated (as hexrd does); an open h5py File/Group is written
    into (an existing dataset of the same name replaced).

    Parameters
    ----------
    gzip : int
        gzip level 0-9 (0: no compression); anything else raises :class:`InputError`
        (a ``ValueError``), as hexrd does.
    chunk_rows : int, optional
        Rows per HDF5 chunk; a chunk is ``(1, chunk_rows, ncols)`` (default: whole frames).
    shuffle : bool
        Use the HDF5 byte-shuffle filter (with gzip).
    compression : mapping, optional
        Explicit ``create_dataset`` compression keywords (``hdf5plugin.Blosc(...)``),
        instead of ``gzip``/``shuffle``.
    meta : dict, optional
        Metadata to store instead of ``ims.metadata`` (group attributes; string scalars
        and arrays stored as UTF-8).

    Frames are written in blocks of about 32 MiB, never the whole stack at once.
    """
    import h5py

    opts = dataset_options(ims.shape, gzip, chunk_rows, shuffle, compression)
    if compression is not None:
        import hdf5plugin  # noqa: F401 - registers the filters with HDF5
    if isinstance(filename, h5py.Group):  # an open h5py File/Group: write into it
        _write_group(ims, filename, path, dataname, opts, meta)
        return
    with h5py.File(os.fspath(filename), "w") as f:
        _write_group(ims, f, path, dataname, opts, meta)


def _write_group(ims, parent, path, dataname, opts, meta) -> None:
    filename = parent.file.filename
    nframes = len(ims)
    nrows, ncols = ims.shape
    dtype = np.dtype(ims.dtype)
    meta = ims.metadata if meta is None else meta
    dsname = _dataset_path(path, dataname)
    group = parent.require_group(path.strip("/")) if path not in (None, "", "/") else parent
    if dataname in group:
        del group[dataname]
    ds = group.create_dataset(dataname, shape=(nframes, nrows, ncols), dtype=dtype, **opts)
    step = frames_per_write(nrows * ncols * dtype.itemsize, nframes)
    for start in range(0, nframes, step):
        stop = min(nframes, start + step)
        ds[start:stop] = ims.read_block(start, stop)
    # the group's attributes are the series' metadata: drop those of an earlier write
    for k in list(group.attrs):
        del group.attrs[k]
    write_attrs(group, meta, f"{filename}:{dsname}")


# -- registry entry ------------------------------------------------------------------------
def _inner_keywords(filename: str, inner: str) -> dict:
    """``file.h5:/a/b``: ``/a/b`` a group -> ``path='/a/b'`` (dataset ``images`` in it), else
    the dataset ``b`` of group ``/a``."""
    import h5py

    try:
        with h5py.File(filename, "r") as f:
            if isinstance(f.get(inner), h5py.Group):
                return {"path": inner}
    except OSError:
        pass  # opening reports the unreadable file
    group, _, name = inner.strip("/").rpartition("/")
    return {"path": "/" + group if group else "/", "dataname": name or "images"}


class HDF5Format(ImageSeriesFormat):
    name = "hdf5"
    description = "3-D dataset GROUP/images (frame, y, x); metadata as group attributes"
    suffixes = (".h5", ".hdf5", ".hdf", ".nxs", ".nx5")
    open_keywords = frozenset({"path", "dataname", "close_when_finished"})
    write_keywords = frozenset({"path", "gzip", "chunk_rows", "shuffle", "dataname", "meta",
                                "compression"})
    accepts_on_error = True
    inner_path = True
    guess_priority = -1  # generic: frame caches and Eiger stream files are HDF5 too

    def guess_can_open(self, path: str) -> bool:
        if has_suffix(path, self.suffixes):
            return True
        try:
            with open(path, "rb") as f:
                return f.read(8) == b"\x89HDF\r\n\x1a\n"
        except OSError:
            return False

    def open(self, filename, **kwargs) -> HDF5ImageSeries:
        return open_hdf5(filename, **kwargs)

    def write(self, ims, filename, **kwargs) -> None:
        write_hdf5(ims, filename, **kwargs)

    def inner_path_keywords(self, filename: str, inner: str) -> dict:
        return _inner_keywords(filename, inner)


register(HDF5Format())
