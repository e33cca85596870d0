"""The invalid-pixel rule: detector values that mean "no measurement here".

Detectors write reserved values where a pixel measured nothing: Dectris Eiger the all-ones
value of the file's unsigned dtype in its module gaps and dead pixels (``2**32 - 1`` in
uint32, ``2**16 - 1`` in uint16), Pilatus CBF files negative values (``-1`` in module gaps,
``-2`` for bad pixels).  Such a pixel is excluded *in the frame that holds the value*, as a
masked pixel is in every frame: it adds nothing to any sum and, when every pixel of a
binned pixel is excluded, shows ``dummy`` in the composite; statistics treat it as NaN
(and skip it).

* :func:`parse_invalid` -- the setting (``'auto'``, ``'none'`` or explicit values), the one
  check every face (CLI ``--invalid``, job key ``invalid``, ``Mapper(invalid=)``) runs;
* :func:`resolve_invalid` -- the setting and the series' dtype -> an :class:`InvalidRule`
  (the one place the ``auto`` rule is decided);
* :func:`invalid_pixels` -- the per-block kernel: where a block holds an excluded value;
* :func:`nan_invalid` -- a block with its excluded values NaN (statistics).

``auto``: unsigned integer data exclude the all-ones value of the *file's* dtype (so a
saturated uint16 pixel at 65535 is excluded too; ``none`` keeps it), signed integer data
every negative value, float data nothing.  Explicit values exclude exactly those values
(those the data's dtype cannot hold can never occur and are left out of the rule).

Comparisons are exact: they run on the block as read (the raw integers, or under
``on_error='fill'`` the float dtype of :func:`~xrsmap_dask.imageseries.base.fill_dtype`,
float64 for 32-bit data, which holds every 32-bit integer), never after a cast to the
float32 working dtype.  This module sits at the bottom of the package (numpy and
:mod:`xrsmap_dask.errors` only).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError

SETTINGS = ("auto", "none")
#: explicit values compared one by one up to this many, with ``np.isin`` above
FEW_VALUES = 4


def parse_invalid(value: Any) -> str | tuple:
    """``'auto'`` (the detector's reserved values, by dtype), ``'none'`` (exclude nothing)
    or explicit values (a number or a list of numbers: exactly those values excluded);
    returns ``'auto'``, ``'none'`` or a tuple of ints/floats (duplicates dropped)."""
    if isinstance(value, str):
        if value in SETTINGS:
            return value
        raise InputError(f"must be auto, none or numbers, got {value[:40]!r}",
                         argument="invalid")
    if isinstance(value, InvalidRule):
        return value.setting
    items = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if not items:
        raise InputError("give auto, none or at least one value", argument="invalid")
    out = []
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) \
                or not _finite(v):
            raise InputError(f"must be auto, none or finite numbers, got {str(v)[:40]!r}",
                             argument="invalid")
        out.append(int(v) if isinstance(v, numbers.Integral) or float(v).is_integer()
                   else float(v))
    return tuple(dict.fromkeys(out))


def _finite(v) -> bool:
    try:
        return bool(np.isfinite(float(v)))
    except OverflowError:      # an int beyond every float: no data can hold it
        return False


def _holds(dtype: np.dtype, v) -> bool:
    """Whether ``dtype`` holds the number ``v`` exactly."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(v).is_integer() and info.min <= v <= info.max
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            return float(np.asarray(v, dtype=dtype).item()) == v  # int == float: exact
    return False


@dataclass(frozen=True)
class InvalidRule:
    """A resolved rule: pixels holding one of ``values``, or any negative value when
    ``negative``, are excluded.  ``setting`` is what the user gave, ``description`` says
    what it means for this data (recorded in outputs)."""

    values: tuple = ()
    negative: bool = False
    setting: Any = "auto"
    description: str = "none"

    @property
    def active(self) -> bool:
        """Whether the rule can exclude anything."""
        return self.negative or bool(self.values)

    def to_attrs(self) -> dict:
        """JSON-able: ``{'rule': ..., 'excluded_values': [...] or 'negative', ...}``."""
        return {"rule": self.description,
                "setting": list(self.setting) if isinstance(self.setting, tuple)
                else self.setting,
                "excluded_values": "negative" if self.negative else list(self.values)}


NO_RULE = InvalidRule(setting="none", description="none")


def resolve_invalid(setting: Any, dtype, block_dtype=None) -> InvalidRule:
    """The rule ``setting`` (see :func:`parse_invalid`) means for data of ``dtype`` (the
    file's dtype) read as blocks of ``block_dtype`` (default ``dtype``; a float dtype under
    ``on_error='fill'``).

    ``auto``: unsigned -> the all-ones value (``np.iinfo(dtype).max``), signed -> negative
    values, float -> nothing.  Explicit values: those both dtypes hold exactly.
    """
    if isinstance(setting, InvalidRule):
        return setting
    setting = parse_invalid(setting)
    dtype = np.dtype(dtype)
    block = np.dtype(block_dtype) if block_dtype is not None else dtype
    name = dtype.name
    if setting == "none":
        return NO_RULE
    if setting == "auto":
        if dtype.kind == "u":
            top = int(np.iinfo(dtype).max)
            if _holds(block, top):
                return InvalidRule((top,), False, "auto", f"auto: {name} all-ones ({top})")
            return InvalidRule((), False, "auto", f"auto: {name} all-ones ({top}) not "
                               f"comparable exactly in {block.name} blocks: none")
        if dtype.kind == "i":
            return InvalidRule((), True, "auto", f"auto: {name} negative values")
        return InvalidRule((), False, "auto", f"auto: none for {name} data")
    kept = tuple(v for v in setting if _holds(dtype, v) and _holds(block, v))
    text = ", ".join(str(v) for v in kept) or "none"
    dropped = [v for v in setting if v not in kept]
    if dropped:
        text += (f" ({', '.join(str(v) for v in dropped)} cannot occur in {name}"
                 + (f" / {block.name}" if block != dtype else "") + " data)")
    return InvalidRule(kept, False, setting, f"values {text}")


# -- kernels ----------------------------------------------------------------------------------
def _may_hold(block: np.ndarray, rule: InvalidRule) -> bool:
    """A cheap range test (one reduction, no temporary): False when no pixel of the integer
    ``block`` can hold an excluded value."""
    if block.dtype.kind not in "iu":
        return True
    if rule.negative and not rule.values:
        return block.dtype.kind == "i" and block.min() < 0
    if rule.values and not rule.negative:
        lo, hi = min(rule.values), max(rule.values)
        if lo > 0:
            return block.max() >= lo
        if hi < 0:
            return block.dtype.kind == "i" and block.min() <= hi
    return True


def _compare(block: np.ndarray, rule: InvalidRule) -> np.ndarray | None:
    """Boolean ``block == value`` (or ``< 0``) over the rule's values the dtype holds."""
    dtype = block.dtype
    hit = None
    if rule.negative and dtype.kind != "u":
        hit = block < 0
    values = [np.asarray(v, dtype=dtype) for v in rule.values if _holds(dtype, v)]
    if len(values) > FEW_VALUES:
        more = np.isin(block, np.array(values, dtype=dtype))
        return more if hit is None else hit | more
    for v in values:
        if hit is None:
            hit = block == v
        else:
            hit |= block == v
    return hit


def invalid_pixels(block: np.ndarray, rule: InvalidRule | None,
                   precheck: bool = True) -> np.ndarray | None:
    """Boolean array of ``block``'s shape, True where the pixel holds an excluded value;
    ``None`` when no pixel does (or the rule is empty).

    ``block`` is compared as it is (raw integers, or the float blocks of
    ``on_error='fill'``, where NaN never matches); values the block's dtype cannot hold
    exactly are skipped.  ``precheck``: first a range test (one reduction, no temporary)
    that usually proves a clean block clean; pass False when excluded values are expected
    (the previous block had some: module gaps are in every frame).
    """
    if rule is None or not rule.active or block.size == 0:
        return None
    if precheck and not _may_hold(block, rule):
        return None
    hit = _compare(block, rule)
    if hit is None or not hit.any():
        return None
    return hit


def nan_invalid(block: np.ndarray, rule: InvalidRule | None, dtype=None) -> np.ndarray:
    """``block`` with its excluded pixels NaN, as ``dtype``.

    ``dtype`` None: ``block`` itself when it holds no excluded value (the caller's fast
    path: integer statistics of clean tiles stay integer work), else :func:`stat_dtype`
    (float64 for integer blocks, exact up to 2**53; float blocks keep their dtype).
    """
    hit = invalid_pixels(block, rule)
    if hit is None:
        return block if dtype is None else block.astype(dtype, copy=False)
    out = block.astype(stat_dtype(block.dtype, rule) if dtype is None else dtype, copy=True)
    np.copyto(out, np.nan, where=hit)
    return out


def active_rule(rule: InvalidRule | None) -> InvalidRule | None:
    """``rule`` when it can exclude something, else None (no cost, no dtype change)."""
    return rule if rule is not None and rule.active else None


def stat_dtype(dtype, rule: InvalidRule | None) -> np.dtype:
    """dtype of a statistic of ``dtype`` values once excluded pixels may be NaN: integer
    results become float64 (exact), float results keep their dtype."""
    dtype = np.dtype(dtype)
    if rule is None or not rule.active or dtype.kind == "f":
        return dtype
    return np.dtype(np.float64)
