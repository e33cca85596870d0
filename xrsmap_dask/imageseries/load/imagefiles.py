"""hexrd's ``ImageFilesImageSeriesAdapter(fname)`` (a YAML path or the YAML text)."""
from ..imagefiles import open_imagefiles
from . import _SeriesAdapter


class ImageFilesImageSeriesAdapter(_SeriesAdapter):
    format = "image-files"

    def __init__(self, fname):
        super().__init__(open_imagefiles(fname))
