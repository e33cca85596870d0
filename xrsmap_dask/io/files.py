"""Opening input files: regular files only; the sanity limits every reader applies.

A directory named like an image (``scan_0001.edf/``), a FIFO or a device among the inputs is
a :class:`~xrsmap_dask.errors.FrameReadError` naming the file, never an ``IsADirectoryError``
and never a hang: files are opened with ``O_NONBLOCK`` (opening a FIFO for reading would
otherwise wait for a writer) and checked with ``fstat`` before the first read.
"""
from __future__ import annotations

import os
import stat

from ..errors import FrameReadError

#: largest frame axis (rows or columns) a header or array metadata may declare; more is taken
#: as a corrupt or lying header, refused before anything is allocated
MAX_DIM = 1 << 20
#: largest frame (bytes) a reader allocates on the word of metadata alone (a compressed EDF
#: block, a zarr array): 2 GiB
MAX_FRAME_BYTES = 1 << 31

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def _check_mode(mode: int, path: str, frame: int | None) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    raise FrameReadError(f"not a regular file: it is {kind}", path=path, frame=frame)


def open_regular(path: str, frame: int | None = None) -> int:
    """An ``os.open`` read-only descriptor of the regular file ``path`` (caller closes it).

    Raises :class:`FrameReadError` naming ``path`` and ``frame`` for a missing file, one that
    cannot be opened, or anything but a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FrameReadError("file not found", path=path, frame=frame) from None
    except OSError as exc:
        raise FrameReadError(f"cannot open: {exc.strerror}", path=path, frame=frame) from None
    try:
        _check_mode(os.fstat(fd).st_mode, path, frame)
    except BaseException:
        os.close(fd)
        raise
    return fd


def require_regular(path: str, frame: int | None = None) -> int:
    """Size in bytes of the regular file ``path`` (checked with ``stat``, for readers that
    open the file themselves, e.g. fabio or gzip); errors as :func:`open_regular`."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FrameReadError("file not found", path=path, frame=frame) from None
    except OSError as exc:
        raise FrameReadError(f"cannot open: {exc.strerror}", path=path, frame=frame) from None
    _check_mode(st.st_mode, path, frame)
    return st.st_size
