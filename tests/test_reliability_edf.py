"""Bad EDF frames (issue 7): missing, empty, truncated, corrupt-header, shape and dtype.

The table exercises the EDF reader (``io/edf``) and the file-list series
(``imageseries/filelist``) through ``imageseries.from_files``, ``Mapper`` and the CLI map
commands, and the correction images (dark, mask, background) read through the same checked
reader.  Then: compressed EDF falls back to fabio and gives the reference maps.  The harness
(fixtures, :class:`~_reliability.Case`, ``test_bad_input``) is in ``_reliability.py``.
"""
from __future__ import annotations

import bz2
import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

import _reliability
from _reliability import (BAD, GOOD_HEADER, NX, NY, PIXELS, SHAPE, CaseTable, bad_input_test,
                          cli, cli_maps, edf_header, mapper_out, needs_cli, p)
from xrsmap_dask import imageseries
from xrsmap_dask.errors import FrameReadError
from xrsmap_dask.layout import decode_attrs
from xrsmap_dask.mapper import Mapper

# the harness fixtures these tests take (pytest finds fixtures by name in the module)
env, scan, stack = _reliability.env, _reliability.scan, _reliability.stack

CASES = CaseTable()
case = CASES.case


# -- missing file --------------------------------------------------------------------------
@case("missing-file/mapper", FrameReadError, output=True)
def _(env):
    bad = env.tmp / "scan_missing.edf"
    return (lambda: mapper_out(env).composite_map(env.with_bad(bad), binning=2),
            rf"file {p(bad)}.*frame {BAD}.*not found")


@case("missing-file/glob", FrameReadError, output=True)
def _(env):
    pattern = env.tmp / "nothing_*.edf"
    return lambda: mapper_out(env).composite_map(str(pattern)), rf"{p(pattern)}.*no file matches"


@case("missing-file/series", FrameReadError)
def _(env):
    bad = env.tmp / "scan_missing.edf"
    return lambda: imageseries.from_files(env.with_bad(bad)), rf"{p(bad)}.*not found"


@case("missing-file/cli", output=True, cli=True)
def _(env):
    bad = env.tmp / "scan_missing.edf"
    return cli_maps(env, "composite", env.with_bad(bad)), rf"{p(bad)}.*not found"


# -- empty file ----------------------------------------------------------------------------
@case("empty-file/mapper", FrameReadError, output=True)
def _(env):
    bad = env.write("scan_empty.edf", b"")
    return (lambda: mapper_out(env).composite_map(env.with_bad(bad)),
            rf"file {p(bad)}.*frame {BAD}.*empty")


@case("empty-file/cli", output=True, cli=True)
def _(env):
    bad = env.write("scan_empty.edf", b"")
    return cli_maps(env, "composite", env.with_bad(bad)), rf"{p(bad)}.*empty"


# -- truncated file ------------------------------------------------------------------------
@case("truncated-data/mapper", FrameReadError, output=True)
def _(env):
    bad = env.write("scan_short.edf", env.good_bytes()[:-100])
    return (lambda: mapper_out(env).composite_map(env.with_bad(bad)),
            rf"file {p(bad)}.*frame {BAD}.*truncated")


@case("truncated-header/mapper", FrameReadError, output=True)
def _(env):
    bad = env.write("scan_cut.edf", env.good_bytes()[:60])
    return (lambda: mapper_out(env).composite_map(env.with_bad(bad)),
            rf"file {p(bad)}.*frame {BAD}.*(truncated|closing)")


@case("truncated-data/cli", output=True, cli=True)
def _(env):
    bad = env.write("scan_short.edf", env.good_bytes()[:-100])
    return cli_maps(env, "composite", env.with_bad(bad)), rf"{p(bad)}.*truncated"


@case("truncated-after-open/mapper", FrameReadError, early=False, output=True)
def _(env):
    # a file rewritten shorter after the series was opened: found only when its frame is read
    files = []
    for k, f in enumerate(env.files):
        files.append(str(env.tmp / f"copy_{k:03d}.edf"))
        shutil.copyfile(f, files[-1])
    ims = imageseries.from_files(files)
    Path(files[BAD]).write_bytes(env.good_bytes()[:-64])
    return (lambda: mapper_out(env, frames_per_chunk=NX).composite_map(ims, binning=2),
            rf"file {p(files[BAD])}.*frame {BAD}")


@case("truncated-gzip-stream/mapper", FrameReadError, early=False, output=True)
def _(env):
    z = gzip.compress(env.good_bytes())
    bad = env.write("scan_cut.edf.gz", z[:len(z) // 2])
    return (lambda: mapper_out(env).composite_map(env.with_bad(bad)),
            rf"file {p(bad)}.*frame {BAD}.*(truncat|incomplete|ended|EOF|corrupt)")


@case("truncated-gzip-stream/only-file", FrameReadError, early=False)
def _(env):
    z = gzip.compress(env.good_bytes())
    bad = env.write("scan_cut.edf.gz", z[:len(z) // 2])
    return (lambda: Mapper(1, 1).composite_map([bad]),
            rf"file {p(bad)}.*(truncat|incomplete|ended|EOF|corrupt)")


@case("gzip-of-truncated-edf/mapper", FrameReadError, early=False, output=True)
def _(env):
    bad = env.write("scan_short.edf.gz", gzip.compress(env.good_bytes()[:-200]))
    return (lambda: mapper_out(env).composite_map(env.with_bad(bad)),
            rf"file {p(bad)}.*frame {BAD}.*truncated")


@case("truncated-tiff/mapper", FrameReadError, output=True)
def _(env):
    import fabio.tifimage

    full = str(env.tmp / "full.tif")
    fabio.tifimage.TifImage(data=np.zeros(SHAPE, np.uint16)).write(full)
    bad = env.write("scan_short.tif", Path(full).read_bytes()[:-300])
    return (lambda: mapper_out(env).composite_map(env.with_bad(bad)),
            rf"file {p(bad)}.*frame {BAD}")


@case("truncated-dark-file/mapper", output=True)
def _(env):
    dark = env.write("d_short.edf", env.good_bytes(0)[:-300])
    return (lambda: mapper_out(env, dark=dark).composite_map(env.files),
            rf"(?=.*{p(dark)})(?=.*dark).*truncated")


@case("truncated-mask-file/cli", output=True, cli=True)
def _(env):
    mask = env.write("m_short.edf", Path(env.scan.mask_file).read_bytes()[:-300])
    return (cli_maps(env, "composite", env.files, "--mask", mask),
            rf"(?=.*{p(mask)})(?=.*mask).*truncated")


@case("truncated-background-file/cli", output=True, cli=True)
def _(env):
    bkg = list(env.scan.background_files)
    bkg[1] = env.write("bkg_short.edf", Path(bkg[1]).read_bytes()[:-300])
    return (cli_maps(env, "composite", env.files, "--background", *bkg),
            rf"(?=.*{p(bkg[1])}).*truncated")


@case("corrupt-dark-header/mapper")
def _(env):
    dark = env.write("d_corrupt.edf", CORRUPT_HEADERS["dim-not-a-number"])
    return (lambda: Mapper(NX, NY, dark=dark),
            rf"(?=.*{p(dark)})(?=.*dark).*(Dim_1|header)")


# -- corrupt / unparsable header ----------------------------------------------------------
CORRUPT_HEADERS = {
    "dim-not-a-number": edf_header(**{**GOOD_HEADER, "Dim_1": "forty"}) + PIXELS,
    "no-dims": edf_header(**{k: v for k, v in GOOD_HEADER.items()
                             if k not in ("Dim_1", "Dim_2")}) + PIXELS,
    "unknown-datatype": edf_header(**{**GOOD_HEADER, "DataType": "ComplexBanana"}) + PIXELS,
    "size-not-a-number": edf_header(**{**GOOD_HEADER, "Size": "lots"}) + PIXELS,
    "no-closing-brace": b"{\nDim_1 = 40 ;\nDim_2 = 32 ;\n" + b"x" * 100,
    "not-ascii": edf_header(**GOOD_HEADER).replace(b"LowByteFirst", b"L\xffwByteFirst") + PIXELS,
    "not-edf": b"\x89PNG\r\n\x1a\n" + os.urandom(3000),
    "negative-dim": edf_header(**{**{k: v for k, v in GOOD_HEADER.items() if k != "Size"},
                                  "Dim_1": -40}) + PIXELS,
    "zero-dim": edf_header(**{**GOOD_HEADER, "Dim_1": 0, "Size": 0}) + PIXELS,
}
for _name, _content in CORRUPT_HEADERS.items():
    def _make(content):
        def setup(env):
            bad = env.write("scan_corrupt.edf", content)
            return (lambda: mapper_out(env).composite_map(env.with_bad(bad)),
                    rf"file {p(bad)}.*frame {BAD}.*(Dim|EDF|header)")
        return setup
    case(f"corrupt-header-{_name}/mapper", FrameReadError, output=True)(_make(_content))


@case("corrupt-header-zero-dim/only-file", FrameReadError)
def _(env):
    bad = env.write("scan_corrupt.edf", CORRUPT_HEADERS["zero-dim"])
    return lambda: Mapper(1, 1).composite_map([bad]), rf"file {p(bad)}.*(Dim|EDF|header)"


@case("corrupt-header/cli", output=True, cli=True)
def _(env):
    bad = env.write("scan_corrupt.edf", CORRUPT_HEADERS["dim-not-a-number"])
    return cli_maps(env, "composite", env.with_bad(bad)), rf"{p(bad)}.*Dim_1"


# -- frame shape / dtype differing from the first frame -----------------------------------
@case("shape-differs/mapper", FrameReadError, output=True)
def _(env):
    bad = env.edf("scan_small.edf", np.zeros((30, 40), np.uint16))
    return (lambda: mapper_out(env).composite_map(env.with_bad(bad)),
            rf"file {p(bad)}.*frame {BAD}.*30 x 40.*32 x 40")


@case("shape-differs/cli", output=True, cli=True)
def _(env):
    bad = env.edf("scan_small.edf", np.zeros((32, 36), np.uint16))
    return cli_maps(env, "composite", env.with_bad(bad)), rf"{p(bad)}.*32 x 36.*32 x 40"


@case("shape-differs-in-multiframe-file/mapper", FrameReadError, output=True)
def _(env):
    a = Path(env.edf("a.edf", np.ones(SHAPE, np.uint16))).read_bytes()
    b = Path(env.edf("b.edf", np.ones((30, 40), np.uint16))).read_bytes()
    bad = env.write("multi.edf", a + b)
    return (lambda: Mapper(2, 1, output=env.out).composite_map([bad]),
            rf"file {p(bad)}, frame 1\b.*30, 40")


@case("truncated-block-of-multiframe-file/mapper", FrameReadError, output=True)
def _(env):
    a = Path(env.edf("a.edf", np.ones(SHAPE, np.uint16))).read_bytes()
    bad = env.write("multi.edf", a + a + a[:-100])
    return (lambda: Mapper(3, 1, output=env.out).composite_map([bad]),
            rf"file {p(bad)}, frame 2\b.*truncated")


@case("shape-differs-in-multiframe-file/message", FrameReadError, output=True)
def _(env):
    # the file and the reason are named
    a = Path(env.edf("a.edf", np.ones(SHAPE, np.uint16))).read_bytes()
    b = Path(env.edf("b.edf", np.ones((30, 40), np.uint16))).read_bytes()
    bad = env.write("multi.edf", a + b)
    return (lambda: Mapper(2, 1, output=env.out).composite_map([bad]),
            rf"file {p(bad)}.*30, 40.*differs.*32, 40")


@case("dtype-differs/mapper", FrameReadError, output=True)
def _(env):
    bad = env.edf("scan_int32.edf", np.zeros(SHAPE, np.int32))
    return (lambda: mapper_out(env).composite_map(env.with_bad(bad)),
            rf"file {p(bad)}.*frame {BAD}.*int32.*uint16")


@case("dtype-differs/cli", output=True, cli=True)
def _(env):
    bad = env.edf("scan_float.edf", np.zeros(SHAPE, np.float32))
    return cli_maps(env, "composite", env.with_bad(bad)), rf"{p(bad)}.*float32.*uint16"


test_bad_input = bad_input_test(CASES)


# ---------------------------------------------------------------------------------------
# compressed EDF: the fast path cannot seek -> fabio, same maps


def _compress(src: str, dst: str, kind: str) -> None:
    data = Path(src).read_bytes()
    Path(dst).write_bytes(gzip.compress(data) if kind == "gz" else bz2.compress(data))


def reference_maps(stack: np.ndarray, roi, binning: int):
    """(2-D mosaic, sum map) of xrsmap's (x0, y0, x1, y1) inclusive ROI, numpy only."""
    x0, y0, x1, y1 = roi
    r = stack[:, y0:y1 + 1, x0:x1 + 1]
    n, h, w = r.shape
    b = binning
    binned = r.reshape(n, h // b, b, w // b, b).sum(axis=(2, 4))
    comp = binned.reshape(NY, NX, h // b, w // b).transpose(0, 2, 1, 3).reshape(
        NY * (h // b), NX * (w // b))
    return comp, r.sum(axis=(1, 2)).reshape(NY, NX)


@pytest.mark.parametrize("kind", ["gz", "bz2"])
@pytest.mark.parametrize("which", ["all", "one"])
def test_compressed_edf_falls_back_to_fabio(env, stack, kind, which):
    files = env.files
    picks = range(len(files)) if which == "all" else [BAD]
    for k in picks:
        files[k] = str(env.tmp / f"scan_{k:05d}.edf.{kind}")
        _compress(env.scan.files[k], files[k], kind)
    ims = imageseries.from_files(files)
    # the compressed frames cannot take the positioned-read fast path (they are decompressed)
    from xrsmap_dask.imageseries.filelist import PREAD, ZEDF

    kinds = ims.block_source(0, len(ims)).kinds
    assert all(kinds[k] == (ZEDF if k in picks else PREAD) for k in range(len(files)))
    roi, b = (4, 2, 35, 29), 4
    comp, total = mapper_out(env).composite_map(files, roi=roi, binning=b)
    ref_comp, ref_total = reference_maps(stack, roi, b)
    np.testing.assert_array_equal(total, ref_total)
    np.testing.assert_allclose(comp, ref_comp, rtol=1e-6)
    assert decode_attrs(zarr.open_group(store=env.out, mode="r").attrs)["complete"] is True


@needs_cli
def test_compressed_edf_cli(env, stack, capfd):
    for k, f in enumerate(env.files):
        _compress(f, str(env.tmp / f"scan_{k:05d}.edf.gz"), "gz")
    code = cli.main(["composite", str(env.tmp / "scan_*.edf.gz"), "--npt-y", str(NY),
                     "--npt-x", str(NX), "--roi", "4", "2", "35", "29", "--binning", "4",
                     "-o", env.out, "-q"])
    assert code == 0, capfd.readouterr().err
    group = zarr.open_group(store=env.out, mode="r")
    assert decode_attrs(group.attrs)["complete"] is True
    ref_comp, ref_total = reference_maps(stack, (4, 2, 35, 29), 4)
    np.testing.assert_array_equal(group["roi_sum"][:], ref_total)
    comp = group["composite"][:]
    np.testing.assert_allclose(comp.transpose(0, 2, 1, 3).reshape(ref_comp.shape), ref_comp,
                               rtol=1e-6)
