"""hexrd's ``EigerStreamV1ImageSeriesAdapter(fname)``."""
from ..eigerstream import EigerStreamV1ImageSeries
from . import _SeriesAdapter


class EigerStreamV1ImageSeriesAdapter(_SeriesAdapter):
    format = "eiger-stream-v1"

    def __init__(self, fname, **kwargs):
        super().__init__(EigerStreamV1ImageSeries(fname, **kwargs))
