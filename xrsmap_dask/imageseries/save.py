"""hexrd's ``imageseries.save``: ``write(ims, fname, fmt, **kwargs)`` and its writer classes.

``write`` is :func:`xrsmap_dask.imageseries.write`.  ``WriteH5`` and ``WriteFrameCache``
take hexrd's arguments and ``write()`` through our writers (block by block, never the whole
stack in memory); ``_Registry.getwriter(fmt)`` gives the writer class of a format.
"""
from __future__ import annotations

import os
import warnings

from ._errors import InputTypeError
from .registry import get_format, write_series

#: hexrd warns when more than this fraction of a frame is above the frame-cache threshold
MAX_NZ_FRACTION = 0.1


def write(ims, fname, fmt: str, **kwargs) -> None:
    """Write ``ims`` to ``fname`` in format ``fmt`` (hexrd's ``imageseries.write``)."""
    w = _Registry.getwriter(fmt)(ims, fname, **kwargs)
    w.write()


class Writer:
    """Base of the writer classes: ``Writer(ims, fname, **options).write()``."""

    fmt: str | None = None

    def __init__(self, ims, fname, **kwargs):
        self._ims, self._fname, self._opts = ims, fname, kwargs
        self._shape, self._dtype, self._nframes = ims.shape, ims.dtype, len(ims)
        self._meta = ims.metadata
        name = fname.file.filename if hasattr(fname, "file") else os.fspath(fname)
        self._fname_dir, base = os.path.split(name)
        self._fname_base, self._fname_suff = os.path.splitext(base)

    @property
    def fname(self):
        return self._fname

    @property
    def fname_dir(self) -> str:
        return self._fname_dir

    @property
    def opts(self) -> dict:
        return self._opts

    def write(self) -> None:
        write_series(self._ims, self._fname, self.fmt, **self._opts)


class WriteH5(Writer):
    """hexrd's HDF5 writer: ``path=`` (group), ``gzip=``, ``chunk_rows=``, ``shuffle=``,
    ``compression=`` (explicit ``create_dataset`` compression keywords)."""

    fmt = "hdf5"
    dflt_gzip, dflt_chrows, dflt_shuffle = 1, 0, True

    @property
    def h5opts(self) -> dict:
        """The ``create_dataset`` keywords the options give."""
        from .hdf5 import dataset_options

        return dataset_options(self._shape, **{k: v for k, v in self._opts.items()
                                               if k in ("gzip", "chunk_rows", "shuffle",
                                                        "compression")})


class WriteFrameCache(Writer):
    """hexrd's frame-cache writer: ``threshold=``, ``cache_file=``, ``style='npz'|'fch5'``,
    ``max_workers=``; ``write(output_yaml=False)``."""

    fmt = "frame-cache"

    def __init__(self, ims, fname, style: str = "npz", **kwargs):
        super().__init__(ims, fname, style=style, **kwargs)
        if style not in ("npz", "fch5", "yml", "yaml"):
            raise InputTypeError(f"Unknown file style for writing framecache: {style}; "
                                 "supported: npz, fch5 (and yml)", argument="style")
        self.style = style
        cf = kwargs.get("cache_file")
        if hasattr(fname, "file"):
            self._cache = fname
        elif cf is None:
            self._cache = fname
        else:
            self._cache = cf if os.path.isabs(cf) else os.path.join(os.path.dirname(fname), cf)

    @property
    def cache(self):
        return self._cache

    def _check_sparsity(self, frame_id: int, count: int, buff_size: int) -> None:
        fullness = count / float(buff_size)
        if fullness > MAX_NZ_FRACTION:
            warnings.warn(f"frame {frame_id} is {100.0 * (1 - fullness):4.2f}% sparse "
                          f"(cutoff is {100 * (1 - MAX_NZ_FRACTION):.0f}%)")

    def write(self, output_yaml: bool = False) -> None:
        if output_yaml:
            warnings.warn("YAML output for frame-cache is deprecated", DeprecationWarning)
        write_series(self._ims, self._fname, self.fmt, output_yaml=output_yaml, **self._opts)


class _Registry:
    """Writer classes by format (hexrd's ``save._Registry``)."""

    writer_registry = {"hdf5": WriteH5, "frame-cache": WriteFrameCache}

    @classmethod
    def register(cls, wcls) -> None:
        if wcls.__name__ != "Writer":
            cls.writer_registry[wcls.fmt] = wcls

    @classmethod
    def getwriter(cls, name: str):
        """The writer class of format ``name``: hexrd's classes above, else a
        :class:`Writer` for any writable registered format."""
        if name in cls.writer_registry:
            return cls.writer_registry[name]
        entry = get_format(name)  # UnknownFormatError (a KeyError) for unknown names
        return type(f"Write_{name}", (Writer,), {"fmt": entry.name})
