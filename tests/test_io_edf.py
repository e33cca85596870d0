"""EDF header parsing and positioned ROI reads against fabio, on real files."""
from __future__ import annotations

import os

import fabio
import numpy as np
import pytest

from xrsmap_dask.errors import FrameReadError
from xrsmap_dask.io import edf
from xrsmap_dask.synth import write_edf


def _write_raw_edf(path, blocks):
    """Write EDF blocks by hand: [(array, byte_order, extra header text)]."""
    with open(path, "wb") as f:
        for arr, order, extra in blocks:
            dtype_name = {"u2": "UnsignedShort", "i4": "SignedInteger", "f4": "FloatValue",
                          "f8": "DoubleValue", "u1": "UnsignedByte"}[arr.dtype.str[1:]]
            head = (f"{{\nHeaderID = EH:000001:000000:000000 ;\nByteOrder = {order} ;\n"
                    f"DataType = {dtype_name} ;\nDim_1 = {arr.shape[1]} ;\n"
                    f"Dim_2 = {arr.shape[0]} ;\nSize = {arr.nbytes} ;\n{extra}")
            pad = 512 - (len(head) + 2) % 512
            f.write((head + " " * pad + "}\n").encode())
            f.write(arr.astype(arr.dtype.newbyteorder(">" if order == "HighByteFirst" else "<")).tobytes())


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32", "float32", "float64"])
def test_header_and_rows_match_fabio(tmp_path, dtype):
    rng = np.random.default_rng(0)
    data = (rng.random((37, 29)) * 200).astype(dtype)
    path = str(tmp_path / "a.edf")
    write_edf(path, data, {"comment": "y" * 700})
    (info,) = edf.read_edf_headers(path)
    assert info.shape == (37, 29) and info.dtype.newbyteorder("=") == np.dtype(dtype)
    assert info.offset > 512  # the long comment pushed the header past one block
    ref = fabio.open(path).data
    for rows, cols in [(slice(0, 37), slice(0, 29)), (slice(0, 5), slice(0, 7)),
                       (slice(30, 37), slice(20, 29)), (slice(11, 12), slice(3, 29))]:
        got = edf.read_rows(path, info.offset, info.shape, info.dtype, rows, cols)
        np.testing.assert_array_equal(got, ref[rows, cols])


def test_big_endian_and_multiframe(tmp_path):
    a = np.arange(12 * 10, dtype="u2").reshape(12, 10)
    b = (np.arange(12 * 10, dtype="u2").reshape(12, 10) * 3)[::-1].copy()
    path = str(tmp_path / "multi.edf")
    _write_raw_edf(path, [(a, "HighByteFirst", ""), (b, "HighByteFirst", "motor = " + "z" * 900 + " ;\n")])
    infos = edf.read_edf_headers(path)
    assert len(infos) == 2 and infos[0].dtype.byteorder == ">"
    for info, ref in zip(infos, (a, b)):
        got = edf.read_rows(path, info.offset, info.shape, info.dtype, slice(2, 9), slice(1, 10))
        assert got.dtype.isnative
        np.testing.assert_array_equal(got, ref[2:9, 1:10])
    # fabio agrees on the second frame
    np.testing.assert_array_equal(fabio.open(path).getframe(1).data, b)


def test_truncated_file_raises_naming_file(tmp_path):
    path = str(tmp_path / "short.edf")
    write_edf(path, np.ones((64, 64), dtype="u2"))
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 100)
    with pytest.raises(FrameReadError, match="short.edf.*truncated"):
        edf.read_edf_headers(path)


def test_truncated_after_parse_raises_on_read(tmp_path):
    path = str(tmp_path / "later.edf")
    write_edf(path, np.ones((64, 64), dtype="u2"))
    (info,) = edf.read_edf_headers(path)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 64 * 2 * 3)
    with pytest.raises(FrameReadError, match="later.edf"):
        edf.read_rows(path, info.offset, info.shape, info.dtype, slice(60, 64), slice(0, 64))
    with pytest.raises(FrameReadError, match="changed since"):
        edf.read_rows(path, info.offset, info.shape, info.dtype, slice(0, 4), slice(0, 64),
                      file_size=info.file_size)


@pytest.mark.parametrize("content, reason", [
    (b"", "empty"),
    (b"not an edf file at all" * 40, "not an EDF"),
    (b"{\nDim_1 = 4 ;\n" + b" " * 600, "closing"),
    (b"{\nDataType = UnsignedShort ;\n}\n" + b"\0" * 64, "Dim_1"),
    (b"{\nDim_1 = 4 ;\nDim_2 = 4 ;\nDataType = Complex ;\n}\n" + b"\0" * 64, "DataType"),
])
def test_corrupt_headers(tmp_path, content, reason):
    path = tmp_path / "bad.edf"
    path.write_bytes(content)
    with pytest.raises(FrameReadError, match=f"bad.edf.*{reason}"):
        edf.read_edf_headers(str(path))


def test_missing_file(tmp_path):
    with pytest.raises(FrameReadError, match="nothere.edf.*not found"):
        edf.read_edf_headers(str(tmp_path / "nothere.edf"))
