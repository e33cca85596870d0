"""hexrd's ``FunctionImageSeriesAdapter(None, func=, num_frames=, meta=)``: frames by int
index only, as hexrd's (``adapter[j]``; slices and tuples are refused)."""
import numpy as np

from .._errors import InputTypeError, MissingEntryError
from ..function import FunctionImageSeries
from . import _SeriesAdapter


class FunctionImageSeriesAdapter(_SeriesAdapter):
    format = "function"

    def __init__(self, fname=None, func=None, num_frames=None, meta=None):
        if func is None or num_frames is None:
            raise MissingEntryError("needs func= and num_frames=",
                                    argument="func" if func is None else "num_frames")
        super().__init__(FunctionImageSeries(func, num_frames, meta))

    def __getitem__(self, key):
        if not isinstance(key, (int, np.integer)):
            raise InputTypeError(f"Only int keys are supported, but {key!r} was provided",
                                 argument="key")
        return super().__getitem__(key)
