"""ProcessedImageSeries: ops and frame_list against numpy, lazy reads, writers round trip."""
from __future__ import annotations

import pickle

import fabio
import numpy as np
import pytest

from xrsmap_dask import imageseries, synth
from xrsmap_dask.errors import InputError
from xrsmap_dask.imageseries.process import ProcessedImageSeries as PIS

# DESIGN.md's flip codes, written out with numpy
FLIPS = {
    "v": lambda a: a[:, ::-1],
    "h": lambda a: a[::-1, :],
    "vh": lambda a: a[::-1, ::-1],
    "hv": lambda a: a[::-1, ::-1],
    "r180": lambda a: a[::-1, ::-1],
    "t": lambda a: a.T,
    "ccw90": lambda a: a.T[::-1, :],
    "cw90": lambda a: a.T[:, ::-1],
}


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """12 uint16 EDF frames of 30 x 22 (non-square, so transposes show) and the stack."""
    s = synth.make_scan(tmp_path_factory.mktemp("proc"), npt_y=3, npt_x=4, frame_shape=(30, 22),
                        seed=5)
    stack = np.stack([fabio.open(p).data for p in s.files])
    omega = np.stack([np.arange(12) * 0.5, np.arange(1, 13) * 0.5], axis=1)
    ims = imageseries.from_files(s.files, meta={"omega": omega, "energy": 50.0})
    return ims, stack, omega


def _dark_ref(frames, dark):
    return np.clip(frames.astype(np.float64) - dark, 0, None).astype(frames.dtype)


@pytest.mark.parametrize("code", list(FLIPS))
def test_flip_codes(scan, code):
    ims, stack, _ = scan
    p = PIS(ims, [("flip", code)])
    ref = np.stack([FLIPS[code](f) for f in stack])
    assert p.shape == ref.shape[1:] and p.dtype == stack.dtype and len(p) == len(stack)
    assert np.array_equal(np.stack([p[j] for j in range(len(p))]), ref)
    # region reads map back through the flip
    rows, cols = slice(3, 11), slice(5, 9)
    assert np.array_equal(p[(2, rows, cols)], ref[2, rows, cols])
    assert np.array_equal(p.read_block(4, 9, (rows, cols)), ref[4:9, rows, cols])


def test_dark_clips_and_keeps_dtype(scan):
    ims, stack, _ = scan
    dark = np.full(ims.shape, 25, dtype=np.uint16)
    dark[:5] = 60000  # above every frame value: must give 0, not wrap around
    p = PIS(ims, [(PIS.DARK, dark)])
    got = p.read_block(0, len(p))
    assert got.dtype == np.uint16
    assert np.array_equal(got, _dark_ref(stack, dark))
    assert np.all(got[:, :5] == 0)
    # a float dark frame on integer data
    fdark = np.linspace(0, 40, ims.shape[0] * ims.shape[1]).reshape(ims.shape)
    assert np.array_equal(PIS(ims, [("dark", fdark)]).read_block(0, 3), _dark_ref(stack[:3], fdark))


def test_rectangle_add_and_order(scan):
    ims, stack, _ = scan
    dark = np.random.default_rng(0).integers(0, 40, ims.shape).astype(np.uint16)
    addend = np.arange(ims.shape[0] * ims.shape[1], dtype=np.float32).reshape(ims.shape)
    ops = [("add", addend), ("dark", dark.astype(np.float32)), ("flip", "cw90"),
           (PIS.RECT, [[2, 15], [4, 27]]), ("add", 7)]
    p = PIS(ims, ops)
    ref = stack + addend
    ref = np.clip(ref.astype(np.float64) - dark.astype(np.float32), 0, None).astype(np.float32)
    ref = np.stack([FLIPS["cw90"](f) for f in ref])[:, 2:15, 4:27] + 7
    assert p.dtype == ref.dtype == np.float32 and p.shape == (13, 23)
    assert np.array_equal(p.read_block(0, len(p)), ref)
    roi = (slice(1, 9), slice(10, 20))
    assert np.array_equal(p.read_block(3, 10, roi), ref[3:10, 1:9, 10:20])


def test_frame_list_subsets_frames_and_metadata(scan):
    ims, stack, omega = scan
    fl = [11, 0, 1, 2, 7, -1, 5]
    p = PIS(ims, [("flip", "t")], frame_list=fl)
    assert len(p) == len(fl)
    ref = np.stack([stack[j].T for j in fl])
    assert np.array_equal(p.read_block(0, len(p)), ref)
    assert np.array_equal(p.metadata["omega"], omega[fl])
    assert p.metadata["energy"] == 50.0
    assert list(p.frame_list) == [j % len(stack) for j in fl]


def test_to_dask_lazy_batched_and_small_tasks(scan):
    ims, stack, _ = scan
    dark = np.full(ims.shape, 10, np.uint16)
    p = PIS(ims, [("dark", dark), ("flip", "ccw90")], frame_list=range(1, 12))
    roi = (slice(2, 20), slice(3, 25))
    x = p.to_dask(roi=roi, frames_per_chunk=4)
    assert x.chunks[0] == (4, 4, 3) and x.dtype == np.uint16
    graph = dict(x.__dask_graph__())
    reads = [k for k in graph if isinstance(k, tuple)]
    assert len(reads) == 3 and all(k[0].startswith("processed-") for k in reads)
    ref = np.stack([FLIPS["ccw90"](f) for f in _dark_ref(stack[1:12], dark)])[:, 2:20, 3:25]
    assert np.array_equal(x.compute(scheduler="threads"), ref)
    # a read task carries file names and offsets, not pixels (the dark frame is shared)
    task_args = [graph[k] for k in reads]
    size = max(len(pickle.dumps(t)) for t in task_args)
    assert size < ims.shape[0] * ims.shape[1] * 2 * 4  # far less than 4 frames of pixels


def test_custom_op_by_subclassing(scan):
    ims, stack, _ = scan

    class GainPIS(PIS):
        GAIN = "gain"

    GainPIS.addop(GainPIS.GAIN, np.multiply)
    assert "gain" not in PIS._ops  # the parent's table is untouched
    p = GainPIS(ims, [("rectangle", [[1, 21], [0, 10]]), ("gain", 1.5), ("flip", "h")])
    ref = (stack[:, 1:21, 0:10] * 1.5)[:, ::-1, :]
    assert p.dtype == np.float64 and p.shape == (20, 10)
    assert np.array_equal(p.to_dask(roi=(slice(4, 12), slice(2, 7))).compute(),
                          ref[:, 4:12, 2:7])
    with pytest.raises(InputError):
        PIS(ims, [("gain", 2.0)])

    class InstancePIS(PIS):
        def __init__(self, ims, oplist):
            self.addop("square", lambda img, _: img.astype(np.int64) ** 2)
            super().__init__(ims, oplist)

    q = InstancePIS(ims, [("square", None)])
    assert np.array_equal(q[3], stack[3].astype(np.int64) ** 2)
    assert "square" not in InstancePIS._ops


@pytest.mark.parametrize("fmt,kwargs,name", [
    ("hdf5", {"path": "/imageseries"}, "p.h5"),
    ("frame-cache", {"threshold": 0, "style": "npz"}, "p.npz"),
])
def test_write_open_round_trip(scan, tmp_path, fmt, kwargs, name):
    ims, stack, omega = scan
    dark = np.full(ims.shape, 30, np.uint16)
    fl = [0, 2, 4, 6, 8, 10]
    p = PIS(ims, [("dark", dark), ("flip", "v")], frame_list=fl)
    out = tmp_path / name
    imageseries.write(p, str(out), fmt, **kwargs)
    back = imageseries.open(str(out), fmt, **({"path": "/imageseries"} if fmt == "hdf5" else {}))
    ref = _dark_ref(stack[fl], dark)[:, :, ::-1]
    assert len(back) == len(fl) and back.shape == p.shape and back.dtype == p.dtype
    assert np.array_equal(np.stack([back[j] for j in range(len(back))]), ref)
    assert np.array_equal(np.asarray(back.metadata["omega"]), omega[fl])


def test_bad_ops(scan):
    ims, _, _ = scan
    for ops in ([("blur", 1)], [("flip", "x")], [("rectangle", [[0, 40], [0, 5]])],
                [("rectangle", [[5, 5], [0, 5]])], [("dark", np.zeros((3, 3)))],
                [("add", "seven")], [("flip",)]):
        with pytest.raises(InputError) as e:
            PIS(ims, ops)
        assert e.value.argument == "oplist", ops
    with pytest.raises(InputError) as e:
        PIS(ims, [], frame_list=[0, 12])
    assert e.value.argument == "frame_list"
    # no ops: the source frames unchanged
    assert np.array_equal(PIS(ims, [])[5], ims[5])
