"""OmegaWedges / OmegaImageSeries: omega metadata round trip and frame lookup."""
from __future__ import annotations

import numpy as np
import pytest

from xrsmap_dask import imageseries
from xrsmap_dask.errors import InputError
from xrsmap_dask.imageseries.omega import OmegaImageSeries, OmegaWedges


def _wedges():
    w = OmegaWedges(20)
    w.addwedge(0.0, 30.0, 12)
    w.addwedge(100.0, 116.0, 8)
    return w


def test_wedges_omegas_values():
    w = _wedges()
    assert w.nwedges == 2 and w.nframes == 20
    om = w.omegas
    assert om.shape == (20, 2)
    ref0 = np.linspace(0.0, 30.0, 13)
    ref1 = np.linspace(100.0, 116.0, 9)
    assert np.allclose(om[:12, 0], ref0[:-1]) and np.allclose(om[:12, 1], ref0[1:])
    assert np.allclose(om[12:, 0], ref1[:-1]) and np.allclose(om[12:, 1], ref1[1:])
    assert w.wedges[1] == {"ostart": 100.0, "ostop": 116.0, "nsteps": 8}


def test_wedges_insert_delete_and_count_check(tmp_path):
    w = _wedges()
    w.addwedge(50.0, 52.0, 4, loc=1)
    assert [d["ostart"] for d in w.wedges] == [0.0, 50.0, 100.0]
    with pytest.raises(InputError) as e:
        w.omegas  # 24 steps for 20 frames
    assert e.value.argument == "nframes"
    w.delwedge(1)
    assert [d["ostart"] for d in w.wedges] == [0.0, 100.0]
    with pytest.raises(InputError):
        w.delwedge(5)
    with pytest.raises(InputError):
        w.addwedge(0, 1, 0)
    fname = tmp_path / "om.npy"
    w.save_omegas(str(fname))
    assert np.array_equal(np.load(fname), w.omegas)


@pytest.fixture()
def oms(tmp_path):
    w = _wedges()
    data = np.random.default_rng(0).integers(0, 100, (20, 6, 5)).astype(np.uint16)
    ims = imageseries.open(None, "array", data=data, meta={"omega": w.omegas})
    return OmegaImageSeries(ims), w, data


def test_omega_series_wedges(oms):
    s, w, data = oms
    assert len(s) == 20 and s.shape == (6, 5) and np.array_equal(s[3], data[3])
    assert np.array_equal(s.omega, w.omegas)
    assert s.nwedges == 2
    w0, w1 = s.wedge(0), s.wedge(1)
    assert (w0["ostart"], w0["ostop"], w0["nsteps"]) == (0.0, 30.0, 12)
    assert (w1["ostart"], w1["ostop"], w1["nsteps"]) == (100.0, 116.0, 8)
    assert w1["delta"] == pytest.approx(2.0)
    assert s.omegarange == (0.0, 116.0)
    assert s.omegaspan == pytest.approx(116.0)
    assert np.array_equal(s.to_dask().compute(), data)


def test_omega_to_frame(oms):
    s, w, _ = oms
    om = w.omegas
    for f in range(20):
        mid = 0.5 * (om[f, 0] + om[f, 1])
        assert s.omega_to_frame(mid) == (f, 0 if f < 12 else 1)
        assert s.omega_to_frame(om[f, 0] + 1e-9)[0] == f  # interval start is inside
    assert s.omega_to_frame(45.0) == (-1, -1)    # between the wedges
    assert s.omega_to_frame(-10.0) == (-1, -1)
    assert s.omega_to_frame(130.0) == (-1, -1)
    assert s.omega_to_frame(360.0 + 3.1) == (1, 0)   # taken modulo 360
    assert s.omegarange_to_frames(3.1, 10.2) == [1, 2, 3, 4]
    # hexrd's answers: () for an angle in no wedge, for a range across a gap between wedges
    # and for a range inside one frame of a wedge that does not wrap
    assert s.omegarange_to_frames(45.0, 50.0) == ()
    assert s.omegarange_to_frames(3.0, 105.0) == ()
    assert s.omegarange_to_frames(3.1, 3.2) == ()


def test_wedges_joined_across_360():
    """A scan 350..360 then 0..10 degrees: a range across 360 joins the two wedges."""
    w = OmegaWedges(20)
    w.addwedge(350.0, 360.0, 10)
    w.addwedge(0.0, 10.0, 10)
    assert w.wframes == 20
    data = np.zeros((20, 2, 2), np.uint8)
    s = OmegaImageSeries(imageseries.open(None, "array", data=data, meta={"omega": w.omegas}))
    assert s.nwedges == 2
    assert s.omegarange_to_frames(352.1, 354.9) == [2, 3, 4]
    assert s.omegarange_to_frames(358.1, 1.9) == [8, 9, 10, 11]
    assert s.omegarange_to_frames(355.0, 101.0) == ()


def test_hexrd_error_type_and_duck_series():
    from xrsmap_dask.imageseries.omega import OmegaSeriesError

    class Frames:  # what hexrd's tests hand it: len and metadata only
        metadata = {"omega": np.column_stack([np.arange(10.0), np.arange(1.0, 11.0)])}

        def __len__(self):
            return 10

    s = OmegaImageSeries(Frames())
    assert s.nwedges == 1 and s.wedge(0)["delta"] == 1.0 and s.omega_to_frame(365.5) == (5, 0)
    Frames.metadata = {}
    with pytest.raises(OmegaSeriesError, match="no omega metadata") as e:
        OmegaImageSeries(Frames())
    assert isinstance(e.value, InputError)
    Frames.metadata = {"omega": np.zeros((5, 2))}
    with pytest.raises(OmegaSeriesError, match="omega array mismatch"):
        OmegaImageSeries(Frames())
    w = OmegaWedges(20)
    w.addwedge(0, 10, 5)
    with pytest.raises(OmegaSeriesError, match="does not match"):
        w.omegas


def test_full_circle_wraps():
    w = OmegaWedges(36)
    w.addwedge(0.0, 360.0, 36)
    data = np.zeros((36, 2, 2), np.uint8)
    s = OmegaImageSeries(imageseries.open(None, "array", data=data, meta={"omega": w.omegas}))
    assert s.omega_to_frame(-5.0) == (35, 0)
    assert s.omegarange_to_frames(345.0, 15.0) == [34, 35, 0, 1]
    # inside one frame of a full circle, hexrd's rule wraps the whole circle
    assert s.omegarange_to_frames(55.1, 55.2) == list(range(5, 36)) + list(range(0, 6))


def test_round_trip_through_hdf5(oms, tmp_path):
    s, w, data = oms
    f = tmp_path / "om.h5"
    imageseries.write(s, str(f), "hdf5", path="/imageseries")
    back = OmegaImageSeries(imageseries.open(str(f), "hdf5", path="/imageseries"))
    assert np.array_equal(back.omega, w.omegas)
    assert back.nwedges == 2 and back.omega_to_frame(101.0) == (12, 1)
    assert np.array_equal(back[19], data[19])


def test_bad_omega_metadata():
    data = np.zeros((4, 2, 2))
    with pytest.raises(InputError) as e:
        OmegaImageSeries(imageseries.open(None, "array", data=data))
    assert e.value.argument == "omega"
    with pytest.raises(InputError):
        OmegaImageSeries(imageseries.open(None, "array", data=data,
                                          meta={"omega": np.zeros((3, 2))}))
    bad = np.array([[0, 1], [1, 2], [2, 2], [3, 4]], float)
    with pytest.raises(InputError):
        OmegaImageSeries(imageseries.open(None, "array", data=data, meta={"omega": bad}))
