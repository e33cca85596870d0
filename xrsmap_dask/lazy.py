"""ImageSeries -> lazy dask array whose blocks are batched, ROI-restricted reads.

One task reads the ROI of a run of frames (``frames_per_chunk`` of them) through the series'
:meth:`~xrsmap_dask.imageseries.base.ImageSeries.block_source`, which carries only file names
and offsets.  Tasks are named ``read-roi-<token>`` so they read well in the dashboard.
"""
from __future__ import annotations

import numpy as np

from ._graph import array_from_tasks, layer_name
from .errors import InputError
from .roi import RoiSlices, normalize_roi, roi_shape

#: bytes of ROI data one read task aims for with ``frames_per_chunk='auto'``
TARGET_CHUNK_BYTES = 32 * 2**20
#: upper bound on frames per task with 'auto' (tiny ROIs would otherwise make one task)
MAX_AUTO_FRAMES = 1024
#: with 'auto', blocks grow (up to ``MAX_CHUNK_BYTES``) to keep a series under this many tasks
MAX_AUTO_TASKS = 400
MAX_CHUNK_BYTES = 64 * 2**20


def auto_frames_per_chunk(nframes: int, frame_bytes: int,
                          target_bytes: int = TARGET_CHUNK_BYTES) -> int:
    """Frames per read task: a block holds about ``target_bytes`` (32 MiB), at most 1024
    frames; a long series gets bigger blocks (up to 64 MiB) so that it makes at most
    ``MAX_AUTO_TASKS`` tasks where that fits (10,000 frames of 1024² uint16: 25 frames,
    50 MiB, 400 tasks)."""
    frame_bytes = max(1, frame_bytes)
    per = max(1, target_bytes // frame_bytes)
    if -(-nframes // per) > MAX_AUTO_TASKS:
        per = max(per, min(-(-nframes // MAX_AUTO_TASKS), MAX_CHUNK_BYTES // frame_bytes))
    return int(max(1, min(per, MAX_AUTO_FRAMES, nframes)))


def frame_chunks(nframes: int, frames_per_chunk: int) -> tuple[int, ...]:
    """Chunk sizes along the frame axis; the last chunk holds the remainder."""
    full, rest = divmod(nframes, frames_per_chunk)
    return (frames_per_chunk,) * full + ((rest,) if rest else ())


def resolve_frames_per_chunk(frames_per_chunk: int | str, nframes: int,
                             frame_bytes: int) -> int:
    """Check ``frames_per_chunk`` (a positive int or ``'auto'``) and resolve it for a series
    of ``nframes`` frames of ``frame_bytes`` bytes each (ROI bytes, block dtype)."""
    if frames_per_chunk == "auto":
        return auto_frames_per_chunk(nframes, frame_bytes)
    try:
        fpc = int(frames_per_chunk)
    except (TypeError, ValueError):
        fpc = 0
    if fpc < 1:
        raise InputError(f"must be a positive int or 'auto', got {frames_per_chunk!r}",
                         argument="frames_per_chunk")
    return min(fpc, nframes)


def read_block(source, roi: RoiSlices) -> np.ndarray:
    """Task body: read the ROI of the frames described by ``source``."""
    return source.read(roi)


def series_to_dask(ims, roi=None, frames_per_chunk: int | str = "auto", name: str | None = None):
    """Lazy ``(nframes, roi rows, roi cols)`` dask array over an image series.

    Parameters
    ----------
    ims : ImageSeries
    roi : (slice, slice), optional
        numpy style, rows from the top, stop exclusive; ``None`` = whole frame.
    frames_per_chunk : int or 'auto'
        Frames read by one task.  ``'auto'``: see :func:`auto_frames_per_chunk` (about 32 MiB
        per block).
    name : str, optional
        Task-name prefix (default ``read-roi``).
    """
    roi = normalize_roi(roi, ims.shape)
    nframes = len(ims)
    if nframes == 0:
        raise InputError("the image series has no frames", argument="ims")
    h, w = roi_shape(roi)
    dtype = np.dtype(ims.block_dtype())
    fpc = resolve_frames_per_chunk(frames_per_chunk, nframes, h * w * dtype.itemsize)
    chunks = frame_chunks(nframes, fpc)
    key = layer_name(name or "read-roi", ims.token, roi[0].start, roi[0].stop, roi[1].start,
                     roi[1].stop, fpc, dtype.str)
    dsk = {}
    start = 0
    for i, n in enumerate(chunks):
        dsk[(key, i, 0, 0)] = (read_block, ims.block_source(start, start + n), roi)
        start += n
    return array_from_tasks(key, dsk, (chunks, (h,), (w,)), dtype)
