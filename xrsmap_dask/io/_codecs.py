"""Decoding raw HDF5 chunks outside HDF5 (numpy in, numpy out; no h5py here).

HDF5 runs every call, decompression included, behind one global lock, so threads only help
when the raw chunk bytes are fetched and decoded by code that releases the GIL.  This module
undoes an HDF5 filter pipeline with such libraries:

==========  =========================  ===========================================
filter id   name                       decoder
==========  =========================  ===========================================
1           deflate (gzip)             ``imagecodecs.deflate_decode`` (libdeflate)
2           shuffle (byte shuffle)     numpy (vectorised byte gather)
32001       blosc                      ``imagecodecs.blosc_decode``
32004       lz4 (HDF5 block format)    ``imagecodecs.lz4h5_decode``
32008       bitshuffle (+LZ4 / zstd)   ``bitshuffle.decompress_lz4`` / ``_zstd``
32015       zstd                       ``imagecodecs.zstd_decode``
32026       blosc2                     ``blosc2`` (only when that package is installed)
==========  =========================  ===========================================

Every other filter (szip, scale-offset, n-bit, fletcher32, bzip2, ZFP, ...) is left to HDF5:
:func:`chain_decodable` says no and the caller reads hyperslabs through h5py instead.

Conventions: a pipeline is the tuple of :class:`FilterSpec` in the order HDF5 applies them
when *writing*; decoding runs it backwards.  Bit ``i`` of a chunk's ``filter_mask`` set means
filter ``i`` was skipped for that chunk.  Every stage returns exactly the chunk's byte size;
anything else is a corrupt chunk (:class:`ChunkDecodeError`).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

DEFLATE, SHUFFLE, FLETCHER32, SZIP, NBIT, SCALEOFFSET = 1, 2, 3, 4, 5, 6
BLOSC, LZ4, BITSHUFFLE, ZSTD, BLOSC2, BZIP2 = 32001, 32004, 32008, 32015, 32026, 307

#: names of the filters an ``info`` listing shows (HDF5's own names otherwise)
FILTER_NAMES = {DEFLATE: "deflate", SHUFFLE: "shuffle", FLETCHER32: "fletcher32",
                SZIP: "szip", NBIT: "nbit", SCALEOFFSET: "scaleoffset", BLOSC: "blosc",
                LZ4: "lz4", BITSHUFFLE: "bitshuffle", ZSTD: "zstd", BLOSC2: "blosc2",
                BZIP2: "bzip2", 32017: "sz", 32013: "zfp", 32024: "sz3", 32028: "sperr",
                32018: "fcidecomp"}
_BITSHUFFLE_CODECS = {0: "", 2: "lz4", 3: "zstd"}


class ChunkDecodeError(ValueError):
    """A raw chunk that does not decode to the chunk's byte size."""


@dataclass(frozen=True)
class FilterSpec:
    """One stage of an HDF5 filter pipeline: filter id, client data values and HDF5 name."""

    id: int
    cd_values: tuple[int, ...] = ()
    name: str = ""

    @property
    def label(self) -> str:
        """Readable name, e.g. ``bitshuffle+lz4`` or ``deflate(4)``."""
        base = FILTER_NAMES.get(self.id) or self.name or f"filter-{self.id}"
        if self.id == BITSHUFFLE and len(self.cd_values) > 4:
            codec = _BITSHUFFLE_CODECS.get(self.cd_values[4], f"codec-{self.cd_values[4]}")
            return f"{base}+{codec}" if codec else base
        if self.id == DEFLATE and self.cd_values:
            return f"{base}({self.cd_values[0]})"
        return base


def _have(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def stage_decodable(spec: FilterSpec) -> bool:
    """Whether this module decodes filter ``spec`` (library installed, options understood)."""
    if spec.id in (DEFLATE, LZ4, ZSTD, BLOSC):
        return _have("imagecodecs")
    if spec.id == SHUFFLE:
        return True
    if spec.id == BITSHUFFLE:
        codec = spec.cd_values[4] if len(spec.cd_values) > 4 else 0
        return codec in _BITSHUFFLE_CODECS and _have("bitshuffle")
    if spec.id == BLOSC2:
        return _have("blosc2")
    return False


def chain_decodable(pipeline: tuple[FilterSpec, ...]) -> bool:
    """Whether every stage of ``pipeline`` can be decoded here (an empty one can)."""
    return all(stage_decodable(s) for s in pipeline)


def decode_chunk(raw: bytes, filter_mask: int, pipeline: tuple[FilterSpec, ...],
                 dtype: np.dtype, chunk_shape: tuple[int, ...]) -> np.ndarray:
    """Undo ``pipeline`` on one raw chunk: an array of ``chunk_shape`` in ``dtype``.

    ``dtype`` is the dataset's on-disk dtype (byte order included, e.g. ``>f4``); the result
    is a read-only view when no stage had to copy.  Raises :class:`ChunkDecodeError` when a
    stage fails or yields the wrong number of bytes.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(chunk_shape)) * dtype.itemsize
    data = raw
    for i in range(len(pipeline) - 1, -1, -1):
        if filter_mask >> i & 1:
            continue
        try:
            data = _decode_stage(pipeline[i], data, nbytes, dtype)
        except ChunkDecodeError:
            raise
        except Exception as exc:  # the codec libraries raise their own types
            raise ChunkDecodeError(f"{pipeline[i].label} cannot decode the chunk: "
                                   f"{exc or type(exc).__name__}") from None
        if memoryview(data).nbytes != nbytes:
            raise ChunkDecodeError(f"{pipeline[i].label} gave {memoryview(data).nbytes} "
                                   f"bytes, the chunk holds {nbytes}")
    if memoryview(data).nbytes != nbytes:
        raise ChunkDecodeError(f"raw chunk of {memoryview(data).nbytes} bytes, expected "
                               f"{nbytes}")
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8).view(dtype).reshape(chunk_shape)
    return np.frombuffer(data, dtype=dtype).reshape(chunk_shape)


def decode_chunk_rows(raw: bytes, filter_mask: int, pipeline: tuple[FilterSpec, ...],
                      dtype: np.dtype, chunk_shape: tuple[int, int, int], row_lo: int,
                      row_hi: int) -> np.ndarray:
    """Rows ``row_lo`` .. ``row_hi - 1`` of a one-frame chunk ``(1, rows, cols)``: an array
    ``(row_hi - row_lo, cols)`` in ``dtype``.

    A bitshuffle chunk (Eiger's) is a sequence of independently compressed blocks of a few
    rows: only the blocks holding those rows are decompressed.  Other pipelines decode the
    whole chunk.
    """
    _, nrows, ncols = chunk_shape
    if len(pipeline) == 1 and pipeline[0].id == BITSHUFFLE and not filter_mask & 1 \
            and (row_lo, row_hi) != (0, nrows):
        try:
            flat, first = _bitshuffle_range(pipeline[0], raw, nrows * ncols, np.dtype(dtype),
                                            row_lo * ncols, row_hi * ncols)
        except ChunkDecodeError:
            raise
        except Exception as exc:
            raise ChunkDecodeError(f"{pipeline[0].label} cannot decode the chunk: "
                                   f"{exc or type(exc).__name__}") from None
        if flat is not None:
            start = row_lo * ncols - first
            return flat[start:start + (row_hi - row_lo) * ncols].reshape(-1, ncols)
    return decode_chunk(raw, filter_mask, pipeline, dtype, chunk_shape)[0, row_lo:row_hi]


def _bitshuffle_range(spec: FilterSpec, raw, nelem: int, dtype: np.dtype, e0: int,
                      e1: int) -> tuple[np.ndarray | None, int]:
    """Elements ``e0`` .. ``e1 - 1`` (and the block-aligned ones around them) of a
    bitshuffle+LZ4/zstd chunk: ``(array starting at element first, first)``; ``(None, 0)``
    when the chunk has no block header (bit shuffle without compression)."""
    import bitshuffle  # noqa: PLC0415

    cd = spec.cd_values
    elem = cd[2] if len(cd) > 2 and cd[2] else dtype.itemsize
    codec = cd[4] if len(cd) > 4 else 0
    if codec not in (2, 3) or elem != dtype.itemsize or elem not in (1, 2, 4, 8):
        return None, 0
    view = memoryview(raw)
    total, block_bytes = struct.unpack_from(">QI", view, 0)
    if total != nelem * elem or block_bytes % elem:
        raise ChunkDecodeError(f"bitshuffle header says {total} bytes in blocks of "
                               f"{block_bytes}, the chunk holds {nelem * elem}")
    per_block = block_bytes // elem
    b0, b1 = e0 // per_block, -(-e1 // per_block)
    full = nelem // per_block
    pos = 12
    for _ in range(b0):  # skip the blocks before the rows (each: size, then its bytes)
        pos += 4 + struct.unpack_from(">I", view, pos)[0]
    start = pos
    if b1 <= full:
        for _ in range(b0, b1):
            pos += 4 + struct.unpack_from(">I", view, pos)[0]
        payload, count = view[start:pos], (b1 - b0) * per_block
    else:  # through the last (short) block and the raw trailing elements
        payload, count = view[start:], nelem - b0 * per_block
    decompress = bitshuffle.decompress_lz4 if codec == 2 else bitshuffle.decompress_zstd
    out = decompress(np.frombuffer(payload, dtype=np.uint8), (count,),
                     np.dtype(f"u{elem}"), per_block)
    return out.view(dtype), b0 * per_block


def _decode_stage(spec: FilterSpec, data, nbytes: int, dtype: np.dtype):
    if spec.id == SHUFFLE:
        itemsize = spec.cd_values[0] if spec.cd_values else dtype.itemsize
        return byte_unshuffle(data, itemsize)
    if spec.id == BITSHUFFLE:
        return _bitshuffle_decode(spec, data, nbytes, dtype)
    import imagecodecs  # noqa: PLC0415 (imported where used: optional until needed)

    if spec.id == DEFLATE:
        return imagecodecs.deflate_decode(data, out=nbytes)
    if spec.id == LZ4:
        return imagecodecs.lz4h5_decode(data)
    if spec.id == ZSTD:
        return imagecodecs.zstd_decode(data)
    if spec.id == BLOSC:
        return imagecodecs.blosc_decode(data, numthreads=1)
    if spec.id == BLOSC2:
        return _blosc2_decode(data)
    raise ChunkDecodeError(f"no decoder for {spec.label}")


def byte_unshuffle(data, itemsize: int) -> np.ndarray:
    """Undo HDF5's shuffle filter: byte ``k`` of every element was stored in plane ``k``.

    The trailing ``len % itemsize`` bytes are stored as they are (HDF5's rule).
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    n = buf.size // itemsize
    if itemsize <= 1 or n <= 1:
        return buf
    out = np.empty(buf.size, dtype=np.uint8)
    planes = buf[:n * itemsize].reshape(itemsize, n)
    elements = out[:n * itemsize].reshape(n, itemsize)
    for k in range(itemsize):  # one strided copy per byte plane: ~4x a transposed copy
        elements[:, k] = planes[k]
    out[n * itemsize:] = buf[n * itemsize:]
    return out


def _bitshuffle_decode(spec: FilterSpec, data, nbytes: int, dtype: np.dtype):
    import bitshuffle  # noqa: PLC0415

    cd = spec.cd_values
    elem = cd[2] if len(cd) > 2 and cd[2] else dtype.itemsize
    codec = cd[4] if len(cd) > 4 else 0
    if nbytes % elem:
        raise ChunkDecodeError(f"chunk of {nbytes} bytes is not whole {elem}-byte elements")
    item = np.dtype(f"u{elem}") if elem in (1, 2, 4, 8) else np.dtype((np.void, elem))
    if codec == 0:  # bit shuffle only: no header
        block = cd[3] if len(cd) > 3 else 0
        arr = np.frombuffer(data, dtype=item)
        return bitshuffle.bitunshuffle(arr, block)
    # header: uncompressed bytes (uint64 BE), block size in bytes (uint32 BE)
    total, block_bytes = struct.unpack(">QI", bytes(memoryview(data)[:12]))
    if total != nbytes:
        raise ChunkDecodeError(f"bitshuffle header says {total} bytes, the chunk holds {nbytes}")
    payload = np.frombuffer(data, dtype=np.uint8, offset=12)
    decompress = bitshuffle.decompress_lz4 if codec == 2 else bitshuffle.decompress_zstd
    return decompress(payload, (nbytes // elem,), item, block_bytes // elem)


def _blosc2_decode(data):
    import blosc2  # noqa: PLC0415

    raw = bytes(data)
    try:
        return np.ascontiguousarray(blosc2.ndarray_from_cframe(raw)[...])
    except Exception:  # a plain super-chunk (no b2nd layout): its chunks in order
        schunk = blosc2.schunk_from_cframe(raw)
        return b"".join(schunk.decompress_chunk(i) for i in range(schunk.nchunks))
