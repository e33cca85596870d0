"""Import shim (tools only, never installed): ``hexrd.core.imageseries`` and its submodules
are xrsmap_dask's, so that hexrd's own imageseries tests run against our code.

Put ``tools/hexrd_shim`` first on ``PYTHONPATH`` (``tools/hexrd_suite.sh`` does).
"""
import importlib
import sys

_OURS = "xrsmap_dask.imageseries"
_MODULES = ["", ".stats", ".process", ".omega", ".save", ".load", ".load.registry",
            ".load.array", ".load.hdf5", ".load.framecache", ".load.imagefiles",
            ".load.rawimage", ".load.function", ".load.metadata", ".load.eiger",
            ".load.eiger_stream_v1", ".load.eiger_stream_v2"]

for _suffix in _MODULES:
    sys.modules["hexrd.core.imageseries" + _suffix] = importlib.import_module(_OURS + _suffix)

from . import core  # noqa: E402

core.imageseries = sys.modules["hexrd.core.imageseries"]
