"""The ``frame-cache`` format: sparse frames (the pixels above a threshold), hexrd's layouts.

Styles
------
``npz`` (default)
    An npz with ``nframes``, ``shape``, ``dtype`` (a string) and per frame ``{i}_row``,
    ``{i}_col``, ``{i}_data`` (coordinates and values of the stored pixels); every other key
    is metadata.  Loaded with ``allow_pickle=False``: an npz holding pickled objects raises
    :class:`~xrsmap_dask.errors.UnsafeInputError`.
``yml``
    A YAML file ``data: {file, nframes, shape, dtype}`` (``file``, an npz as above, relative
    to the YAML's directory) and ``meta:`` (values, or ``"! load-numpy-array FILE"``).
``fch5``
    HDF5 with attribute ``HEXRD_FRAMECACHE_VERSION = 1``; datasets ``shape``, ``nframes``,
    ``dtype``, ``frame_ids`` (flat start/stop pairs: frame ``i`` holds entries
    ``frame_ids[2i]:frame_ids[2i+1]``), ``data`` ``(m, 1)``, ``indices`` ``(m, 2)`` (row, col);
    group ``metadata`` (one dataset per key).

Pixels not stored read as 0.  A dask task of an npz cache carries the sparse entries of its
own frames; one of an fch5 cache carries only the file name and entry ranges.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import FormatError, FrameReadError, InputError
from ..roi import RoiSlices, roi_shape
from ._errors import (InputNotFoundError, InputTypeError, MissingEntryError,
                      UnsupportedOptionError)
from ._utils import (CheckedNpz, check_regular_file, file_token, h5_group_to_dict, resolve_relative, short_repr,
                     yaml_meta, yaml_top_keys)
from ._yaml import load_yaml
from .base import BlockSource, ImageSeries
from .framecache_fields import (MAX_FRAMES, check_entries, header_dtype, header_int,
                                header_shape, plain_value)
from .registry import ImageSeriesFormat, has_suffix, register

STYLES = ("npz", "yml", "fch5")
FCH5_VERSION = 1
_HEADER_KEYS = ("nframes", "shape", "dtype")


def guess_style(filename: str) -> str:
    """``npz``, ``fch5`` or ``yml`` from the file's first bytes (then its suffix)."""
    try:
        with open(filename, "rb") as f:
            magic = f.read(8)
    except FileNotFoundError:
        raise InputNotFoundError("file not found", path=filename) from None
    except OSError as exc:
        raise InputError(f"cannot read the file: {short_repr(exc)}", path=filename) from None
    if magic.startswith(b"PK"):
        return "npz"
    if magic.startswith(b"\x89HDF"):
        return "fch5"
    low = filename.lower()
    if low.endswith(".npz"):
        return "npz"
    if low.endswith((".fch5", ".h5", ".hdf5")):
        return "fch5"
    return "yml"


# -- sparse kernels ------------------------------------------------------------------------
def sparse_frame(frame: np.ndarray, threshold) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, values) of the pixels of ``frame`` strictly above ``threshold``."""
    rows, cols = np.nonzero(frame > threshold)
    return rows, cols, frame[rows, cols]


def scatter_roi(out: np.ndarray, rows: np.ndarray, cols: np.ndarray, values: np.ndarray,
                roi: RoiSlices) -> np.ndarray:
    """Place the entries falling inside ``roi`` into ``out`` (a zeroed ROI-shaped frame)."""
    r, c = roi
    keep = (rows >= r.start) & (rows < r.stop) & (cols >= c.start) & (cols < c.stop)
    out[rows[keep].astype(np.intp) - r.start, cols[keep].astype(np.intp) - c.start] = values[keep]
    return out


def _index_dtype(shape) -> np.dtype:
    return np.dtype(np.uint16) if max(shape) <= 65535 else np.dtype(np.uint32)


# -- series --------------------------------------------------------------------------------
class FrameCacheImageSeries(ImageSeries):
    """Frames of a frame cache (see the module docstring for the styles).

    Parameters
    ----------
    filename : str, PathLike or h5py Group
        The cache (an open h5py File/Group holds an fch5 cache, as in hexrd).
    style : {'npz', 'yml', 'fch5'}, optional
        Guessed from the file when omitted.
    path : str, optional
        fch5 only: the group holding the cache inside the HDF5 file (default the root).

    Every stored entry is checked (npz and YAML at open, fch5 per block read): indices in
    the frame, no pixel twice, values the declared dtype holds; anything else is an
    :class:`InputError` (:class:`FrameReadError` for fch5 blocks) naming file, frame and
    field.  Metadata are returned as hexrd returns them (npz: numpy arrays; fch5: see
    :func:`~._utils.h5_group_to_dict`; YAML: YAML values).
    """

    def __init__(self, filename, style: str | None = None, path: str | None = None):
        group_path = "/" if path in (None, "", "/") else "/" + str(path).strip("/")
        if hasattr(filename, "file") and hasattr(filename, "name"):  # an open h5py Group
            group_path = "/" + "/".join(p.strip("/") for p in (filename.name, group_path)
                                        if p.strip("/"))
            filename, style = filename.file.filename, "fch5"
        self.filename = os.path.abspath(os.fspath(filename))
        check_regular_file(self.filename)
        style = guess_style(self.filename) if style is None else style
        style = "yml" if style in ("yaml", "test") else style
        if style not in STYLES:
            raise InputTypeError(f"must be one of {STYLES}, got {short_repr(style)}",
                                 argument="style")
        self.style = style
        self._entries = None  # npz: (rows, cols, values, offsets) of all frames
        self._frame_ids = None  # fch5: (nframes, 2) entry ranges
        self._group = group_path
        self.cache_file = self.filename
        self._metadata = {}
        if style == "yml":
            self._load_yml()
        elif style == "npz":
            self._load_npz(self.cache_file)
        else:
            self._load_fch5()
        self._token = file_token(self.cache_file, self.style, self._group)

    # -- loading ---------------------------------------------------------------------------
    def _load_yml(self) -> None:
        where = self.filename
        doc = load_yaml(where)
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
            raise FormatError("a frame-cache YAML needs a 'data:' mapping", path=where)
        data = doc["data"]
        if not isinstance(data.get("file"), str):
            raise FormatError("frame-cache YAML 'data:' needs 'file:' (a path)", path=where)
        self.cache_file = resolve_relative(data["file"], where, what="frame cache file")
        check_regular_file(self.cache_file, "data.file")
        self._load_npz(self.cache_file)
        said = {"nframes": lambda v: header_int(plain_value(v, int, "data.nframes", where),
                                                  "data.nframes", where, 0, MAX_FRAMES),
                "shape": lambda v: header_shape(plain_value(v, list, "data.shape", where), where),
                "dtype": lambda v: header_dtype(plain_value(v, str, "data.dtype", where), where)}
        holds = {"nframes": len(self), "shape": self.shape, "dtype": self.dtype}
        for key, parse in said.items():
            if key in data and parse(data[key]) != holds[key]:
                raise FormatError(f"YAML says {key} = {short_repr(data[key])} but the cache "
                                  f"{self.cache_file!r} holds {holds[key]}", path=where)
        # as hexrd: the YAML's meta only (members of the npz beside it are not metadata)
        self._metadata = yaml_meta(doc.get("meta") or {}, where,
                                   other_dirs=[os.path.dirname(self.cache_file)])

    def _load_npz(self, cache: str) -> None:
        with CheckedNpz(cache) as arrs:
            missing = [k for k in _HEADER_KEYS if k not in arrs]
            if missing:
                raise FormatError(f"frame-cache npz lacks the keys {missing}", path=cache)
            # checked against the keys present before any loop or allocation
            nframes = header_int(arrs.read("nframes", 1), "nframes", cache, 0,
                                  min(MAX_FRAMES, len(arrs.keys()) // 3))
            self._shape = header_shape(arrs.read("shape", 2), cache)
            self._dtype = header_dtype(arrs.read("dtype", 64), cache)
            parts = ([], [], [])
            counts = np.zeros(nframes, dtype=np.int64)
            for i in range(nframes):
                keys = (f"{i}_row", f"{i}_col", f"{i}_data")
                if any(k not in arrs for k in keys):
                    raise FormatError(f"frame-cache npz lacks the entries of frame {i}",
                                      path=cache, frame=i)
                npix = self._shape[0] * self._shape[1]
                r, c, v = (arrs.read(k, max_items=npix) for k in keys)
                r, c, v = (a.reshape(-1) if a.ndim == 0 else a for a in (r, c, v))
                reason = check_entries(r, c, v, self._shape, self._dtype) \
                    if r.ndim == c.ndim == v.ndim == 1 else "row/col/data are not 1-D"
                if reason is not None:
                    raise InputError(reason, path=cache, frame=i, argument=f"{i}_row/col/data")
                for part, arr in zip(parts, (r, c, v)):
                    part.append(arr)
                counts[i] = len(v)
            reserved = set(_HEADER_KEYS) | {f"{i}_{s}" for i in range(nframes)
                                            for s in ("row", "col", "data")}
            for k in arrs.keys():
                if k not in reserved:
                    self._metadata[k] = arrs[k]
        idx = _index_dtype(self._shape)
        cat = (lambda p, dt: np.concatenate(p).astype(dt) if p else np.zeros(0, dt))
        self._entries = (cat(parts[0], idx), cat(parts[1], idx), cat(parts[2], self._dtype),
                         np.concatenate([[0], np.cumsum(counts)]))
        self._nframes = nframes

    def _load_fch5(self) -> None:
        import h5py
        import hdf5plugin  # noqa: F401 - hexrd writes fch5 with Blosc/zstd

        where = self.filename
        try:
            f = h5py.File(where, "r")
        except FileNotFoundError:
            raise InputNotFoundError("frame cache file not found", path=where) from None
        except OSError as exc:
            raise InputError(f"not a readable HDF5 file: {short_repr(exc)}", path=where) \
                from None
        with f:
            g = f.get(self._group)
            if not isinstance(g, h5py.Group):
                raise MissingEntryError(f"HDF5 file has no group {self._group!r}", path=where)
            version = g.attrs.get("HEXRD_FRAMECACHE_VERSION")
            if version is None:
                raise FormatError("not an fch5 frame cache (no HEXRD_FRAMECACHE_VERSION)",
                                  path=where)
            if header_int(version, "HEXRD_FRAMECACHE_VERSION", where, 0, 2**31) \
                    != FCH5_VERSION:
                raise UnsupportedOptionError(f"unsupported frame-cache version {version}",
                                             path=where)
            try:
                self._shape = header_shape(g["shape"][()], where)
                self._dtype = header_dtype(g["dtype"][()], where)
                data, indices, ids = g["data"], g["indices"], g["frame_ids"]
                nentries = data.shape[0] if data.ndim == 2 and data.shape[1:] == (1,) else -1
                if nentries < 0 or indices.shape != (nentries, 2):
                    raise InputError(f"data {data.shape} and indices {indices.shape} must be "
                                     "(m, 1) and (m, 2)", path=where, argument="data")
                self._nframes = header_int(g["nframes"][()], "nframes", where, 0,
                                            min(MAX_FRAMES, ids.size // 2))
                ids = np.asarray(ids[()])
            except KeyError as exc:
                raise FormatError(f"fch5 frame cache lacks a dataset: {short_repr(exc)}",
                                  path=where) from None
            if ids.dtype.kind not in "iu" or ids.shape != (2 * self._nframes,):
                raise InputError(f"must be {2 * self._nframes} integers, got "
                                 f"{ids.shape} {ids.dtype}", path=where, argument="frame_ids")
            ids = ids.astype(np.int64).reshape(self._nframes, 2)
            bad = np.flatnonzero((ids[:, 0] < 0) | (ids[:, 1] < ids[:, 0])
                                 | (ids[:, 1] > nentries))
            if len(bad):
                raise InputError(f"frame {int(bad[0])} entries {ids[bad[0]].tolist()} are not a "
                                 f"range within 0 .. {nentries}", path=where,
                                 frame=int(bad[0]), argument="frame_ids")
            self._frame_ids = ids
            self._metadata = h5_group_to_dict(g["metadata"]) if "metadata" in g else {}

    # -- interface -------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._nframes

    def _read_region(self, j: int, rows: slice, cols: slice) -> np.ndarray:
        return self.block_source(j, j + 1).read((rows, cols))[0]

    def block_source(self, start: int, stop: int) -> BlockSource:
        if self._entries is not None:
            rows, cols, values, offsets = self._entries
            lo, hi = int(offsets[start]), int(offsets[stop])
            return SparseBlock(rows[lo:hi], cols[lo:hi], values[lo:hi],
                               offsets[start:stop + 1] - lo, self._shape, self._dtype)
        return Fch5Block(self.filename, self._group, self._frame_ids[start:stop].copy(),
                         self._shape, self._dtype, start)


@dataclass
class SparseBlock(BlockSource):
    """The sparse entries of a run of frames (CSR-style: frame ``k`` holds entries
    ``offsets[k]:offsets[k+1]``)."""

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    offsets: np.ndarray
    shape: tuple[int, int]
    dtype: np.dtype

    @property
    def nframes(self) -> int:
        return len(self.offsets) - 1

    def read(self, roi: RoiSlices) -> np.ndarray:
        out = np.zeros((self.nframes,) + roi_shape(roi), dtype=self.dtype)
        for k in range(self.nframes):
            lo, hi = self.offsets[k], self.offsets[k + 1]
            scatter_roi(out[k], self.rows[lo:hi], self.cols[lo:hi], self.values[lo:hi], roi)
        return out


@dataclass
class Fch5Block(BlockSource):
    """File name, group and entry ranges of a run of fch5 frames: one read of the entries
    they span, each frame's entries checked (:func:`check_entries`) before use."""

    filename: str
    group: str
    frame_ids: np.ndarray  # (nframes, 2) start/stop entries
    shape: tuple[int, int]
    dtype: np.dtype
    first_frame: int = 0

    @property
    def nframes(self) -> int:
        return len(self.frame_ids)

    def read(self, roi: RoiSlices) -> np.ndarray:
        import h5py
        import hdf5plugin  # noqa: F401 - in every worker process too

        out = np.zeros((self.nframes,) + roi_shape(roi), dtype=self.dtype)
        if not self.nframes:
            return out
        lo, hi = int(self.frame_ids[:, 0].min()), int(self.frame_ids[:, 1].max())
        if hi <= lo:
            return out
        try:
            with h5py.File(self.filename, "r") as f:
                g = f[self.group]
                values = np.asarray(g["data"][lo:hi]).reshape(-1)
                idx = np.asarray(g["indices"][lo:hi])
        except (OSError, KeyError) as exc:
            raise FrameReadError(f"cannot read the frame cache: {short_repr(exc)}",
                                 path=self.filename, frame=self.first_frame) from None
        for k, (a, b) in enumerate(self.frame_ids):
            a, b = int(a) - lo, int(b) - lo
            reason = check_entries(idx[a:b, 0], idx[a:b, 1], values[a:b], self.shape,
                                   self.dtype)
            if reason is not None:
                raise FrameReadError(reason, path=self.filename, frame=self.first_frame + k)
            scatter_roi(out[k], idx[a:b, 0], idx[a:b, 1], values[a:b], roi)
        return out


def open_framecache(filename, style: str | None = None, path: str | None = None,
                    max_workers: int | None = None) -> FrameCacheImageSeries:
    """Open a frame cache (``npz``, ``yml`` or ``fch5``; guessed from the file when omitted).
    ``max_workers`` (hexrd's thread count) is accepted and not needed."""
    return FrameCacheImageSeries(filename, style=style, path=path)


# -- registry entry ------------------------------------------------------------------------
def _is_fch5(path: str) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "HEXRD_FRAMECACHE_VERSION" in f.attrs
    except (OSError, ValueError):
        return False


class FrameCacheFormat(ImageSeriesFormat):
    name = "frame-cache"
    description = "sparse frames above a threshold: hexrd's npz, fch5 (HDF5) or YAML + npz"
    suffixes = (".npz", ".fch5")
    open_keywords = frozenset({"style", "path", "max_workers"})
    write_keywords = frozenset({"threshold", "cache_file", "style", "meta", "output_yaml",
                                "path", "max_workers"})

    def guess_can_open(self, path: str) -> bool:
        if has_suffix(path, self.suffixes):
            return True
        if has_suffix(path, (".yml", ".yaml")):
            return "data" in yaml_top_keys(path)
        return has_suffix(path, (".h5", ".hdf5")) and _is_fch5(path)

    def open(self, filename, **kwargs) -> FrameCacheImageSeries:
        return open_framecache(filename, **kwargs)

    def write(self, ims, filename, **kwargs) -> None:
        from .framecache_writer import write_framecache

        write_framecache(ims, filename, **kwargs)


register(FrameCacheFormat())
