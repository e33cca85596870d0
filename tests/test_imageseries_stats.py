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
    assert got.dtype == np.float32  # the float64 mean rounded once to float32
    assert np.array_equal(got, np.mean(s.astype(np.float64), axis=0).astype(np.float32))
    got = stats.sum(ims, nframes)
    assert got.dtype == np.float64
    assert np.array_equal(got, np.sum(s, axis=0, dtype=np.float64))
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


@pytest.mark.parametrize("name", ["max", "min", "sum", "average"])
def test_group_iter_yields_running_result_over_frame_groups(series, name):
    """hexrd's max/min/sum/average iterators: after each group of frames, the statistic over
    all frames so far (groups from _chunk_stops: 9 frames in 4 groups are 3, 2, 2, 2)."""
    _, ref, sources = series
    s = ref[:9].astype(np.float64) if name in ("sum", "average") else ref[:9]
    reduce = {"max": lambda a: a.max(axis=0), "min": lambda a: a.min(axis=0),
              "sum": lambda a: a.sum(axis=0),
              "average": lambda a: a.mean(axis=0).astype(np.float32)}[name]
    for kind in ("edf", "numpy"):
        images = list(getattr(stats, f"{name}_iter")(sources[kind], 4, nframes=9))
        assert [int(v) for v in stats._chunk_stops(9, 4)] == [2, 4, 6, 8]
        assert len(images) == 4
        for img, stop in zip(images, (3, 5, 7, 9)):
            if ref.dtype.kind == "f" and name in ("sum", "average"):  # summation order
                np.testing.assert_allclose(img, reduce(s[:stop]), rtol=1e-6)
            else:
                np.testing.assert_array_equal(img, reduce(s[:stop]))
        assert len({id(img) for img in images}) == 4  # a new array each time
        np.testing.assert_allclose(images[-1], getattr(stats, name)(sources[kind], 9),
                                   rtol=1e-6 if ref.dtype.kind == "f" else 0)
    # hexrd's spelling nchunk= and ours nchunks= are the same argument
    again = list(getattr(stats, f"{name}_iter")(sources["array"], nchunks=4, nframes=9))
    np.testing.assert_array_equal(again[1], images[1])


@pytest.mark.parametrize("use_buffer", [True, False])
@pytest.mark.parametrize("name", ["median", "percentile"])
def test_band_iter_progressive_and_final(series, name, use_buffer):
    _, ref, sources = series
    ims = sources["edf"]
    nchunks = 4
    if name == "percentile":
        it = stats.percentile_iter(ims, [10, 90], nchunks, nframes=9, use_buffer=use_buffer)
        final = stats.percentile(ims, [10, 90], nframes=9)
    else:
        it = getattr(stats, f"{name}_iter")(ims, nchunks, nframes=9, use_buffer=use_buffer)
        final = getattr(stats, name)(ims, nframes=9)
    images = list(it)
    assert len(images) == nchunks and len({id(i) for i in images}) == nchunks
    assert np.array_equal(images[-1], final)
    # each yield completes one more row band (hexrd's bands: 24 rows in 4 bands of 6):
    # rows not yet done are zero, done rows are final
    for k, img in enumerate(images):
        rows = img.reshape((-1,) + img.shape[-2:]) if img.ndim == 3 else img[None]
        fin = final.reshape(rows.shape)
        done = 6 * (k + 1)
        assert np.array_equal(rows[:, :done], fin[:, :done])
        assert not rows[:, done:].any()


def test_iter_more_chunks_than_rows_or_frames_is_an_error(series):
    _, ref, sources = series
    with pytest.raises(InputError, match="chunks"):
        list(stats.median_iter(sources["array"], SHAPE[0] + 1))
    with pytest.raises(ValueError, match="chunks"):  # hexrd raises ValueError here
        stats.max_iter(sources["array"], NFRAMES + 1)


def test_duck_typed_series(series):
    """hexrd code hands stats objects with only len, [int], shape and dtype."""
    _, ref, sources = series

    class Frames:
        shape, dtype = SHAPE, ref.dtype

        def __len__(self):
            return len(ref)

        def __getitem__(self, j):
            assert type(j) is int
            return ref[j].copy()

    np.testing.assert_array_equal(stats.max(Frames()), ref.max(axis=0))
    np.testing.assert_array_equal(stats.median(Frames(), 5),
                                  np.median(ref[:5], axis=0).astype(np.float32))
    images = list(stats.sum_iter(Frames(), 3))
    np.testing.assert_array_equal(images[0], ref[:5].sum(axis=0, dtype=np.float64))


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
    # more frames than the series: clamped, as hexrd does
    np.testing.assert_array_equal(stats.median(ims, nframes=NFRAMES + 1), stats.median(ims))
    with pytest.raises(InputError) as e:
        stats.median(ims, nframes=-1)
    assert e.value.argument == "nframes"
    with pytest.raises(InputError) as e:
        stats.percentile(ims, 101)
    assert e.value.argument == "pct"
    with pytest.raises(InputError) as e:
        stats.percentile(ims, pct=[-1, 50])
    assert e.value.argument == "pct"
    with pytest.raises(InputError) as e:
        stats.median_iter(ims, 0)
    assert e.value.argument == "nchunks"
    with pytest.raises(InputError):
        stats.max(np.zeros((2, 2, 2, 2)))


def test_band_buffer_is_bounded(series, monkeypatch):
    """With a one-byte buffer the plain functions work row band by row band, still exact."""
    _, ref, sources = series
    monkeypatch.setattr(stats, "STATS_BUFFER", 1)
    assert np.array_equal(stats.median(sources["hdf5"]),
                          np.median(ref, axis=0).astype(np.float32))
    assert np.array_equal(stats.percentile(sources["edf"], [3, 97]),
                          np.percentile(ref, [3, 97], axis=0).astype(np.float32))


def test_median_is_hexrds_float32_not_np_median(tmp_path):
    """hexrd's ``stats.median`` is ``np.percentile(stack, 50, axis=0).astype(np.float32)``:
    for uint32 values past 2**24 (float32 steps of 2) that is not ``np.median``; ours is
    hexrd's, bit for bit."""
    rng = np.random.default_rng(4)
    s = rng.integers(2 * 10**7, 2 * 10**7 + 1000, (6,) + SHAPE).astype(np.uint32)
    with h5py.File(tmp_path / "u.h5", "w") as f:
        f["imageseries/images"] = s
    ims = imageseries.open(str(tmp_path / "u.h5"), "hdf5", path="imageseries")
    got = stats.median(ims)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.percentile(s, 50, axis=0).astype(np.float32))
    assert not np.array_equal(got.astype(np.float64), np.median(s, axis=0))  # hexrd's rounding
