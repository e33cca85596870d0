"""Image series over a list of image files (EDF, TIFF, CBF, ... anything fabio reads).

Opening reads headers only: each EDF file's header(s) are parsed (lengths differ between
files) to find every frame's data offset; other formats are probed through fabio.  Multi-frame
files count all their frames.  A block read then takes, per frame, one positioned read of the
ROI rows (uncompressed EDF), one read and a bounded decode of its block (EDF blocks with
``Compression`` gzip/zlib/bz2), a decompression (whole-file compressed ``.edf.gz``/``.bz2``/
``.xz``, which cannot be seeked; checked for truncation) or a fabio read and crop (anything
else).  A path that is not a regular file (a directory named ``*.edf``, a FIFO) is a bad file
like a missing one: an error, or under ``on_error='fill'`` NaN frames listed in ``bad_frames``.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import FrameReadError, InputError
from ..io import edf, fabio_reader
from ..io.files import open_regular
from ..roi import RoiSlices, roi_shape
from .base import (BlockSource, ImageSeries, as_metadata, check_on_error, fill_dtype,
                   read_frames)

_EDF_SUFFIXES = (".edf", ".ehf")
#: threads used to parse headers at open time (I/O bound: many small reads)
HEADER_THREADS = 16
#: files probed by one thread-pool job
PROBE_BATCH = 64
#: per-file probe time above which the file system is taken to be slow (use threads)
SLOW_PROBE_SECONDS = 200e-6

# how a frame is read: positioned read of raw EDF rows, frame of a whole-file compressed EDF,
# fabio, unreadable, compressed block of a plain EDF file
PREAD, ZEDF, FABIO, BAD, ZBLOCK = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class _FileFrames:
    """What one file holds: per frame how to read it and where (offset or index in file).

    A file with an ``error`` either holds no readable frame (``kinds`` empty) or ends with a
    ``BAD`` entry: its frames before ``error_frame`` (the bad block, counted in the file) are
    good, as in a multi-frame file whose last block is truncated.
    """

    path: str
    kinds: tuple[int, ...] = ()
    offsets: tuple[int, ...] = ()
    shape: tuple[int, int] | None = None
    dtype: np.dtype | None = None
    size: int = -1
    error: str | None = None
    error_frame: int = 0

    @property
    def layout(self):
        return self.shape, _native(self.dtype)


def _edf_name(path: str) -> str:
    """The name without a whole-file compression suffix."""
    low = path.lower()
    for suffix in edf.COMPRESSED_SUFFIXES:
        if low.endswith(suffix):
            return low[: -len(suffix)]
    return low


def _is_edf(path: str) -> bool:
    if _edf_name(path).endswith(_EDF_SUFFIXES):
        return True
    if edf.compression_of(path):
        return False
    try:
        fd = open_regular(path)  # never blocks on a FIFO; fabio's probe then names the problem
    except FrameReadError:
        return False
    try:
        return os.pread(fd, 1, 0) == b"{"
    except OSError:
        return False
    finally:
        os.close(fd)


def _probe_file(path: str) -> _FileFrames:
    try:
        error = None
        if _is_edf(path):
            if edf.compression_of(path):
                _, infos = edf.read_compressed_edf(path)
                kinds = [ZEDF] * len(infos)
            else:
                infos, error = edf.read_edf_headers(path, partial=True)
                if error is not None and not infos:
                    raise error
                kinds = [ZBLOCK if i.compressed else PREAD for i in infos]
            first = infos[0]
            for info in infos[1:]:
                if info.shape != first.shape or info.dtype != first.dtype:
                    error = FrameReadError(
                        f"frame shape/dtype {info.shape} {info.dtype} differs from the file's "
                        f"first frame {first.shape} {first.dtype}", path=path,
                        frame=info.index_in_file)
                    infos, kinds = infos[:info.index_in_file], kinds[:info.index_in_file]
                    break
            offsets = [i.offset for i in infos]
            if error is not None:  # the good frames, then the bad block
                kinds.append(BAD)
                offsets.append(0)
                return _FileFrames(path, tuple(kinds), tuple(offsets), first.shape, first.dtype,
                                   first.file_size, error.reason, error.frame or len(infos))
            return _FileFrames(path, tuple(kinds), tuple(offsets), first.shape, first.dtype,
                               first.file_size)
        nframes, shape, dtype = fabio_reader.probe(path)
        return _FileFrames(path, (FABIO,) * nframes, tuple(range(nframes)), shape, dtype)
    except FrameReadError as exc:
        return _FileFrames(path, error=exc.reason, error_frame=exc.frame or 0)


def _probe_batch(paths: Sequence[str]) -> list[_FileFrames]:
    return [_probe_file(p) for p in paths]


def _probe_files(paths: Sequence[str], progress=None) -> list[_FileFrames]:
    """Probe every file.  The first batch is probed in this thread and timed: on a warm,
    local file system header parsing is CPU-bound (threads only add overhead), so the rest
    goes on sequentially; when a probe waits on the file system (cold cache, network file
    system: more than ``SLOW_PROBE_SECONDS`` a file) the rest goes in batches to a pool.
    ``progress(done, total)`` is called after each batch."""
    total = len(paths)
    report = progress or (lambda done, total: None)
    first = paths[:PROBE_BATCH]
    t0 = time.perf_counter()
    probed = _probe_batch(first)
    report(len(probed), total)
    rest = paths[PROBE_BATCH:]
    if not rest:
        return probed
    if (time.perf_counter() - t0) / len(first) < SLOW_PROBE_SECONDS:
        step = PROBE_BATCH * 16
        for i in range(0, len(rest), step):
            probed += _probe_batch(rest[i:i + step])
            report(len(probed), total)
        return probed
    nbatch = max(PROBE_BATCH // 4, -(-len(rest) // (HEADER_THREADS * 4)))
    batches = [rest[i:i + nbatch] for i in range(0, len(rest), nbatch)]
    with ThreadPoolExecutor(min(HEADER_THREADS, len(batches))) as pool:
        for batch in pool.map(_probe_batch, batches):
            probed += batch
            report(len(probed), total)
    return probed


def _native(dtype: np.dtype) -> np.dtype:
    return dtype.newbyteorder("=")


@dataclass(frozen=True)
class _Reference:
    """The layout most frames share (not blindly the first file's), a file showing it, and
    how many frames an unreadable file is taken to hold (as many as most complete files)."""

    shape: tuple[int, int]
    dtype: np.dtype
    path: str
    usual_frames: int


def _reference_layout(probed: list) -> _Reference:
    good = [p for p in probed if p.shape is not None]
    if not good:
        first = probed[0]
        raise FrameReadError(first.error, path=first.path, frame=first.error_frame)
    votes = Counter()
    for p in good:
        votes[p.layout] += len(p.kinds)
    (shape, dtype), _ = votes.most_common(1)[0]
    path = next(p.path for p in good if p.layout == (shape, dtype))
    usual = Counter(len(p.kinds) for p in good if p.error is None).most_common(1)
    return _Reference(shape, dtype, path, usual[0][0] if usual else 1)


def _file_frames(p, ref: _Reference, empty_frames: int, stop: int | None):
    """``(error, kinds, offsets)`` of the frames a probed file contributes (unreadable
    frames of kind ``BAD`` with ``error`` saying why), after ``empty_frames`` and up to
    ``stop`` frames."""
    error = p.error
    if p.shape is not None and p.layout != (ref.shape, ref.dtype):
        error = (f"frame shape/dtype {p.shape[0]} x {p.shape[1]} {_native(p.dtype)} differs "
                 f"from the series' {ref.shape[0]} x {ref.shape[1]} {ref.dtype} (e.g. "
                 f"{ref.path})")
        kinds, offsets = (BAD,) * len(p.kinds), (0,) * len(p.kinds)
    elif p.shape is None:
        n = ref.usual_frames
        kinds, offsets = (BAD,) * n, (0,) * n
        if n > 1:
            error += f" (counted as {n} frames, as most files hold)"
    else:
        kinds, offsets = p.kinds, p.offsets
    return error, kinds[empty_frames:stop], offsets[empty_frames:stop]


class FileListImageSeries(ImageSeries):
    """Frames of a list of image files, in list order (all frames of each file in turn).

    Parameters
    ----------
    paths : sequence of str or PathLike
        The image files.
    dtype : dtype, optional
        Cast frames to this dtype (hexrd image-files ``dtype`` option).
    meta : dict, optional
        Series metadata.
    empty_frames : int
        Frames to skip at the start of each file (hexrd ``empty-frames``).
    max_file_frames, max_total_frames : int
        Take at most this many frames per file / in all (0: no limit).
    on_error : {'raise', 'fill'}
        ``'raise'``: a missing, truncated or corrupt file, or one whose frames differ in shape
        or dtype from the rest (the layout most frames share), raises :class:`FrameReadError`
        at open (or read) time, naming the file and frame.  ``'fill'``: such frames read as
        NaN and are listed in :attr:`bad_frames` as ``(index, path, reason)`` (a missing or
        unreadable file counts as one frame).
    progress : callable, optional
        ``progress(files_done, files_total)``, called while the headers are read (e.g. to
        draw a counter for 10^5 files).
    """

    def __init__(self, paths: Sequence, *, dtype=None, meta=None, empty_frames: int = 0,
                 max_file_frames: int = 0, max_total_frames: int = 0, on_error: str = "raise",
                 progress=None):
        self.on_error = check_on_error(on_error)
        paths = [os.fspath(p) for p in paths]
        if not paths:
            raise InputError("no image files given", argument="paths")
        for name, value in (("empty-frames", empty_frames), ("max-file-frames", max_file_frames),
                            ("max-total-frames", max_total_frames)):
            if int(value) < 0:
                raise InputError(f"must be >= 0, got {value}", argument=name)
        probed = _probe_files(paths, progress)
        ref = _reference_layout(probed)
        self._shape, self._file_dtype = ref.shape, ref.dtype
        self._dtype = np.dtype(dtype) if dtype is not None else ref.dtype
        self._metadata = as_metadata(meta)
        table: dict[str, list] = {k: [] for k in ("paths", "kinds", "offsets", "big", "sizes")}
        self.bad_frames: list[tuple[int, str, str]] = []
        stop = empty_frames + max_file_frames if max_file_frames else None
        for p in probed:
            n = len(table["paths"])
            if max_total_frames and n >= max_total_frames:
                break
            error, file_kinds, file_offsets = _file_frames(p, ref, empty_frames, stop)
            first_bad = next((k for k, kind in enumerate(file_kinds) if kind == BAD), None)
            if first_bad is not None and self.on_error == "raise" and \
                    (not max_total_frames or n + first_bad < max_total_frames):
                raise FrameReadError(error, path=p.path, frame=n + first_bad)
            for k, (kind, off) in enumerate(zip(file_kinds, file_offsets)):
                if kind == BAD:
                    self.bad_frames.append((n + k, p.path, error))
                for key, value in zip(table, (p.path, kind, off, p.dtype is not None and
                                              p.dtype.byteorder == ">", p.size)):
                    table[key].append(value)
        self._set_frames(table, max_total_frames)

    def _set_frames(self, table: dict, max_total_frames: int) -> None:
        """Keep the per-frame table (at most ``max_total_frames`` frames) and the token."""
        if max_total_frames:
            for seq in table.values():
                del seq[max_total_frames:]
            self.bad_frames = [b for b in self.bad_frames if b[0] < max_total_frames]
        if not table["paths"]:
            raise InputError("the files hold no frames after empty-frames/max-frames",
                             argument="paths")
        self._paths = table["paths"]
        self._kinds = np.asarray(table["kinds"], dtype=np.int8)
        self._offsets = np.asarray(table["offsets"], dtype=np.int64)
        self._big_endian = np.asarray(table["big"], dtype=bool)
        self._file_sizes = np.asarray(table["sizes"], dtype=np.int64)
        self._bad_reason = {i: reason for i, _, reason in self.bad_frames}
        digest = hashlib.sha1()
        for path, kind, off in zip(self._paths, table["kinds"], table["offsets"]):
            digest.update(f"{path}\0{kind}\0{off}\0".encode())
        digest.update(f"{self._dtype}{self._shape}".encode())
        self._token = digest.hexdigest()

    def __len__(self) -> int:
        return len(self._paths)

    @property
    def filenames(self) -> list[str]:
        """Path of each frame's file (frames of one multi-frame file repeat it)."""
        return list(self._paths)

    def _read_region(self, j: int, rows: slice, cols: slice) -> np.ndarray:
        return self.block_source(j, j + 1).read((rows, cols))[0]

    def block_source(self, start: int, stop: int) -> "FileFramesBlock":
        sel = slice(start, stop)
        return FileFramesBlock(
            first_frame=start,
            paths=self._paths[sel],
            kinds=self._kinds[sel],
            offsets=self._offsets[sel],
            big_endian=self._big_endian[sel],
            file_sizes=self._file_sizes[sel],
            shape=self._shape,
            file_dtype=self._file_dtype,
            dtype=self._dtype,
            bad={j - start: r for j, r in self._bad_reason.items() if start <= j < stop},
            on_error=self.on_error,
        )


@dataclass
class FileFramesBlock(BlockSource):
    """File names and offsets of a run of frames: all a read task needs (pickles small)."""

    first_frame: int
    paths: list[str]
    kinds: np.ndarray
    offsets: np.ndarray
    big_endian: np.ndarray
    file_sizes: np.ndarray
    shape: tuple[int, int]
    file_dtype: np.dtype
    dtype: np.dtype
    bad: dict = field(default_factory=dict)
    on_error: str = "raise"
    accepts_out = True

    @property
    def nframes(self) -> int:
        return len(self.paths)

    def read(self, roi: RoiSlices, out: np.ndarray | None = None) -> np.ndarray:
        """The block; ``out`` (see :class:`BlockSource`) is used when its shape and dtype are
        those of the block and no cast or NaN fill is needed, else ignored."""
        rows, cols = roi
        native = self.file_dtype
        swapped = native.newbyteorder(">")
        # narrow ROIs: one read buffer for the whole block (whole rows, cropped on copy-out)
        full_width = cols.start == 0 and cols.stop == self.shape[1]
        scratch = None if full_width else np.empty(
            (rows.stop - rows.start) * self.shape[1] * native.itemsize, np.uint8)
        parsed: dict[str, tuple] = {}  # one file's (decompressed bytes, infos), reused

        def one(i: int, out: np.ndarray) -> np.ndarray:
            frame = self.first_frame + i
            path, kind, off = self.paths[i], int(self.kinds[i]), int(self.offsets[i])
            if kind == BAD:
                raise FrameReadError(self.bad[i], path=path, frame=frame)
            if kind == PREAD:
                dt = swapped if self.big_endian[i] else native
                return edf.read_rows(path, off, self.shape, dt, rows, cols, out=out,
                                     frame=frame, file_size=int(self.file_sizes[i]),
                                     scratch=scratch)
            if kind == FABIO:
                return fabio_reader.read_frame(path, off, self.shape, native, rows, cols,
                                               frame=frame)
            data, info = self._edf_block(parsed, i, kind, frame)
            if kind == ZEDF:
                return edf.frame_from_bytes(data, info, rows, cols, frame)
            return edf.read_compressed_block(info, rows, cols, frame)

        if out is not None and (out.shape != (self.nframes,) + roi_shape(roi)
                                or out.dtype != native or self.dtype != native
                                or self.on_error == "fill" or not out.flags.c_contiguous):
            out = None
        data = read_frames(one, range(self.nframes), roi_shape(roi), native, self.on_error,
                           out=out)
        want = fill_dtype(self.dtype) if self.on_error == "fill" else self.dtype
        return data if data.dtype == want else data.astype(want)

    def _edf_block(self, parsed: dict, i: int, kind: int, frame: int):
        """(decompressed bytes or None, info) of the EDF block of frame ``i``, the file's
        headers parsed again (once per block read) and checked against those seen at open."""
        path, off = self.paths[i], int(self.offsets[i])
        if path not in parsed:
            parsed.clear()
            try:
                if kind == ZEDF:
                    parsed[path] = edf.read_compressed_edf(path)
                else:
                    parsed[path] = (None, edf.read_edf_headers(path, partial=True)[0])
            except FrameReadError as exc:
                raise FrameReadError(exc.reason, path=path, frame=frame) from None
        data, infos = parsed[path]
        info = next((x for x in infos if x.offset == off), None)
        if info is None or info.shape != self.shape or \
                _native(info.dtype) != _native(self.file_dtype) or \
                (kind == ZBLOCK and info.file_size != int(self.file_sizes[i])):
            raise FrameReadError("file changed since it was opened", path=path, frame=frame)
        return data, info


def from_files(paths: Sequence, **kwargs) -> FileListImageSeries:
    """An image series over image files (a list of paths, or a glob pattern string).

    Keyword arguments are those of :class:`FileListImageSeries`.
    """
    if isinstance(paths, (str, os.PathLike)):
        import glob

        pattern = os.fspath(paths)
        found = sorted(glob.glob(pattern))
        if not found:
            raise FrameReadError("no file matches this pattern", path=pattern)
        paths = found
    return FileListImageSeries(paths, **kwargs)
