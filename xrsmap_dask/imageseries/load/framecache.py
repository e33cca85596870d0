"""hexrd's ``FrameCacheImageSeriesAdapter(fname, style=, path=, max_workers=)``."""
from ..framecache import open_framecache
from . import _SeriesAdapter


class FrameCacheImageSeriesAdapter(_SeriesAdapter):
    format = "frame-cache"

    def __init__(self, fname, style=None, path=None, max_workers=None):
        super().__init__(open_framecache(fname, style=style, path=path))
