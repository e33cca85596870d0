"""Fast EDF reading: parse headers, then read only the ROI rows with one positioned read.

An EDF file is one or more blocks ``{ header }`` + raw data.  The header is ASCII
``key = value ;`` lines; its length varies between files of the same scan (writers pad it to
a multiple of 512 bytes), so each file's header is parsed.  ``Dim_1`` is the number of columns
(fast axis), ``Dim_2`` the number of rows; rows are stored top row first, as numpy shows them.

Unlike fabio's fast path, a file shorter than its header promises raises
:class:`~xrsmap_dask.errors.FrameReadError` naming the file: it is never zero-padded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import FrameReadError

#: EDF ``DataType`` names -> numpy dtype (without byte order).
EDF_DATA_TYPES: dict[str, str] = {
    "signedbyte": "i1", "signed8": "i1", "unsignedbyte": "u1", "unsigned8": "u1",
    "unsignedchar": "u1", "signedshort": "i2", "signed16": "i2", "unsignedshort": "u2",
    "unsigned16": "u2", "unsignedshortinteger": "u2", "signedinteger": "i4",
    "signed32": "i4", "unsignedinteger": "u4", "unsigned32": "u4", "signedlong": "i4",
    "unsignedlong": "u4", "signed64": "i8", "unsigned64": "u8", "floatvalue": "f4",
    "float": "f4", "floatieee32": "f4", "float32": "f4", "real": "f4", "double": "f8",
    "doublevalue": "f8", "floatieee64": "f8", "doubleieee64": "f8",
}
_UNCOMPRESSED = {"", "none", "nocompression", "no"}
_FIRST_READ = 4096
_MAX_HEADER = 1 << 20


@dataclass(frozen=True)
class EdfFrameInfo:
    """Where one EDF frame's pixels are: ``offset`` bytes into ``path``, C order.

    ``dtype`` carries the file's byte order; ``compressed`` frames cannot be read by
    positioned reads (use fabio).
    """

    path: str
    index_in_file: int
    offset: int
    shape: tuple[int, int]
    dtype: np.dtype
    compressed: bool
    header: dict
    file_size: int


def parse_header_text(text: str) -> dict[str, str]:
    """``key = value ;`` lines -> dict (keys as written, values stripped)."""
    header: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip().rstrip(";").strip()
        if "=" not in line:
            continue
        key, _, value = line.partition("=")
        header[key.strip()] = value.strip()
    return header


def _lookup(header: dict[str, str], key: str) -> str | None:
    low = key.lower()
    for k, v in header.items():
        if k.lower() == low:
            return v
    return None


def _read_header_block(pread, pos: int, path: str, index: int) -> tuple[dict, int]:
    """Read the header starting at ``pos`` (``pread(nbytes, pos) -> bytes``); return
    (header dict, data offset)."""
    buf = pread(_FIRST_READ, pos)
    if not buf:
        raise FrameReadError("empty file or no EDF header", path=path, frame=index)
    start = buf.find(b"{")
    if start != 0 and buf[:start].strip():
        raise FrameReadError("not an EDF file (header must start with '{')", path=path,
                             frame=index)
    end = buf.find(b"}")
    while end < 0:
        if len(buf) >= _MAX_HEADER:
            raise FrameReadError("EDF header has no closing '}'", path=path, frame=index)
        more = pread(_FIRST_READ * 4, pos + len(buf))
        if not more:
            raise FrameReadError("EDF header is truncated (no closing '}')", path=path,
                                 frame=index)
        buf += more
        end = buf.find(b"}")
    data_start = end + 1
    # the header ends with "}\n" (sometimes "}\r\n")
    if buf[data_start:data_start + 2] == b"\r\n":
        data_start += 2
    elif buf[data_start:data_start + 1] == b"\n":
        data_start += 1
    try:
        text = buf[start + 1:end].decode("ascii", errors="strict")
    except UnicodeDecodeError:
        raise FrameReadError("EDF header is not ASCII (corrupt header)", path=path,
                             frame=index) from None
    return parse_header_text(text), pos + data_start


def _frame_from_header(header: dict, path: str, index: int, offset: int,
                       file_size: int) -> tuple[EdfFrameInfo, int]:
    """Build the frame description and return it with the data size in bytes."""
    try:
        ncols = int(_lookup(header, "Dim_1"))
        nrows = int(_lookup(header, "Dim_2") or 1)
    except (TypeError, ValueError):
        raise FrameReadError("EDF header lacks a valid Dim_1/Dim_2", path=path,
                             frame=index) from None
    if ncols < 1 or nrows < 1:
        raise FrameReadError(f"EDF header gives an empty frame (Dim_1 = {ncols}, Dim_2 = "
                             f"{nrows})", path=path, frame=index)
    dim3 = _lookup(header, "Dim_3")
    if dim3 not in (None, "1"):
        raise FrameReadError(f"3-D EDF blocks (Dim_3 = {dim3}) are not supported", path=path,
                             frame=index)
    dtype_name = (_lookup(header, "DataType") or "").replace(" ", "")
    code = EDF_DATA_TYPES.get(dtype_name.lower())
    if code is None:
        raise FrameReadError(f"unknown EDF DataType {dtype_name!r}", path=path, frame=index)
    order = (_lookup(header, "ByteOrder") or "LowByteFirst").lower()
    dtype = np.dtype(code).newbyteorder(">" if order.startswith("high") else "<")
    if dtype.itemsize == 1:
        dtype = np.dtype(code)
    compression = (_lookup(header, "Compression") or "").lower()
    compressed = compression not in _UNCOMPRESSED
    nbytes = nrows * ncols * dtype.itemsize
    size_text = _lookup(header, "Size") or _lookup(header, "EDF_BinarySize")
    if size_text is not None:
        try:
            size = int(size_text)
        except ValueError:
            raise FrameReadError(f"EDF Size {size_text!r} is not an integer", path=path,
                                 frame=index) from None
    else:
        size = nbytes
    if not compressed and size < nbytes:
        raise FrameReadError(f"EDF Size {size} is smaller than {nrows} x {ncols} x "
                             f"{dtype.itemsize} bytes", path=path, frame=index)
    info = EdfFrameInfo(path, index, offset, (nrows, ncols), dtype, compressed, header, file_size)
    return info, size


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
            if index and not pread(64, pos).strip(b" \n\r\t\x00"):
                break
            header, offset = _read_header_block(pread, pos, path, index)
            info, size = _frame_from_header(header, path, index, offset, file_size)
            if offset + size > file_size:
                raise FrameReadError(
                    f"truncated: header promises {size} data bytes at offset {offset}, "
                    f"file has {file_size - offset}", path=path, frame=index)
            frames.append(info)
            pos = offset + size
    except FrameReadError as exc:
        if not partial:
            raise
        error = exc
    return (frames, error) if partial else frames


def read_edf_headers(path: str, partial: bool = False):
    """Parse every header of an EDF file (reading headers only) and check the file size.

    Raises :class:`FrameReadError` for a missing, empty, truncated or corrupt file; with
    ``partial=True`` a bad block returns ``(good frames before it, error)`` (see
    :func:`parse_edf`), a file that cannot be opened still raises.
    """
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise FrameReadError("file not found", path=path) from None
    except OSError as exc:
        raise FrameReadError(f"cannot open: {exc.strerror}", path=path) from None
    try:
        return parse_edf(lambda n, pos: os.pread(fd, n, pos), os.fstat(fd).st_size, path,
                         partial)
    finally:
        os.close(fd)


#: whole-file compression suffixes of EDF files we decompress ourselves
COMPRESSED_SUFFIXES = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}


def compression_of(path: str) -> str | None:
    """``'gzip'``/``'bz2'``/``'lzma'`` for a whole-file-compressed name, else ``None``."""
    low = path.lower()
    for suffix, name in COMPRESSED_SUFFIXES.items():
        if low.endswith(suffix):
            return name
    return None


def decompress_file(path: str, frame: int | None = None) -> bytes:
    """All the bytes of a gzip/bz2/xz file; a cut or corrupt stream raises
    :class:`FrameReadError` (never a short or zero-filled result)."""
    import bz2
    import gzip
    import lzma
    import zlib

    opener = {"gzip": gzip.open, "bz2": bz2.open, "lzma": lzma.open}[compression_of(path)]
    try:
        with opener(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise FrameReadError("file not found", path=path, frame=frame) from None
    except (EOFError, OSError, zlib.error, lzma.LZMAError, ValueError) as exc:
        raise FrameReadError(f"truncated or corrupt compressed stream: {exc or type(exc).__name__}",
                             path=path, frame=frame) from None


def read_compressed_edf(path: str) -> tuple[bytes, list[EdfFrameInfo]]:
    """Decompress a whole-file-compressed EDF (``.edf.gz`` ...) and parse its headers;
    offsets in the returned infos are into the decompressed bytes."""
    data = decompress_file(path)
    view = memoryview(data)
    return data, parse_edf(lambda n, pos: bytes(view[pos:pos + n]), len(data), path)


def frame_from_bytes(data: bytes, info: EdfFrameInfo, rows: slice, cols: slice) -> np.ndarray:
    """``[rows, cols]`` of the uncompressed frame ``info`` held in ``data`` (native order)."""
    nrows, ncols = info.shape
    arr = np.frombuffer(data, dtype=info.dtype, count=nrows * ncols, offset=info.offset)
    return arr.reshape(nrows, ncols)[rows, cols].astype(info.dtype.newbyteorder("="))


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
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise FrameReadError("file not found", path=path, frame=frame) from None
    except OSError as exc:
        raise FrameReadError(f"cannot open: {exc.strerror}", path=path, frame=frame) from None
    try:
        if file_size is not None:
            now = os.fstat(fd).st_size
            if now != file_size:
                raise FrameReadError(
                    f"file changed since its header was parsed (size {now}, was {file_size}): "
                    "its header or data length differs; reopen the series", path=path,
                    frame=frame)
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
