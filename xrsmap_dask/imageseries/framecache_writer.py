"""Writers of the ``frame-cache`` format (hexrd's npz and fch5 layouts, and its YAML).

See :mod:`.framecache` for the layouts.  Frames are read and thresholded block by block
(about 32 MiB of frames at a time); the npz is streamed member by member.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from ..errors import InputError
from ._errors import InputTypeError
from ._utils import dict_to_h5_group, frames_per_write, short_repr, yaml_meta_out
from .framecache import _HEADER_KEYS, FCH5_VERSION, STYLES, _index_dtype, sparse_frame


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
        raise InputTypeError(f"Unknown file style for writing framecache: "
                             f"{short_repr(style)}; supported: {STYLES}", argument="style")
    meta = dict(ims.metadata if meta is None else meta)
    if hasattr(filename, "file") and hasattr(filename, "name"):  # an open h5py File/Group
        if style != "fch5":
            raise InputError("an open HDF5 file/group takes style='fch5'", argument="style")
        _write_fch5_group(ims, filename, threshold, meta, path)
        return
    filename = os.fspath(filename)
    base = os.path.dirname(os.path.abspath(filename))
    if cache_file is None:
        cache = os.path.splitext(filename)[0] + ".npz" if style == "yml" else filename
        cache_name = os.path.basename(cache)
    else:
        cache_name = os.fspath(cache_file)
        cache = os.path.join(base, cache_name)
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
        if isinstance(v, dict):  # as hexrd: npz holds no nested metadata
            warnings.warn(f"npz frame caches hold no nested metadata; {k!r} is not written")
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

    group = None if path in (None, "", "/") else str(path).strip("/")
    with h5py.File(cache, "w" if group is None else "a") as h5:
        _write_fch5_group(ims, h5, threshold, meta, group)


def _write_fch5_group(ims, parent, threshold, meta: dict, path: str | None) -> None:
    """The fch5 layout in ``parent`` (an open h5py File/Group), or in its group ``path``
    (replaced when present)."""
    nframes = len(ims)
    dtype = np.dtype(ims.dtype)
    idx = _index_dtype(ims.shape)
    frame_ids = np.zeros(2 * nframes, dtype=np.uint64)
    group = None if path in (None, "", "/") else str(path).strip("/")
    if group is not None and group in parent:
        del parent[group]
    f = parent if group is None else parent.create_group(group)
    f.attrs["HEXRD_FRAMECACHE_VERSION"] = FCH5_VERSION
    f["shape"] = np.asarray(ims.shape)
    f["nframes"] = nframes
    f["dtype"] = str(dtype).encode()
    dict_to_h5_group(f.create_group("metadata"), meta, parent.file.filename)
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


