"""hexrd's ``EigerStreamV2ImageSeriesAdapter(fname, threshold_setting=, multiplier=)``."""
from ..eigerstream import EigerStreamV2ImageSeries
from . import _SeriesAdapter


class EigerStreamV2ImageSeriesAdapter(_SeriesAdapter):
    format = "eiger-stream-v2"

    def __init__(self, fname, threshold_setting: str = "threshold_1", multiplier: float = 1):
        super().__init__(EigerStreamV2ImageSeries(fname, threshold_setting, multiplier))
