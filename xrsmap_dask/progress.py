"""Progress on long work outside dask's own bars: a text bar for frame loops, a counter
for header reads, and a series wrapper that advances a bar as frames are read.

Inside dask computations the executor shows ``dask.diagnostics.ProgressBar`` (local
schedulers) or ``distributed.progress`` (clusters); see :mod:`xrsmap_dask.cluster`.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

import numpy as np


def text_counter(label: str, *, quiet: bool = False, stream: TextIO | None = None,
                 min_total: int = 1000):
    """A ``progress(done, total)`` callback drawing ``label: done/total`` on one line of
    ``stream`` (stderr), for steps outside dask such as reading 10^5 headers; ``None`` when
    quiet.  Totals below ``min_total`` draw nothing (too quick to matter)."""
    if quiet:
        return None

    def progress(done: int, total: int) -> None:
        if total < min_total:
            return
        out = stream or sys.stderr
        out.write(f"\r{label}: {done}/{total}" + ("\n" if done >= total else ""))
        out.flush()

    return progress


class ProgressSeries:
    """Wraps an ImageSeries so that its block and frame reads advance a text bar and first
    call ``before_read(nbytes)`` (e.g. a free-space guard of the output being written:
    raising there stops a writer cleanly, before the data reach it)."""

    def __new__(cls, ims, bar, before_read=None):
        from .imageseries.base import BlockSource, ImageSeries

        frame_bytes = ims.shape[0] * ims.shape[1] * np.dtype(ims.dtype).itemsize
        guard = before_read or (lambda nbytes: None)

        class CountingBlock(BlockSource):
            def __init__(self, inner):
                self.inner = inner
                self.nframes = inner.nframes

            def read(self, roi):
                guard(self.nframes * frame_bytes)
                out = self.inner.read(roi)
                bar.update(len(out))
                return out

        class ProgressSeries(ImageSeries):
            def __init__(self):
                self._shape = ims.shape
                self._dtype = ims.dtype
                self._metadata = ims.metadata
                self.on_error = ims.on_error
                self.bad_frames = ims.bad_frames
                self.filenames = ims.filenames

            @property
            def source_files(self):
                return ims.source_files

            def __len__(self):
                return len(ims)

            def _read_region(self, j, rows, cols):
                guard(frame_bytes)
                out = ims._read_region(j, rows, cols)
                bar.update(1)
                return out

            def block_source(self, start, stop):
                return CountingBlock(ims.block_source(start, stop))

            def block_dtype(self):
                return ims.block_dtype()

            @property
            def token(self):
                return ims.token

        return ProgressSeries()


class TextBar:
    """A minimal ``[#####     ] 50% 10/20 frames`` bar on a stream (frames may be re-read)."""

    def __init__(self, total: int, stream=None, label: str = "frames", quiet: bool = False):
        self.total, self.done, self.label = max(1, total), 0, label
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self._last = -1.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if not self.quiet and (now - self._last > 0.2 or self.done >= self.total):
            self._last = now
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(40 * frac)
            self.stream.write(f"\r[{bar:<40}] | {int(100 * frac):3d}% {min(self.done, self.total)}"
                              f"/{self.total} {self.label} | {now - self.t0:.1f}s")
            self.stream.flush()

    def close(self) -> None:
        if not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
