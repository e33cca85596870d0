"""Property-based tests of the readers on arbitrary bytes and YAML (issue 14).

Whatever the input, a reader returns frames of the declared shape or raises one of our error
types (:class:`~xrsmap_dask.errors.InputError` and subclasses): never another exception, a
hang (hypothesis ``deadline`` per example, pytest ``timeout`` per test), a ``MemoryError``,
nor a large allocation (peak traced by :mod:`tracemalloc`, which sees numpy's buffers, and
the process's peak RSS).  Example counts are bounded so the file runs in seconds; the search
is derandomized (the same examples every run) so CI never flakes.  For a longer search::

    XRSMAP_FUZZ_EXAMPLES=5000 XRSMAP_FUZZ_RANDOM=1 .venv/bin/python -m pytest tests/test_fuzz_readers.py

(``XRSMAP_FUZZ_RANDOM=1``: new random examples each run instead of the fixed ones.)
"""
from __future__ import annotations

import json
import os
import resource
import tempfile
import tracemalloc
from contextlib import contextmanager
from datetime import timedelta

import fabio
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xrsmap_dask import imageseries, synth
from xrsmap_dask.errors import InputError
from xrsmap_dask.imageseries._yaml import load_yaml
from xrsmap_dask.io import edf

#: examples per property (scaled up for a longer search by the environment variable)
EXAMPLES = int(os.environ.get("XRSMAP_FUZZ_EXAMPLES", "60"))
#: most bytes one property may allocate (traced) / grow the process's peak RSS by
MAX_TRACED = 64 << 20
MAX_RSS_GROWTH = 256 << 20

fuzz = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=5),
                derandomize=not os.environ.get("XRSMAP_FUZZ_RANDOM"),
                database=None, suppress_health_check=list(HealthCheck))
pytestmark = pytest.mark.timeout(120)


@contextmanager
def bounded_memory():
    """Fail if the block allocates more than :data:`MAX_TRACED` bytes at its peak or grows
    the process's peak RSS by more than :data:`MAX_RSS_GROWTH`."""
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MAX_TRACED, f"peak allocation {peak} bytes"
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    assert growth < MAX_RSS_GROWTH, f"peak RSS grew by {growth} bytes"


def read_all(ims) -> None:
    """The first frames of a series: the declared shape, or our error.  A frame declared
    larger than 8 MiB is not read: reading allocates the declared frame (a NaN frame under
    ``'fill'``), which the readers bound by ``MAX_FRAME_BYTES`` (2 GiB), not by this test."""
    if ims.shape[0] * ims.shape[1] * np.dtype(ims.dtype).itemsize > 8 << 20:
        return
    for j in range(min(len(ims), 8)):
        try:
            frame = ims[j]
        except InputError:
            continue
        assert frame.shape == tuple(ims.shape)


def open_and_read(opener) -> None:
    try:
        ims = opener()
    except InputError:
        return
    read_all(ims)


# -- EDF ---------------------------------------------------------------------------------

VALUES = st.one_of(
    st.integers(-2**70, 2**70).map(str),
    st.sampled_from(["0", "1", "-1", "4", "8", "16", "1e3", "0x10", "", " ", "7 7", "+5",
                     "1_000", "NaN", "9" * 40]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters=";\n"),
            max_size=40),
)
KEYS = st.sampled_from(["Dim_1", "Dim_2", "Dim_3", "Size", "EDF_BinarySize", "DataType",
                        "ByteOrder", "Compression", "Image", "HeaderID", "Title",
                        "EDF_BinaryFileName", "dim_1", "SIZE"])
WORDS = {"DataType": ["UnsignedShort", "SignedInteger", "FloatValue", "DoubleValue",
                      "UnsignedByte", "Signed64", "Complex"],
         "ByteOrder": ["LowByteFirst", "HighByteFirst", "Middle"],
         "Compression": ["None", "gzip", "z", "bz2", "BYTE_OFFSET", "lz4"]}


@st.composite
def edf_files(draw) -> bytes:
    """One to three EDF blocks: a valid block of random data with random header edits
    (lying sizes, odd types and orders, braces in values), a random payload length."""
    blocks = []
    for _ in range(draw(st.integers(1, 3))):
        shape = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
        dtype = draw(st.sampled_from(["u1", "u2", "i4", "f4", "f8"]))
        data = np.frombuffer(draw(st.binary(min_size=81 * 8, max_size=81 * 8)), dtype="u1")
        data = data[:shape[0] * shape[1] * np.dtype(dtype).itemsize].view(dtype).reshape(shape)
        edits = {}
        for key in draw(st.lists(KEYS, max_size=4)):
            words = WORDS.get(key)
            edits[key] = draw(st.sampled_from(words) if words and draw(st.booleans())
                              else VALUES)
        codec = draw(st.sampled_from([None, None, "gzip", "zlib", "bz2"]))
        block = synth.edf_block_bytes(data, edits, compression=codec,
                                      big_endian=draw(st.booleans()),
                                      pad_to=draw(st.sampled_from([0, 512])))
        cut = draw(st.integers(0, 3))  # sometimes drop or add bytes at the end
        if cut == 1:
            block = block[:draw(st.integers(0, len(block)))]
        elif cut == 2:
            block += draw(st.binary(max_size=64))
        blocks.append(block)
    return b"".join(blocks)


def _parse_bytes(data: bytes):
    view = memoryview(data)
    return edf.parse_edf(lambda n, pos: bytes(view[pos:pos + n]), len(data), "fuzz.edf")


def _check_infos(data: bytes) -> None:
    try:
        infos = _parse_bytes(data)
    except InputError:
        return
    for info in infos:
        assert 0 < info.offset <= info.offset + info.size <= len(data)
        assert all(1 <= n <= edf.MAX_DIM for n in info.shape)
        try:
            frame = edf.frame_from_bytes(data, info, slice(0, info.shape[0]),
                                         slice(0, info.shape[1]))
        except InputError:
            continue
        assert frame.shape == info.shape and frame.dtype.isnative


@fuzz
@given(st.binary(max_size=3000))
def test_edf_parser_on_arbitrary_bytes(data):
    with bounded_memory():
        _check_infos(data)
        _check_infos(b"{\n" + data)


@fuzz
@given(edf_files())
def test_edf_parser_on_edited_headers(data):
    with bounded_memory():
        _check_infos(data)


@fuzz
@given(edf_files(), st.sampled_from([".edf", ".edf.gz", ".dat"]), st.booleans())
def test_edf_files_through_the_series(data, suffix, fill):
    import gzip

    with tempfile.TemporaryDirectory() as tmp, bounded_memory():
        path = os.path.join(tmp, "frame" + suffix)
        with open(path, "wb") as f:
            f.write(gzip.compress(data, mtime=0) if suffix == ".edf.gz" else data)
        open_and_read(lambda: imageseries.from_files([path],
                                                     on_error="fill" if fill else "raise"))


TITLE = st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters=";"),
                max_size=30)


@fuzz
@given(st.lists(TITLE, min_size=1, max_size=4), st.sampled_from(["u2", "i4", "f8"]),
       st.booleans(), st.sampled_from([None, "gzip", "zlib", "bz2"]))
def test_valid_edf_reads_as_written_and_as_fabio(titles, dtype, big, codec):
    """Any header text without ';' (braces included) leaves the pixels as written, and fabio
    reads the same frame."""
    rng = np.random.default_rng(len("".join(titles)))
    data = (rng.random((7, 5)) * 1000).astype(dtype)
    extra = {f"Title{k}": t for k, t in enumerate(titles)}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ok.edf")
        with open(path, "wb") as f:
            f.write(synth.edf_block_bytes(data, extra, compression=codec, big_endian=big))
        np.testing.assert_array_equal(imageseries.from_files([path])[0], data)
        np.testing.assert_array_equal(fabio.open(path).data, data)


@fuzz
@given(st.binary(max_size=2000), st.sampled_from([".tif", ".cbf", ".img", ".mccd"]))
def test_fabio_formats_on_arbitrary_bytes(data, suffix):
    with tempfile.TemporaryDirectory() as tmp, bounded_memory():
        path = os.path.join(tmp, "frame" + suffix)
        with open(path, "wb") as f:
            f.write(data)
        open_and_read(lambda: imageseries.from_files([path]))


# -- YAML --------------------------------------------------------------------------------

YAML_ALPHABET = st.sampled_from(list("[]{}&*:-,?|>!'\"#%@ \n\tab01") +
                                ["&a ", "*a", "&b ", "*b", "<<: ", "!!python/object ",
                                 "image-files:", "data:", "scalar:", "- "])


@fuzz
@given(st.one_of(st.text(max_size=300), st.lists(YAML_ALPHABET, max_size=120).map("".join)))
def test_yaml_loader_on_arbitrary_text(text):
    with bounded_memory():
        try:
            load_yaml(text, is_text=True)
        except InputError as exc:
            assert len(str(exc)) < 1000


@st.composite
def alias_documents(draw) -> str:
    """Anchors referring to earlier anchors, many times: from harmless to bombs."""
    lines = ["n0: &n0 [x, y]"]
    for k in range(1, draw(st.integers(1, 12))):
        refs = [f"*n{draw(st.integers(0, k - 1))}" for _ in range(draw(st.integers(1, 12)))]
        lines.append(f"n{k}: &n{k} [{', '.join(refs)}]")
    return "\n".join(lines) + "\n"


@fuzz
@given(alias_documents(), st.sampled_from(["text", "series", "job"]))
def test_yaml_aliases_bounded(doc, face):
    with tempfile.TemporaryDirectory() as tmp, bounded_memory():
        if face == "text":
            try:
                load_yaml(doc, is_text=True)
            except InputError as exc:
                assert "alias" in str(exc)
            return
        path = os.path.join(tmp, "doc.yml")
        with open(path, "w") as f:
            f.write(doc + ("image-files: *n0\n" if face == "series" else "scans: *n0\n"))
        try:
            if face == "series":
                imageseries.open(path)
            else:
                from xrsmap_dask import jobs

                jobs.load_job(path)
        except InputError as exc:
            assert len(str(exc)) < 2000


# -- zarr --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def zarr_template(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("fuzz_zarr") / "t.zarr")
    data = np.arange(4 * 6 * 5, dtype="u2").reshape(4, 6, 5)
    imageseries.write(imageseries.open(None, "array", data=data), path, "zarr",
                      frames_per_chunk=1)
    return path


def _mutate_json(text: str, draw) -> str:
    doc = json.loads(text)
    key = draw(st.sampled_from(["shape", "data_type", "chunk_grid", "codecs", "fill_value",
                                "attributes", "chunk_key_encoding", "node_type"]))
    doc[key] = draw(st.one_of(st.none(), st.integers(-2**40, 2**40), st.text(max_size=10),
                              st.lists(st.integers(-5, 10**12), max_size=4),
                              st.just({"complete": False})))
    return json.dumps(doc)


@settings(fuzz, max_examples=max(EXAMPLES // 2, 10))
@given(st.data(), st.sampled_from(["json", "raw-json", "chunk"]), st.booleans())
def test_zarr_opener_on_damaged_stores(zarr_template, data, what, fill):
    import shutil

    with tempfile.TemporaryDirectory() as tmp, bounded_memory():
        store = os.path.join(tmp, "s.zarr")
        shutil.copytree(zarr_template, store)
        meta = os.path.join(store, "images", "zarr.json")
        if what == "json":
            with open(meta) as f:
                text = _mutate_json(f.read(), data.draw)
        elif what == "raw-json":
            text = data.draw(st.text(max_size=200))
        if what == "chunk":
            chunk = os.path.join(store, "images", "c", "1", "0", "0")
            with open(chunk, "wb") as f:
                f.write(data.draw(st.binary(max_size=200)))
        else:
            with open(meta, "w") as f:
                f.write(text)
        open_and_read(lambda: imageseries.open(store, "zarr",
                                               on_error="fill" if fill else "raise"))
    assert zarr.__version__  # the store was read by the real zarr
