"""hexrd-compatible imageseries.stats against numpy on the stacked frames (real files)."""
from __future__ import annotations

import glob

import fabio
import h5py
import numpy as np
import pytest

from xrsmap_dask import imageseries, synth
from xrsmap_dask.errors import InputError
from xrsmap_dask.imageseries import stats

DTYPES = ["uint16", "int32", "float32", "float64"]
SHAPE = (24, 20)
NFRAMES = 15


def _values(rng, dtype, n=NFRAMES):
    """Random frames with ties and (for floats) non-integer values."""
    if np.dtype(dtype).kind == "f":
        return rng.normal(300.0, 80.0, (n,) + SHAPE).astype(dtype)
    return rng.integers(0, 2000 if dtype == "uint16" else 10**6, (n,) + SHAPE).astype(dtype)


@pytest.fixture(scope="module", params=DTYPES)
def series(request, tmp_path_factory):
    """The same stack as EDF files (fabio), an HDF5 dataset (h5py) and an array series."""
    dtype = request.param
    d = tmp_path_factory.mktemp(f"stats_{dtype}")
    rng = np.random.default_rng(abs(hash(dtype)) % 2**32)
    stack = _values(rng, dtype)
    for i, frame in enumerate(stack):
        synth.write_edf(str(d / f"f_{i:03d}.edf"), frame, {"i": str(i)})
    with h5py.File(d / "s.h5", "w") as f:
        f.create_dataset("imageseries/images", data=stack, chunks=(1,) + SHAPE)
    edf = imageseries.from_files(sorted(glob.glob(str(d / "f_*.edf"))))
    # the reference stack is what fabio reads back from the files
    ref = np.stack([fabio.open(p).data for p in sorted(glob.glob(str(d / "f_*.edf")))])
    assert ref.dtype == np.dtype(dtype)
    h5 = imageseries.open(str(d / "s.h5"), "hdf5", path="imageseries")
    arr = imageseries.open(None, "array", data=stack)
    return dtype, ref, {"edf": edf, "hdf5": h5, "array": arr, "numpy": stack}


@pytest.mark.parametrize("kind", ["edf", "hdf5", "array", "numpy"])
@pytest.mark.parametrize("nframes", [0, 7])
def test_stats_equal_numpy(series, kind, nframes):
    dtype, ref, sources = series
    ims = sources[kind]
    s = ref if nframes == 0 else ref[:nframes]
    got = stats.max(ims, nframes)
    assert got.dtype == np.dtype(dtype) and np.array_equal(got, s.max(axis=0))
    got = stats.min(ims, nframes)
    assert got.dtype == np.dtype(dtype) and np.array_equal(got, s.min(axis=0))
    got = stats.average(ims, nframes)
    assert got.dtype == np.float32
    assert np.array_equal(got, np.mean(s, axis=0).astype(np.float32))
    got = stats.median(ims, nframes)
    assert got.dtype == np.float32
    assert np.array_equal(got, np.median(s, axis=0).astype(np.float32))
    for pct in (0, 12.5, 50, 93.3, 100):
        got = stats.percentile(ims, pct, nframes)
        assert got.shape == SHAPE and got.dtype == np.float32
        assert np.array_equal(got, np.percentile(s, pct, axis=0).astype(np.float32)), pct
    pcts = [5, 50.0, 99]
    got = stats.percentile(ims, pcts, nframes)
    assert got.shape == (3,) + SHAPE and got.dtype == np.float32
    assert np.array_equal(got, np.percentile(s, pcts, axis=0).astype(np.float32))


@pytest.mark.parametrize("use_buffer", [True, False])
@pytest.mark.parametrize("name", ["max", "min", "average", "median", "percentile"])
def test_iter_progressive_and_final(series, name, use_buffer):
    _, ref, sources = series
    ims = sources["edf"]
    nchunks = 4
    if name == "percentile":
        it = stats.percentile_iter(ims, [10, 90], nchunks, nframes=9, use_buffer=use_buffer)
        final = stats.percentile(ims, [10, 90], nframes=9)
    else:
        it = getattr(stats, f"{name}_iter")(ims, nchunks, nframes=9, use_buffer=use_buffer)
        final = getattr(stats, name)(ims, nframes=9)
    images = [img.copy() for img in it]
    assert len(images) == nchunks
    assert np.array_equal(images[-1], final)
    # each yield completes one more row band: rows not yet done are still zero, done rows
    # are final
    zero_rows = []
    for img in images:
        rows = img.reshape((-1,) + img.shape[-2:]) if img.ndim == 3 else img[None]
        zero = np.all(rows == 0, axis=(0, 2))
        zero_rows.append(int(zero.sum()))
        fin = final.reshape(rows.shape)
        assert np.array_equal(rows[:, ~zero], fin[:, ~zero])
    assert zero_rows[-1] == 0
    assert all(a > b for a, b in zip(zero_rows, zero_rows[1:])), zero_rows


def test_iter_more_chunks_than_rows_yields_nchunks(series):
    _, ref, sources = series
    images = list(stats.median_iter(sources["array"], SHAPE[0] + 5))
    assert len(images) == SHAPE[0] + 5
    assert np.array_equal(images[-1], np.median(ref, axis=0).astype(np.float32))


def test_on_processed_series(series):
    from xrsmap_dask.imageseries.process import ProcessedImageSeries

    _, ref, sources = series
    pims = ProcessedImageSeries(sources["edf"], [("flip", "v"), ("rectangle", [[2, 20], [0, 9]])],
                                frame_list=[0, 3, 4, 5, 11, 2])
    s = ref[[0, 3, 4, 5, 11, 2]][:, :, ::-1][:, 2:20, 0:9]
    assert np.array_equal(stats.median(pims), np.median(s, axis=0).astype(np.float32))
    assert np.array_equal(stats.max(pims, 4), s[:4].max(axis=0))


def test_bad_arguments(series):
    _, _, sources = series
    ims = sources["array"]
    with pytest.raises(InputError) as e:
        stats.median(ims, nframes=NFRAMES + 1)
    assert e.value.argument == "nframes"
    with pytest.raises(InputError) as e:
        stats.percentile(ims, 101)
    assert e.value.argument == "pct"
    with pytest.raises(InputError) as e:
        stats.percentile(ims, [-1, 50])
    assert e.value.argument == "pct"
    with pytest.raises(InputError) as e:
        stats.median_iter(ims, 0)
    assert e.value.argument == "nchunks"
    with pytest.raises(InputError):
        stats.max(np.zeros((2, 2, 2, 2)))


def test_band_buffer_is_bounded(series, monkeypatch):
    """With a one-byte buffer the plain functions work row band by row band, still exact."""
    _, ref, sources = series
    monkeypatch.setattr(stats, "BUFFER_BYTES", 1)
    assert np.array_equal(stats.median(sources["hdf5"]),
                          np.median(ref, axis=0).astype(np.float32))
    assert np.array_equal(stats.percentile(sources["edf"], [3, 97]),
                          np.percentile(ref, [3, 97], axis=0).astype(np.float32))
