"""hexrd's ``HDF5ImageSeriesAdapter(fname, path=, dataname='images')``.

Ours keeps no file open (each read opens the file), so ``close()`` has nothing to do and the
adapter pickles as it is."""
import warnings

from ..hdf5 import open_hdf5
from . import _SeriesAdapter


class HDF5ImageSeriesAdapter(_SeriesAdapter):
    format = "hdf5"

    def __init__(self, fname, path=None, dataname: str = "images",
                 close_when_finished: bool = True):
        super().__init__(open_hdf5(fname, path=path, dataname=dataname))

    @property
    def _ndim(self) -> int:
        return self._adapter.ndim

    def close(self) -> None:
        """Nothing to close (hexrd's adapter keeps the file open; ours does not)."""

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - as hexrd: a warning, never an error in __del__
            warnings.warn("HDF5ImageSeries could not close h5 file")
