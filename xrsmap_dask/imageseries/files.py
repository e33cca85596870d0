"""The ``files`` format: a plain list of image files, or a glob (anything fabio reads).

``open(['a.edf', 'b.edf'])``, ``open('scan/*.edf')`` or ``open('frame.cbf')``: headers are
read at open, frames on demand (:class:`~xrsmap_dask.imageseries.filelist.FileListImageSeries`).
"""
from __future__ import annotations

import glob
import os

from ..io import edf
from ._errors import InputNotFoundError
from .filelist import FileListImageSeries
from .registry import ImageSeriesFormat, has_suffix, register

#: image file endings claimed when guessing (fabio reads many more: pass format='files')
IMAGE_SUFFIXES = (".edf", ".ehf", ".cbf", ".tif", ".tiff", ".img", ".mccd", ".sfrm",
                  ".mar3450", ".mar2300", ".gfrm", ".kccd", ".ge2", ".ge3", ".ge5", ".gel")


def expand_paths(filename) -> list[str]:
    """A list of paths as given, a glob pattern (sorted matches) or a single path."""
    if isinstance(filename, (list, tuple)):
        return [os.fspath(p) for p in filename]
    name = os.fspath(filename)
    if any(ch in name for ch in "*?[") and not os.path.exists(name):
        found = sorted(glob.glob(name))
        if not found:
            raise InputNotFoundError("no file matches this pattern", path=name)
        return found
    return [name]


class FilesFormat(ImageSeriesFormat):
    name = "files"
    description = "image files (EDF, CBF, TIFF, ... anything fabio reads): a list or a glob"
    suffixes = tuple(s + c for s in IMAGE_SUFFIXES for c in ("",) + tuple(edf.COMPRESSED_SUFFIXES))
    open_keywords = frozenset({"dtype", "meta", "empty_frames", "max_file_frames",
                               "max_total_frames", "progress"})
    accepts_on_error = True
    guess_priority = -2

    def guess_can_open(self, path: str) -> bool:
        if has_suffix(path, self.suffixes):
            return True
        try:
            with open(path, "rb") as f:
                return f.read(1) == b"{"  # an EDF header under another name
        except OSError:
            return False

    def open(self, filename, **kwargs) -> FileListImageSeries:
        return FileListImageSeries(expand_paths(filename), **kwargs)


register(FilesFormat())
