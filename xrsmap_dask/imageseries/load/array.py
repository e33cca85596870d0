"""hexrd's ``ArrayImageSeriesAdapter(None, data=, meta=)``: a copy of the array."""
from ..array import ArrayImageSeries
from . import _SeriesAdapter


class ArrayImageSeriesAdapter(_SeriesAdapter):
    format = "array"

    def __init__(self, fname=None, data=None, meta=None):
        super().__init__(ArrayImageSeries(data, meta, copy=True))

    @property
    def _data(self):
        return self._adapter.data
