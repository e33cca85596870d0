"""HDF5 frames as an image series: an ordered list of dataset segments, read in tasks.

Shared by the ``hdf5`` (hexrd) and ``nexus`` formats.  A segment is a run of frames of one
real dataset (:mod:`xrsmap_dask.io.nexus`); a read task (:class:`H5Block`) carries only file
names, dataset paths and the addresses of the chunks it reads, and its class lives here, so
unpickling it on a worker imports :mod:`xrsmap_dask.io.hdf5` and with it the HDF5 filters.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from ..errors import FrameReadError, InputError
from ..io import nexus as nx
from ..io.hdf5 import FrameDataset, read_into
from ..roi import RoiSlices, roi_shape
from .base import BlockSource, ImageSeries, check_on_error, fill_dtype

#: a block part: (dataset or None for unreadable frames, lo, hi, path, reason)
Part = tuple


class H5FramesSeries(ImageSeries):
    """Frames from an ordered list of HDF5 dataset segments (see :mod:`xrsmap_dask.io.nexus`).

    Subclasses call :meth:`_set_segments` in ``__init__`` and set ``_metadata``.
    """

    def _set_segments(self, segments: list[nx.Segment], on_error: str) -> None:
        self.on_error = check_on_error(on_error)
        unknown = nx.unknown_count_error(segments)
        if unknown is not None:
            raise unknown
        datas = [s.data for s in segments if s.data is not None]
        if not datas:
            s = segments[0]
            raise FrameReadError(f"no readable frames: {s.reason}", path=s.path)
        first = datas[0]
        for d in datas[1:]:
            if d.frame_shape != first.frame_shape or d.dtype != first.dtype:
                raise InputError(f"dataset {d.dataset!r} holds {d.frame_shape} {d.dtype} "
                                 f"frames, {first.where} holds {first.frame_shape} "
                                 f"{first.dtype}", path=d.filename)
        self._segments = tuple(segments)
        self._shape = first.frame_shape
        self._dtype = first.dtype
        self._nframes = sum(s.nframes for s in segments)
        self.gaps = tuple(nx.gaps(segments))
        if self.gaps and self.on_error == "raise":
            g = self.gaps[0]
            raise FrameReadError(g.message(), path=g.path, frame=g.lo)
        self.bad_frames = [(j, g.path, g.reason) for g in self.gaps for j in range(g.lo, g.hi)]
        digest = hashlib.sha1()
        for d in datas:
            st = os.stat(d.filename)
            digest.update(f"{d.where}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        self._token = digest.hexdigest()

    @property
    def segments(self) -> tuple[nx.Segment, ...]:
        return self._segments

    @property
    def source_files(self) -> list[str]:
        files = []
        for s in self._segments:
            if s.data is not None:
                files.append(s.data.filename)
                files.extend(path for path, _, _ in s.data.streams or ())
        return [f for f in dict.fromkeys(files) if f]

    def __len__(self) -> int:
        return self._nframes

    def _read_region(self, j: int, rows: slice, cols: slice) -> np.ndarray:
        return self.block_source(j, j + 1).read((rows, cols))[0]

    def block_source(self, start: int, stop: int) -> "H5Block":
        parts, at = [], 0
        for s in self._segments:
            a, b = max(start, at), min(stop, at + s.nframes)
            if a < b:
                parts.extend(_parts(s, s.lo + a - at, s.lo + b - at))
            at += s.nframes
        return H5Block(start, tuple(parts), self._shape, self._dtype, self.on_error)


def _parts(s: nx.Segment, lo: int, hi: int) -> list[Part]:
    """Frames ``lo`` .. ``hi - 1`` of segment ``s`` split into readable and missing runs;
    readable runs carry only the chunk-table rows they need."""
    if s.data is None:
        return [(None, lo, hi, s.path, s.reason)]
    cuts = sorted({lo, hi} | {v for m in s.data.missing for v in m[:2] if lo < v < hi})
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        why = next((m[2] for m in s.data.missing if m[0] <= a < m[1]), None)
        if why is None:
            out.append((s.data.part(a, b), a, b, s.data.filename, ""))
        else:
            out.append((None, a, b, s.data.filename, f"dataset {s.data.dataset!r}: {why}"))
    return out


@dataclass
class H5Block(BlockSource):
    """The segments' parts holding frames ``first_frame`` .. (pickles small: file names,
    dataset paths and the addresses of the chunks to read)."""

    first_frame: int
    parts: tuple[Part, ...]
    shape: tuple[int, int]
    dtype: np.dtype
    on_error: str = "raise"
    accepts_out = True

    @property
    def nframes(self) -> int:
        return sum(p[2] - p[1] for p in self.parts)

    def read(self, roi: RoiSlices, out: np.ndarray | None = None) -> np.ndarray:
        """The block ``(frames, roi rows, roi cols)``; unreadable frames NaN under
        ``on_error='fill'`` (the block is then float)."""
        rows, cols = roi
        want = fill_dtype(self.dtype) if self.on_error == "fill" else np.dtype(self.dtype)
        shape = (self.nframes,) + roi_shape(roi)
        if out is None or out.shape != shape or out.dtype != want \
                or not out.flags.c_contiguous:
            out = np.empty(shape, dtype=want)
        bad: list[int] = []
        k = 0
        for data, lo, hi, path, reason in self.parts:
            n = hi - lo
            if data is None:
                if self.on_error != "fill":
                    raise FrameReadError(reason, path=path, frame=self.first_frame + k)
                bad.extend(range(k, k + n))
            else:
                self._read_part(data, lo, hi, rows, cols, out[k:k + n], k, bad)
            k += n
        if bad:
            out[bad] = np.nan
        return out

    def _read_part(self, data: FrameDataset, lo: int, hi: int, rows: slice, cols: slice,
                   out: np.ndarray, k: int, bad: list[int]) -> None:
        try:
            read_into(data, lo, hi, rows, cols, out)
            return
        except FrameReadError as exc:
            if self.on_error != "fill":
                first = self.first_frame + k + max(0, (exc.frame or lo) - lo)
                raise FrameReadError(f"{exc.reason} (series frame {first})", path=exc.path,
                                     frame=first) from None
        for j in range(lo, hi):  # a damaged chunk: only its frames become NaN
            try:
                read_into(data, j, j + 1, rows, cols, out[j - lo:j - lo + 1])
            except FrameReadError:
                bad.append(k + j - lo)
