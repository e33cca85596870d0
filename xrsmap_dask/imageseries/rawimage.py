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
from ._utils import file_token, frames_per_write, yaml_meta, yaml_meta_out, yaml_top_keys
from .registry import ImageSeriesFormat, has_suffix, register


def scalar_dtype(scalar: dict, where: str) -> np.dtype:
    """numpy dtype (with byte order) of a raw-image ``scalar:`` mapping."""
    if not isinstance(scalar, dict):
        raise FormatError("'scalar:' must be a mapping {type, bytes, signed, endian}",
                          path=where)
    kind = scalar.get("type", "i")
    nbytes = scalar.get("bytes")
    endian = scalar.get("endian", "little")
    if endian not in ("little", "big"):
        raise InputError(f"scalar endian must be 'little' or 'big', got {endian!r}",
                         path=where)
    order = "<" if endian == "little" else ">"
    if kind == "i":
        nbytes = 4 if nbytes is None else nbytes
        if nbytes not in (1, 2, 4, 8):
            raise InputError(f"integer scalar bytes must be 1, 2, 4 or 8, got {nbytes!r}",
                             path=where)
        code = ("i" if scalar.get("signed", False) else "u") + str(nbytes)
    elif kind in ("f", "d"):
        code = "f4" if kind == "f" else "f8"
        if nbytes is not None and int(nbytes) != int(code[1]):
            raise InputError(f"scalar type {kind!r} has {code[1]} bytes, got {nbytes!r}",
                             path=where)
    elif kind == "b":
        code = "b1"
    else:
        raise InputError(f"scalar type must be one of i, f, d, b; got {kind!r}", path=where)
    dt = np.dtype(code)
    return dt.newbyteorder(order) if dt.itemsize > 1 else dt


def _parse_shape(shape, where: str) -> tuple[int, int]:
    try:
        vals = shape.split() if isinstance(shape, str) else list(shape)
        rows, cols = (int(v) for v in vals)
    except (TypeError, ValueError, AttributeError):
        raise InputError(f"shape must be 'ROWS COLS', got {shape!r}", path=where) from None
    if rows < 1 or cols < 1:
        raise InputError(f"shape must be positive, got {shape!r}", path=where)
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
        doc = load_yaml(self.yaml_file)
        where = self.yaml_file
        if not isinstance(doc, dict) or "filename" not in doc:
            raise FormatError("a raw-image YAML needs 'filename:'", path=where)
        base = os.path.dirname(os.path.abspath(where))
        self.filename = os.path.join(base, os.fspath(doc["filename"]))
        self._file_dtype = scalar_dtype(doc.get("scalar", {}), where)
        self._dtype = self._file_dtype.newbyteorder("=")
        if "shape" not in doc:
            raise FormatError("a raw-image YAML needs 'shape: ROWS COLS'", path=where)
        self._shape = _parse_shape(doc["shape"], where)
        skip = doc.get("skip", 0) or 0
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
            raise InputError(f"skip must be a non-negative int of bytes, got {skip!r}",
                             path=where)
        self.skip = skip
        try:
            size = os.path.getsize(self.filename)
        except FileNotFoundError:
            raise InputError("raw image file not found", path=self.filename) from None
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
    doc = {"filename": raw_file, "scalar": scalar, "shape": f"{h} {w}", "skip": int(skip),
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
