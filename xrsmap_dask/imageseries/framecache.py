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

from ..errors import FormatError, FrameReadError, InputError, UnsafeInputError
from ..roi import RoiSlices, roi_shape
from ._yaml import load_yaml
from .base import BlockSource, ImageSeries
from ._utils import (file_token, frames_per_write, meta_value_from_h5, meta_value_to_h5,
                     yaml_meta, yaml_meta_out, yaml_top_keys)
from .registry import ImageSeriesFormat, has_suffix, register

STYLES = ("npz", "yml", "fch5")
FCH5_VERSION = 1
_HEADER_KEYS = ("nframes", "shape", "dtype")
_PICKLE_MESSAGE = "Object arrays cannot be loaded"


def guess_style(filename: str) -> str:
    """``npz``, ``fch5`` or ``yml`` from the file's first bytes (then its suffix)."""
    try:
        with open(filename, "rb") as f:
            magic = f.read(8)
    except FileNotFoundError:
        raise InputError("file not found", path=filename) from None
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
    filename : str or PathLike
    style : {'npz', 'yml', 'fch5'}, optional
        Guessed from the file when omitted.
    path : str, optional
        fch5 only: the group holding the cache inside the HDF5 file (default the root).
    """

    def __init__(self, filename, style: str | None = None, path: str | None = None):
        self.filename = os.path.abspath(os.fspath(filename))
        style = guess_style(self.filename) if style is None else style
        if style == "yaml":
            style = "yml"
        if style not in STYLES:
            raise InputError(f"must be one of {STYLES}, got {style!r}", argument="style")
        self.style = style
        self._entries = None  # npz: (rows, cols, values, offsets) of all frames
        self._frame_ids = None  # fch5: (nframes, 2) entry ranges
        self._group = "/" if path in (None, "", "/") else "/" + str(path).strip("/")
        if style == "yml":
            self._load_yml()
        elif style == "npz":
            self.cache_file = self.filename
            self._metadata = {}
            self._load_npz(self.cache_file)
        else:
            self.cache_file = self.filename
            self._load_fch5()
        self._token = file_token(self.cache_file, self.style, self._group)

    # -- loading ---------------------------------------------------------------------------
    def _load_yml(self) -> None:
        doc = load_yaml(self.filename)
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
            raise FormatError("a frame-cache YAML needs a 'data:' mapping", path=self.filename)
        data = doc["data"]
        if "file" not in data:
            raise FormatError("frame-cache YAML 'data:' has no 'file'", path=self.filename)
        base = os.path.dirname(os.path.abspath(self.filename))
        cache = os.path.join(base, os.fspath(data["file"]))
        self.cache_file = cache
        self._metadata = {}
        self._load_npz(cache)
        for key in ("nframes", "shape", "dtype"):
            if key in data:
                want = {"nframes": len(self), "shape": self.shape,
                        "dtype": self.dtype}[key]
                got = (tuple(int(v) for v in data[key]) if key == "shape" else
                       np.dtype(data[key]) if key == "dtype" else int(data[key]))
                if got != want:
                    raise FormatError(f"YAML says {key} = {got} but the cache {cache!r} holds "
                                      f"{want}", path=self.filename)
        meta = doc.get("meta") or {}
        if not isinstance(meta, dict):
            raise FormatError("'meta:' must be a mapping", path=self.filename)
        self._metadata.update(yaml_meta(meta, self.filename,
                                        other_dirs=[os.path.dirname(cache)]))

    def _load_npz(self, cache: str) -> None:
        if not os.path.exists(cache):
            raise InputError("frame cache file not found", path=cache)
        try:
            arrs = np.load(cache, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"not a readable npz file: {exc}", path=cache) from None
        with arrs:
            try:
                missing = [k for k in _HEADER_KEYS if k not in arrs.files]
                if missing:
                    raise FormatError(f"frame-cache npz lacks the keys {missing}", path=cache)
                nframes = int(arrs["nframes"])
                self._shape = tuple(int(v) for v in arrs["shape"])
                self._dtype = np.dtype(_as_str(arrs["dtype"][()]))
                rows, cols, values, counts = [], [], [], np.zeros(nframes, dtype=np.int64)
                for i in range(nframes):
                    keys = (f"{i}_row", f"{i}_col", f"{i}_data")
                    if any(k not in arrs.files for k in keys):
                        raise FormatError(f"frame-cache npz lacks the entries of frame {i}",
                                          path=cache, frame=i)
                    r, c, v = (arrs[k] for k in keys)
                    if not len(r) == len(c) == len(v):
                        raise FormatError("row/col/data lengths differ", path=cache, frame=i)
                    rows.append(r)
                    cols.append(c)
                    values.append(v)
                    counts[i] = len(v)
                frame_keys = {f"{i}_{s}" for i in range(nframes) for s in ("row", "col", "data")}
                for k in arrs.files:
                    if k not in frame_keys and k not in _HEADER_KEYS:
                        self._metadata[k] = meta_value_from_h5(arrs[k])
            except ValueError as exc:
                if _PICKLE_MESSAGE in str(exc):
                    raise UnsafeInputError("npz holds pickled Python objects; refused "
                                           "(loaded with allow_pickle=False)",
                                           path=cache) from None
                raise
        idx = _index_dtype(self._shape)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        cat = (lambda parts, dt: np.concatenate(parts).astype(dt, copy=False)
               if parts else np.zeros(0, dt))
        self._entries = (cat(rows, idx), cat(cols, idx), cat(values, self._dtype), offsets)
        self._nframes = nframes

    def _load_fch5(self) -> None:
        import h5py

        try:
            f = h5py.File(self.filename, "r")
        except OSError as exc:
            raise InputError(f"not a readable HDF5 file: {exc}", path=self.filename) from None
        with f:
            if self._group not in f:
                raise InputError(f"HDF5 file has no group {self._group!r}", path=self.filename)
            g = f[self._group]
            version = g.attrs.get("HEXRD_FRAMECACHE_VERSION")
            if version is None:
                raise FormatError("not an fch5 frame cache (no HEXRD_FRAMECACHE_VERSION)",
                                  path=self.filename)
            if int(version) != FCH5_VERSION:
                raise FormatError(f"unsupported frame-cache version {version}",
                                  path=self.filename)
            try:
                self._shape = tuple(int(v) for v in g["shape"][()])
                self._nframes = int(g["nframes"][()])
                self._dtype = np.dtype(_as_str(g["dtype"][()]))
                ids = np.asarray(g["frame_ids"][()], dtype=np.int64)
            except KeyError as exc:
                raise FormatError(f"fch5 frame cache lacks a dataset: {exc}",
                                  path=self.filename) from None
            if ids.size != 2 * self._nframes:
                raise FormatError(f"frame_ids has {ids.size} values, expected "
                                  f"{2 * self._nframes}", path=self.filename)
            self._frame_ids = ids.reshape(self._nframes, 2)
            self._metadata = _read_h5_meta(g["metadata"]) if "metadata" in g else {}

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
                         self._shape, self._dtype)


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
    """File name, group and entry ranges of a run of fch5 frames: one contiguous read."""

    filename: str
    group: str
    frame_ids: np.ndarray  # (nframes, 2) start/stop entries
    shape: tuple[int, int]
    dtype: np.dtype

    @property
    def nframes(self) -> int:
        return len(self.frame_ids)

    def read(self, roi: RoiSlices) -> np.ndarray:
        import h5py

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
            raise FrameReadError(f"cannot read the frame cache: {exc}", path=self.filename,
                                 frame=None) from None
        for k, (a, b) in enumerate(self.frame_ids):
            a, b = int(a) - lo, int(b) - lo
            scatter_roi(out[k], idx[a:b, 0], idx[a:b, 1], values[a:b], roi)
        return out


def _as_str(value) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return _as_str(value[()]) if value.ndim == 0 else str(value)
    return str(value)


def _read_h5_meta(group) -> dict:
    import h5py

    out = {}
    for k, v in group.items():
        out[k] = _read_h5_meta(v) if isinstance(v, h5py.Group) else meta_value_from_h5(v[()])
    return out


def _write_h5_meta(group, meta: dict, path: str) -> None:
    for k, v in meta.items():
        if v is None:
            continue
        if isinstance(v, dict):
            _write_h5_meta(group.create_group(str(k)), v, path)
        else:
            group.create_dataset(str(k), data=meta_value_to_h5(k, v, path))


def open_framecache(filename, style: str | None = None, path: str | None = None,
                    max_workers: int | None = None) -> FrameCacheImageSeries:
    """Open a frame cache (``npz``, ``yml`` or ``fch5``; guessed from the file when omitted).
    ``max_workers`` (hexrd's thread count) is accepted and not needed."""
    return FrameCacheImageSeries(filename, style=style, path=path)


# -- writer --------------------------------------------------------------------------------
def write_framecache(ims, filename, threshold=None, cache_file=None, style: str = "npz",
                     meta: dict | None = None, output_yaml: bool = False,
                     path: str | None = None, max_workers: int | None = None) -> None:
    """Write the pixels of ``ims`` strictly above ``threshold`` as a frame cache.

    Parameters
    ----------
    filename : str or PathLike
        ``style='npz'``/``'fch5'``: the cache file (unless ``cache_file`` is given);
        ``style='yml'``: the YAML file.
    threshold : number
        Pixels ``> threshold`` are stored; the others read back as 0.
    cache_file : str, optional
        The npz/fch5 file, relative to ``filename``'s directory.  With ``style='yml'`` the
        default is ``filename`` with suffix ``.npz``.
    style : {'npz', 'yml', 'fch5'}
    meta : dict, optional
        Metadata instead of ``ims.metadata``.  In YAML, arrays go to ``.npy`` files beside it
        (``"! load-numpy-array FILE"``).
    output_yaml : bool
        Also write the YAML (hexrd's flag) for ``npz``.
    path : str, optional
        ``fch5`` only: write the cache into this group of the HDF5 file (the file is then
        appended to, the group replaced) instead of replacing the whole file.
    """
    if threshold is None:
        raise InputError("a frame cache needs threshold= (pixels above it are stored)",
                         argument="threshold")
    style = "yml" if style == "yaml" else style
    if style not in STYLES:
        raise InputError(f"must be one of {STYLES}, got {style!r}", argument="style")
    filename = os.fspath(filename)
    base = os.path.dirname(os.path.abspath(filename))
    if cache_file is None:
        cache = os.path.splitext(filename)[0] + ".npz" if style == "yml" else filename
        cache_name = os.path.basename(cache)
    else:
        cache_name = os.fspath(cache_file)
        cache = os.path.join(base, cache_name)
    meta = dict(ims.metadata if meta is None else meta)
    if path is not None and style != "fch5":
        raise InputError("path= applies to style='fch5' only", argument="path")
    if style == "fch5":
        _write_fch5(ims, cache, threshold, meta, path)
    else:
        _write_npz(ims, cache, threshold, {} if style == "yml" else meta)
    if style == "yml" or output_yaml:
        _write_yml(ims, filename, cache_name, meta)


def _iter_sparse_blocks(ims, threshold):
    """Per write block: ``(first frame, [(rows, cols, values) per frame])``."""
    nframes = len(ims)
    h, w = ims.shape
    step = frames_per_write(h * w * np.dtype(ims.dtype).itemsize, nframes)
    for start in range(0, nframes, step):
        block = ims.read_block(start, min(nframes, start + step))
        yield start, [sparse_frame(block[k], threshold) for k in range(block.shape[0])]


def _npz_meta(meta: dict) -> dict[str, np.ndarray]:
    out = {}
    for k, v in meta.items():
        if k in _HEADER_KEYS or (k.split("_", 1)[0].isdigit()
                                 and k.split("_", 1)[-1] in ("row", "col", "data")):
            raise InputError(f"metadata key {k!r} clashes with a frame-cache key",
                             argument="meta")
        if v is None:
            continue
        arr = np.asarray(v)
        if arr.dtype.kind == "O":
            raise InputError(f"metadata {k!r} is not a number, string or numeric array "
                             "(npz holds no Python objects)", argument="meta")
        out[k] = arr
    return out


def _write_npz(ims, cache: str, threshold, meta: dict) -> None:
    """Stream the npz member by member (memory: one write block), as np.savez lays it out."""
    import zipfile

    idx = _index_dtype(ims.shape)
    arrs = _npz_meta(meta)  # checked before anything is written
    with zipfile.ZipFile(cache, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        def put(key: str, arr) -> None:
            with zf.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)

        for start, frames in _iter_sparse_blocks(ims, threshold):
            for k, (r, c, v) in enumerate(frames):
                put(f"{start + k}_row", r.astype(idx))
                put(f"{start + k}_col", c.astype(idx))
                put(f"{start + k}_data", v)
        put("shape", np.asarray(ims.shape))
        put("nframes", np.asarray(len(ims)))
        put("dtype", np.asarray(str(np.dtype(ims.dtype))))
        for k, arr in arrs.items():
            put(k, arr)


def _write_fch5(ims, cache: str, threshold, meta: dict, path: str | None = None) -> None:
    import h5py

    nframes = len(ims)
    dtype = np.dtype(ims.dtype)
    idx = _index_dtype(ims.shape)
    frame_ids = np.zeros(2 * nframes, dtype=np.uint64)
    group = None if path in (None, "", "/") else str(path).strip("/")
    with h5py.File(cache, "w" if group is None else "a") as h5:
        if group is not None and group in h5:
            del h5[group]
        f = h5 if group is None else h5.create_group(group)
        f.attrs["HEXRD_FRAMECACHE_VERSION"] = FCH5_VERSION
        f["shape"] = np.asarray(ims.shape)
        f["nframes"] = nframes
        f["dtype"] = str(dtype).encode()
        _write_h5_meta(f.create_group("metadata"), meta, cache)
        data = f.create_dataset("data", shape=(0, 1), maxshape=(None, 1), dtype=dtype,
                                chunks=(65536, 1), compression="gzip", compression_opts=1)
        indices = f.create_dataset("indices", shape=(0, 2), maxshape=(None, 2), dtype=idx,
                                   chunks=(65536, 2), compression="gzip", compression_opts=1)
        pos = 0
        for start, frames in _iter_sparse_blocks(ims, threshold):
            counts = np.array([len(v) for _, _, v in frames], dtype=np.uint64)
            ends = pos + np.cumsum(counts)
            frame_ids[2 * start:2 * (start + len(frames)):2] = ends - counts
            frame_ids[2 * start + 1:2 * (start + len(frames)):2] = ends
            n = int(counts.sum())
            if n:  # one resize and one write per block
                data.resize(pos + n, axis=0)
                indices.resize(pos + n, axis=0)
                data[pos:pos + n, 0] = np.concatenate([v for _, _, v in frames])
                indices[pos:pos + n] = np.stack(
                    [np.concatenate([r for r, _, _ in frames]),
                     np.concatenate([c for _, c, _ in frames])], axis=1).astype(idx)
            pos += n
        f["frame_ids"] = frame_ids


def _write_yml(ims, filename: str, cache_name: str, meta: dict) -> None:
    import yaml

    doc = {"data": {"file": cache_name, "dtype": str(np.dtype(ims.dtype)),
                    "nframes": len(ims), "shape": [int(v) for v in ims.shape]},
           "meta": yaml_meta_out(meta, filename)}
    with open(filename, "w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f, sort_keys=False)


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
        write_framecache(ims, filename, **kwargs)


register(FrameCacheFormat())
