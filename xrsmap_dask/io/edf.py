"""Fast EDF reading: parse headers, then read only the ROI rows with one positioned read.

An EDF file is one or more blocks ``{ header }`` + raw data.  The header is ASCII
``key = value ;`` statements; its length varies between files of the same scan (writers pad
it to a multiple of 512 bytes), so each file's header is parsed.  ``Dim_1`` is the number of
columns (fast axis), ``Dim_2`` the number of rows; rows are stored top row first, as numpy
shows them.  The header ends at the first ``}`` followed by a newline (``}\n`` or
``}\r\n``), as fabio reads it: a ``}`` inside a value (``Title = macro {scan} end ;``) does
not end it.

Every frame is the bytes that were written, or an error (:class:`FrameReadError` naming the
file and the frame in it): unlike fabio, a short file or a short compressed block is never
zero-padded, a long one never silently cut, an unknown ``ByteOrder``, ``DataType`` or
``Compression`` never guessed.  Header sizes are checked before anything is allocated:
``Dim_1``/``Dim_2`` at most :data:`MAX_DIM`, uncompressed data within the file, a compressed
block's promised pixels at most :data:`MAX_FRAME_BYTES` and, for gzip/zlib, at most
1032 times its compressed size (so ``Dim_1 = 10**12`` is an error in microseconds).
Compressed blocks (``Compression = gzip``, ``z``/``zlib``, ``bz2``) are decoded here with
bounded output.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from ..errors import FrameReadError, short_repr
from .compressed import (BLOCK_CODECS, COMPRESSED_SUFFIXES, DEFLATE_MAX_RATIO,  # noqa: F401
                         compression_of, decode_block, decompress_file)
from .files import MAX_DIM, MAX_FRAME_BYTES, open_regular

#: EDF ``DataType`` names (lower case, spaces removed) -> numpy dtype (without byte order).
EDF_DATA_TYPES: dict[str, str] = {
    "signedbyte": "i1", "signed8": "i1", "unsignedbyte": "u1", "unsigned8": "u1",
    "unsignedchar": "u1", "signedshort": "i2", "signed16": "i2", "unsignedshort": "u2",
    "unsigned16": "u2", "unsignedshortinteger": "u2", "signedinteger": "i4",
    "signed32": "i4", "unsignedinteger": "u4", "unsigned32": "u4", "signedlong": "i4",
    "unsignedlong": "u4", "signed64": "i8", "unsigned64": "u8", "floatvalue": "f4",
    "float": "f4", "floatieee32": "f4", "float32": "f4", "real": "f4", "double": "f8",
    "doublevalue": "f8", "floatieee64": "f8", "doubleieee64": "f8",
}
#: EDF ``ByteOrder`` values (lower case) -> numpy byte order; a missing one is LowByteFirst
BYTE_ORDERS = {"lowbytefirst": "<", "highbytefirst": ">"}
_FIRST_READ = 4096
_MAX_HEADER = 1 << 20
_HEADER_END = re.compile(rb"}\r?\n")
_STATEMENT = re.compile(rb"[;\n]")
_BLANK = b" \t\r\n\x0b\x0c\x00"


@dataclass(frozen=True)
class EdfFrameInfo:
    """Where one EDF frame's pixels are: ``size`` bytes at ``offset`` into ``path``, C order.

    ``dtype`` carries the file's byte order.  ``compression`` is ``None`` (raw pixels, read
    by positioned reads) or one of ``'gzip'``, ``'zlib'``, ``'bz2'`` (the block is decoded
    whole, see :func:`read_compressed_block`).
    """

    path: str
    index_in_file: int
    offset: int
    shape: tuple[int, int]
    dtype: np.dtype
    compression: str | None
    header: dict
    file_size: int
    size: int

    @property
    def compressed(self) -> bool:
        return self.compression is not None

    @property
    def nbytes(self) -> int:
        """Bytes of the (decompressed) pixels."""
        return self.shape[0] * self.shape[1] * self.dtype.itemsize


def parse_header_text(text: str | bytes) -> dict[str, str]:
    """``key = value ;`` statements (ASCII) -> dict (keys as written, values stripped; the last
    of a repeated key wins).  Statements end at ``;`` (as fabio splits them) or a line end."""
    header: dict[str, str] = {}
    for statement in _STATEMENT.split(text.encode("ascii") if isinstance(text, str) else text):
        key, eq, value = statement.partition(b"=")
        if eq:
            header[key.strip(_BLANK).decode("ascii")] = value.strip(_BLANK).decode("ascii")
    return header


def _pread_checked(pread, n: int, pos: int, path: str, index: int) -> bytes:
    try:
        return pread(n, pos)
    except OSError as exc:
        raise FrameReadError(f"cannot read: {exc.strerror or exc}", path=path,
                             frame=index) from None


def _read_header_block(pread, pos: int, path: str, index: int) -> tuple[dict, int]:
    """Read the header starting at ``pos`` (``pread(nbytes, pos) -> bytes``); return
    (header dict, data offset)."""
    buf = _pread_checked(pread, _FIRST_READ, pos, path, index)
    if not buf:
        raise FrameReadError("empty file or no EDF header", path=path, frame=index)
    start = buf.find(b"{")
    if start < 0 or buf[:start].strip():
        raise FrameReadError("not an EDF file (header must start with '{')", path=path,
                             frame=index)
    search = start + 1
    while (end := _HEADER_END.search(buf, search)) is None:
        if len(buf) >= _MAX_HEADER:
            raise FrameReadError(f"EDF header has no closing '}}' within {_MAX_HEADER} bytes",
                                 path=path, frame=index)
        more = _pread_checked(pread, _FIRST_READ * 4, pos + len(buf), path, index)
        if not more:
            raise FrameReadError("EDF header is truncated (no closing '}' and newline)",
                                 path=path, frame=index)
        search = max(search, len(buf) - 2)  # '}' or '}\r' may end the previous read
        buf += more
    text = buf[start + 1:end.start()]
    if not text.isascii():
        raise FrameReadError("EDF header is not ASCII (corrupt header)", path=path,
                             frame=index)
    return parse_header_text(text), pos + end.end()


def _int_field(fields: dict, key: str, path: str, index: int, default=None) -> int | None:
    text = fields.get(key.lower())
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise FrameReadError(f"EDF {key} = {short_repr(text)} is not an integer", path=path,
                             frame=index) from None


def _dims(fields: dict, path: str, index: int) -> tuple[int, int]:
    if "dim_1" not in fields:
        raise FrameReadError("EDF header lacks a valid Dim_1/Dim_2 (no Dim_1)", path=path,
                             frame=index)
    ncols = _int_field(fields, "Dim_1", path, index)
    nrows = _int_field(fields, "Dim_2", path, index, default=1)
    for name, value in (("Dim_1", ncols), ("Dim_2", nrows)):
        if not 1 <= value <= MAX_DIM:
            raise FrameReadError(f"EDF header gives {name} = {value}, outside 1..{MAX_DIM} "
                                 f"(Dim_1 = {ncols}, Dim_2 = {nrows})", path=path, frame=index)
    dim3 = _int_field(fields, "Dim_3", path, index, default=1)
    if dim3 != 1:
        raise FrameReadError(f"3-D EDF blocks (Dim_3 = {dim3}) are not supported", path=path,
                             frame=index)
    return nrows, ncols


def _dtype(fields: dict, path: str, index: int) -> np.dtype:
    dtype_name = (fields.get("datatype") or "").replace(" ", "")
    code = EDF_DATA_TYPES.get(dtype_name.lower())
    if code is None:
        raise FrameReadError(f"unknown EDF DataType {short_repr(dtype_name)}", path=path,
                             frame=index)
    order_name = fields.get("byteorder", "LowByteFirst")
    order = BYTE_ORDERS.get(order_name.lower())
    if order is None:
        raise FrameReadError(f"unknown EDF ByteOrder {short_repr(order_name)} (expected "
                             "LowByteFirst or HighByteFirst)", path=path, frame=index)
    dtype = np.dtype(code)
    return dtype if dtype.itemsize == 1 else dtype.newbyteorder(order)


_CODEC_NAMES = {"GZIP": "gzip", "GZ": "gzip", "Z": "zlib", "ZLIB": "zlib", "BZ": "bz2",
                "BZ2": "bz2", "BZIP": "bz2", "BZIP2": "bz2"}


def _compression(fields: dict, path: str, index: int) -> str | None:
    """``None`` or a codec of :data:`BLOCK_CODECS`.  Names as fabio writes and reads them
    (``None``, ``NoCompression``; ``gzip``, ``GzipCompression``, ``z``, ``ZCompression``,
    ``bz2`` ..., any case); anything else is refused."""
    name = fields.get("compression", "")
    up = re.sub(r"[^A-Z0-9]", "", name.upper())
    if up == "" or up.startswith("NO"):
        return None
    codec = _CODEC_NAMES.get(up.removesuffix("COMPRESSION") or up)
    if codec is None:
        what = "not supported" if "OFFSET" in up else "unknown"
        raise FrameReadError(f"EDF Compression {short_repr(name)}: {what} (gzip, zlib and "
                             "bz2 blocks are read)", path=path, frame=index)
    return codec


def _frame_from_header(header: dict, path: str, index: int, offset: int,
                       file_size: int) -> EdfFrameInfo:
    """The frame one header describes, its sizes checked against the file (no allocation)."""
    fields = {k.lower(): v for k, v in header.items()}
    nrows, ncols = _dims(fields, path, index)
    dtype = _dtype(fields, path, index)
    compression = _compression(fields, path, index)
    if "edf_binaryfilename" in fields:
        raise FrameReadError("EDF data in a separate file (EDF_BinaryFileName) is not "
                             "supported", path=path, frame=index)
    nbytes = nrows * ncols * dtype.itemsize
    key = "Size" if "size" in fields else "EDF_BinarySize"
    size = _int_field(fields, key, path, index)
    if size is None:
        if compression:
            raise FrameReadError("compressed EDF block without a Size", path=path, frame=index)
        size = nbytes
    where = f"{nrows} x {ncols} x {dtype.itemsize} bytes"
    if size < 0 or (compression and size == 0):
        raise FrameReadError(f"EDF {key} = {size} is not a valid block size", path=path,
                             frame=index)
    if offset + size > file_size:
        raise FrameReadError(f"truncated: header promises {size} data bytes at offset "
                             f"{offset}, file has {file_size - offset}", path=path, frame=index)
    if not compression and size < nbytes:
        raise FrameReadError(f"EDF {key} {size} is smaller than {where}", path=path,
                             frame=index)
    if compression and (nbytes > MAX_FRAME_BYTES or (
            compression != "bz2" and nbytes > DEFLATE_MAX_RATIO * size + 64)):
        raise FrameReadError(f"EDF header promises {where} from a {size}-byte {compression} "
                             f"block: more than it can hold (at most "
                             f"{MAX_FRAME_BYTES} bytes, and for gzip/zlib at most "
                             f"{DEFLATE_MAX_RATIO} times the block)", path=path, frame=index)
    return EdfFrameInfo(path, index, offset, (nrows, ncols), dtype, compression, header,
                        file_size, size)


def parse_edf(pread, file_size: int, path: str, partial: bool = False):
    """Parse every EDF block of a byte source of ``file_size`` bytes.

    ``pread(nbytes, pos) -> bytes`` reads the source (a file, or decompressed bytes).  Raises
    :class:`FrameReadError` (naming ``path`` and the frame in the file) for an empty,
    truncated or corrupt source.  With ``partial=True`` returns ``(frames, error)`` instead:
    the blocks parsed before the first bad one, and that error (``None`` if all are good).
    """
    frames: list[EdfFrameInfo] = []
    error = None
    try:
        if file_size == 0:
            raise FrameReadError("empty file", path=path, frame=0)
        pos = 0
        while pos < file_size:
            index = len(frames)
            # tolerate trailing padding (spaces, newlines, NULs) after the last block
            if index and not _pread_checked(pread, 64, pos, path, index).strip(_BLANK):
                break
            header, offset = _read_header_block(pread, pos, path, index)
            info = _frame_from_header(header, path, index, offset, file_size)
            frames.append(info)
            pos = offset + info.size  # > pos: a header is at least 3 bytes, a size >= 0
    except FrameReadError as exc:
        if not partial:
            raise
        error = exc
    return (frames, error) if partial else frames


def read_edf_headers(path: str, partial: bool = False):
    """Parse every header of an EDF file (reading headers only) and check the file size.

    Raises :class:`FrameReadError` for a missing, empty, truncated or corrupt file, or a path
    that is not a regular file (a directory, a FIFO: never a hang); with ``partial=True`` a
    bad block returns ``(good frames before it, error)`` (see :func:`parse_edf`), a file that
    cannot be opened still raises.
    """
    path = os.fspath(path)
    fd = open_regular(path)
    try:
        return parse_edf(lambda n, pos: os.pread(fd, n, pos), os.fstat(fd).st_size, path,
                         partial)
    finally:
        os.close(fd)


def read_compressed_edf(path: str) -> tuple[bytearray, list[EdfFrameInfo]]:
    """Decompress a whole-file-compressed EDF (``.edf.gz`` ...) and parse its headers;
    offsets in the returned infos are into the decompressed bytes."""
    data = decompress_file(path)
    view = memoryview(data)
    return data, parse_edf(lambda n, pos: bytes(view[pos:pos + n]), len(data), path)


def frame_from_bytes(data, info: EdfFrameInfo, rows: slice, cols: slice,
                     frame: int | None = None, offset: int | None = None) -> np.ndarray:
    """``[rows, cols]`` (native byte order) of the frame ``info`` whose block sits at
    ``offset`` (default ``info.offset``) in ``data``; a compressed block is decoded (to
    exactly ``info.nbytes``, else :class:`FrameReadError`)."""
    nrows, ncols = info.shape
    offset = info.offset if offset is None else offset
    if info.compressed:
        block = memoryview(data)[offset:offset + info.size]
        data, offset = decode_block(block, info.compression, info.nbytes, info.path, frame), 0
    arr = np.frombuffer(data, dtype=info.dtype, count=nrows * ncols, offset=offset)
    return arr.reshape(nrows, ncols)[rows, cols].astype(info.dtype.newbyteorder("="))


def read_compressed_block(info: EdfFrameInfo, rows: slice, cols: slice,
                          frame: int | None = None) -> np.ndarray:
    """``[rows, cols]`` of the compressed frame ``info`` of a plain EDF file: one positioned
    read of its block, then a bounded decode.  A file whose size is no longer
    ``info.file_size`` raises :class:`FrameReadError` (its offsets may be stale)."""
    fd = open_regular(info.path, frame)
    try:
        _check_unchanged(fd, info.file_size, info.path, frame)
        raw = os.pread(fd, info.size, info.offset)
    except OSError as exc:
        raise FrameReadError(f"cannot read: {exc.strerror or exc}", path=info.path,
                             frame=frame) from None
    finally:
        os.close(fd)
    if len(raw) != info.size:
        raise FrameReadError(f"truncated: read {len(raw)} of {info.size} bytes at offset "
                             f"{info.offset}", path=info.path, frame=frame)
    return frame_from_bytes(raw, info, rows, cols, frame, offset=0)


def _check_unchanged(fd: int, file_size: int | None, path: str, frame: int | None) -> None:
    if file_size is None:
        return
    now = os.fstat(fd).st_size
    if now != file_size:
        raise FrameReadError(
            f"file changed since its header was parsed (size {now}, was {file_size}): "
            "its header or data length differs; reopen the series", path=path, frame=frame)


def read_rows(path: str, offset: int, shape: tuple[int, int], dtype: np.dtype,
              rows: slice, cols: slice, out: np.ndarray | None = None,
              frame: int | None = None, file_size: int | None = None,
              scratch: np.ndarray | None = None) -> np.ndarray:
    """Read ``data[rows, cols]`` of one uncompressed frame with one positioned read.

    ``out`` (native byte order, shape of the ROI) is filled in place when given.  A short
    read (file truncated after its header was parsed) raises :class:`FrameReadError`; so does
    a file whose size is no longer ``file_size`` (rewritten since its header was parsed, e.g.
    with a header of another length: the recorded offset would point at the wrong bytes).
    ``scratch`` (a uint8 array of at least the rows' bytes) is reused for the read when the
    ROI is narrower than the frame, avoiding a fresh allocation per frame.
    """
    ncols = shape[1]
    itemsize = dtype.itemsize
    row_bytes = ncols * itemsize
    nrows = rows.stop - rows.start
    want = nrows * row_bytes
    fd = open_regular(path, frame)
    try:
        _check_unchanged(fd, file_size, path, frame)
        start = offset + rows.start * row_bytes
        full_width = cols.start == 0 and cols.stop == ncols
        if out is not None and full_width and dtype.isnative and out.flags.c_contiguous \
                and out.dtype == dtype:
            got = os.preadv(fd, [memoryview(out).cast("B")], start)
            if got != want:
                raise FrameReadError(f"truncated: read {got} of {want} bytes at offset {start}",
                                     path=path, frame=frame)
            return out
        if scratch is not None and scratch.nbytes >= want:
            buf = scratch[:want]
            got = os.preadv(fd, [memoryview(buf)], start)
        else:
            buf = os.pread(fd, want, start)
            got = len(buf)
    except OSError as exc:
        raise FrameReadError(f"cannot read: {exc.strerror or exc}", path=path,
                             frame=frame) from None
    finally:
        os.close(fd)
    if got != want:
        raise FrameReadError(f"truncated: read {got} of {want} bytes at offset {start}",
                             path=path, frame=frame)
    block = np.frombuffer(buf, dtype=dtype).reshape(nrows, ncols)[:, cols]
    if out is None:
        return block.astype(dtype.newbyteorder("="))
    out[...] = block
    return out
