"""Scan geometry: frame index -> map point for raster, snake, column-first and tables."""
from __future__ import annotations

import numpy as np
import pytest

from xrsmap_dask.errors import InputError
from xrsmap_dask.scan import ScanGeometry, as_scan


def _expected(kind, npt_y, npt_x):
    """Reference positions written out point by point as a scan would visit them."""
    out = []
    if kind == "column":
        for col in range(npt_x):
            for row in range(npt_y):
                out.append((row, col))
        return out
    for row in range(npt_y):
        cols = range(npt_x)
        if kind == "snake" and row % 2 == 1:
            cols = reversed(cols)
        for col in cols:
            out.append((row, col))
    return out


@pytest.mark.parametrize("kind", ["raster", "snake", "column"])
@pytest.mark.parametrize("shape", [(7, 5), (5, 7), (1, 4), (3, 1)])
def test_positions(kind, shape):
    scan = ScanGeometry(*shape, kind=kind)
    rows, cols = scan.frame_positions()
    assert list(zip(rows.tolist(), cols.tolist())) == _expected(kind, *shape)
    p2f = scan.point_to_frame()
    assert p2f.shape == shape
    for i, (r, c) in enumerate(_expected(kind, *shape)):
        assert p2f[r, c] == i
        assert scan.position(i) == (r, c)


def test_place_puts_values_at_positions():
    scan = ScanGeometry(3, 4, kind="snake")
    vals = np.arange(12.0) * 10
    m = scan.place(vals)
    for i, (r, c) in enumerate(_expected("snake", 3, 4)):
        assert m[r, c] == vals[i]


def test_explicit_table():
    table = [(1, 1), (0, 0), (2, 1), (0, 1), (1, 0), (2, 0)]
    scan = ScanGeometry(3, 2, positions=table)
    assert scan.kind == "positions"
    rows, cols = scan.frame_positions()
    assert list(zip(rows.tolist(), cols.tolist())) == table
    # a partial table with allow_incomplete: the rest is unfilled
    part = ScanGeometry(3, 2, positions=table[:4], allow_incomplete=True)
    assert part.check_nframes(4) == 2


@pytest.mark.parametrize("table, match", [
    ([(0, 0), (0, 0)], "several frames"),
    ([(0, 0), (3, 0)], "outside"),
    ([(0, 0, 0)], r"\(nframes, 2\)"),
    ([(0.5, 0)], "integer"),
])
def test_bad_tables(table, match):
    with pytest.raises(InputError, match=match) as err:
        ScanGeometry(3, 2, positions=table)
    assert err.value.argument == "positions"


def test_frame_count_checks():
    scan = ScanGeometry(7, 5)
    assert scan.check_nframes(35) == 0
    with pytest.raises(InputError, match="34 frames for a 7 x 5 scan") as err:
        scan.check_nframes(34)
    assert "allow_incomplete" in str(err.value)
    with pytest.raises(InputError, match="36 frames"):
        scan.check_nframes(36)
    inc = ScanGeometry(7, 5, allow_incomplete=True)
    assert inc.unfilled(33) == 2
    with pytest.raises(InputError):
        inc.check_nframes(36)
    m = inc.place(np.ones(33))
    assert np.isnan(m).sum() == 2 and np.isnan(m[6, 3:]).all()


@pytest.mark.parametrize("kwargs, argument", [
    (dict(npt_y=0, npt_x=3), "npt_y"), (dict(npt_y=2, npt_x=-1), "npt_x"),
    (dict(npt_y=2.5, npt_x=3), "npt_y"), (dict(npt_y=2, npt_x=3, kind="spiral"), "kind"),
    (dict(npt_y=2, npt_x=3, kind="positions"), "positions"),
])
def test_bad_geometry(kwargs, argument):
    with pytest.raises(InputError) as err:
        ScanGeometry(**kwargs)
    assert err.value.argument == argument


def test_frozen_and_as_scan():
    scan = ScanGeometry(2, 3)
    with pytest.raises(AttributeError):
        scan.npt_x = 4
    assert as_scan(None, 2, 3) == scan
    assert as_scan("snake", 2, 3).kind == "snake"
    assert as_scan(scan, 2, 3) is scan
    with pytest.raises(InputError, match="scan is 2 x 3"):
        as_scan(scan, 3, 2)
    assert ScanGeometry(2, 3).to_attrs()["kind"] == "raster"
