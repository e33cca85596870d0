"""Decompression with bounded output: whole-file ``.gz``/``.bz2``/``.xz`` images and the
gzip/zlib/bz2 data blocks of EDF files.

A cut, corrupt or lying stream is a :class:`~xrsmap_dask.errors.FrameReadError` naming the
file: output is never zero-padded nor silently cut to the size a header promises, and never
grows past the bytes asked for (a decompression bomb stops at the limit).
"""
from __future__ import annotations

import bz2
import lzma
import zlib

from ..errors import FrameReadError
from .files import require_regular

#: whole-file compression suffixes we decompress ourselves
COMPRESSED_SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}
#: most bytes a whole-file compressed image may decompress to (4 GiB): a stream going past
#: it is refused as corrupt instead of filling memory
MAX_DECOMPRESSED_BYTES = 1 << 32
#: deflate (gzip, zlib) expands data at most 1032 times: a header promising more pixels than
#: that from its compressed block is lying
DEFLATE_MAX_RATIO = 1032
#: EDF ``Compression`` values we decode, as their codec name
BLOCK_CODECS = ("gzip", "zlib", "bz2")
_STEP = 1 << 20


def compression_of(path: str) -> str | None:
    """``'gzip'``/``'bz2'``/``'lzma'`` for a whole-file-compressed name, else ``None``."""
    low = path.lower()
    for suffix, name in COMPRESSED_SUFFIXES.items():
        if low.endswith(suffix):
            return name
    return None


def _decompressor(codec: str):
    if codec == "bz2":
        return bz2.BZ2Decompressor()
    if codec == "lzma":
        return lzma.LZMADecompressor()
    return zlib.decompressobj(47)  # gzip or zlib header, detected


_ERRORS = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError)


def decompress_file(path: str, frame: int | None = None,
                    max_bytes: int = MAX_DECOMPRESSED_BYTES) -> bytearray:
    """All the bytes of a gzip/bz2/xz file (concatenated streams included).

    Raises :class:`FrameReadError` for a cut or corrupt stream, trailing garbage, or more
    than ``max_bytes`` of output.
    """
    codec = compression_of(path)
    require_regular(path, frame)
    out = bytearray()
    try:
        with open(path, "rb") as f:
            d, fed = _decompressor(codec), False
            while data := f.read(_STEP):
                while data:  # output < the limit asked: all input taken or the stream ended
                    out += _bounded(d, data, max_bytes - len(out), max_bytes, path, frame)
                    fed = True
                    data = b""
                    if d.eof:  # another stream may follow (cat a.gz b.gz)
                        data = d.unused_data
                        d, fed = _decompressor(codec), False
    except _ERRORS as exc:
        raise FrameReadError(f"truncated or corrupt compressed stream: {exc or type(exc).__name__}",
                             path=path, frame=frame) from None
    if fed or not out:
        raise FrameReadError("truncated compressed stream (it ends early)", path=path,
                             frame=frame)
    return out


def _bounded(d, data: bytes, room: int, limit: int, path: str, frame: int | None) -> bytes:
    """Feed ``data`` to ``d``; more than ``room`` bytes of output is an error."""
    got = d.decompress(data, room + 1)
    if len(got) > room:
        raise FrameReadError(f"decompresses to more than {limit} bytes "
                             "(the limit for a compressed image file)", path=path, frame=frame)
    return got


def decode_block(raw, codec: str, nbytes: int, path: str, frame: int | None = None) -> bytes:
    """The ``nbytes`` bytes of one compressed EDF data block ``raw`` (``codec`` one of
    :data:`BLOCK_CODECS`); any other length, or a cut or corrupt stream, raises
    :class:`FrameReadError`.  At most ``nbytes + 1`` bytes are ever produced."""
    d = _decompressor(codec)
    try:
        out = d.decompress(bytes(raw), nbytes + 1)
    except _ERRORS as exc:
        raise FrameReadError(f"corrupt {codec} data block: {exc or type(exc).__name__}",
                             path=path, frame=frame) from None
    if len(out) > nbytes:
        raise FrameReadError(f"{codec} data block holds more than the {nbytes} bytes its "
                             "header promises", path=path, frame=frame)
    if not d.eof:
        raise FrameReadError(f"{codec} data block is cut (its stream does not end)",
                             path=path, frame=frame)
    if len(out) < nbytes:
        raise FrameReadError(f"{codec} data block decompresses to {len(out)} bytes, its "
                             f"header promises {nbytes} (cut or lying header)", path=path,
                             frame=frame)
    return out
