"""Detector masks and a description of HDF5 / NeXus inputs (for ``xrsmap-dask info``).

* :func:`detector_mask`: a NeXus/Eiger master's pixel mask as bool (True = pixel excluded).
* :func:`read_mask_image`: one 2-D image (mask, dark, flat) from ``file.h5:/path``.
* :func:`describe_hdf5` / :func:`format_description`: every dataset a series reads, its frame
  count, chunk shape, filter chain and damage, and what the detector mask excludes.
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import InputError
from . import nexus as nx
from .hdf5 import check_frame_dtype, open_file

#: where detectors keep their pixel mask (Eiger: nonzero = bad; bit 0 gap, 1 dead, 2 under-
#: responding, 3 over-responding, 4 noisy); ``{det}`` is any detector group of the entry
MASK_PATHS = ("/entry/instrument/detector/detectorSpecific/pixel_mask",
              "/entry/instrument/{det}/detectorSpecific/pixel_mask",
              "/entry/instrument/{det}/pixel_mask")


def find_mask_path(f) -> str | None:
    """Path of the detector pixel mask in an open file, or None."""
    import h5py

    if MASK_PATHS[0] in f:
        return MASK_PATHS[0]
    instrument = f.get("/entry/instrument")
    if not isinstance(instrument, h5py.Group):
        return None
    for det in sorted(instrument):
        for pattern in MASK_PATHS[1:]:
            path = pattern.format(det=det)
            if isinstance(f.get(path), h5py.Dataset):
                return path
    return None


def detector_mask(filename: str, frame_shape: tuple[int, int]) -> np.ndarray | None:
    """The file's detector pixel mask as bool ``(rows, cols)`` (True = pixel excluded:
    nonzero in the file), or None when the file has none.  A mask whose shape is not the
    frame shape is an :class:`InputError` naming the file and dataset."""
    with open_file(filename) as f:
        path = find_mask_path(f)
        if path is None:
            return None
        raw = _read_2d(f, path, filename)
    if raw.shape != tuple(frame_shape):
        raise InputError(f"detector mask {path!r} is {raw.shape}, the frames are "
                         f"{tuple(frame_shape)}", path=filename)
    return raw != 0


def _read_2d(f, path: str, filename: str) -> np.ndarray:
    import h5py

    ds = f.get(path)
    if not isinstance(ds, h5py.Dataset):
        raise InputError(f"HDF5 file has no dataset {path!r}", path=filename)
    check_frame_dtype(ds.dtype, filename, path)
    if ds.ndim == 3 and ds.shape[0] == 1:
        data = ds[0]
    elif ds.ndim == 2:
        data = ds[()]
    else:
        raise InputError(f"dataset {path!r} of shape {ds.shape} is not one 2-D image",
                         path=filename)
    return np.asarray(data).astype(np.dtype(ds.dtype).newbyteorder("="), copy=False)


def read_mask_image(spec, argument: str | None = None) -> np.ndarray:
    """A 2-D image (mask, dark, flat, background) from ``'file.h5:/path'`` (a 2-D dataset or
    a 3-D one holding one frame), in native byte order.  Without ``:/path`` the file's
    detector pixel mask is read.  Errors are :class:`InputError` naming file, dataset and
    ``argument``."""
    name, path = nx.split_dataset_path(os.fspath(spec))
    try:
        with open_file(name) as f:
            if path is None:
                path = find_mask_path(f)
                if path is None:
                    raise InputError("no detector pixel mask in the file; give "
                                     "file.h5:/path/to/image", path=name, argument=argument)
            return _read_2d(f, path, name)
    except InputError as exc:
        raise InputError(exc.reason, path=exc.path or name, argument=argument) from None
    except OSError as exc:
        raise InputError(f"cannot read {path!r}: {exc}", path=name,
                         argument=argument) from None


# -- info ----------------------------------------------------------------------------------
def describe_hdf5(spec, path: str | None = None) -> dict:
    """What a series opened from ``spec`` (``file.h5``, ``file.h5:/path``) would read.

    Returns ``{'file', 'path', 'frames', 'frame_shape', 'dtype', 'datasets': [...],
    'missing': [...], 'detector_mask': {...} or None}``; each dataset entry has ``file``,
    ``dataset``, ``frames`` (read from it), ``layout``, ``chunks``, ``filters`` (names, in
    HDF5's write order), ``decode`` (``'parallel'`` raw chunks decoded here, else
    ``'hdf5'``); ``missing`` lists ``'frames a..b: reason'`` with the file.
    """
    name, inner = nx.split_dataset_path(os.fspath(spec))
    segments, resolved = nx.open_segments(os.path.abspath(name), inner or path)
    datasets = []
    for s in segments:
        d = s.data
        if d is None:
            datasets.append({"file": s.path, "dataset": None, "frames": s.nframes,
                             "error": s.reason})
            continue
        datasets.append({"file": d.filename, "dataset": d.dataset, "frames": s.nframes,
                         "layout": d.layout, "chunks": d.chunks,
                         "filters": [spec.label for spec in d.pipeline],
                         "decode": "parallel" if d.direct or d.layout in (
                             "contiguous", "external") else "hdf5"})
    first = next((s.data for s in segments if s.data is not None), None)
    out = {"file": os.path.abspath(name), "path": resolved,
           "frames": sum(max(0, s.nframes) for s in segments),
           "frame_shape": None if first is None else first.frame_shape,
           "dtype": None if first is None else str(first.dtype),
           "datasets": datasets,
           "missing": [f"{g.message()} ({g.path})" for g in nx.gaps(segments)],
           "detector_mask": None}
    if first is not None:
        out["detector_mask"] = mask_summary(os.path.abspath(name), first.frame_shape)
    return out


def mask_summary(filename: str, frame_shape) -> dict | None:
    """``{'path', 'shape', 'excluded', 'bits': {bit: count}}`` of the file's pixel mask."""
    with open_file(filename) as f:
        path = find_mask_path(f)
        if path is None:
            return None
        raw = _read_2d(f, path, filename)
    summary = {"path": path, "shape": raw.shape, "excluded": int(np.count_nonzero(raw)),
               "matches_frames": raw.shape == tuple(frame_shape), "bits": {}}
    if raw.dtype.kind in "ui":
        values = raw.astype(np.int64)
        for bit in range(32):
            n = int(np.count_nonzero(values & (1 << bit)))
            if n:
                summary["bits"][bit] = n
    return summary


def format_description(info: dict) -> list[str]:
    """Text lines of :func:`describe_hdf5`'s result (what ``info`` prints)."""
    lines = [f"{info['file']}:{info['path']}: {info['frames']} frames of "
             f"{info['frame_shape']} {info['dtype']}"]
    for d in info["datasets"]:
        if d.get("dataset") is None:
            lines.append(f"  {d['file']}: {d['frames']} frames unreadable ({d['error']})")
            continue
        chain = " | ".join(d["filters"]) or "none"
        lines.append(f"  {d['file']}:{d['dataset']}: {d['frames']} frames, {d['layout']}, "
                     f"chunks {d['chunks']}, filters {chain}, decoded by {d['decode']}")
    lines.extend(f"  MISSING {m}" for m in info["missing"])
    mask = info["detector_mask"]
    if mask is None:
        lines.append("  detector mask: none")
    else:
        bits = ", ".join(f"bit {b}: {n}" for b, n in mask["bits"].items())
        lines.append(f"  detector mask {mask['path']}: {mask['excluded']} pixels excluded"
                     + (f" ({bits})" if bits else "")
                     + ("" if mask["matches_frames"] else " - SHAPE DIFFERS FROM FRAMES"))
    return lines


__all__ = ["detector_mask", "read_mask_image", "describe_hdf5", "format_description",
           "mask_summary", "find_mask_path"]
