"""The ``raw-image`` format: headerless binary frames described by a YAML (hexrd's layout).

.. code-block:: yaml

    filename: scan.raw         # relative to the YAML's directory
    scalar: {type: i, bytes: 2, signed: false, endian: little}   # type i|f|d|b
    shape: "512 1024"          # ROWS COLS (a list is accepted too)
    skip: 0                    # header bytes before the first frame
    meta: {}                   # optional (ours): values or "! load-numpy-array FILE"

Frames follow each other in C order, rows first.  The frame count is
``(file size - skip) / frame bytes``, which must divide exactly.  ``type``: ``i`` integer of
``bytes`` (1, 2, 4, 8) bytes, ``signed`` or not; ``f`` float32; ``d`` float64; ``b`` bool.
A block read is one positioned read of the ROI rows per frame.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import FormatError, InputError
from ..io import edf
from ..roi import RoiSlices, roi_shape
from ._yaml import load_yaml
from .base import BlockSource, ImageSeries, check_on_error, read_frames
from ._utils import (check_regular_file, file_token, frames_per_write, resolve_relative, short_repr, yaml_meta,
                     yaml_meta_out, yaml_top_keys)
from .registry import ImageSeriesFormat, has_suffix, register


#: largest frame side accepted (a lying shape is an error before anything is allocated)
MAX_DIM = 1 << 20
_SCALAR_KEYS = ("type", "bytes", "signed", "endian")


def _field(value, kinds, field: str, where: str, allowed=None):
    """``value`` if it has one of the Python types ``kinds`` (bools are not ints) and, when
    ``allowed`` is given, is one of them; else InputError naming the field (never coerced)."""
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok or (allowed is not None and value not in allowed):
        want = f"one of {list(allowed)}" if allowed is not None else \
            " or ".join(k.__name__ for k in kinds)
        raise InputError(f"must be {want}, got {short_repr(value)}", path=where,
                         argument=field)
    return value


def scalar_dtype(scalar: dict, where: str) -> np.dtype:
    """numpy dtype (with byte order) of a raw-image ``scalar:`` mapping; every field is
    checked for its type (``signed: 'no'`` is an error, not a true string)."""
    if not isinstance(scalar, dict):
        raise FormatError("'scalar:' must be a mapping {type, bytes, signed, endian}",
                          path=where)
    unknown = sorted(str(k) for k in scalar if k not in _SCALAR_KEYS)
    if unknown:
        raise InputError(f"unknown keys {short_repr(unknown)}; known: {list(_SCALAR_KEYS)}",
                         path=where, argument="scalar")
    kind = _field(scalar.get("type", "i"), (str,), "scalar.type", where, ("i", "f", "d", "b"))
    endian = _field(scalar.get("endian", "little"), (str,), "scalar.endian", where,
                    ("little", "big"))
    signed = _field(scalar.get("signed", False), (bool,), "scalar.signed", where)
    sizes = {"i": (1, 2, 4, 8), "f": (4,), "d": (8,), "b": (1,)}[kind]
    nbytes = scalar.get("bytes")
    nbytes = sizes[-1] if kind == "i" and nbytes is None else sizes[0] if nbytes is None \
        else _field(nbytes, (int,), "scalar.bytes", where, sizes)
    code = {"i": ("i" if signed else "u") + str(nbytes), "f": "f4", "d": "f8", "b": "b1"}[kind]
    dt = np.dtype(code)
    return dt.newbyteorder("<" if endian == "little" else ">") if dt.itemsize > 1 else dt


def _parse_shape(shape, where: str) -> tuple[int, int]:
    """``'ROWS COLS'`` (decimal integers) or a list of two ints, each 1 .. MAX_DIM."""
    vals = shape.split() if isinstance(shape, str) else shape
    ok = isinstance(vals, (list, tuple)) and len(vals) == 2 and all(
        (isinstance(v, str) and v.isdigit()) or
        (isinstance(v, int) and not isinstance(v, bool)) for v in vals)
    if not ok:
        raise InputError(f"must be 'ROWS COLS' (two integers), got {short_repr(shape)}",
                         path=where, argument="shape")
    rows, cols = (int(v) for v in vals)
    if not (1 <= rows <= MAX_DIM and 1 <= cols <= MAX_DIM):
        raise InputError(f"rows and cols must be 1 .. {MAX_DIM}, got {short_repr(shape)}",
                         path=where, argument="shape")
    return rows, cols


class RawImageSeries(ImageSeries):
    """Frames of a headerless binary file described by a raw-image YAML.

    Parameters
    ----------
    filename : str or PathLike
        The YAML file.
    on_error : {'raise', 'fill'}
    """

    def __init__(self, filename, on_error: str = "raise"):
        self.on_error = check_on_error(on_error)
        self.yaml_file = os.fspath(filename)
        check_regular_file(self.yaml_file)
        doc = load_yaml(self.yaml_file)
        where = self.yaml_file
        if not isinstance(doc, dict) or "filename" not in doc:
            raise FormatError("a raw-image YAML needs 'filename:'", path=where)
        name = _field(doc["filename"], (str,), "filename", where)
        self.filename = resolve_relative(name, where, what="raw image file")
        self._file_dtype = scalar_dtype(doc.get("scalar", {}), where)
        self._dtype = self._file_dtype.newbyteorder("=")
        if "shape" not in doc:
            raise FormatError("a raw-image YAML needs 'shape: ROWS COLS'", path=where)
        self._shape = _parse_shape(doc["shape"], where)
        skip = _field(doc.get("skip", 0), (int,), "skip", where)
        if skip < 0:
            raise InputError(f"must be >= 0 bytes, got {skip}", path=where, argument="skip")
        self.skip = skip
        if not os.path.isfile(self.filename):  # a directory or a FIFO would fail or hang
            raise InputError("not a regular file", path=self.filename, argument="filename")
        size = os.path.getsize(self.filename)
        self._file_size = size
        frame_bytes = self._shape[0] * self._shape[1] * self._file_dtype.itemsize
        if size < skip or (size - skip) % frame_bytes:
            raise InputError(f"file size {size} minus skip {skip} is not a multiple of the "
                             f"frame size {frame_bytes} bytes ({self._shape[0]} x "
                             f"{self._shape[1]} x {self._file_dtype.itemsize})",
                             path=self.filename)
        self._frame_bytes = frame_bytes
        self._nframes = (size - skip) // frame_bytes
        meta = doc.get("meta") or {}
        if not isinstance(meta, dict):
            raise FormatError("'meta:' must be a mapping", path=where)
        self._metadata = yaml_meta(meta, where)
        self._token = file_token(self.filename, skip, self._file_dtype.str, self._shape)

    def __len__(self) -> int:
        return self._nframes

    def _read_region(self, j: int, rows: slice, cols: slice) -> np.ndarray:
        return self.block_source(j, j + 1).read((rows, cols))[0]

    def block_source(self, start: int, stop: int) -> "RawBlock":
        return RawBlock(self.filename, self.skip + start * self._frame_bytes, self._frame_bytes,
                        start, stop - start, self._shape, self._file_dtype, self._file_size,
                        self.on_error)


@dataclass
class RawBlock(BlockSource):
    """File name, first frame offset and frame size of a run of frames (pickles small)."""

    filename: str
    offset: int
    frame_bytes: int
    first_frame: int
    count: int
    shape: tuple[int, int]
    file_dtype: np.dtype
    file_size: int
    on_error: str = "raise"

    @property
    def nframes(self) -> int:
        return self.count

    def read(self, roi: RoiSlices) -> np.ndarray:
        rows, cols = roi

        def one(k: int, out: np.ndarray) -> np.ndarray:
            return edf.read_rows(self.filename, self.offset + k * self.frame_bytes, self.shape,
                                 self.file_dtype, rows, cols, out=out,
                                 frame=self.first_frame + k, file_size=self.file_size)

        return read_frames(one, range(self.count), roi_shape(roi),
                           self.file_dtype.newbyteorder("="), self.on_error)


def open_rawimage(filename, on_error: str = "raise") -> RawImageSeries:
    """Open the series a raw-image YAML describes."""
    return RawImageSeries(filename, on_error=on_error)


def write_rawimage(ims, filename, raw_file: str | None = None, endian: str = "little",
                   skip: int = 0, meta: dict | None = None) -> None:
    """Write frames as raw binary plus the YAML ``filename`` describing them.

    Parameters
    ----------
    raw_file : str, optional
        The binary file, relative to the YAML's directory (default ``<yaml stem>.raw``).
    endian : {'little', 'big'}
    skip : int
        Zero bytes written before the first frame (a header placeholder).
    meta : dict, optional
        Metadata instead of ``ims.metadata`` (the YAML's ``meta:``).
    """
    import yaml

    if endian not in ("little", "big"):
        raise InputError(f"must be 'little' or 'big', got {endian!r}", argument="endian")
    filename = os.fspath(filename)
    base = os.path.dirname(os.path.abspath(filename))
    stem = os.path.splitext(os.path.basename(filename))[0]
    raw_file = raw_file or f"{stem}.raw"
    dtype = np.dtype(ims.dtype)
    kinds = {"i": "i", "u": "i", "f": "f" if dtype.itemsize == 4 else "d", "b": "b"}
    if dtype.kind not in kinds or (dtype.kind == "f" and dtype.itemsize not in (4, 8)):
        raise InputError(f"raw-image cannot hold dtype {dtype}", argument="ims")
    scalar = {"type": kinds[dtype.kind], "bytes": int(dtype.itemsize),
              "signed": dtype.kind == "i", "endian": endian}
    file_dtype = dtype.newbyteorder("<" if endian == "little" else ">") \
        if dtype.itemsize > 1 else dtype
    nframes = len(ims)
    h, w = ims.shape
    step = frames_per_write(h * w * dtype.itemsize, nframes)
    with open(os.path.join(base, raw_file), "wb") as f:
        f.write(b"\0" * int(skip))
        for start in range(0, nframes, step):
            block = ims.read_block(start, min(nframes, start + step))
            f.write(np.ascontiguousarray(block, dtype=file_dtype).tobytes())
    # absolute: hexrd opens the raw file from the working directory
    doc = {"filename": os.path.join(base, raw_file), "scalar": scalar, "shape": f"{h} {w}", "skip": int(skip),
           "meta": yaml_meta_out(dict(ims.metadata if meta is None else meta), filename)}
    with open(filename, "w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f, sort_keys=False)


class RawImageFormat(ImageSeriesFormat):
    name = "raw-image"
    description = "headerless binary frames described by a YAML (scalar type, shape, skip)"
    suffixes = (".yml", ".yaml")
    write_keywords = frozenset({"raw_file", "endian", "skip", "meta"})
    accepts_on_error = True

    def guess_can_open(self, path: str) -> bool:
        keys = yaml_top_keys(path) if has_suffix(path, self.suffixes) else ()
        return "filename" in keys and ("scalar" in keys or "skip" in keys)

    def open(self, filename, **kwargs) -> RawImageSeries:
        return open_rawimage(filename, **kwargs)

    def write(self, ims, filename, **kwargs) -> None:
        write_rawimage(ims, filename, **kwargs)


register(RawImageFormat())
