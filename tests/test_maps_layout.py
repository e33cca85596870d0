"""Write units of map jobs (xrsmap_dask.maps.layout): regions, frames, task counts."""
from __future__ import annotations

import dask
import numpy as np
import pytest

from xrsmap_dask import imageseries, synth
from xrsmap_dask.imageseries.base import ImageSeries
from xrsmap_dask.maps import MapSpec, build_maps, rings
from xrsmap_dask.maps.layout import MIN_UNIT_BYTES, auto_unit_frames, unit_chunk_shape
from xrsmap_dask.scan import ScanGeometry
from xrsmap_dask.store.writer import store_graph


class ConstantSeries(ImageSeries):
    """``n`` frames of one value (a long series without its bytes on disk: for planning)."""

    def __init__(self, n: int, shape, dtype="uint16", on_error="raise"):
        self._n, self._shape, self._dtype, self._metadata = n, tuple(shape), np.dtype(dtype), {}
        self.on_error = on_error

    def __len__(self):
        return self._n

    def _read_region(self, j, rows, cols):
        return np.full((rows.stop - rows.start, cols.stop - cols.start), j % 7, self._dtype)

    @property
    def token(self):
        return f"constant-{self._n}-{self._shape}-{self._dtype}-{self.on_error}"


def _scan(kind: str, ny: int, nx: int) -> ScanGeometry:
    if kind == "positions":
        perm = np.random.default_rng(4).permutation(ny * nx)
        return ScanGeometry(ny, nx, positions=np.stack(np.divmod(perm, nx), axis=1))
    return ScanGeometry(ny, nx, kind=kind)


def _tasks(graph) -> int:
    """Keys of a graph that run code (not the literal parameter keys)."""
    return sum(1 for v in dict(graph).values() if isinstance(v, tuple) and callable(v[0]))


KINDS = ["raster", "snake", "column", "positions"]


@pytest.mark.parametrize("on_error, dtype", [("raise", "uint16"), ("fill", "uint16"),
                                             ("raise", "float32")])
@pytest.mark.parametrize("mesh", [(80, 80), (64, 100), (20, 20)])
def test_at_most_one_task_per_16_mib_for_every_scan_kind(mesh, on_error, dtype):
    """6400 (or 400) frames of a 256 x 256 ROI: the unit tasks (read, reduce, place, and in
    the store, write) are at most one per 16 MiB of ROI bytes for every scan kind (the same
    number on a square mesh); the store graph adds one gather task, the in-memory compute
    nothing."""
    ny, nx = mesh
    ims = ConstantSeries(ny * nx, (256, 256), dtype, on_error)
    nbytes = ny * nx * 256 * 256 * np.dtype(ims.block_dtype()).itemsize
    counts = set()
    with dask.config.set(num_workers=2):
        for kind in KINDS:
            m = build_maps(ims, MapSpec(binning=16), _scan(kind, ny, nx))
            units = m.plan.nchunks
            assert units <= max(1, nbytes // MIN_UNIT_BYTES), (kind, units)
            store = store_graph("/nonexistent/out.zarr", m.output_request(ims),
                                list(range(units)))
            assert _tasks(store.__dask_graph__()) == units + 1
            reduce_keys = [k for k in dict(m.composite.dask) if isinstance(k, tuple)
                           and k[0].startswith("map-reduce")]
            assert len(reduce_keys) == units
            counts.add(units)
    if ny == nx:                      # lines as long whichever way: the same units
        assert len(counts) == 1
    if ny * nx == 6400:
        assert min(counts) >= 16      # and enough tasks to keep threads busy


def test_small_job_units_are_a_multiple_of_the_threads():
    # 400 frames of 128 KiB: 50 MiB -> at most 3 tasks of >= 16 MiB; 2 threads -> 2 units
    assert auto_unit_frames(400, 256 * 256 * 2, 2) == (200, 128)
    # big job: ~32 MiB per unit
    per, least = auto_unit_frames(6400, 256 * 256 * 2, 2)
    assert per == 256 and least == 128
    # tiny job: one unit
    assert auto_unit_frames(10, 1000, 8)[0] == 10


@pytest.mark.parametrize("kind", ["raster", "snake", "column"])
@pytest.mark.parametrize("frames", [1, 2, 3, 4, 5, 7, 8, 9, 13, 30])
def test_unit_regions_whole_lines_rounded_to_nearest(kind, frames):
    scan = ScanGeometry(6, 4, kind=kind)
    cy, cx = unit_chunk_shape(scan, frames)
    along, across = (cy, cx) if kind == "column" else (cx, cy)   # (within a line, lines)
    line, nlines = (6, 4) if kind == "column" else (4, 6)
    if frames >= line:      # whole lines, as many as nearest to the frames asked for
        assert along == line and across == min(nlines, max(1, round(frames / line)))
        assert 2 / 3 * frames <= along * across <= 1.5 * frames or across == nlines
    else:                   # one line cut in near-equal parts of about `frames` points
        assert across == 1 and 2 / 3 * frames <= along <= 1.5 * frames + 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fpc", [1, 3, 5, 9, "auto"])
def test_units_cover_every_point_once(kind, fpc):
    scan = _scan(kind, 6, 5)
    ims = ConstantSeries(30, (8, 8))
    m = build_maps(ims, MapSpec(), scan, frames_per_chunk=fpc)
    seen = np.zeros(scan.shape, int)
    frames_seen = []
    p2f = scan.point_to_frame()
    for u in range(m.plan.nchunks):
        region = m.plan.unit_region(u)
        seen[region] += 1
        frames, points = m.plan.unit_frames(u)
        assert np.all(np.diff(frames) > 0)               # ascending: runs of reads
        np.testing.assert_array_equal(p2f[region].ravel()[points], frames)
        frames_seen.extend(frames.tolist())
    assert np.all(seen == 1) and sorted(frames_seen) == list(range(30))


def test_explicit_positions_read_scattered_frames_right(tmp_path):
    """A position table in random order: each unit reads scattered frames (many runs)."""
    s = synth.make_scan(tmp_path, npt_y=4, npt_x=5, frame_shape=(16, 16), seed=8)
    frames = np.stack([imageseries.from_files(s.files)[i] for i in range(20)]).astype(float)
    perm = np.random.default_rng(1).permutation(20)
    table = np.stack(np.divmod(perm, 5), axis=1)
    ims = imageseries.from_files(s.files)
    m = build_maps(ims, MapSpec(binning=4, rings=rings(8, 8, [4], 2)),
                   ScanGeometry(4, 5, positions=table), frames_per_chunk=6)
    got = m.compute(scheduler="threads")
    for i, (r, c) in enumerate(table):
        np.testing.assert_allclose(got["roi_sum"][r, c], frames[i].sum())
        np.testing.assert_allclose(got["composite"][r, c],
                                   frames[i].reshape(4, 4, 4, 4).sum((1, 3)))


def test_compute_equals_dask_arrays_and_runs_only_unit_tasks(tmp_path):
    from dask.callbacks import Callback

    s = synth.make_scan(tmp_path, npt_y=4, npt_x=6, frame_shape=(24, 24), seed=3)
    ims = imageseries.from_files(s.files)
    m = build_maps(ims, MapSpec(binning=4, rings=rings(12, 12, [5, 8], 2)),
                   ScanGeometry(4, 6), frames_per_chunk=6)
    keys = []

    class Watch(Callback):
        def _pretask(self, key, dsk, state):
            keys.append(key)

    with Watch():
        got = m.compute(scheduler="threads", flags=True)
    assert len(keys) == m.plan.nchunks == 4
    want = dict(zip(m.arrays(), dask.compute(*m.arrays().values(), scheduler="sync")))
    for name, arr in want.items():
        np.testing.assert_array_equal(got[name], arr)
    assert got["frame_unreadable"].shape == (4, 6) and not got["frame_unreadable"].any()
