"""Virtual datasets (VDS, as Bliss writes them): each mapping of whole frames becomes a
segment read from its source file directly; other layouts are read through the VDS with the
frames of missing sources (and frames mapped to nothing) marked missing."""
from __future__ import annotations

import os

from ..errors import FrameReadError
from .hdf5 import FrameDataset, inspect_dataset, open_dataset
from .segments import Segment


def resolve_link_file(name: str, parent: str) -> str:
    """An external link's or VDS source's file as HDF5 finds it: absolute as given; else
    beside the file holding the link, else in the working directory."""
    if name == ".":
        return parent
    if os.path.isabs(name):
        return name
    beside = os.path.join(os.path.dirname(parent), name)
    if os.path.exists(beside) or not os.path.exists(name):
        return os.path.abspath(beside)
    return os.path.abspath(name)


def _extent(space, dims) -> list[tuple[int, int]] | None:
    """``[(start, length)]`` per axis of a dataspace selection that is one box, else None.
    A whole-space selection of a source (whose extent HDF5 may not report) gives ``dims``
    lengths, or ``[]`` when ``dims`` is None (the source's own shape decides)."""
    import h5py

    kind = space.get_select_type()
    if kind == h5py.h5s.SEL_ALL:
        return [] if dims is None else [(0, int(n)) for n in dims]
    if kind != h5py.h5s.SEL_HYPERSLABS or not space.is_regular_hyperslab():
        return None
    out = []
    for start, stride, count, block in zip(*space.get_regular_hyperslab()):
        if count > 1 and stride != block:
            return None
        out.append((int(start), int(count * block)))
    return out


def vds_segments(vds: FrameDataset, direct: bool = True) -> list[Segment]:
    """A VDS as the segments of its sources when every mapping is a run of whole frames
    (each read like any dataset); else the VDS itself, read through h5py, with the frames of
    missing sources (and frames mapped to nothing) marked missing."""
    f, ds = open_dataset(vds.filename, vds.dataset)
    with f:
        maps = [(m, _extent(m.vspace, ds.shape), _extent(m.src_space, None))
                for m in ds.virtual_sources()]
    h, w = vds.frame_shape
    pieces = []
    for m, vbox, sbox in maps:
        path = resolve_link_file(m.file_name, vds.filename)
        whole = (vbox is not None and sbox is not None and vds.ndim == 3
                 and vbox[1:] == [(0, h), (0, w)]
                 and (sbox == [] or (len(sbox) == 3 and sbox[1:] == [(0, h), (0, w)]
                                     and vbox[0][1] == sbox[0][1])))
        pieces.append((m, path, vbox, sbox, whole))
    if all(p[4] for p in pieces):
        return _source_segments(vds, pieces, direct)
    return [Segment(_vds_checked(vds, pieces), 0, vds.nframes, vds.filename)]


def _source_segments(vds: FrameDataset, pieces, direct: bool) -> list[Segment]:
    segments, at = [], 0
    for m, path, vbox, sbox, _ in sorted(pieces, key=lambda p: p[2][0][0]):
        v0, n = vbox[0]
        if v0 < at:
            return [Segment(_vds_checked(vds, pieces), 0, vds.nframes, vds.filename)]
        if v0 > at:
            segments.append(Segment(None, 0, v0 - at, vds.filename,
                                    f"VDS {vds.dataset!r}: frames mapped to no source"))
        s0 = sbox[0][0] if sbox else 0
        segments.append(_source_segment(vds, m.dset_name, path, s0, n, sbox == [], direct))
        at = v0 + n
    if at < vds.nframes:
        segments.append(Segment(None, 0, vds.nframes - at, vds.filename,
                                f"VDS {vds.dataset!r}: frames mapped to no source"))
    return segments


def _source_segment(vds: FrameDataset, dataset: str, path: str, s0: int, n: int,
                    whole_source: bool, direct: bool) -> Segment:
    """Frames ``s0`` .. ``s0 + n - 1`` of a VDS source (all of it when ``whole_source``)."""
    where = f"VDS {vds.dataset!r} source {dataset!r}"
    if not os.path.exists(path):
        return Segment(None, 0, n, path, f"{where}: file not found")
    try:
        src = inspect_dataset(path, dataset, direct)
    except FrameReadError as exc:
        return Segment(None, 0, n, path, f"{where}: {exc.reason}")
    if src.layout == "virtual" or src.frame_shape != vds.frame_shape \
            or src.dtype != vds.dtype or s0 + n > src.nframes \
            or (whole_source and src.nframes != n):
        return Segment(None, 0, n, path, f"{where}: shape {src.nframes} x "
                       f"{src.frame_shape} {src.dtype} does not match the mapping")
    return Segment(src, s0, s0 + n, path)


def _vds_checked(vds: FrameDataset, pieces) -> FrameDataset:
    """The VDS read through h5py, with missing sources and unmapped frames marked."""
    from dataclasses import replace

    import numpy as np

    covered = np.zeros(vds.nframes, bool)
    missing = []
    for m, path, vbox, _sbox, _ in pieces:
        lo, hi = (vbox[0][0], vbox[0][0] + vbox[0][1]) if vbox else \
            (m.vspace.get_select_bounds()[0][0], m.vspace.get_select_bounds()[1][0] + 1)
        covered[lo:hi] = True
        if not os.path.exists(path):
            missing.append((lo, hi, f"VDS source file {path!r} not found"))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ~covered, [0]]).astype(np.int8)))
    for lo, hi in zip(edges[::2], edges[1::2]):
        missing.append((int(lo), int(hi), "frames mapped to no source"))
    return replace(vds, missing=tuple(sorted(missing)))
