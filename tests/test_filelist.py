"""FileListImageSeries on real files: what is not a readable image is an error or a listed
NaN frame (issue 14), and compressed EDF blocks read as fabio reads them."""
from __future__ import annotations

import os

import fabio
import numpy as np
import pytest

from xrsmap_dask import synth
from xrsmap_dask.errors import FrameReadError
from xrsmap_dask.imageseries import from_files
from xrsmap_dask.imageseries.filelist import PREAD, ZBLOCK, ZEDF

SHAPE = (12, 10)


def _frame(k: int) -> np.ndarray:
    return (np.arange(SHAPE[0] * SHAPE[1], dtype="u2").reshape(SHAPE) * (k + 1)) % 4000


@pytest.fixture
def files(tmp_path):
    """Four one-frame EDF files written with fabio."""
    paths = []
    for k in range(4):
        paths.append(str(tmp_path / f"f_{k}.edf"))
        synth.write_edf(paths[-1], _frame(k))
    return paths


def _not_a_file(tmp_path, kind: str) -> str:
    path = tmp_path / f"odd_{kind}.edf"
    if kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path)
    return str(path)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind, word", [("directory", "directory"), ("fifo", "FIFO")])
def test_directory_or_fifo_among_inputs(tmp_path, files, kind, word):
    odd = _not_a_file(tmp_path, kind)
    inputs = files[:2] + [odd] + files[2:]
    with pytest.raises(FrameReadError, match=f"odd_{kind}.edf.*frame 2.*{word}"):
        from_files(inputs)
    ims = from_files(inputs, on_error="fill")
    assert [(j, p) for j, p, _ in ims.bad_frames] == [(2, odd)]
    assert word in ims.bad_frames[0][2]
    block = ims.read_block(0, 5)
    assert np.isnan(block[2]).all()
    for j, k in ((0, 0), (1, 1), (3, 2), (4, 3)):
        np.testing.assert_array_equal(block[j], fabio.open(files[k]).data)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_directory_or_fifo_with_another_suffix(tmp_path, files, kind):
    # not .edf: probed through fabio, which would block on a FIFO
    odd = tmp_path / "odd.tif"
    if kind == "directory":
        odd.mkdir()
    else:
        os.mkfifo(odd)
    with pytest.raises(FrameReadError, match="odd.tif.*not a regular file"):
        from_files([files[0], str(odd)])
    ims = from_files([files[0], str(odd)], on_error="fill")
    assert [b[0] for b in ims.bad_frames] == [1]


@pytest.mark.parametrize("codec", ["gzip", "zlib", "bz2"])
def test_compressed_blocks_in_a_series(tmp_path, files, codec):
    """Files of in-block compressed frames (multi-frame) read as fabio reads them, ROI too."""
    multi = tmp_path / "multi_z.edf"
    multi.write_bytes(synth.edf_block_bytes(_frame(7), compression=codec)
                      + synth.edf_block_bytes(_frame(8), compression=codec))
    big = tmp_path / "big_z.edf"
    big.write_bytes(synth.edf_block_bytes(_frame(9), compression=codec, big_endian=True))
    ims = from_files([files[0], str(multi), str(big), files[1]])
    assert list(ims._kinds) == [PREAD, ZBLOCK, ZBLOCK, ZBLOCK, PREAD]
    roi = (slice(3, 11), slice(2, 9))
    got = ims.read_block(0, 5, roi)
    img = fabio.open(str(multi))
    refs = [fabio.open(files[0]).data, img.getframe(0).data, img.getframe(1).data,
            fabio.open(str(big)).data, fabio.open(files[1]).data]
    for frame, ref in zip(got, refs):
        np.testing.assert_array_equal(frame, ref[roi])
    np.testing.assert_array_equal(ims[2], _frame(8))
    np.testing.assert_array_equal(ims[3], _frame(9))


def test_whole_file_compressed_with_compressed_blocks(tmp_path):
    import gzip

    path = tmp_path / "both.edf.gz"
    path.write_bytes(gzip.compress(synth.edf_block_bytes(_frame(2), compression="zlib")
                                   + synth.edf_block_bytes(_frame(3))))
    ims = from_files([str(path)])
    assert list(ims._kinds) == [ZEDF, ZEDF]
    np.testing.assert_array_equal(ims.read_block(0, 2), np.stack([_frame(2), _frame(3)]))


def test_compressed_block_file_changed_after_open(tmp_path, files):
    path = tmp_path / "z.edf"
    path.write_bytes(synth.edf_block_bytes(_frame(1), compression="gzip"))
    ims = from_files([files[0], str(path)])
    path.write_bytes(synth.edf_block_bytes(_frame(1), {"Pad": "x" * 600}, compression="gzip"))
    with pytest.raises(FrameReadError, match="z.edf.*frame 1.*changed"):
        ims[1]
    fill = from_files([files[0], str(path)], on_error="fill")
    path.write_bytes(synth.edf_block_bytes(_frame(1)[:6], {"Dim_2": 12}, compression="gzip"))
    assert np.isnan(fill.read_block(0, 2)[1]).all()


def test_bad_compressed_block_under_fill(tmp_path, files):
    """A block whose stream is shorter than its header promises: a bad frame, never zeros."""
    path = tmp_path / "short_z.edf"
    path.write_bytes(synth.edf_block_bytes(_frame(5)[:6], {"Dim_2": SHAPE[0]},
                                           compression="zlib"))
    ims = from_files([files[0], str(path)])  # the header is fine: found at read time
    with pytest.raises(FrameReadError, match="short_z.edf.*frame 1.*promises"):
        ims.read_block(0, 2)
    fill = from_files([files[0], str(path)], on_error="fill")
    block = fill.read_block(0, 2)
    assert np.isnan(block[1]).all() and not np.isnan(block[0]).any()


def test_unknown_byte_order_under_fill(tmp_path, files):
    path = tmp_path / "order.edf"
    path.write_bytes(synth.edf_block_bytes(_frame(0), {"ByteOrder": "Sideways"}))
    with pytest.raises(FrameReadError, match="order.edf.*frame 1.*ByteOrder"):
        from_files([files[0], str(path)])
    fill = from_files([files[0], str(path)], on_error="fill")
    assert [b[0] for b in fill.bad_frames] == [1] and "ByteOrder" in fill.bad_frames[0][2]
