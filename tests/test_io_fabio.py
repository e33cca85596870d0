"""The fabio fallback reader (TIFF, CBF, ...) on real files: same pixels as fabio, errors name
the file and frame, and what is not a regular file is refused before fabio can block on it."""
from __future__ import annotations

import os

import fabio
import fabio.cbfimage
import fabio.tifimage
import numpy as np
import pytest

from xrsmap_dask.errors import FrameReadError
from xrsmap_dask.io import fabio_reader


@pytest.mark.parametrize("kind", ["tif", "cbf"])
def test_probe_and_read_match_fabio(tmp_path, kind):
    data = (np.arange(21 * 17).reshape(21, 17) % 311).astype("int32" if kind == "cbf" else "uint16")
    path = str(tmp_path / f"img.{kind}")
    writer = fabio.cbfimage.CbfImage if kind == "cbf" else fabio.tifimage.TifImage
    writer(data=data).write(path)
    nframes, shape, dtype = fabio_reader.probe(path)
    assert (nframes, shape, dtype) == (1, (21, 17), data.dtype)
    rows, cols = slice(4, 19), slice(3, 11)
    got = fabio_reader.read_frame(path, 0, shape, dtype, rows, cols, frame=9)
    np.testing.assert_array_equal(got, fabio.open(path).data[rows, cols])
    with pytest.raises(FrameReadError, match="img.*frame 9.*shape"):
        fabio_reader.read_frame(path, 0, (20, 17), dtype, rows, cols, frame=9)
    with pytest.raises(FrameReadError, match="img.*frame 9.*dtype"):
        fabio_reader.read_frame(path, 0, shape, np.dtype("f8"), rows, cols, frame=9)


def test_truncated_and_garbage_files(tmp_path):
    full = tmp_path / "full.tif"
    fabio.tifimage.TifImage(data=np.ones((32, 40), np.uint16)).write(str(full))
    cut = tmp_path / "cut.tif"
    cut.write_bytes(full.read_bytes()[:-300])
    with pytest.raises(FrameReadError, match="cut.tif"):
        shape = fabio_reader.probe(str(cut))[1]
        fabio_reader.read_frame(str(cut), 0, shape, np.dtype("u2"), slice(0, 32),
                                slice(0, 40))
    junk = tmp_path / "junk.cbf"
    junk.write_bytes(os.urandom(4000))
    with pytest.raises(FrameReadError, match="junk.cbf"):
        fabio_reader.probe(str(junk))


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind, word", [("dir", "directory"), ("fifo", "FIFO"),
                                        ("missing", "not found")])
def test_not_a_regular_file(tmp_path, kind, word):
    path = tmp_path / "odd.cbf"
    if kind == "dir":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    with pytest.raises(FrameReadError, match=f"odd.cbf.*{word}"):
        fabio_reader.probe(str(path))
    with pytest.raises(FrameReadError, match=f"odd.cbf.*frame 4.*{word}"):
        fabio_reader.read_frame(str(path), 0, (2, 2), np.dtype("u2"), slice(0, 2),
                                slice(0, 2), frame=4)


def test_quoted_fabio_messages_are_bounded():
    assert len(fabio_reader._why(ValueError("x" * 10**6))) <= fabio_reader._WHY_LIMIT + 3
    assert fabio_reader._why(KeyError()) == "KeyError"
