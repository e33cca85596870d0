"""xrsmap-dask: lazy, parallel maps from scanning X-ray diffraction frames.

Every image series is a lazy, chunked dask array whose blocks are ROI-restricted reads;
composite, ROI-sum, annulus and pixel-wise statistics maps run as dask graphs and are
written to zarr.  The public faces are :mod:`xrsmap_dask.imageseries` (hexrd-compatible),
:class:`xrsmap_dask.mapper.Mapper` (xrsmap-compatible) and the ``xrsmap-dask`` CLI.
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("xrsmap-dask")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

from .errors import FormatError, FrameReadError, InputError, UnsafeInputError  # noqa: E402

__all__ = ["__version__", "Mapper", "InputError", "FrameReadError", "FormatError",
           "UnsafeInputError"]


def __getattr__(name: str):
    """``from xrsmap_dask import Mapper`` (as the seed's ``xrsmap.Mapper``), imported on first
    use so that ``import xrsmap_dask`` stays light (the CLI's start-up)."""
    if name == "Mapper":
        from .mapper import Mapper

        return Mapper
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
