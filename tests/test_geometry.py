"""Detector geometry: pyFAI's own arrays from a tilted PONI file, the pixel geometry as the
untilted case, chi sectors, option parsing and pickling."""
from __future__ import annotations

import pickle

import numpy as np
import pyFAI
import pytest

from xrsmap_dask import geometry as G
from xrsmap_dask import synth
from xrsmap_dask.errors import InputError


@pytest.fixture(scope="module")
def tilted_poni(tmp_path_factory):
    """A Pilatus 300k (619 x 487, module gaps in its mask) tilted on all three axes."""
    return synth.write_poni(tmp_path_factory.mktemp("poni") / "tilted.poni", "Pilatus300k",
                            rot1=0.03, rot2=-0.02, rot3=0.4)


@pytest.fixture(scope="module")
def flat_poni(tmp_path_factory):
    """An untilted generic detector, 100 x 120 pixels of 100 um, PONI on pixel (40.5, 70.5)."""
    return synth.write_poni(tmp_path_factory.mktemp("flat") / "flat.poni", dist=0.1,
                            poni1=41 * 1e-4, poni2=71 * 1e-4, rot1=0, rot2=0, rot3=0,
                            pixel_size=1e-4, shape=(100, 120))


SHAPE = (619, 487)


@pytest.mark.parametrize("unit", G.PONI_UNITS)
def test_poni_arrays_are_pyfais(tilted_poni, unit):
    geo = G.load_poni(tilted_poni)
    ai = pyFAI.load(tilted_poni)
    ref = ai.array_from_unit(SHAPE, "center", unit, scale=True)
    got = geo.radial(unit, SHAPE)
    assert got.dtype == np.float64 and got.shape == SHAPE
    np.testing.assert_array_equal(got, ref)
    box = (slice(100, 260), slice(31, 400))
    np.testing.assert_array_equal(geo.radial(unit, SHAPE, box), ref[box])
    assert not got.flags.writeable


def test_poni_chi_mask_solid_angle_polarization(tilted_poni):
    geo = G.load_poni(tilted_poni)
    ai = pyFAI.load(tilted_poni)
    np.testing.assert_array_equal(
        geo.chi(SHAPE), ai.array_from_unit(SHAPE, "center", "chi_deg", scale=False))
    assert -np.pi <= geo.chi(SHAPE).min() and geo.chi(SHAPE).max() <= np.pi
    mask = geo.mask(SHAPE)
    np.testing.assert_array_equal(mask, ai.detector.mask != 0)
    assert 10_000 < mask.sum() < 30_000      # the module gaps
    np.testing.assert_array_equal(geo.solid_angle(SHAPE), ai.solidAngleArray(SHAPE, order=3))
    np.testing.assert_array_equal(geo.polarization(SHAPE, 0.95),
                                  ai.polarization(SHAPE, factor=0.95))
    box = (slice(5, 50), slice(7, 9))
    np.testing.assert_array_equal(geo.mask(SHAPE, box), mask[box])
    assert geo.to_attrs()["config"]["rot3"] == 0.4


def test_poni_geometry_pickles_without_its_cache(tilted_poni):
    geo = G.load_poni(tilted_poni)
    q = geo.radial("q_A^-1", SHAPE)
    blob = pickle.dumps(geo)
    assert len(blob) < 5000                  # parameters only, not the cached arrays
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again.radial("q_A^-1", SHAPE), q)
    assert again.digest == geo.digest
    from dask.base import tokenize
    assert tokenize(again) == tokenize(geo)


def test_pixel_geometry_is_the_untilted_case(flat_poni):
    """Pixel distances and chi around the PONI pixel equal pyFAI's r_mm / pixel size and chi
    for an untilted detector: the pixel rings are one case of the same geometry."""
    shape = (100, 120)
    ai = pyFAI.load(flat_poni)
    pix = G.PixelGeometry(40.5, 70.5)
    r_mm = ai.array_from_unit(shape, "center", "r_mm", scale=True)
    np.testing.assert_allclose(pix.radial("pixel", shape), r_mm / 0.1, rtol=0, atol=1e-9)
    np.testing.assert_allclose(pix.chi(shape), G.load_poni(flat_poni).chi(shape), atol=1e-12)
    # the same distances as maps.ring_mask computes for today's pixel rings
    yy, xx = np.indices(shape)
    np.testing.assert_array_equal(pix.radial(None, shape), np.hypot(yy - 40.5, xx - 70.5))
    box = (slice(3, 9), slice(100, 120))
    np.testing.assert_array_equal(pix.radial("px", shape, box), np.hypot(yy - 40.5, xx - 70.5)[box])
    assert pix.mask(shape) is None
    with pytest.raises(InputError, match="PONI"):
        pix.radial("q_nm^-1", shape)
    with pytest.raises(InputError, match="solid-angle correction needs a PONI"):
        pix.solid_angle(shape)
    with pytest.raises(InputError, match="polarization correction needs a PONI"):
        pix.polarization(shape, 0.9)
    assert pickle.loads(pickle.dumps(pix)) == pix


def test_geometry_errors(tilted_poni, flat_poni, tmp_path):
    geo = G.load_poni(tilted_poni)
    with pytest.raises(InputError, match=r"Pilatus 300k\) is 619 x 487 pixels, the frames 512 x 512"):
        geo.radial("q_nm^-1", (512, 512))
    with pytest.raises(InputError, match="use r_mm"):
        geo.radial("pixel", SHAPE)
    with pytest.raises(InputError, match="no such PONI file"):
        G.load_poni(tmp_path / "missing.poni")
    bad = tmp_path / "bad.poni"
    bad.write_text("hello: world\n")
    with pytest.raises(InputError, match="not a pyFAI PONI file") as err:
        G.parse_poni(bad)
    assert err.value.path == str(bad) and err.value.argument == "poni"
    nowl = tmp_path / "nowl.poni"
    nowl.write_text("\n".join(line for line in open(flat_poni).read().splitlines()
                              if not line.startswith("Wavelength")))
    g = G.load_poni(nowl)
    assert g.wavelength is None
    with pytest.raises(InputError, match="needs a wavelength"):
        g.radial("q_nm^-1", (100, 120))
    assert g.radial("2th_deg", (100, 120)).max() > 0
    with pytest.raises(InputError, match="centre"):
        G.make_geometry()
    assert isinstance(G.make_geometry(cen_y=1, cen_x=2), G.PixelGeometry)
    assert G.make_geometry(tilted_poni).digest == geo.digest


def test_parse_unit():
    assert G.parse_unit("q_nm^-1") == "q_nm^-1"
    assert G.parse_unit(" Q_a^-1 ") == "q_A^-1"
    assert G.parse_unit("2TH_DEG") == "2th_deg"
    assert G.parse_unit("pixels") == "pixel"
    assert G.parse_unit(None) is None
    for bad in ("q", "nm", 3):
        with pytest.raises(InputError, match="must be one of pixel, q_nm") as err:
            G.parse_unit(bad)
        assert err.value.argument == "unit"
    assert G.unit_attrs("q_A^-1") == {"long_name": "scattering vector q (q_A^-1)",
                                      "units": "1/angstrom"}


def test_parse_chi_and_corrections():
    assert G.parse_chi_sector([-30, 60]) == (-30.0, 60.0)
    assert G.parse_chi_sector((170, -170.0)) == (170.0, -170.0)
    assert G.parse_chi_sector(None) is None
    for bad in ("-30:60", 10, [1, 2, 3], [0, 0], [0, 400], [float("nan"), 3], ["a", 1]):
        with pytest.raises(InputError) as err:
            G.parse_chi_sector(bad)
        assert err.value.argument == "chi"
    assert G.parse_polarization(0.99) == 0.99 and G.parse_polarization(None) is None
    for bad in (1.5, "x", True):
        with pytest.raises(InputError) as err:
            G.parse_polarization(bad)
        assert err.value.argument == "polarization"
    assert G.parse_solid_angle(True) is True and G.parse_solid_angle(False) is False
    with pytest.raises(InputError, match="true or false"):
        G.parse_solid_angle("yes")


def test_chi_sector_mask():
    chi = np.deg2rad(np.array([-179.0, -170.0, -90.0, 0.0, 45.0, 60.0, 170.0, 180.0]))
    np.testing.assert_array_equal(G.chi_sector_mask(chi, (-90, 60)),
                                  [0, 0, 1, 1, 1, 1, 0, 0])
    # across the +-180 discontinuity: from 170 up through 180 to -170, bounds inclusive
    np.testing.assert_array_equal(G.chi_sector_mask(chi, (170, -170)),
                                  [1, 1, 0, 0, 0, 0, 1, 1])
    # 190..200 is -170..-160
    np.testing.assert_array_equal(G.chi_sector_mask(chi, (190, 200)),
                                  [0, 1, 0, 0, 0, 0, 0, 0])
    assert G.chi_sector_mask(chi, (-180, 180)).all() and G.chi_sector_mask(chi, None).all()
