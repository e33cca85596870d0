"""The ``zarr`` format (ours): a zarr v3 group holding ``images`` ``(frame, y, x)``.

Layout::

    <store>/[<path_in_store>/]
        images            array (nframes, rows, cols), chunked by frames (whole frames)
        metadata/         group: numpy-array metadata as arrays, other values in its attrs

Metadata round-trip exactly for numpy arrays (dtype and shape kept), strings, numbers, bools,
lists and dicts of those (JSON); numpy scalars come back as Python scalars.  A dask task opens
the store and reads the ROI of its frames (one slice), carrying only the store path.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import FrameReadError, InputError
from ..roi import RoiSlices, roi_shape
from .base import BlockSource, ImageSeries, check_on_error, plain_metadata_value, read_frames
from ._utils import file_token, frames_per_write
from .registry import ImageSeriesFormat, register

META_GROUP = "metadata"


def _join(*parts) -> str:
    return "/".join(p.strip("/") for p in parts if p not in (None, "", "/"))


def _open_array(store: str, array_path: str):
    import zarr

    try:
        arr = zarr.open_array(store, path=array_path, mode="r")
    except FileNotFoundError:
        raise InputError(f"zarr store has no array {array_path!r}", path=store) from None
    except Exception as exc:  # zarr raises several types for a missing/invalid node
        raise InputError(f"cannot open zarr array {array_path!r}: {exc}", path=store) from None
    if arr.ndim not in (2, 3):
        raise InputError(f"zarr array {array_path!r} has {arr.ndim} dimensions, expected 3",
                         path=store)
    return arr


def _read_meta(store: str, group_path: str) -> dict:
    import zarr

    try:
        g = zarr.open_group(store, path=group_path, mode="r")
    except Exception:
        return {}
    meta = {k: v for k, v in g.attrs.asdict().items()}
    for name, arr in g.arrays():
        meta[name] = np.asarray(arr[...])
    return meta


class ZarrImageSeries(ImageSeries):
    """Frames of a zarr array ``(frame, y, x)``.

    Parameters
    ----------
    store : str or PathLike
        The zarr store (a directory).
    path_in_store : str, optional
        Group holding ``dataname`` (default the store's root).
    dataname : str
    on_error : {'raise', 'fill'}
    """

    def __init__(self, store, path_in_store: str | None = None, dataname: str = "images",
                 on_error: str = "raise"):
        self.on_error = check_on_error(on_error)
        self.store = os.path.abspath(os.fspath(store))
        if not os.path.exists(self.store):
            raise InputError("zarr store not found", path=self.store)
        self.array_path = _join(path_in_store, dataname)
        arr = _open_array(self.store, self.array_path)
        self._nframes = int(arr.shape[0]) if arr.ndim == 3 else 1
        self._ndim = arr.ndim
        self._shape = tuple(int(v) for v in arr.shape[-2:])
        self._dtype = np.dtype(arr.dtype)
        self._metadata = _read_meta(self.store, _join(path_in_store, META_GROUP))
        self._token = file_token(os.path.join(self.store, self.array_path, "zarr.json"),
                                 self.array_path, self._nframes)

    def __len__(self) -> int:
        return self._nframes

    def _read_region(self, j: int, rows: slice, cols: slice) -> np.ndarray:
        return self.block_source(j, j + 1).read((rows, cols))[0]

    def block_source(self, start: int, stop: int) -> "ZarrBlock":
        return ZarrBlock(self.store, self.array_path, start, stop, self._dtype, self._ndim,
                         self.on_error)


@dataclass
class ZarrBlock(BlockSource):
    """Store path, array path and frame range: one sliced read (pickles small)."""

    store: str
    array_path: str
    start: int
    stop: int
    dtype: np.dtype
    ndim: int = 3
    on_error: str = "raise"

    @property
    def nframes(self) -> int:
        return self.stop - self.start

    def _read(self, start: int, stop: int, rows: slice, cols: slice) -> np.ndarray:
        try:
            arr = _open_array(self.store, self.array_path)
            if self.ndim == 2:
                return np.asarray(arr[rows, cols])[None][start:stop]
            return np.asarray(arr[start:stop, rows, cols])
        except InputError as exc:
            raise FrameReadError(exc.reason, path=self.store, frame=start) from None
        except Exception as exc:  # a corrupt or missing chunk
            raise FrameReadError(f"cannot read frames {start}..{stop - 1}: {exc}",
                                 path=self.store, frame=start) from None

    def read(self, roi: RoiSlices) -> np.ndarray:
        rows, cols = roi
        if self.on_error != "fill":
            return self._read(self.start, self.stop, rows, cols)

        def one(j: int, slot: np.ndarray) -> np.ndarray:
            return self._read(j, j + 1, rows, cols)[0]

        return read_frames(one, range(self.start, self.stop), roi_shape(roi), self.dtype,
                           "fill")


def open_zarr(filename, path_in_store: str | None = None, dataname: str = "images",
              on_error: str = "raise", path: str | None = None) -> ZarrImageSeries:
    """Open ``filename`` (a zarr store) as an image series; ``path=`` is an alias of
    ``path_in_store`` (hexrd's hdf5 spelling)."""
    path_in_store = path if path is not None else path_in_store
    return ZarrImageSeries(filename, path_in_store=path_in_store, dataname=dataname,
                           on_error=on_error)


def write_zarr(ims, filename, path_in_store: str | None = None, dataname: str = "images",
               frames_per_chunk: int | None = None, meta: dict | None = None,
               path: str | None = None) -> None:
    """Write ``ims`` to a zarr v3 store, block by block (never the whole stack at once).

    Parameters
    ----------
    filename : str or PathLike
        The store directory (created; an existing ``dataname`` array is replaced).
    path_in_store : str, optional
        Group within the store (``path=`` is accepted as an alias).
    frames_per_chunk : int, optional
        Frames per zarr chunk (default: about 8 MiB per chunk).
    meta : dict, optional
        Metadata instead of ``ims.metadata``.
    """
    import zarr

    path_in_store = path if path is not None else path_in_store
    store = os.fspath(filename)
    nframes = len(ims)
    h, w = ims.shape
    dtype = np.dtype(ims.dtype)
    frame_bytes = h * w * dtype.itemsize
    if frames_per_chunk is None:
        frames_per_chunk = max(1, min(nframes, (8 * 2**20) // max(1, frame_bytes)))
    if isinstance(frames_per_chunk, bool) or int(frames_per_chunk) < 1:
        raise InputError(f"must be a positive int, got {frames_per_chunk!r}",
                         argument="frames_per_chunk")
    fpc = int(frames_per_chunk)
    root = zarr.open_group(store, mode="a", zarr_format=3)
    group = root.require_group(path_in_store.strip("/")) if path_in_store not in (
        None, "", "/") else root
    arr = group.create_array(dataname, shape=(nframes, h, w), dtype=dtype,
                             chunks=(fpc, h, w), overwrite=True)
    # write whole chunks per step so no chunk is rewritten
    step = max(fpc, (frames_per_write(frame_bytes, nframes) // fpc) * fpc)
    for start in range(0, nframes, step):
        stop = min(nframes, start + step)
        arr[start:stop] = ims.read_block(start, stop)
    meta = dict(ims.metadata if meta is None else meta)
    if META_GROUP in group:
        del group[META_GROUP]
    mg = group.create_group(META_GROUP)
    attrs = {}
    for k, v in meta.items():
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in "biuf":
                raise InputError(f"metadata {k!r}: only numeric/bool arrays can be stored "
                                 f"in zarr, got dtype {v.dtype}", argument="meta")
            if v.ndim == 0:  # data= would store a 0-d array as shape (1,)
                mg.create_array(str(k), shape=(), dtype=v.dtype, chunks=())[()] = v
            else:
                mg.create_array(str(k), data=np.ascontiguousarray(v))
        else:
            attrs[str(k)] = plain_metadata_value(k, v, "stored in zarr attrs")
    mg.attrs.update(attrs)


class ZarrFormat(ImageSeriesFormat):
    name = "zarr"
    description = "zarr v3 store with GROUP/images (frame, y, x) and a metadata group (ours)"
    suffixes = (".zarr",)
    open_keywords = frozenset({"path_in_store", "path", "dataname"})
    write_keywords = frozenset({"path_in_store", "path", "dataname", "frames_per_chunk",
                                "meta"})
    accepts_on_error = True
    inner_path = True

    def open(self, filename, **kwargs) -> ZarrImageSeries:
        return open_zarr(filename, **kwargs)

    def write(self, ims, filename, **kwargs) -> None:
        write_zarr(ims, filename, **kwargs)

    def inner_path_keywords(self, filename: str, inner: str) -> dict:
        """``store.zarr:/g`` -> group ``/g`` when it holds ``images``, else array ``g``."""
        import zarr

        try:
            node = zarr.open(os.fspath(filename), mode="r", path=inner.strip("/"))
        except Exception:  # noqa: BLE001 - opening reports the missing node
            node = None
        if isinstance(node, zarr.Group):
            return {"path": inner}
        group, _, name = inner.strip("/").rpartition("/")
        return {"path": group or None, "dataname": name or "images"}


register(ZarrFormat())
