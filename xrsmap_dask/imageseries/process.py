"""Processed image series: per-frame operations applied lazily (hexrd's ``process``).

>>> from xrsmap_dask.imageseries.process import ProcessedImageSeries as PIS
>>> pims = PIS(ims, [('dark', dark), ('flip', 'h'), ('rectangle', [[0, 512], [100, 612]])],
...            frame_list=range(10, 200))                                   # doctest: +SKIP
>>> pims[0]; pims.to_dask(); imageseries.write(pims, 'out.h5', 'hdf5', path='/imageseries')

Operations (``oplist``: a list of ``(name, arg)``, applied in order to every frame):

``dark`` (:attr:`~ProcessedImageSeries.DARK`)
    subtract ``arg`` (a frame-shaped array, or a number); negatives are clipped to 0 and
    the frame dtype is kept (the difference is taken in a signed/float type first, so
    unsigned data does not wrap).
``flip`` (:attr:`~ProcessedImageSeries.FLIP`)
    ``'v'``: columns reversed ``a[:, ::-1]``; ``'h'``: rows reversed ``a[::-1, :]``;
    ``'vh'``, ``'hv'``, ``'r180'``: both; ``'t'``: transpose ``a.T``; ``'ccw90'``: transpose
    then rows reversed ``a.T[::-1, :]``; ``'cw90'``: transpose then columns reversed
    ``a.T[:, ::-1]``.
``rectangle`` (:attr:`~ProcessedImageSeries.RECT`)
    keep ``a[r0:r1, c0:c1]`` for ``arg = [[r0, r1], [c0, c1]]`` (stop exclusive).
``add`` (:attr:`~ProcessedImageSeries.ADD`)
    ``np.add(a, arg)`` (a number or a frame-shaped array; numpy's dtype promotion).

``frame_list`` selects (and orders) source frames; per-frame metadata arrays (those whose
first axis has the source's frame count, such as ``omega``) are subset with it.

Reads are region-aware: ``pims[(j, rows, cols)]``, ``read_block`` and ``to_dask(roi)`` map
the wanted region back through the operations and read only the source region needed
(flips and rectangles map rectangles to rectangles), in batches of source frames.

New operations, by subclassing: register a function ``func(frame, arg) -> frame`` (2-D in,
2-D out; it sees whole frames) in the class's op table::

    class MyPIS(ProcessedImageSeries):
        GAIN = 'gain'

    MyPIS.addop(MyPIS.GAIN, lambda img, g: img * g)     # the subclass's own table
    pims = MyPIS(ims, [('gain', 2.0), ('flip', 'v')])

``addop`` on an instance (e.g. in a subclass ``__init__`` before ``super().__init__``) adds
to that instance only; on a class, to that class and its subclasses (never to a parent).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InputError
from ..roi import RoiSlices, normalize_roi, roi_shape
from .base import BlockSource, ImageSeries, fill_dtype

FLIP_CODES = ("v", "h", "vh", "hv", "r180", "t", "ccw90", "cw90")


class _owner_method:
    """A method bound to the instance when called on one, else to the class."""

    def __init__(self, func: Callable):
        self.func = func
        functools.update_wrapper(self, func)

    def __get__(self, obj, cls):
        return functools.partial(self.func, cls if obj is None else obj)


# -- region maps and batch kernels of the built-in ops ------------------------------------------
def _sl(a: int, b: int) -> slice:
    return slice(int(a), int(b))


def _flip_shape(code: str, shape):
    h, w = shape
    return (w, h) if code in ("t", "ccw90", "cw90") else (h, w)


def _flip_region_in(code: str, region: RoiSlices, in_shape) -> RoiSlices:
    """Input region (in the frame before the flip) holding output region ``region``."""
    rows, cols = region
    h, w = in_shape
    if code == "v":
        return rows, _sl(w - cols.stop, w - cols.start)
    if code == "h":
        return _sl(h - rows.stop, h - rows.start), cols
    if code in ("vh", "hv", "r180"):
        return _sl(h - rows.stop, h - rows.start), _sl(w - cols.stop, w - cols.start)
    if code == "t":
        return cols, rows
    if code == "ccw90":  # out[r, c] = in[c, w - 1 - r]
        return cols, _sl(w - rows.stop, w - rows.start)
    # cw90: out[r, c] = in[h - 1 - c, r]
    return _sl(h - cols.stop, h - cols.start), rows


def _flip_batch(code: str, a: np.ndarray) -> np.ndarray:
    """Flip the last two axes of a (frames, rows, cols) batch."""
    if code == "v":
        return a[..., ::-1]
    if code == "h":
        return a[..., ::-1, :]
    if code in ("vh", "hv", "r180"):
        return a[..., ::-1, ::-1]
    t = np.swapaxes(a, -1, -2)
    if code == "t":
        return t
    if code == "ccw90":
        return t[..., ::-1, :]
    return t[..., ::-1]


def _dark_batch(a: np.ndarray, dark) -> np.ndarray:
    """``a - dark`` with negatives set to 0, in ``a``'s dtype (no unsigned wrap-around)."""
    dark = np.asarray(dark)
    work = np.result_type(a.dtype, dark.dtype, np.int8)  # signed (or float) difference
    if work.kind in "iu" and work.itemsize <= max(a.dtype.itemsize, dark.dtype.itemsize):
        work = np.result_type(work, np.int64)
    diff = np.subtract(a, dark, dtype=work)
    np.maximum(diff, 0, out=diff)
    return diff.astype(a.dtype, copy=False)


@dataclass(frozen=True)
class _Step:
    """One op of a pipeline: shapes/dtypes before and after, and how to run it."""

    name: str
    arg: Any
    in_shape: tuple[int, int]
    out_shape: tuple[int, int]
    out_dtype: np.dtype
    func: Callable | None = None  # custom op (whole frames); None for a built-in

    def region_in(self, region: RoiSlices) -> RoiSlices | None:
        """Input region needed for output ``region``; None = the whole input frame."""
        if self.func is not None:
            return None
        if self.name == "flip":
            return _flip_region_in(self.arg, region, self.in_shape)
        if self.name == "rectangle":
            (r0, _), (c0, _) = self.arg
            rows, cols = region
            return _sl(r0 + rows.start, r0 + rows.stop), _sl(c0 + cols.start, c0 + cols.stop)
        return region  # dark, add: pixel-wise

    def apply(self, a: np.ndarray, region_in: RoiSlices) -> np.ndarray:
        """Run on a (frames, rows, cols) batch holding input region ``region_in``."""
        if self.func is not None:
            return np.stack([np.asarray(self.func(f, self.arg)) for f in a]) if len(a) else \
                np.empty((0,) + tuple(self.out_shape), self.out_dtype)
        if self.name == "flip":
            return _flip_batch(self.arg, a)
        if self.name == "rectangle":
            return a
        arg = self.arg
        if np.ndim(arg) == 2:
            arg = arg[region_in]
        if self.name == "dark":
            return _dark_batch(a, arg)
        return np.add(a, arg)


@dataclass
class _Pipeline:
    """The ops of a processed series (shared by all its block reads)."""

    steps: list[_Step]
    in_shape: tuple[int, int]
    out_dtype: np.dtype

    def regions(self, roi: RoiSlices) -> list[RoiSlices]:
        """Needed region before each step (and the output ``roi`` last)."""
        needed = [roi]
        for step in reversed(self.steps):
            r = step.region_in(needed[0])
            if r is None:
                r = (slice(0, step.in_shape[0]), slice(0, step.in_shape[1]))
            needed.insert(0, r)
        return needed

    def run(self, read: Callable[[RoiSlices], np.ndarray], roi: RoiSlices) -> np.ndarray:
        """``read(source_region)`` -> batch; apply every step; return the ``roi`` region."""
        needed = self.regions(roi)
        data = read(needed[0])
        have = needed[0]
        for i, step in enumerate(self.steps):
            data = _crop(data, have, needed[i])
            data = step.apply(data, needed[i])
            if step.func is None:
                have = needed[i + 1]
            else:
                have = (slice(0, step.out_shape[0]), slice(0, step.out_shape[1]))
        return _crop(data, have, roi)


def _crop(a: np.ndarray, have: RoiSlices, want: RoiSlices) -> np.ndarray:
    if have == want:
        return a
    r0 = want[0].start - have[0].start
    c0 = want[1].start - have[1].start
    return a[..., r0:r0 + want[0].stop - want[0].start, c0:c0 + want[1].stop - want[1].start]


# -- the series ---------------------------------------------------------------------------------
class ProcessedImageSeries(ImageSeries):
    """An image series with per-frame operations applied (see the module docstring).

    Parameters
    ----------
    ims : ImageSeries
        The source series.
    oplist : list of (name, arg)
        Operations in order; names from the op table (``dark``, ``flip``, ``rectangle``,
        ``add``, and any added with :meth:`addop`).
    frame_list : sequence of int, optional
        Source frames to use, in this order (negative indices count from the end).
    """

    DARK = "dark"
    FLIP = "flip"
    RECT = "rectangle"
    ADD = "add"

    #: op table: name -> None (built-in, region-aware) or ``func(frame, arg) -> frame``
    _ops: dict[str, Callable | None] = {DARK: None, FLIP: None, RECT: None, ADD: None}

    def __init__(self, ims: ImageSeries, oplist: Sequence, frame_list: Sequence[int] | None = None,
                 **kwargs):
        if kwargs:
            raise InputError(f"unexpected keyword arguments {sorted(kwargs)}",
                             argument="ProcessedImageSeries")
        if not isinstance(ims, ImageSeries):
            from . import as_imageseries

            ims = as_imageseries(ims)
        self._imser = ims
        self.on_error = ims.on_error
        n_src = len(ims)
        if frame_list is None:
            self._frames = np.arange(n_src, dtype=np.int64)
        else:
            try:
                fl = np.asarray(list(frame_list), dtype=np.int64)
            except (TypeError, ValueError):
                raise InputError(f"must be a list of frame indices, got {frame_list!r}",
                                 argument="frame_list") from None
            if fl.ndim != 1 or ((fl < -n_src) | (fl >= n_src)).any():
                raise InputError(f"indices must be in [-{n_src}, {n_src}) for a series of "
                                 f"{n_src} frames", argument="frame_list")
            self._frames = fl % n_src if n_src else fl
        self._oplist = [tuple(op) for op in oplist]
        self._pipeline = self._build_pipeline(self._oplist)
        self._shape = self._pipeline.steps[-1].out_shape if self._pipeline.steps else ims.shape
        self._dtype = self._pipeline.out_dtype
        self._metadata = self._subset_metadata(ims.metadata, n_src)

    # -- op table --------------------------------------------------------------------------
    @_owner_method
    def addop(owner, name: str, func: Callable) -> None:
        """Register op ``name`` as ``func(frame, arg) -> frame`` (whole 2-D frames).

        On a class: for that class and its subclasses; on an instance: for it alone.
        """
        if not callable(func):
            raise InputError(f"op {name!r} needs a callable, got {func!r}", argument="func")
        if isinstance(owner, type):
            if "_ops" not in owner.__dict__:
                owner._ops = dict(owner._ops)
            owner._ops[name] = func
        else:
            owner.__dict__["_ops"] = dict(owner._ops)
            owner._ops[name] = func

    @property
    def oplist(self) -> list[tuple]:
        return list(self._oplist)

    @property
    def frame_list(self) -> np.ndarray:
        """Source frame of each frame of this series."""
        return self._frames.copy()

    @property
    def source(self) -> ImageSeries:
        return self._imser

    def _build_pipeline(self, oplist) -> _Pipeline:
        shape = tuple(int(v) for v in self._imser.shape)
        dtype = np.dtype(self._imser.dtype)
        steps = []
        for k, op in enumerate(oplist):
            if len(op) != 2:
                raise InputError(f"op {k} must be a (name, arg) pair, got {op!r}",
                                 argument="oplist")
            name, arg = op
            if name not in self._ops:
                raise InputError(f"op {k}: unknown operation {name!r}; known: "
                                 f"{', '.join(sorted(self._ops))}", argument="oplist")
            func = self._ops[name]
            if func is not None:
                probe = np.asarray(func(np.zeros(shape, dtype), arg))
                if probe.ndim != 2:
                    raise InputError(f"op {k} ({name!r}) must return a 2-D frame, got shape "
                                     f"{probe.shape}", argument="oplist")
                out_shape, out_dtype = tuple(probe.shape), probe.dtype
            else:
                arg, out_shape, out_dtype = self._check_builtin(k, name, arg, shape, dtype)
            steps.append(_Step(name, arg, shape, out_shape, np.dtype(out_dtype), func))
            shape, dtype = out_shape, np.dtype(out_dtype)
        return _Pipeline(steps, tuple(self._imser.shape), dtype)

    @staticmethod
    def _check_builtin(k, name, arg, shape, dtype):
        where = f"op {k} ({name!r})"
        if name == "flip":
            if arg not in FLIP_CODES:
                raise InputError(f"{where}: flip code must be one of {FLIP_CODES}, got {arg!r}",
                                 argument="oplist")
            return arg, _flip_shape(arg, shape), dtype
        if name == "rectangle":
            try:
                (r0, r1), (c0, c1) = arg
                r0, r1, c0, c1 = (int(v) for v in (r0, r1, c0, c1))
            except (TypeError, ValueError):
                raise InputError(f"{where}: expected [[r0, r1], [c0, c1]], got {arg!r}",
                                 argument="oplist") from None
            if not (0 <= r0 < r1 <= shape[0] and 0 <= c0 < c1 <= shape[1]):
                raise InputError(f"{where}: [[{r0}, {r1}], [{c0}, {c1}]] is empty or outside "
                                 f"the frame of {shape[0]} x {shape[1]}", argument="oplist")
            return ((r0, r1), (c0, c1)), (r1 - r0, c1 - c0), dtype
        # dark, add: a number or a frame-shaped array
        a = np.asarray(arg)
        if a.dtype.kind not in "biuf":
            raise InputError(f"{where}: expected a number or a numeric array, got {arg!r}",
                             argument="oplist")
        if a.ndim not in (0, 2) or (a.ndim == 2 and a.shape != tuple(shape)):
            raise InputError(f"{where}: array of shape {a.shape} does not match the frame "
                             f"shape {tuple(shape)}", argument="oplist")
        if a.ndim == 0 and not isinstance(arg, np.ndarray):
            a = arg  # keep Python scalars weak in numpy's promotion
        if name == "dark":
            return a, shape, dtype
        sample = a if np.ndim(a) == 0 else np.asarray(a)[:1, :1]
        return a, shape, np.add(np.zeros((1, 1), dtype), sample).dtype

    def _subset_metadata(self, meta: dict, n_src: int) -> dict:
        out = {}
        for k, v in meta.items():
            if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n_src:
                out[k] = v[self._frames]
            else:
                out[k] = v
        return out

    # -- reads -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._frames)

    def _read_region(self, j: int, rows: slice, cols: slice) -> np.ndarray:
        return self.block_source(j, j + 1).read((rows, cols))[0]

    def block_dtype(self) -> np.dtype:
        return fill_dtype(self._dtype) if self.on_error == "fill" else np.dtype(self._dtype)

    def block_source(self, start: int, stop: int) -> "ProcessedBlock":
        frames = self._frames[start:stop]
        runs = []
        i = 0
        while i < len(frames):
            j = i + 1
            while j < len(frames) and frames[j] == frames[j - 1] + 1:
                j += 1
            runs.append(self._imser.block_source(int(frames[i]), int(frames[j - 1]) + 1))
            i = j
        return ProcessedBlock(runs=runs, pipeline=self._pipeline, shape=self.shape,
                              dtype=self.block_dtype())

    @property
    def token(self) -> str:
        tok = self.__dict__.get("_token")
        if tok is None:
            from dask.base import tokenize

            ops = [(n, a if np.ndim(a) == 0 or isinstance(a, str) else np.asarray(a))
                   for n, a in self._oplist]
            tok = self.__dict__["_token"] = tokenize(self._imser.token, ops, self._frames,
                                                      type(self).__name__)
        return tok

    def to_dask(self, roi=None, frames_per_chunk: int | str = "auto"):
        """Lazy ``(nframes, roi rows, roi cols)`` array; one task reads and processes a batch.

        The op table (dark frames included) is one graph key shared by all tasks, so tasks
        carry only their source block descriptions.  Tasks are named ``processed-<token>``.
        """
        import dask.array as da
        from dask.highlevelgraph import HighLevelGraph

        from ..lazy import frame_chunks, resolve_frames_per_chunk  # downstream helpers

        roi = normalize_roi(roi, self.shape)
        n = len(self)
        if n == 0:
            raise InputError("the image series has no frames", argument="ims")
        h, w = roi_shape(roi)
        dtype = self.block_dtype()
        fpc = resolve_frames_per_chunk(frames_per_chunk, n, h * w * dtype.itemsize)
        from dask.base import tokenize

        chunks = frame_chunks(n, fpc)
        name = "processed-" + tokenize(self.token, roi[0].start, roi[0].stop, roi[1].start,
                                       roi[1].stop, fpc)
        pipe_key = "processed-ops-" + self.token
        dsk: dict[Any, Any] = {pipe_key: self._pipeline}
        start = 0
        for i, c in enumerate(chunks):
            block = self.block_source(start, start + c)
            block.pipeline = None  # shared through pipe_key instead
            dsk[(name, i, 0, 0)] = (_read_processed, block, pipe_key, roi)
            start += c
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
        return da.Array(graph, name, (chunks, (h,), (w,)), dtype=dtype)


def _read_processed(block: "ProcessedBlock", pipeline: _Pipeline, roi: RoiSlices) -> np.ndarray:
    return block.read(roi, pipeline)


@dataclass
class ProcessedBlock(BlockSource):
    """Source block reads of a run of processed frames plus the ops (small to pickle apart
    from op arrays such as a dark frame)."""

    runs: list
    pipeline: _Pipeline | None
    shape: tuple[int, int]
    dtype: np.dtype

    @property
    def nframes(self) -> int:
        return sum(r.nframes for r in self.runs)

    def read(self, roi: RoiSlices, pipeline: _Pipeline | None = None) -> np.ndarray:
        pipe = pipeline if pipeline is not None else self.pipeline

        def read_source(region: RoiSlices) -> np.ndarray:
            parts = [r.read(region) for r in self.runs]
            if len(parts) == 1:
                return parts[0]
            if not parts:
                return np.empty((0,) + roi_shape(region), dtype=self.dtype)
            return np.concatenate(parts)

        out = pipe.run(read_source, roi)
        return np.ascontiguousarray(out, dtype=self.dtype)
