"""Kernels and region maps of the processed-series operations (numpy in, numpy out).

A pipeline is a list of :class:`Step`; each maps the output region it must produce back to
the input region it needs (flips and rectangles map rectangles to rectangles, pixel-wise ops
keep the region; whole-frame ops need the whole frame) and runs on a batch
``(frames, rows, cols)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from ..roi import RoiSlices
from ._utils import short_repr

#: hexrd's flip codes and aliases -> our canonical code (``''``: no flip)
FLIP_ALIASES = {"v": "v", "y": "v", "h": "h", "x": "h", "vh": "vh", "hv": "vh", "r180": "vh",
                "t": "t", "T": "t", "ccw90": "ccw90", "r90": "ccw90", "cw90": "cw90",
                "r270": "cw90", "none": "", None: ""}


def _sl(a: int, b: int) -> slice:
    return slice(int(a), int(b))


def flip_shape(code: str, shape):
    h, w = shape
    return (w, h) if code in ("t", "ccw90", "cw90") else (h, w)


def flip_region_in(code: str, region: RoiSlices, in_shape) -> RoiSlices:
    """Input region (in the frame before the flip) holding output region ``region``."""
    rows, cols = region
    h, w = in_shape
    if code == "v":
        return rows, _sl(w - cols.stop, w - cols.start)
    if code == "h":
        return _sl(h - rows.stop, h - rows.start), cols
    if code == "vh":
        return _sl(h - rows.stop, h - rows.start), _sl(w - cols.stop, w - cols.start)
    if code == "t":
        return cols, rows
    if code == "ccw90":  # out[r, c] = in[c, w - 1 - r]
        return cols, _sl(w - rows.stop, w - rows.start)
    if code == "cw90":  # out[r, c] = in[h - 1 - c, r]
        return _sl(h - cols.stop, h - cols.start), rows
    return region


def flip_batch(code: str, a: np.ndarray) -> np.ndarray:
    """Flip the last two axes of a (frames, rows, cols) batch."""
    if code == "v":
        return a[..., ::-1]
    if code == "h":
        return a[..., ::-1, :]
    if code == "vh":
        return a[..., ::-1, ::-1]
    if not code:
        return a
    t = np.swapaxes(a, -1, -2)
    if code == "t":
        return t
    if code == "ccw90":
        return t[..., ::-1, :]
    return t[..., ::-1]


def dark_batch(a: np.ndarray, dark, out_dtype: np.dtype) -> np.ndarray:
    """``a - dark`` with negatives set to 0, in ``out_dtype`` (numpy's type of ``a - dark``,
    as hexrd returns it).  The difference is taken in a signed or float type wide enough for
    both, so unsigned data never wraps below zero (hexrd's uint16 result wraps to 65535)."""
    out_dtype = np.dtype(out_dtype)
    if out_dtype.kind == "f":
        diff = np.subtract(a, dark, dtype=out_dtype)
        np.maximum(diff, 0, out=diff)
        return diff
    work = np.result_type(a.dtype, np.asarray(dark).dtype, np.int8)  # signed
    if work.itemsize <= max(a.dtype.itemsize, np.asarray(dark).dtype.itemsize):
        work = np.result_type(work, np.int64)
    diff = np.subtract(a, dark, dtype=work)
    np.maximum(diff, 0, out=diff)
    return diff.astype(out_dtype, copy=False)


def add_batch(a: np.ndarray, addend) -> np.ndarray:
    """hexrd's ``add``: integer frames become float32 first (no overflow), then ``+ addend``
    with numpy's promotion."""
    if a.dtype.kind != "f":
        a = a.astype(np.float32)
    return a + addend


@dataclass(frozen=True)
class Step:
    """One op of a pipeline: shapes and dtypes before and after, and how to run it.

    ``kind`` is ``'flip'``, ``'rectangle'``, ``'dark'``, ``'add'`` (region-aware built-ins)
    or ``'frame'`` (``func(frame, arg) -> frame`` on whole frames).
    """

    name: str
    kind: str
    arg: Any
    in_shape: tuple[int, int]
    out_shape: tuple[int, int]
    out_dtype: np.dtype
    func: Callable | None = None

    def region_in(self, region: RoiSlices) -> RoiSlices:
        """Input region needed for output ``region``."""
        if self.kind == "frame":
            return _sl(0, self.in_shape[0]), _sl(0, self.in_shape[1])
        if self.kind == "flip":
            return flip_region_in(self.arg, region, self.in_shape)
        if self.kind == "rectangle":
            (r0, _), (c0, _) = self.arg
            rows, cols = region
            return _sl(r0 + rows.start, r0 + rows.stop), _sl(c0 + cols.start, c0 + cols.stop)
        return region  # dark, add: pixel-wise

    def apply(self, a: np.ndarray, region_in: RoiSlices) -> np.ndarray:
        """Run on a (frames, rows, cols) batch holding input region ``region_in``; the result
        holds the output region :meth:`region_in` was asked for (whole frames for
        ``'frame'`` steps)."""
        if self.kind == "frame":
            if not len(a):
                return np.empty((0,) + tuple(self.out_shape), self.out_dtype)
            return np.stack([np.asarray(self.func(f, self.arg)) for f in a])
        if self.kind == "flip":
            return flip_batch(self.arg, a)
        if self.kind == "rectangle":
            return a
        arg = self.arg
        if np.ndim(arg) == 2:
            arg = arg[region_in]
        if self.kind == "dark":
            return dark_batch(a, arg, self.out_dtype)
        return add_batch(a, arg)


@dataclass
class Pipeline:
    """The steps of a processed series (shared by all its block reads)."""

    steps: list[Step]
    in_shape: tuple[int, int]
    out_dtype: np.dtype

    @property
    def out_shape(self) -> tuple[int, int]:
        return self.steps[-1].out_shape if self.steps else tuple(self.in_shape)

    def regions(self, roi: RoiSlices) -> list[RoiSlices]:
        """Needed region before each step (and the output ``roi`` last)."""
        needed = [roi]
        for step in reversed(self.steps):
            needed.insert(0, step.region_in(needed[0]))
        return needed

    def run(self, read: Callable[[RoiSlices], np.ndarray], roi: RoiSlices) -> np.ndarray:
        """``read(source_region)`` -> batch; apply every step; return the ``roi`` region."""
        needed = self.regions(roi)
        data = read(needed[0])
        have = needed[0]
        for i, step in enumerate(self.steps):
            data = crop(data, have, needed[i])
            data = step.apply(data, needed[i])
            if step.kind == "frame":
                have = (_sl(0, step.out_shape[0]), _sl(0, step.out_shape[1]))
            else:
                have = needed[i + 1]
        return crop(data, have, roi)


def crop(a: np.ndarray, have: RoiSlices, want: RoiSlices) -> np.ndarray:
    """The ``want`` part of ``a``, which holds region ``have``."""
    if have == want:
        return a
    r0 = want[0].start - have[0].start
    c0 = want[1].start - have[1].start
    return a[..., r0:r0 + want[0].stop - want[0].start, c0:c0 + want[1].stop - want[1].start]


def check_insert_index(k, name, index, n: int) -> None:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) \
            or not -n <= index <= n:
        raise InputError(f"op {k} ({name!r}): index must be an int in [-{n}, {n}], got "
                         f"{short_repr(index)}", argument="oplist")


def builtin_step(k, name, arg, shape, dtype) -> Step:
    where = f"op {k} ({name!r})"
    if name == "flip":
        code = FLIP_ALIASES.get(arg) if isinstance(arg, (str, type(None))) else None
        if code is None:
            raise InputError(f"{where}: flip code must be one of "
                             f"{sorted(c for c in FLIP_ALIASES if c)} or 'none', got "
                             f"{short_repr(arg)}", argument="oplist")
        return Step(name, "flip", code, shape, flip_shape(code, shape), dtype)
    if name == "rectangle":
        try:
            (r0, r1), (c0, c1) = arg
            r0, r1, c0, c1 = (int(v) for v in (r0, r1, c0, c1))
        except (TypeError, ValueError):
            raise InputError(f"{where}: expected [[r0, r1], [c0, c1]], got {short_repr(arg)}",
                             argument="oplist") from None
        if not (0 <= r0 < r1 <= shape[0] and 0 <= c0 < c1 <= shape[1]):
            raise InputError(f"{where}: [[{r0}, {r1}], [{c0}, {c1}]] is empty or outside the "
                             f"frame of {shape[0]} x {shape[1]}", argument="oplist")
        return Step(name, "rectangle", ((r0, r1), (c0, c1)), shape, (r1 - r0, c1 - c0),
                         dtype)
    # dark, add: a number or a frame-shaped array
    a = np.asarray(arg)
    if a.dtype.kind not in "biuf":
        raise InputError(f"{where}: expected a number or a numeric array, got "
                         f"{short_repr(arg)}", argument="oplist")
    if a.ndim not in (0, 2) or (a.ndim == 2 and a.shape != tuple(shape)):
        raise InputError(f"{where}: array of shape {a.shape} does not match the frame shape "
                         f"{tuple(shape)}", argument="oplist")
    if a.ndim == 0 and not isinstance(arg, np.ndarray):
        a = arg  # keep Python scalars weak in numpy's promotion
    sample = a if np.ndim(a) == 0 else np.asarray(a)[:1, :1]
    frame = np.zeros((1, 1), dtype)
    out = (frame - sample).dtype if name == "dark" else add_batch(frame, sample).dtype
    return Step(name, name, a, shape, shape, np.dtype(out))
