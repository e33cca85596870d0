"""hexrd's ``imageseries.load``: adapter classes under hexrd's names and its adapter registry.

Each ``*ImageSeriesAdapter`` takes hexrd's constructor arguments and is one of our series
(batched block reads, ``to_dask``).  A hexrd user's own adapter class,
``class MyAdapter(ImageSeriesAdapter): format = 'mine'`` with ``__len__``,
``__getitem__(int)``, ``shape``, ``dtype`` and ``metadata``, registers itself and opens with
``imageseries.open(f, 'mine', **kw)``.
"""
from __future__ import annotations

import abc
import collections.abc
from typing import Any

import numpy as np

from .. import registry as _formats
from ..wrapped import AdapterImageSeries
from .registry import Registry

#: hexrd's region type: ``((row0, row1), (col0, col1))``, stops exclusive
RegionType = tuple[tuple[int, int], tuple[int, int]]


class _RegisterAdapterClass(abc.ABCMeta):
    def __init__(cls, name, bases, attrs):
        super().__init__(name, bases, attrs)
        Registry.register(cls)


class ImageSeriesAdapter(collections.abc.Sequence, metaclass=_RegisterAdapterClass):
    """Base of hexrd-style adapter classes (see the module docstring)."""

    format: str | None = None

    def get_region(self, frame_idx: int, region: RegionType) -> np.ndarray:
        (r0, r1), (c0, c1) = region
        return self[frame_idx][r0:r1, c0:c1]

    @property
    def metadata(self) -> dict:
        return {}

    @property
    def shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def option_values(self) -> dict:
        raise NotImplementedError

    def set_option(self, key: str, value: Any):
        raise NotImplementedError


class _SeriesAdapter(AdapterImageSeries, ImageSeriesAdapter):
    """Our series opened with hexrd's adapter arguments (base of the classes below)."""

    def __init__(self, series):
        AdapterImageSeries.__init__(self, series)

    def __reduce__(self):
        return _rebuild, (type(self), self._adapter)


def _rebuild(cls, series):
    obj = cls.__new__(cls)
    AdapterImageSeries.__init__(obj, series)
    return obj


class _AdapterClassFormat(_formats.ImageSeriesFormat):
    """A format backed by a user's hexrd adapter class (any keywords, passed on)."""

    open_keywords = None

    def __init__(self, acls):
        self.acls, self.name = acls, acls.format
        self.description = f"hexrd adapter class {acls.__module__}.{acls.__qualname__}"

    def guess_can_open(self, path: str) -> bool:
        return False

    def open(self, filename, **kwargs):
        obj = self.acls(filename, **kwargs)
        return obj if isinstance(obj, AdapterImageSeries) else AdapterImageSeries(obj)


def _adapter_format(name: str):
    acls = Registry.adapter_registry.get(name)
    if acls is None or issubclass(acls, _SeriesAdapter):
        return None
    return _AdapterClassFormat(acls)


_formats._FALLBACKS.append(_adapter_format)

from . import (array, eiger, eiger_stream_v1, eiger_stream_v2, framecache,  # noqa: E402,F401
               function, hdf5, imagefiles, metadata, rawimage)
