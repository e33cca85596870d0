"""EDF header parsing, positioned ROI reads and compressed blocks against fabio, on real files;
lying, odd and hostile headers (issue 14)."""
from __future__ import annotations

import bz2
import gzip
import os
import tracemalloc
import zlib

import fabio
import numpy as np
import pytest

from xrsmap_dask import synth
from xrsmap_dask.errors import FrameReadError
from xrsmap_dask.imageseries import from_files
from xrsmap_dask.io import edf
from xrsmap_dask.io.compressed import decompress_file
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


# -- issue 14: every frame is the bytes written, or an error naming file and frame -----------

def _frames(path):
    """Every frame of an EDF file through our reader (headers, then one read per frame)."""
    out = []
    for info in edf.read_edf_headers(path):
        rows, cols = slice(0, info.shape[0]), slice(0, info.shape[1])
        if info.compressed:
            out.append(edf.read_compressed_block(info, rows, cols))
        else:
            out.append(edf.read_rows(path, info.offset, info.shape, info.dtype, rows, cols))
    return out


def _fabio_frames(path):
    img = fabio.open(path)
    return [img.getframe(k).data for k in range(img.nframes)]


@pytest.mark.parametrize("title", ["macro {scan} end", "{", "}", "a}b", "{x}{y}", "}x"])
def test_brace_in_a_header_value_does_not_end_the_header(tmp_path, title):
    # the file: a '}' in a value after the Dim lines ended the header early, the
    # padding was read as pixels (ROI sum 699960 instead of 9560); fabio reads it right
    data = np.arange(12 * 10, dtype="u2").reshape(12, 10)
    path = tmp_path / "brace.edf"
    path.write_bytes(synth.edf_block_bytes(data, {"Title": title, "motor": 3}))
    (got,) = _frames(str(path))
    np.testing.assert_array_equal(got, data)
    np.testing.assert_array_equal(got, fabio.open(str(path)).data)
    ims = from_files([str(path)])
    assert int(ims.read_block(0, 1, (slice(2, 5), slice(1, 9))).sum()) == int(data[2:5, 1:9].sum())


@pytest.mark.parametrize("end", [b"}\n", b"}\r\n"])
@pytest.mark.parametrize("brace_at", [4093, 4094, 4095, 4096, 4097, 8191, 8192])
def test_header_end_across_read_boundaries(tmp_path, end, brace_at):
    # the header is read 4096 bytes first, then more: '}' or '}\r' may end one read
    data = (np.arange(6 * 5) * 7).astype("i4").reshape(6, 5)
    head = synth.edf_block_bytes(data, pad_to=0)[:-data.nbytes - 2]  # '{ ... ;\n'
    head += b" " * (brace_at - len(head)) + end
    path = tmp_path / "edge.edf"
    path.write_bytes(head + data.astype("<i4").tobytes())
    (info,) = edf.read_edf_headers(str(path))
    assert info.offset == brace_at + len(end)
    np.testing.assert_array_equal(_frames(str(path))[0], data)
    np.testing.assert_array_equal(fabio.open(str(path)).data, data)


def test_statements_on_one_line_parse_as_fabio(tmp_path):
    data = np.arange(4 * 3, dtype="u2").reshape(4, 3)
    text = (b"{\nHeaderID = EH:1 ; ByteOrder = LowByteFirst ; DataType = UnsignedShort ;"
            b" Dim_1 = 3 ; Dim_2 = 4 ; Size = 24 ;\n}\n")
    path = tmp_path / "oneline.edf"
    path.write_bytes(text + data.tobytes())
    (info,) = edf.read_edf_headers(str(path))
    assert info.shape == (4, 3) and info.offset == len(text)
    np.testing.assert_array_equal(_frames(str(path))[0], fabio.open(str(path)).data)


@pytest.mark.parametrize("order", ["Middle", "LowByteLast", "big", "HighByteFirstX", "x" * 10**5])
def test_unknown_byte_order_is_an_error(tmp_path, order):
    path = tmp_path / "order.edf"
    path.write_bytes(synth.edf_block_bytes(np.ones((4, 4), "u2"), {"ByteOrder": order}))
    with pytest.raises(FrameReadError, match="order.edf.*ByteOrder") as err:
        edf.read_edf_headers(str(path))
    assert len(str(err.value)) < 400  # the value is quoted cut, not whole


def test_byte_orders_read_as_fabio(tmp_path):
    data = np.arange(20, dtype="f4").reshape(4, 5) - 3.5
    for name, big in (("big.edf", True), ("little.edf", False)):
        path = str(tmp_path / name)
        (tmp_path / name).write_bytes(synth.edf_block_bytes(data, big_endian=big))
        np.testing.assert_array_equal(_frames(path)[0], data)
        np.testing.assert_array_equal(fabio.open(path).data, data)
    # no ByteOrder at all: little endian (fabio's default)
    path = tmp_path / "none.edf"
    path.write_bytes(synth.edf_block_bytes(data, {"ByteOrder": None}))
    np.testing.assert_array_equal(_frames(str(path))[0], data)


@pytest.mark.parametrize("codec", ["gzip", "zlib", "bz2"])
def test_compressed_blocks_match_fabio(tmp_path, codec):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 5000, (33, 21)).astype("u2")
    b = rng.integers(-9, 9, (33, 21)).astype("i4")
    path = tmp_path / f"z_{codec}.edf"
    path.write_bytes(synth.edf_block_bytes(a, compression=codec)
                     + synth.edf_block_bytes(a, compression=codec, big_endian=True))
    got = _frames(str(path))
    for frame, ref in zip(got, _fabio_frames(str(path))):
        np.testing.assert_array_equal(frame, a)
        np.testing.assert_array_equal(frame, ref)
    path.write_bytes(synth.edf_block_bytes(b, compression=codec))
    np.testing.assert_array_equal(_frames(str(path))[0], b)


@pytest.mark.parametrize("codec", ["gzip", "zlib", "bz2"])
def test_short_or_long_compressed_block_is_an_error_not_zeros(tmp_path, codec):
    data = np.arange(1, 8 * 8 + 1, dtype="u2").reshape(8, 8)
    path = tmp_path / "short.edf"
    # the stream holds 6 rows, the header promises 8: fabio pads with zeros, we refuse
    block = synth.edf_block_bytes(data[:6], {"Dim_2": 8}, compression=codec)
    path.write_bytes(block)
    with pytest.raises(FrameReadError, match="short.edf.*promises"):
        _frames(str(path))
    assert (fabio.open(str(path)).data[6:] == 0).all()  # what fabio silently gives
    # more data than promised: an error, never silently cut
    path.write_bytes(synth.edf_block_bytes(np.vstack([data, data]), {"Dim_2": 8},
                                           compression=codec))
    with pytest.raises(FrameReadError, match="short.edf.*more than"):
        _frames(str(path))
    # a cut stream: Size and the file agree, the stream ends early
    packed = {"gzip": lambda b: gzip.compress(b, mtime=0), "zlib": zlib.compress,
              "bz2": bz2.compress}[codec](data.tobytes())
    path.write_bytes(synth.edf_block_bytes(data, {"Size": len(packed) - 7},
                                           compression=codec)[:-7])
    with pytest.raises(FrameReadError, match="short.edf.*(cut|corrupt|promises)"):
        _frames(str(path))


@pytest.mark.timeout(20)
@pytest.mark.parametrize("size", [-1, -600, -10**6, 0])
def test_negative_size_in_a_compressed_block_is_an_error(tmp_path, size):
    # used to loop forever with growing memory (the parse position went backwards)
    path = tmp_path / "neg.edf"
    block = synth.edf_block_bytes(np.ones((8, 8), "u2"), compression="gzip")
    path.write_bytes(block.replace(b"Size = ", b"Size = %d ; Old = " % size))
    with pytest.raises(FrameReadError, match="neg.edf.*Size"):
        edf.read_edf_headers(str(path))


@pytest.mark.timeout(20)
@pytest.mark.parametrize("fields, codec, reason", [
    ({"Dim_1": 10**12}, "gzip", "Dim_1"),
    ({"Dim_1": 10**12}, None, "Dim_1"),
    ({"Dim_1": 10**5, "Dim_2": 10**5}, "gzip", "more than it can hold"),
    ({"Dim_1": 30000, "Dim_2": 30000}, "zlib", "more than it can hold"),
    ({"Dim_1": 40000, "Dim_2": 40000}, "bz2", "more than it can hold"),
    ({"Dim_2": -3}, None, "Dim_2"),
    ({"Dim_1": "9" * 5000}, None, "Dim_1"),
    ({"Size": 10**15}, None, "truncated"),
    ({"Size": None}, "gzip", "without a Size"),
])
def test_lying_sizes_are_refused_before_any_allocation(tmp_path, fields, codec, reason):
    path = tmp_path / "lie.edf"
    path.write_bytes(synth.edf_block_bytes(np.ones((8, 8), "u2"), fields, compression=codec))
    tracemalloc.start()
    try:
        with pytest.raises(FrameReadError, match=f"lie.edf.*{reason}") as err:
            from_files([str(path)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak} bytes allocated for a lying header"
    assert len(str(err.value)) < 500


@pytest.mark.parametrize("fields, reason", [
    ({"Compression": "BYTE_OFFSET"}, "not supported"),
    ({"Compression": "LZ4-Banana"}, "Compression .*unknown"),
    ({"EDF_BinaryFileName": "other.bin"}, "EDF_BinaryFileName"),
    ({"Dim_3": 2}, "Dim_3"),
])
def test_unsupported_headers_are_errors(tmp_path, fields, reason):
    path = tmp_path / "odd.edf"
    path.write_bytes(synth.edf_block_bytes(np.ones((4, 4), "u2"), fields))
    with pytest.raises(FrameReadError, match=f"odd.edf.*{reason}"):
        edf.read_edf_headers(str(path))


def test_whole_file_decompression_is_bounded(tmp_path):
    path = tmp_path / "bomb.edf.gz"
    path.write_bytes(gzip.compress(b"\0" * (4 << 20)))
    with pytest.raises(FrameReadError, match="bomb.edf.gz.*more than 1000000 bytes"):
        decompress_file(str(path), max_bytes=1_000_000)
    assert len(decompress_file(str(path), max_bytes=4 << 20)) == 4 << 20
    # two concatenated streams are one file (as gzip -d reads them); garbage after is not
    path.write_bytes(gzip.compress(b"ab") + gzip.compress(b"cd"))
    assert bytes(decompress_file(str(path))) == b"abcd"
    path.write_bytes(gzip.compress(b"ab") + b"garbage!")
    with pytest.raises(FrameReadError, match="corrupt"):
        decompress_file(str(path))


@pytest.mark.timeout(20)
def test_directory_and_fifo_are_errors_not_hangs(tmp_path):
    folder = tmp_path / "frame.edf"
    folder.mkdir()
    with pytest.raises(FrameReadError, match="frame.edf.*directory"):
        edf.read_edf_headers(str(folder))
    fifo = tmp_path / "pipe.edf"
    os.mkfifo(fifo)
    with pytest.raises(FrameReadError, match="pipe.edf.*FIFO"):
        edf.read_edf_headers(str(fifo))
    with pytest.raises(FrameReadError, match="pipe.edf.*FIFO"):
        edf.read_rows(str(fifo), 0, (2, 2), np.dtype("u2"), slice(0, 2), slice(0, 2))
    gz = tmp_path / "pipe.edf.gz"
    os.mkfifo(gz)
    with pytest.raises(FrameReadError, match="pipe.edf.gz.*FIFO"):
        edf.read_compressed_edf(str(gz))
