"""The invalid-pixel rule inside the map kernel: numpy in, numpy out (no dask).

:func:`exclude_invalid` finds, frame by frame, the pixels of a block that hold a value the
rule (:mod:`xrsmap_dask.invalid`) excludes, zeroes them in the array the maps reduce and
records what it excluded (:class:`Excluded`): pixels per frame, the positions excluded in
any frame, binned pixels wholly excluded in a frame (composite ``dummy``) and, with radial
bins, the pixels of each bin excluded in each frame (the bins' means are taken over the
remaining pixels).  :func:`union_record` packs a write unit's excluded positions.

Conventions as in :mod:`xrsmap_dask.maps.kernels`: blocks ``(frames, rows, cols)`` of the
read box, masks True = excluded.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..invalid import invalid_pixels

if TYPE_CHECKING:       # kernels imports this module
    from .kernels import KernelParams

#: bytes of a block the invalid-pixel rule checks at a time (its passes stay in the CPU cache)
INVALID_PIECE_BYTES = 2 * 2**20
#: excluded positions a write unit lists explicitly (beyond: their count and digest only)
UNION_POSITIONS = 64


@dataclass(eq=False)
class Excluded:
    """What the invalid-pixel rule excluded in a block of ``n`` frames: ``counts`` ``(n,)``
    pixels per frame, ``union`` ``(rows, cols)`` excluded in any frame, ``dead``
    ``(n, fy, fx)`` binned pixels wholly excluded in a frame (with the mask; None: none),
    ``bin_counts`` ``(n, nbins)`` pixels of each radial bin excluded in each frame and
    ``bin_weights`` the sum of their weights (solid angle x polarization; None: unweighted
    bins, the weight of a pixel is 1)."""

    counts: np.ndarray
    union: np.ndarray
    dead: np.ndarray | None = None
    bin_counts: np.ndarray | None = None
    bin_weights: np.ndarray | None = None


@dataclass(eq=False)
class Reduced:
    """The arrays the maps of a block reduce: ``x`` (the box's pixels: corrected, or the
    block as read) and ``read`` (the block as read: whole rows when the task widened its
    reads, of which ``x`` may be a view).  The radial tables reduce ``read`` unless the
    block is corrected."""

    x: np.ndarray
    read: np.ndarray


def _own(block: np.ndarray, arrays: Reduced, p: "KernelParams", owned: bool) -> Reduced:
    """``arrays`` safe to zero pixels in: the caller's block (and the whole rows it is a
    view of) is copied unless it is ``owned``."""
    if arrays.x is not block or owned:
        return arrays
    if arrays.read is block:
        x = block.copy()
        return Reduced(x, x)
    read = arrays.read.copy()
    return Reduced(read[:, :, p.crop_cols], read)


def _radial_col0(p: "KernelParams") -> int:
    """Column of the box's first column in the blocks the radial tables are laid on (whole
    rows read and not corrected: the read's; else the box's own)."""
    return p.crop_cols.start if p.crop_cols is not None and not p.needs_corrected else 0


def exclude_invalid(block: np.ndarray, arrays: Reduced, p: "KernelParams",
                    owned: bool) -> tuple[Reduced, Excluded | None]:
    """``(arrays, Excluded or None)``: ``arrays`` with the pixels holding excluded values
    set to 0.

    Values are compared on the raw ``block`` (the box's pixels as read: exact, before any
    float cast), a few frames (:data:`INVALID_PIECE_BYTES`) at a time so that the
    comparison, zeroing, counting and bin checks of a piece run while it is in the CPU
    cache.  A block without excluded values costs one range test per piece and no copy;
    the block as read is copied before the first zeroing unless ``owned`` (the caller's
    own buffer).
    """
    n = len(block)
    step = max(1, INVALID_PIECE_BYTES // max(1, block[0].nbytes)) if n else 1
    bins = p.radial if p.radial is not None and p.radial.nbins else None
    found, seen = None, False
    for i in range(0, n, step):
        # a piece after one with excluded pixels (module gaps) is compared at once
        hit = invalid_pixels(block[i:i + step], p.invalid, precheck=not seen)
        seen = hit is not None
        if hit is None:
            continue
        if found is None:
            found = Excluded(np.zeros(n, np.int64), np.zeros(block.shape[1:], bool))
            arrays = _own(block, arrays, p, owned)
        k = slice(i, i + len(hit))
        np.copyto(arrays.x[k], 0, where=hit)
        found.counts[k] = [np.count_nonzero(f) for f in hit]    # popcount per frame
        union = hit.any(axis=0)
        found.union |= union
        dead = _dead_per_frame(hit, union, p) if p.do_composite else None
        if dead is not None:
            if found.dead is None:
                found.dead = np.zeros((n,) + tuple(p.binned_shape), bool)
            found.dead[k] = dead
        if bins is not None:
            _add_bin_exclusions(found, k, bins.excluded(hit, _radial_col0(p)), n)
    return arrays, found


def _add_bin_exclusions(found: Excluded, k: slice, piece, n: int) -> None:
    counts, weights = piece
    if found.bin_counts is None:
        found.bin_counts = np.zeros((n, counts.shape[1]), np.int64)
        if weights is not None:
            found.bin_weights = np.zeros((n, counts.shape[1]))
    found.bin_counts[k] = counts
    if weights is not None:
        found.bin_weights[k] = weights


def _bins_all(excl: np.ndarray, b: int, binned_shape) -> np.ndarray:
    """(..., fy, fx) bool: ``b x b`` bins of ``excl`` (..., rows, cols) whose every pixel is
    True; rows of a bin first, then its columns (contiguous: 8x faster than both at once)."""
    if b == 1:
        return excl
    lead, (fy, fx) = excl.shape[:-2], binned_shape
    return excl.reshape(lead + (fy, b, -1)).all(axis=-2) \
        .reshape(lead + (fy, fx, b)).all(axis=-1)


def _dead_per_frame(hit: np.ndarray, union: np.ndarray, p: "KernelParams"):
    """(n, fy, fx) bool: binned pixels whose every pixel is excluded in that frame (by the
    invalid rule or the mask); None when none can be (checked on the block's union first:
    module gaps narrower than a bin never kill one)."""
    mask = None if p.mask is None else p.mask[p.roi]
    cand = union[p.roi] if mask is None else union[p.roi] | mask
    if not _bins_all(cand, p.binning, p.binned_shape).any():
        return None
    excl = hit[:, p.roi[0], p.roi[1]]
    return _bins_all(excl if mask is None else excl | mask, p.binning, p.binned_shape)


def union_record(union: np.ndarray | None) -> np.ndarray:
    """``(1, 2 + UNION_POSITIONS)`` int64 record of the box pixels a unit excluded in any
    frame: ``[count, digest, positions...]``.  ``digest``: 63 bits of a BLAKE2b digest of
    where they are (units excluding the same pixels share it); ``positions``: their flat
    indices in the box (row-major), when there are at most :data:`UNION_POSITIONS`, padded
    with -1.  All zeros but the -1 padding when the unit excluded nothing."""
    rec = np.full((1, 2 + UNION_POSITIONS), -1, np.int64)
    rec[0, :2] = 0
    if union is None or not union.any():
        return rec
    flat = np.flatnonzero(union)
    digest = hashlib.blake2b(np.packbits(union).tobytes(), digest_size=8).digest()
    rec[0, 0] = len(flat)
    rec[0, 1] = int.from_bytes(digest, "little") >> 1
    if len(flat) <= UNION_POSITIONS:
        rec[0, 2:2 + len(flat)] = flat
    return rec
