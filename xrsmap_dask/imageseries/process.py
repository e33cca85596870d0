"""Processed image series: per-frame operations applied lazily (hexrd's ``process``).

>>> from xrsmap_dask.imageseries.process import ProcessedImageSeries as PIS
>>> pims = PIS(ims, [('dark', dark), ('flip', 'h'), ('rectangle', [[0, 512], [100, 612]])],
...            frame_list=range(10, 200))                                   # doctest: +SKIP
>>> pims[0]; pims.to_dask(); imageseries.write(pims, 'out.h5', 'hdf5', path='/imageseries')

Operations (``oplist``: a list of ``(name, arg)``, applied in order to every frame when it is
read; the list is the caller's own, so later changes to it apply to later reads, as in hexrd):

``dark``
    ``frame - arg`` (a frame-shaped array or a number), negatives set to 0, in numpy's dtype of
    ``frame - arg`` (float dark on integer frames gives float, as hexrd).  Unlike hexrd the
    difference never wraps: uint16 ``5 - 7`` is 0, not 65534.
``flip``
    ``'v'``/``'y'``: columns reversed ``a[:, ::-1]``; ``'h'``/``'x'``: rows reversed;
    ``'vh'``, ``'hv'``, ``'r180'``: both; ``'t'``/``'T'``: transpose; ``'ccw90'``/``'r90'``:
    ``a.T[::-1, :]``; ``'cw90'``/``'r270'``: ``a.T[:, ::-1]``; ``'none'``: unchanged.
``rectangle``
    ``a[r0:r1, c0:c1]`` for ``arg = [[r0, r1], [c0, c1]]`` (stop exclusive).
``add``
    integer frames become float32, then ``+ arg`` (numpy's promotion).
``gauss_laplace``
    ``scipy.ndimage.gaussian_laplace(frame, sigma=arg)`` (the frame's dtype).
``add-row``, ``add-column``
    a row / column of zeros inserted at index ``arg`` (``np.insert``).

``frame_list`` selects (and orders) source frames; the ``omega`` metadata is subset with it
(the other metadata are copied as they are, as in hexrd).

Reads are region-aware for our own series: ``pims[(j, rows, cols)]``, ``read_block`` and
``to_dask(roi)`` map the wanted region back through the operations and read only the source
region needed, in batches of source frames.  A hexrd-style source object (``len``, ``[int]``)
is read frame by frame as hexrd does (a leading ``rectangle`` asks its ``get_region``).

New operations ``func(frame, arg) -> frame`` (whole 2-D frames): ``pims.addop(name, func)``
on an instance (also before or after ``super().__init__`` in a subclass), or
``MyPIS.addop(name, func)`` on a subclass (that class and its subclasses).
"""
from __future__ import annotations

import copy
import functools
from typing import Callable, Sequence

import numpy as np
import scipy.ndimage  # noqa: F401 - gauss_laplace (module attribute, patchable)

from ..errors import InputError
from ..roi import RoiSlices, normalize_roi, roi_shape
from . import _ops
from ._errors import KeywordArgumentError, MissingEntryError
from ._utils import short_repr
from .base import BlockSource, ImageSeries, SeriesBlock, fill_dtype
from .wrapped import as_series


class _owner_method:
    """A method bound to the instance when called on one, else to the class."""

    def __init__(self, func: Callable):
        self.func = func
        functools.update_wrapper(self, func)

    def __get__(self, obj, cls):
        return functools.partial(self.func, cls if obj is None else obj)


def _gauss_laplace(img, sigma):
    return scipy.ndimage.gaussian_laplace(img, sigma)


def _add_row(img, index):
    return np.insert(img, index, 0, axis=0)


def _add_column(img, index):
    return np.insert(img, index, 0, axis=1)


class ProcessedImageSeries(ImageSeries):
    """An image series with per-frame operations applied (see the module docstring).

    Parameters
    ----------
    imser : ImageSeries or hexrd-style series
        The source series.
    oplist : list of (name, arg)
        Operations in order (kept by reference: hexrd code edits it after construction).
    frame_list : sequence of int, optional
        Source frames to use, in this order (negative indices count from the end).
    """

    FLIP = "flip"
    DARK = "dark"
    RECT = "rectangle"
    ADD = "add"
    GAUSS_LAPLACE = "gauss_laplace"
    ADD_ROW = "add-row"
    ADD_COL = "add-column"

    #: op table: name -> None (built-in, region-aware) or ``func(frame, arg) -> frame``
    _ops: dict[str, Callable | None] = {DARK: None, FLIP: None, RECT: None, ADD: None,
                                        GAUSS_LAPLACE: _gauss_laplace, ADD_ROW: _add_row,
                                        ADD_COL: _add_column}

    def __init__(self, imser, oplist: Sequence, frame_list: Sequence[int] | None = None,
                 **kwargs):
        if kwargs:
            raise KeywordArgumentError(f"unexpected keyword arguments {sorted(kwargs)}",
                                       argument=sorted(kwargs)[0])
        self.__dict__.setdefault("_opdict", {})  # a subclass may addop before this
        self._source = imser
        self._imser = as_series(imser)
        self._duck = not isinstance(imser, ImageSeries)
        self.on_error = self._imser.on_error
        n_src = len(self._imser)
        self._frames = self._check_frames(frame_list, n_src)
        self._oplist = [] if oplist is None else oplist
        self._cache: tuple | None = None
        self._meta = copy.deepcopy(dict(self._imser.metadata))
        if frame_list is not None and "omega" in self._meta:
            self._meta["omega"] = np.asarray(self._meta["omega"])[self._frames]
        self._pipeline(strict=False)  # bad arguments of known ops are errors now

    @staticmethod
    def _check_frames(frame_list, n_src: int) -> np.ndarray:
        if frame_list is None:
            return np.arange(n_src, dtype=np.int64)
        try:
            fl = np.asarray(list(frame_list), dtype=np.int64)
        except (TypeError, ValueError):
            raise InputError(f"must be a list of frame indices, got {short_repr(frame_list)}",
                             argument="frame_list") from None
        if fl.ndim != 1 or ((fl < -n_src) | (fl >= n_src)).any():
            raise InputError(f"indices must be in [-{n_src}, {n_src}) for a series of "
                             f"{n_src} frames", argument="frame_list")
        return fl % n_src if n_src else fl

    # -- op table --------------------------------------------------------------------------
    @_owner_method
    def addop(owner, name: str, func: Callable) -> None:
        """Register op ``name`` as ``func(frame, arg) -> frame`` (whole 2-D frames).

        On an instance: for it alone (hexrd's ``addop``); on a class: for that class and its
        subclasses (never for a parent).
        """
        if not callable(func):
            raise InputError(f"op {name!r} needs a callable, got {short_repr(func)}",
                             argument="func")
        if isinstance(owner, type):
            if "_ops" not in owner.__dict__:
                owner._ops = dict(owner._ops)
            owner._ops[name] = func
        else:
            owner.__dict__.setdefault("_opdict", {})[name] = func

    def _lookup(self, name):
        if name in self._opdict:
            return True, self._opdict[name]
        if name in type(self)._ops:
            return True, type(self)._ops[name]
        return False, None

    @property
    def oplist(self) -> list:
        """The operations (the list given, so edits apply to later reads, as in hexrd)."""
        return self._oplist

    @property
    def frame_list(self) -> np.ndarray:
        """Source frame of each frame of this series."""
        return self._frames.copy()

    @property
    def source(self) -> ImageSeries:
        return self._imser

    @property
    def metadata(self) -> dict:
        """A copy of the source's metadata taken at construction (``omega`` subset by
        ``frame_list``); changes here stay here."""
        return self._meta

    # -- pipeline --------------------------------------------------------------------------
    def _pipeline(self, strict: bool = True) -> _ops.Pipeline:
        """The current ops as a pipeline, rebuilt when the op list or tables change.
        ``strict=False`` skips (at construction) ops not known yet."""
        key = (tuple((op[0] if len(op) else None, id(op[1]) if len(op) > 1 else None)
                     if isinstance(op, (tuple, list)) else id(op) for op in self._oplist),
               tuple((k, id(v)) for k, v in self._opdict.items()), id(type(self)._ops))
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        shape = tuple(int(v) for v in self._imser.shape)
        dtype = np.dtype(self._imser.dtype)
        steps = []
        for k, op in enumerate(self._oplist):
            if not isinstance(op, (tuple, list)) or len(op) != 2:
                raise InputError(f"op {k} must be a (name, arg) pair, got {short_repr(op)}",
                                 argument="oplist")
            name, arg = op
            known, func = self._lookup(name)
            if not known:
                if not strict:
                    return None
                raise MissingEntryError(f"op {k}: unknown operation {short_repr(name)}; known: "
                                        f"{', '.join(sorted(set(type(self)._ops) | set(self._opdict)))}",
                                        argument="oplist")
            step = self._step(k, name, arg, func, shape, dtype)
            steps.append(step)
            shape, dtype = step.out_shape, step.out_dtype
        pipe = _ops.Pipeline(steps, tuple(int(v) for v in self._imser.shape), dtype)
        self._cache = (key, pipe)
        return pipe

    def _step(self, k, name, arg, func, shape, dtype) -> _ops.Step:
        if func is _gauss_laplace:  # whole frames; shape and dtype kept
            return _ops.Step(name, "frame", arg, shape, shape, dtype, func)
        if func in (_add_row, _add_column):  # np.insert keeps the dtype
            axis = 0 if func is _add_row else 1
            _ops.check_insert_index(k, name, arg, shape[axis])
            out_shape = (shape[0] + 1, shape[1]) if axis == 0 else (shape[0], shape[1] + 1)
            return _ops.Step(name, "frame", arg, shape, out_shape, dtype, func)
        if func is not None:  # a custom whole-frame op: run it on a zero frame to learn more
            probe = np.asarray(func(np.zeros(shape, dtype), arg))
            if probe.ndim != 2:
                raise InputError(f"op {k} ({name!r}) must return a 2-D frame, got shape "
                                 f"{probe.shape}", argument="oplist")
            return _ops.Step(name, "frame", arg, shape, tuple(probe.shape), probe.dtype, func)
        return _ops.builtin_step(k, name, arg, shape, dtype)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self._pipeline().out_shape)

    @property
    def dtype(self) -> np.dtype:
        return self._pipeline().out_dtype

    # -- reads -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._frames)

    def _read_region(self, j: int, rows: slice, cols: slice) -> np.ndarray:
        if self._duck:
            return self._process_whole(j)[rows, cols]
        return self.block_source(j, j + 1).read((rows, cols))[0]

    def _process_whole(self, j: int) -> np.ndarray:
        """hexrd's way for a hexrd-style source: its frame (or ``get_region`` of a leading
        rectangle), then every op on the whole frame."""
        pipe = self._pipeline()
        src_j = int(self._frames[j])
        steps = pipe.steps
        getter = getattr(self._source, "get_region", None)
        if steps and steps[0].kind == "rectangle" and callable(getter):
            img, steps = np.asarray(getter(src_j, steps[0].arg)), steps[1:]
        else:
            img = np.asarray(self._source[src_j])
        for step in steps:
            full = (slice(0, img.shape[0]), slice(0, img.shape[1]))
            img = step.apply(img[None], full)[0]
            if step.kind == "rectangle":
                (r0, r1), (c0, c1) = step.arg
                img = img[r0:r1, c0:c1]
        return img

    def block_dtype(self) -> np.dtype:
        return fill_dtype(self.dtype) if self.on_error == "fill" else np.dtype(self.dtype)

    def block_source(self, start: int, stop: int) -> BlockSource:
        if self._duck:
            return SeriesBlock(self, start, stop, self.on_error)
        frames = self._frames[start:stop]
        runs, i = [], 0
        while i < len(frames):
            j = i + 1
            while j < len(frames) and frames[j] == frames[j - 1] + 1:
                j += 1
            runs.append(self._imser.block_source(int(frames[i]), int(frames[j - 1]) + 1))
            i = j
        return ProcessedBlock(runs=runs, pipeline=self._pipeline(), shape=self.shape,
                              dtype=self.block_dtype())

    @property
    def token(self) -> str:
        from dask.base import tokenize

        ops = [(n, a if np.ndim(a) == 0 or isinstance(a, str) else np.asarray(a))
               for n, a in self._oplist]
        key = id(self._pipeline())
        if self.__dict__.get("_token_for") != key:
            self.__dict__["_token"] = tokenize(self._imser.token, ops, self._frames,
                                               type(self).__name__)
            self.__dict__["_token_for"] = key
        return self.__dict__["_token"]

    def to_dask(self, roi=None, frames_per_chunk: int | str = "auto"):
        """Lazy ``(nframes, roi rows, roi cols)`` array; one task reads and processes a batch.

        The ops (dark frames included) are one graph key shared by all tasks, so tasks carry
        only their source block descriptions.  Tasks are named ``processed-<token>``.
        """
        import dask.array as da
        from dask.base import tokenize
        from dask.highlevelgraph import HighLevelGraph

        from ..lazy import frame_chunks, resolve_frames_per_chunk  # downstream helpers

        roi = normalize_roi(roi, self.shape)
        n = len(self)
        if n == 0:
            raise InputError("the image series has no frames", argument="ims")
        h, w = roi_shape(roi)
        dtype = self.block_dtype()
        fpc = resolve_frames_per_chunk(frames_per_chunk, n, h * w * dtype.itemsize)
        chunks = frame_chunks(n, fpc)
        name = "processed-" + tokenize(self.token, roi[0].start, roi[0].stop, roi[1].start,
                                       roi[1].stop, fpc)
        pipe_key = "processed-ops-" + self.token
        dsk: dict = {pipe_key: self._pipeline()}
        start = 0
        for i, c in enumerate(chunks):
            block = self.block_source(start, start + c)
            if isinstance(block, ProcessedBlock):
                block.pipeline = None  # shared through pipe_key instead
            dsk[(name, i, 0, 0)] = (_read_processed, block, pipe_key, roi)
            start += c
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
        return da.Array(graph, name, (chunks, (h,), (w,)), dtype=dtype)


def _read_processed(block: BlockSource, pipeline: _ops.Pipeline, roi: RoiSlices) -> np.ndarray:
    if isinstance(block, ProcessedBlock):
        return block.read(roi, pipeline)
    return block.read(roi)


class ProcessedBlock(BlockSource):
    """Source block reads of a run of processed frames plus the ops (small to pickle apart
    from op arrays such as a dark frame, which the graph shares)."""

    def __init__(self, runs: list, pipeline: _ops.Pipeline | None, shape, dtype):
        self.runs, self.pipeline, self.shape, self.dtype = runs, pipeline, shape, dtype

    @property
    def nframes(self) -> int:
        return sum(r.nframes for r in self.runs)

    def read(self, roi: RoiSlices, pipeline: _ops.Pipeline | None = None) -> np.ndarray:
        pipe = pipeline if pipeline is not None else self.pipeline

        def read_source(region: RoiSlices) -> np.ndarray:
            parts = [r.read(region) for r in self.runs]
            if len(parts) == 1:
                return parts[0]
            if not parts:
                return np.empty((0,) + roi_shape(region), dtype=self.dtype)
            return np.concatenate(parts)

        return np.ascontiguousarray(pipe.run(read_source, roi), dtype=self.dtype)
