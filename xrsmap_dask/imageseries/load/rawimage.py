"""hexrd's ``RawImageSeriesAdapter(fname)``."""
from ..rawimage import open_rawimage
from . import _SeriesAdapter


class RawImageSeriesAdapter(_SeriesAdapter):
    format = "raw-image"

    def __init__(self, fname, **kwargs):
        super().__init__(open_rawimage(fname, **kwargs))
