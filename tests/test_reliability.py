"""Issue 7 acceptance: bad input gets a clear error before the graph runs; security defaults.

``test_bad_input`` is one table (:data:`CASES`) of every bad input of issue 7 part 1, each built
from real files in ``tmp_path`` (a synthetic 3 x 4 scan of 32 x 40 uint16 EDF frames).  For
every case it asserts

* the error type (:class:`~xrsmap_dask.errors.InputError` or the subclass named) - for the CLI,
  exit code 2, which ``xrsmap-dask`` returns for an ``InputError`` (1 for anything else);
* a message naming the file or argument (a regex over ``str(error)`` or the CLI's stderr);
* for cases validated "before the graph runs" (``early``): not one dask task ran (a dask
  callback records every task of the local schedulers; see :func:`test_checks_can_fail`,
  which shows that it records the read tasks of a good job);
* for cases going through a job that writes output (``output``): the zarr group is absent or
  its ``complete`` attr is not ``True``, and no ``.lock`` is left behind.

A case that fails because another module misbehaves carries ``xfail(strict=True, reason=...)``
naming what to change where.

Then: compressed EDF falls back to fabio and gives the reference maps; the scheduler and
dashboard we start bind to 127.0.0.1; YAML job specs resolve relative paths against the YAML's
directory and never execute them; and a source scan finds no ``eval``/``exec``/pickle loads/
unsafe YAML loads in the package.
"""
from __future__ import annotations

import bz2
import gzip
import io
import os
import re
import shutil
import textwrap
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import fabio
import numpy as np
import pytest
import zarr
from dask.callbacks import Callback

import xrsmap_dask
from xrsmap_dask import imageseries, maps, stats, synth
from xrsmap_dask.errors import FormatError, FrameReadError, InputError, UnsafeInputError
from xrsmap_dask.mapper import Mapper
from xrsmap_dask.scan import ScanGeometry

try:  # the CLI and job specs land in parallel with this file
    from xrsmap_dask import cli
except ImportError:  # pragma: no cover
    cli = None
try:
    from xrsmap_dask import jobs
except ImportError:  # pragma: no cover
    jobs = None

NY, NX = 3, 4                 # scan points: map rows (y) x map columns (x)
SHAPE = (32, 40)              # frame rows x cols
BAD = 5                       # index of the frame replaced by a bad file
PACKAGE_DIR = Path(xrsmap_dask.__file__).parent

needs_cli = pytest.mark.skipif(cli is None, reason="xrsmap_dask.cli not present")
needs_jobs = pytest.mark.skipif(jobs is None, reason="xrsmap_dask.jobs not present")


# ---------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """3 x 4 raster scan, 32 x 40 uint16 EDF frames (header lengths vary), 2 background frames."""
    return synth.make_scan(tmp_path_factory.mktemp("reliability_scan"), npt_y=NY, npt_x=NX,
                           frame_shape=SHAPE, n_background=2, seed=7)


@pytest.fixture(scope="module")
def stack(scan):
    """The frames as fabio reads them (the reference), (frames, rows, cols) float64."""
    return np.stack([fabio.open(f).data for f in scan.files]).astype(np.float64)


@dataclass
class Env:
    """What a case builds on: the good scan, a fresh directory and the output path."""

    scan: Any
    tmp: Path

    @property
    def files(self) -> list[str]:
        return list(self.scan.files)

    @property
    def out(self) -> str:
        """The zarr output a job of the case writes (must never be marked complete)."""
        return str(self.tmp / "out.zarr")

    def marker(self) -> Path:
        """A file an unsafe input would create if it ran code (must stay absent)."""
        return self.tmp / "PWNED"

    def with_bad(self, path) -> list[str]:
        """The scan's files with frame :data:`BAD` replaced by ``path``."""
        files = self.files
        files[BAD] = str(path)
        return files

    def write(self, name: str, data: bytes | str) -> str:
        path = self.tmp / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)

    def edf(self, name: str, data: np.ndarray) -> str:
        path = str(self.tmp / name)
        synth.write_edf(path, data)
        return path

    def good_bytes(self, k: int = BAD) -> bytes:
        return Path(self.scan.files[k]).read_bytes()


@pytest.fixture
def env(scan, tmp_path):
    return Env(scan, tmp_path)


class TaskWatch(Callback):
    """Records the key of every task the local dask schedulers start."""

    def __init__(self):
        super().__init__()
        self.keys: list = []

    def _pretask(self, key, dsk, state):
        self.keys.append(key)


def key_name(key) -> str:
    return key[0] if isinstance(key, tuple) else str(key)


def assert_not_complete(path: str) -> None:
    """The output ``path`` is absent or not marked complete, and its lock was released."""
    assert not os.path.exists(os.path.normpath(path) + ".lock"), "the output lock was left behind"
    if not os.path.exists(os.path.join(path, "zarr.json")):
        return
    attrs = dict(zarr.open_group(store=path, mode="r").attrs)
    assert attrs.get("complete") is not True, f"{path} is marked complete after an error"


def mapper_out(env: Env, **kw) -> Mapper:
    """A Mapper writing its maps to ``env.out`` (the job whose output must stay incomplete)."""
    return Mapper(NX, NY, output=env.out, **kw)


def cli_maps(env: Env, command: str, files, *extra: str) -> Callable[[], int]:
    argv = [command, *map(str, files), "--npt-y", str(NY), "--npt-x", str(NX), "-o", env.out,
            "-q", *extra]
    return lambda: cli.main(argv)


def p(path) -> str:
    """Regex of a path as it appears in a message (quoted or not)."""
    return "'?" + re.escape(str(path)) + "'?"


def divisors(h: int, w: int) -> list[int]:
    return [d for d in range(1, min(h, w) + 1) if h % d == 0 and w % d == 0]


def edf_header(**fields) -> bytes:
    """An EDF header block padded to 512 bytes (``{ key = value ; ... }`` + newline)."""
    body = "".join(f"{k} = {v} ;\n" for k, v in fields.items())
    text = "{\n" + body
    pad = 512 - (len(text) + 2) % 512
    return (text + " " * pad + "}\n").encode()


GOOD_HEADER = dict(HeaderID="EH:000001:000000:000000", Image=1, ByteOrder="LowByteFirst",
                   DataType="UnsignedShort", Dim_1=SHAPE[1], Dim_2=SHAPE[0],
                   Size=SHAPE[0] * SHAPE[1] * 2)
PIXELS = np.zeros(SHAPE, np.uint16).tobytes()


class Evil:
    """Pickles to ``os.system('touch MARKER')``: loading it would run the command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_npz(env: Env, name: str = "evil.npz") -> str:
    """A hexrd frame-cache npz (one frame) whose metadata holds a pickled object."""
    path = str(env.tmp / name)
    np.savez(path, nframes=np.array(1), shape=np.array(SHAPE), dtype=np.array("uint16"),
             **{"0_row": np.zeros(0, np.uint16), "0_col": np.zeros(0, np.uint16),
                "0_data": np.zeros(0, np.uint16)},
             omega=np.array([Evil(env.marker())], dtype=object))
    return path


def evil_npy(env: Env, name: str = "evil.npy") -> str:
    path = str(env.tmp / name)
    np.save(path, np.array([Evil(env.marker())], dtype=object), allow_pickle=True)
    return path


INVALID_YAML = "image-files: {directory: [unclosed\n  files: *\nscans: [\n"


def python_tag_yaml(env: Env, top_key: str) -> str:
    """YAML whose values are Python tags (running them would print 'hacked' / touch a file)."""
    return (f'{top_key}: !!python/object/apply:os.system ["echo hacked"]\n'
            f'other: !!python/object/apply:os.system ["touch {env.marker()}"]\n')


# ---------------------------------------------------------------------------------------
# the table


@dataclass(frozen=True)
class Case:
    """One bad input.

    ``setup(env)`` builds the files and returns ``(action, pattern)``: ``action()`` must raise
    ``error`` (for ``cli`` cases: return exit code 2) with a message matching ``pattern``.
    """

    id: str
    setup: Callable[[Env], tuple[Callable[[], Any], str]]
    error: type = InputError
    early: bool = True        # raised before any dask task runs
    output: bool = False      # the action is a job writing env.out
    cli: bool = False         # the action is xrsmap_dask.cli.main(argv)
    jobs: bool = False        # needs xrsmap_dask.jobs
    xfail: str | None = None

    def param(self):
        marks = []
        if self.cli:
            marks.append(needs_cli)
        if self.jobs:
            marks.append(needs_jobs)
        if self.xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=self.xfail))
        return pytest.param(self, id=self.id, marks=marks)


CASES: list[Case] = []


def case(id: str, error: type = InputError, **kw):
    """Decorator adding ``setup`` to :data:`CASES`."""
    def deco(setup):
        CASES.append(Case(id, setup, error, **kw))
        return setup
    return deco


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


# -- ROI outside the frame / empty ---------------------------------------------------------
@case("roi-outside/mapper", output=True)
def _(env):
    # inclusive x1 = 40 is one column past the 40-column frame
    return (lambda: mapper_out(env).composite_map(env.files, roi=(0, 0, 40, 31)),
            r"argument 'roi'.*outside the frame of shape 32 x 40")


@case("roi-negative/mapper", output=True)
def _(env):
    return (lambda: mapper_out(env).composite_map(env.files, roi=(-4, 0, 7, 7)),
            r"argument 'roi'.*outside the frame")


@case("roi-outside/build")
def _(env):
    ims = imageseries.from_files(env.files)
    spec = maps.MapSpec(roi=(slice(0, 33), slice(0, 40)))
    return (lambda: maps.build_maps(ims, spec, ScanGeometry(NY, NX)),
            r"argument 'roi'.*rows 0:33.*32 x 40")


@case("roi-outside/cli", output=True, cli=True)
def _(env):
    return (cli_maps(env, "composite", env.files, "--roi", "0", "30", "39", "40"),
            r"roi.*32 x 40")


@case("roi-outside/stats-median")
def _(env):
    ims = imageseries.from_files(env.files)
    return (lambda: stats.median(ims, roi=(slice(0, 50), slice(0, 10))),
            r"argument 'roi'.*rows 0:50.*32 x 40")


@case("roi-empty/mapper", output=True)
def _(env):
    return (lambda: mapper_out(env).composite_map(env.files, roi=(5, 5, 4, 10)),
            r"argument 'roi'.*x1 < x0")


@case("roi-empty/build")
def _(env):
    ims = imageseries.from_files(env.files)
    spec = maps.MapSpec(roi=(slice(5, 5), slice(0, 40)))
    return (lambda: maps.build_maps(ims, spec, ScanGeometry(NY, NX)),
            r"argument 'roi'.*rows 5:5.*empty")


@case("roi-empty/to_dask")
def _(env):
    ims = imageseries.from_files(env.files)
    return lambda: ims.to_dask(roi=(slice(0, 8), slice(12, 12))), r"argument 'roi'.*12:12"


@case("roi-empty/cli", output=True, cli=True)
def _(env):
    return cli_maps(env, "composite", env.files, "--roi", "5", "5", "4", "10"), r"roi.*x1 < x0"


# -- binning <= 0 --------------------------------------------------------------------------
for _b in (0, -2, 2.5):
    def _make(b):
        def setup(env):
            return (lambda: mapper_out(env).composite_map(env.files, binning=b),
                    rf"argument 'binning'.*positive int, got {re.escape(repr(b))}")
        return setup
    case(f"binning-{_b}/mapper", output=True)(_make(_b))


@case("binning-0/build")
def _(env):
    return lambda: maps.MapSpec(binning=0), r"argument 'binning'.*got 0"


@case("binning-0/cli", output=True, cli=True)
def _(env):
    return cli_maps(env, "composite", env.files, "--binning", "0"), r"--binning.*>= 1.*0"


# -- binning not dividing the ROI: the message lists the binnings that work ---------------
@case("binning-not-dividing/mapper", output=True)
def _(env):
    # (0, 0, 9, 9) is 10 x 10
    works = re.escape(str(divisors(10, 10)))
    return (lambda: mapper_out(env).composite_map(env.files, roi=(0, 0, 9, 9), binning=3),
            rf"argument 'binning'.*3 does not divide the 10 x 10 ROI.*work: {works}")


@case("binning-not-dividing-frame/mapper", output=True)
def _(env):
    works = re.escape(str(divisors(*SHAPE)))
    return (lambda: mapper_out(env).composite_map(env.files, binning=3),
            rf"argument 'binning'.*32 x 40.*work: {works}")


@case("binning-not-dividing/build")
def _(env):
    ims = imageseries.from_files(env.files)
    spec = maps.MapSpec(roi=(slice(0, 30), slice(0, 40)), binning=4)
    works = re.escape(str(divisors(30, 40)))
    return (lambda: maps.build_maps(ims, spec, ScanGeometry(NY, NX)),
            rf"argument 'binning'.*30 x 40.*work: {works}")


@case("binning-not-dividing/cli-names-argument", output=True, cli=True)
def _(env):
    return (cli_maps(env, "composite", env.files, "--roi", "0", "0", "9", "9", "--binning", "3"),
            r"binning.*3 does not divide")


@case("binning-not-dividing/cli-lists-binnings", output=True, cli=True)
def _(env):
    works = re.escape(str(divisors(10, 10)))
    return (cli_maps(env, "composite", env.files, "--roi", "0", "0", "9", "9", "--binning", "3"),
            rf"binning.*3 does not divide.*{works}")


@case("binning-not-dividing-frame/cli", output=True, cli=True)
def _(env):
    works = re.escape(str(divisors(*SHAPE)))
    return cli_maps(env, "composite", env.files, "--binning", "3"), rf"binning.*work: {works}"


def _job_binning(env) -> str:
    return env.write("job.yaml", textwrap.dedent(f"""\
        output: {env.out}
        scans:
          - name: s1
            inputs: {env.scan.directory}/scan_*.edf
            mesh: [{NY}, {NX}]
            roi: [0, 0, 9, 9]
            binning: 3
        """))


@case("binning-not-dividing/job-names-key", jobs=True)
def _(env):
    spec = _job_binning(env)
    return lambda: jobs.load_job(spec), rf"(?=.*{p(spec)})(?=.*key 'binning').*3 does not divide"


@case("binning-not-dividing/job-lists-binnings", jobs=True)
def _(env):
    spec = _job_binning(env)
    return lambda: jobs.load_job(spec), rf"3 does not divide.*{re.escape(str(divisors(10, 10)))}"


# -- mask / dark / flat / background shape mismatch: the message names which -------------
for _which in ("mask", "dark", "flat", "background"):
    def _make(which):
        def setup(env):
            img = np.ones((10, 12), np.float32)
            return (lambda: mapper_out(env, **{which: img}).composite_map(env.files),
                    rf"argument '{which}'.*10 x 12.*32 x 40")
        return setup
    case(f"{_which}-shape/mapper", output=True)(_make(_which))


@case("mask-file-shape/mapper", output=True)
def _(env):
    mask = env.edf("mask_small.edf", np.zeros((16, 40), np.uint8))
    return (lambda: mapper_out(env, mask=mask).composite_map(env.files),
            r"argument 'mask'.*16 x 40.*32 x 40")


@case("back-files-shape/mapper", output=True)
def _(env):
    bkg = [env.edf(f"bkg_small_{k}.edf", np.full((16, 20), 3, np.uint16)) for k in range(2)]
    m = mapper_out(env, back_files=bkg)   # built outside the watch: the background is computed
    return lambda: m.composite_map(env.files), r"argument 'back_files'.*16 x 20.*32 x 40"


@case("dark-vs-flat-shape/mapper")
def _(env):
    return (lambda: Mapper(NX, NY, dark=np.zeros((10, 10)), flat=np.ones(SHAPE)),
            r"argument 'dark/flat'.*dark 10 x 10.*flat 32 x 40")


@case("norm-length/mapper", output=True)
def _(env):
    return (lambda: mapper_out(env, norm=np.ones(5)).composite_map(env.files),
            r"argument 'norm'.*5 values for 12 frames")


for _which in ("mask", "dark", "flat"):
    def _make(which):
        def setup(env):
            img = env.edf(f"{which}_small.edf", np.ones((16, 40), np.uint16))
            return (cli_maps(env, "composite", env.files, f"--{which}", img),
                    rf"'--{which}'.*16 x 40.*32 x 40")
        return setup
    case(f"{_which}-shape/cli", output=True, cli=True)(_make(_which))


@case("background-shape/cli", output=True, cli=True)
def _(env):
    bkg = [env.edf(f"bkg_small_{k}.edf", np.full((16, 20), 3, np.uint16)) for k in range(2)]
    return (cli_maps(env, "composite", env.files, "--background", *bkg),
            r"'--background'.*16 x 20.*32 x 40")


# -- fewer / more files than scan points ---------------------------------------------------
@case("fewer-files/mapper", output=True)
def _(env):
    return (lambda: mapper_out(env).composite_map(env.files[:-1]),
            r"argument 'in_files'.*11 frames for a 3 x 4 scan")


@case("more-files/mapper", output=True)
def _(env):
    return (lambda: mapper_out(env).composite_map(env.files + env.files[:1]),
            r"argument 'in_files'.*13 frames for a 3 x 4 scan")


@case("fewer-files/circle-map", output=True)
def _(env):
    return (lambda: mapper_out(env).circle_map(env.files[:-2], 20, 15, 6, 2),
            r"argument 'in_files'.*10 frames for a 3 x 4 scan")


@case("more-files/build")
def _(env):
    ims = imageseries.from_files(env.files)
    return (lambda: maps.roi_sum(ims, ScanGeometry(2, 4)),
            r"argument 'in_files'.*12 frames for a 2 x 4 scan")


@case("fewer-files/cli", output=True, cli=True)
def _(env):
    return cli_maps(env, "composite", env.files[:-1]), r"11 frames for a 3 x 4 scan"


@case("fewer-files/cli-names-cli-options", output=True, cli=True)
def _(env):
    return (cli_maps(env, "composite", env.files[:-1]),
            r"^(?!.*allow_incomplete=True)(?=.*(INPUT|inputs))(?=.*--npt).*11 frames")


@case("more-files/cli", output=True, cli=True)
def _(env):
    return cli_maps(env, "composite", env.files + env.files[:2]), r"14 frames for a 3 x 4 scan"


# -- ring outside the frame ----------------------------------------------------------------
@case("ring-outside/mapper", output=True)
def _(env):
    return (lambda: mapper_out(env).circle_map(env.files, cen_x=500, cen_y=500, radius=10,
                                               width=2),
            r"argument 'rings'.*ring 0.*no pixel inside the 32 x 40 frame")


@case("ring-larger-than-frame/mapper", output=True)
def _(env):
    return (lambda: mapper_out(env).circle_map(env.files, cen_x=20, cen_y=16, radius=[5, 300],
                                               width=2),
            r"argument 'rings'.*ring 1 .*radius 300.*no pixel inside")


@case("ring-negative-radius/mapper", output=True)
def _(env):
    return (lambda: mapper_out(env).circle_map(env.files, 20, 16, -5, 2),
            r"argument 'radius'.*>= 0")


@case("ring-outside/build")
def _(env):
    ims = imageseries.from_files(env.files)
    return (lambda: maps.annulus_sum(ims, ScanGeometry(NY, NX), -100, 20, 10, 2),
            r"argument 'rings'.*no pixel inside the 32 x 40 frame")


@case("ring-outside/cli", output=True, cli=True)
def _(env):
    return (cli_maps(env, "annulus", env.files, "--cen-y", "500", "--cen-x", "500",
                     "--radius", "5", "--width", "2"),
            r"--radius.*no pixel inside the 32 x 40 frame")


# -- percentile outside [0, 100] -----------------------------------------------------------
for _q in (101, -1, [5, 100.5], float("nan")):
    def _make(q):
        def setup(env):
            ims = imageseries.from_files(env.files)
            return lambda: stats.percentile(ims, q), r"argument 'q'.*\[0, 100\]"
        return setup
    case(f"percentile-{_q}/stats")(_make(_q))


@case("percentile-150/imageseries.stats")
def _(env):
    from xrsmap_dask.imageseries import stats as istats

    ims = imageseries.from_files(env.files)
    return lambda: istats.percentile(ims, 150), r"argument 'pct'.*\[0, 100\]"


@case("percentile-101/background")
def _(env):
    return (lambda: stats.background(env.scan.background_files, "percentile", 101),
            r"argument '(q|pct)'.*\[0, 100\]")


@case("percentile-120/mapper-background", output=True)
def _(env):
    return (lambda: mapper_out(env, back_files=env.scan.background_files,
                               background=("percentile", 120)).composite_map(env.files),
            r"argument 'background'.*\[0, 100\].*120")


@case("percentile-101/cli", output=True, cli=True)
def _(env):
    argv = ["stats", *env.files, "--percentile", "101", "-o", env.out, "-q"]
    return lambda: cli.main(argv), r"--percentile.*\[0, 100\].*101"


@case("percentile-101/job-yaml", jobs=True)
def _(env):
    spec = env.write("job.yaml", textwrap.dedent(f"""\
        output: {env.out}
        scans:
          - name: s1
            inputs: {env.scan.directory}/scan_*.edf
            mesh: [{NY}, {NX}]
            stats: [{{percentile: 101}}]
        """))
    return lambda: jobs.load_job(spec), rf"(?=.*{p(spec)})(?=.*key 'stats').*\[0, 100\]"


def _job_with(env, name: str, group: str | None = None) -> str:
    extra = f"\n    group: '{group}'" if group is not None else ""
    return env.write("job.yaml", f"output: {env.out}\nscans:\n  - name: '{name}'\n"
                                 f"    inputs: {env.scan.directory}/scan_*.edf\n"
                                 f"    mesh: [{NY}, {NX}]{extra}\n")


for _name, _group in (("s1", "."), ("s1", "../../elsewhere"), ("s1", "a/../.."), ("..", None)):
    def _make(name, group):
        def setup(env):
            spec = _job_with(env, name, group)
            return (lambda: jobs.load_job(spec),
                    rf"(?=.*{p(spec)}).*key '(group|name)'")
        return setup
    case(f"job-{'group' if _group else 'name'}-{_group or _name}/escapes-store", jobs=True)(_make(_name, _group))


@needs_jobs
@needs_cli
def test_job_group_cannot_replace_the_survey_store(env, capfd):
    first = _job_with(env, "s1")
    assert cli.main(["run", first, "-q"]) == 0, capfd.readouterr().err
    assert zarr.open_group(store=os.path.join(env.out, "s1"), mode="r").attrs["complete"]
    second = env.write("job2.yaml", Path(_job_with(env, "s2", ".")).read_text())
    code = cli.main(["run", second, "-q", "--overwrite"])
    assert os.path.exists(os.path.join(env.out, "s1", "zarr.json")), \
        "scan s1's output was deleted by another scan's job"
    assert code == cli.EXIT_USAGE


# -- unknown format ------------------------------------------------------------------------
@case("unknown-format/open", FormatError)
def _(env):
    return lambda: imageseries.open(env.files[0], "nosuch-format"), r"nosuch-format.*unknown"


@case("unknown-format/guess", FormatError)
def _(env):
    path = env.write("frames.xyz", b"\0" * 64)
    return lambda: imageseries.open(path), rf"{p(path)}.*format"


@case("unknown-format/write", FormatError)
def _(env):
    ims = imageseries.from_files(env.files)
    return lambda: imageseries.write(ims, str(env.tmp / "x.bin"), "bogus"), r"bogus"


@case("unknown-image-type/mapper", FrameReadError, output=True)
def _(env):
    bad = env.write("scan_notes.xyz", "these are not pixels\n")
    return (lambda: mapper_out(env).composite_map(env.with_bad(bad)),
            rf"file {p(bad)}.*frame {BAD}")


@case("unknown-format/cli-convert", cli=True)
def _(env):
    argv = ["convert", *env.files, "-o", str(env.tmp / "x.bin"), "--format", "bogus", "-q"]
    return lambda: cli.main(argv), r"--format.*bogus"


# -- HDF5 file without the dataset ---------------------------------------------------------
def _h5_elsewhere(env) -> str:
    import h5py

    path = str(env.tmp / "stack.h5")
    with h5py.File(path, "w") as f:
        f["entry/data"] = np.zeros((NY * NX,) + SHAPE, np.uint16)
    return path


@case("hdf5-no-dataset/open")
def _(env):
    path = _h5_elsewhere(env)
    return (lambda: imageseries.open(path, "hdf5", path="/imageseries"),
            rf"{p(path)}.*no dataset '/imageseries/images'")


@case("hdf5-no-dataset/open-default")
def _(env):
    path = _h5_elsewhere(env)
    return lambda: imageseries.open(path, "hdf5"), rf"{p(path)}.*no dataset '/images'"


@case("hdf5-no-dataset/mapper", output=True)
def _(env):
    path = _h5_elsewhere(env)
    return lambda: mapper_out(env).composite_map(path), rf"{p(path)}.*no dataset '/images'"


@case("hdf5-not-hdf5/open", FrameReadError)
def _(env):
    path = env.write("fake.h5", b"this is not an HDF5 file" * 8)
    return lambda: imageseries.open(path, "hdf5"), rf"{p(path)}.*HDF5"


@case("hdf5-no-dataset/cli", output=True, cli=True)
def _(env):
    path = _h5_elsewhere(env)
    return (cli_maps(env, "composite", [f"{path}:/imageseries/images"]),
            rf"{p(path)}.*no dataset '/imageseries/images'")


# -- YAML that is not valid YAML -----------------------------------------------------------
for _fmt in ("image-files", "frame-cache", "raw-image", None):
    def _make(fmt):
        def setup(env):
            path = env.write("series.yml", INVALID_YAML)
            return lambda: imageseries.open(path, fmt), rf"{p(path)}.*invalid YAML"
        return setup
    case(f"yaml-invalid/open-{_fmt or 'guess'}")(_make(_fmt))


@case("yaml-invalid/job", jobs=True)
def _(env):
    path = env.write("job.yaml", INVALID_YAML)
    return lambda: jobs.load_job(path), rf"{p(path)}.*invalid YAML"


@case("yaml-invalid/cli-run", cli=True)
def _(env):
    path = env.write("job.yaml", INVALID_YAML)
    return lambda: cli.main(["run", path, "-q"]), rf"{p(path)}.*invalid YAML"


# -- YAML with a Python tag (nothing may run) ----------------------------------------------
for _fmt, _key in (("image-files", "image-files"), ("frame-cache", "data"),
                   ("raw-image", "filename"), (None, "image-files")):
    def _make(fmt, key):
        def setup(env):
            path = env.write("series.yml", python_tag_yaml(env, key))
            return lambda: imageseries.open(path, fmt), rf"{p(path)}.*python/object"
        return setup
    case(f"yaml-python-tag/open-{_fmt or 'guess'}", UnsafeInputError)(_make(_fmt, _key))


@case("yaml-python-tag/open-yaml-text", UnsafeInputError)
def _(env):
    text = python_tag_yaml(env, "image-files")
    return lambda: imageseries.open(text, "image-files"), r"yaml text.*python/object"


@case("yaml-python-tag/job", UnsafeInputError, jobs=True)
def _(env):
    path = env.write("job.yaml", python_tag_yaml(env, "scans"))
    return lambda: jobs.load_job(path), rf"{p(path)}.*python/object"


@case("yaml-python-tag/cli-run", cli=True)
def _(env):
    path = env.write("job.yaml", python_tag_yaml(env, "output"))
    return lambda: cli.main(["run", path, "-q"]), rf"{p(path)}.*python/object"


# -- npz (and npy) holding pickled objects (nothing may run) -------------------------------
@case("npz-pickle/open", UnsafeInputError)
def _(env):
    path = evil_npz(env)
    return lambda: imageseries.open(path, "frame-cache"), rf"{p(path)}.*pickle"


@case("npz-pickle-in-frame/open", UnsafeInputError)
def _(env):
    path = str(env.tmp / "evil_frame.npz")
    np.savez(path, nframes=np.array(1), shape=np.array(SHAPE), dtype=np.array("uint16"),
             **{"0_row": np.zeros(1, np.uint16), "0_col": np.zeros(1, np.uint16),
                "0_data": np.array([Evil(env.marker())], dtype=object)})
    return lambda: imageseries.open(path, "frame-cache"), rf"{p(path)}.*pickle"


@case("npz-pickle/open-guess", UnsafeInputError)
def _(env):
    path = evil_npz(env)
    return lambda: imageseries.open(path), rf"{p(path)}.*pickle"


@case("npz-pickle/frame-cache-yaml", UnsafeInputError)
def _(env):
    npz = evil_npz(env)
    path = env.write("cache.yml", f"data: {{file: {os.path.basename(npz)}, nframes: 1}}\n"
                                  "meta: {}\n")
    return lambda: imageseries.open(path, "frame-cache"), rf"{p(npz)}.*pickle"


@case("npy-pickle/image-files-meta", UnsafeInputError)
def _(env):
    npy = evil_npy(env)
    path = env.write("series.yml", textwrap.dedent(f"""\
        image-files: {{directory: {env.scan.directory}, files: "scan_*.edf"}}
        options: {{}}
        meta: {{omega: "! load-numpy-array {os.path.basename(npy)}"}}
        """))
    return lambda: imageseries.open(path, "image-files"), rf"{p(npy)}.*pickle"


@case("npy-pickle/cli-mask", output=True, cli=True)
def _(env):
    npy = evil_npy(env)
    return cli_maps(env, "composite", env.files, "--mask", npy), rf"{p(npy)}.*(pickle|Object)"


@case("npy-pickle/cli-norm", output=True, cli=True)
def _(env):
    npy = evil_npy(env)
    return cli_maps(env, "composite", env.files, "--norm", npy), rf"{p(npy)}.*(pickle|Object)"


# ---------------------------------------------------------------------------------------
# the table-driven test


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_bad_input(case: Case, env: Env, capfd):
    assert issubclass(case.error, InputError)
    action, pattern = case.setup(env)
    capfd.readouterr()
    with TaskWatch() as watch:
        if case.cli:
            code = action()
            message = capfd.readouterr().err
            assert code == cli.EXIT_USAGE, f"exit code {code} (2 = bad input): {message}"
            assert "Traceback" not in message
        else:
            with pytest.raises(case.error) as info:
                action()
            message = str(info.value)
    assert re.search(pattern, message, re.S), f"{pattern!r} not in: {message}"
    if case.early:
        assert not watch.keys, (f"validated only after {len(watch.keys)} tasks ran: "
                                f"{sorted({key_name(k) for k in watch.keys})}")
    if case.output:
        assert_not_complete(env.out)
    # unsafe inputs ran nothing
    assert not env.marker().exists(), "an unsafe input ran code"
    assert "hacked" not in capfd.readouterr().out


def test_table_covers_issue_7():
    """Every bad input of issue 7 part 1 has at least one case."""
    ids = [c.id for c in CASES]
    for what in ("missing-file", "empty-file", "truncated", "corrupt-header", "shape-differs",
                 "dtype-differs", "roi-outside", "roi-empty", "binning-0", "binning-not-dividing",
                 "mask-shape", "dark-shape", "flat-shape", "background-shape", "fewer-files",
                 "more-files", "ring-outside", "percentile", "unknown-format", "hdf5-no-dataset",
                 "yaml-invalid", "yaml-python-tag", "npz-pickle"):
        assert any(i.startswith(what) for i in ids), what


def test_checks_can_fail(env, stack):
    """The good job under the same watch: tasks are seen, the output is marked complete."""
    with TaskWatch() as watch:
        comp, total = mapper_out(env).composite_map(env.files, roi=(0, 0, 39, 31), binning=8)
    assert any(key_name(k).startswith(("read-roi", "map-reduce")) for k in watch.keys)
    attrs = dict(zarr.open_group(store=env.out, mode="r").attrs)
    assert attrs["complete"] is True
    assert not os.path.exists(env.out + ".lock")
    np.testing.assert_array_equal(total, stack.sum(axis=(1, 2)).reshape(NY, NX))


@needs_cli
def test_cli_checks_can_fail(env, stack, capfd):
    out = str(env.tmp / "good.zarr")
    with TaskWatch() as watch:
        code = cli.main(["composite", *env.files, "--npt-y", str(NY), "--npt-x", str(NX),
                         "-o", out, "-q"])
    assert code == 0, capfd.readouterr().err
    assert any(key_name(k).startswith(("read-roi", "map-reduce")) for k in watch.keys)
    group = zarr.open_group(store=out, mode="r")
    assert group.attrs["complete"] is True
    np.testing.assert_array_equal(group["roi_sum"][:], stack.sum(axis=(1, 2)).reshape(NY, NX))
    # and a bad input through the CLI exits 2 with one line naming the file
    bad = env.write("scan_empty.edf", b"")
    code = cli.main(["composite", *env.with_bad(bad), "--npt-y", str(NY), "--npt-x", str(NX),
                     "-o", str(env.tmp / "bad.zarr"), "-q"])
    err = capfd.readouterr().err
    assert code == 2 and bad in err and len(err.strip().splitlines()) == 1


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
    assert dict(zarr.open_group(store=env.out, mode="r").attrs)["complete"] is True


@needs_cli
def test_compressed_edf_cli(env, stack, capfd):
    for k, f in enumerate(env.files):
        _compress(f, str(env.tmp / f"scan_{k:05d}.edf.gz"), "gz")
    code = cli.main(["composite", str(env.tmp / "scan_*.edf.gz"), "--npt-y", str(NY),
                     "--npt-x", str(NX), "--roi", "4", "2", "35", "29", "--binning", "4",
                     "-o", env.out, "-q"])
    assert code == 0, capfd.readouterr().err
    group = zarr.open_group(store=env.out, mode="r")
    assert group.attrs["complete"] is True
    ref_comp, ref_total = reference_maps(stack, (4, 2, 35, 29), 4)
    np.testing.assert_array_equal(group["roi_sum"][:], ref_total)
    comp = group["composite"][:]
    np.testing.assert_allclose(comp.transpose(0, 2, 1, 3).reshape(ref_comp.shape), ref_comp,
                               rtol=1e-6)


# ---------------------------------------------------------------------------------------
# security defaults


def _listening(proc) -> set:
    import psutil

    try:
        return {(c.laddr.ip, c.laddr.port) for c in proc.net_connections("inet")
                if c.status == psutil.CONN_LISTEN}
    except psutil.Error:
        return set()


def test_cluster_binds_to_localhost():
    cluster = pytest.importorskip("xrsmap_dask.cluster")
    import psutil

    spec = cluster.ExecutionSpec.from_scheduler("local", n_workers=1)
    assert spec.dashboard_address().startswith("127.0.0.1:")
    me = psutil.Process()
    before = _listening(me)
    old_children = {c.pid for c in me.children(recursive=True)}
    with cluster.execution(spec, quiet=True) as ex:
        assert ex.client.scheduler.address.startswith("tcp://127.0.0.1:")
        workers = list(ex.client.scheduler_info()["workers"])
        assert workers and all(w.startswith("tcp://127.0.0.1:") for w in workers)
        if ex.dashboard_link:
            assert ex.dashboard_link.startswith("http://127.0.0.1:")
        opened = _listening(me) - before
        for child in me.children(recursive=True):
            if child.pid not in old_children:   # the workers this cluster started
                opened |= _listening(child)
    assert opened, "the cluster opened no listening socket?"
    exposed = {a for a in opened if a[0] not in ("127.0.0.1", "::1")}
    assert not exposed, f"listening beyond localhost: {exposed}"


def test_jobqueue_and_cli_dashboards_default_to_localhost():
    cluster = pytest.importorskip("xrsmap_dask.cluster")
    pytest.importorskip("dask_jobqueue")
    for kind in ("slurm", "pbs"):
        kw = cluster.jobqueue_kwargs(cluster.ExecutionSpec(kind, cores=2, memory="1GiB"))
        assert kw["scheduler_options"]["dashboard_address"].startswith("127.0.0.1:")
    if cli is not None:
        args = cli.build_parser().parse_args(["composite", "x.edf", "--npt-y", "1", "--npt-x",
                                              "1", "-o", "o.zarr", "--scheduler", "local"])
        spec = cli.execution_spec(args)
        assert spec.kind == "local" and spec.host in (None, "127.0.0.1")
        assert spec.dashboard_address().startswith("127.0.0.1:")


@needs_jobs
def test_job_paths_relative_to_yaml_and_never_executed(env, tmp_path, monkeypatch, capfd):
    jobdir = tmp_path / "jobdir"
    jobdir.mkdir()
    os.symlink(env.scan.directory, jobdir / "frames")
    # a decoy with the same relative names where the process runs
    cwd = tmp_path / "elsewhere"
    (cwd / "frames").mkdir(parents=True)
    for f in env.files[:2]:
        shutil.copy(f, cwd / "frames")
    shutil.copy(env.scan.mask_file, cwd / "frames")
    (cwd / "only_here").mkdir()
    shutil.copy(env.files[0], cwd / "only_here")
    monkeypatch.chdir(cwd)

    spec = jobdir / "job.yaml"
    spec.write_text(textwrap.dedent(f"""\
        output: maps.zarr
        summary: summary.csv
        defaults: {{mesh: [{NY}, {NX}], roi: [0, 0, 39, 31], binning: 8}}
        scans:
          - name: s1
            inputs: frames/scan_*.edf
            corrections: {{mask: frames/mask.edf}}
        """))
    job = jobs.load_job(spec)
    (s1,) = job.scans
    assert s1.inputs.paths == tuple(str(jobdir / "frames" / os.path.basename(f))
                                    for f in env.files)
    assert s1.corrections.mask == str(jobdir / "frames" / "mask.edf")
    assert s1.output == str(jobdir / "maps.zarr")
    assert job.summary == str(jobdir / "summary.csv")
    if cli is not None:
        assert cli.main(["run", str(spec), "-q"]) == 0, capfd.readouterr().err
        assert zarr.open_group(store=str(jobdir / "maps.zarr" / "s1"),
                               mode="r").attrs["complete"] is True
        assert sorted(os.listdir(cwd)) == ["frames", "only_here"]

    # a path that exists only relative to the working directory is not found
    spec.write_text("output: maps.zarr\n"
                    "scans: [{name: s2, inputs: only_here/*.edf, mesh: [1, 1]}]\n")
    with pytest.raises(InputError, match=re.escape(str(jobdir / "only_here"))):
        jobs.load_job(spec)

    # paths are names, never commands
    marker = tmp_path / "PWNED"
    for inputs in (f"$(touch {marker})", f"`touch {marker}`", f"x.edf; touch {marker}",
                   f"| touch {marker}"):
        spec.write_text(f"output: maps.zarr\nscans: [{{name: s3, inputs: '{inputs}', "
                        f"mesh: [1, 1]}}]\n")
        with pytest.raises(InputError, match=r"not found|no file matches"):
            jobs.load_job(spec)
        if cli is not None:
            assert cli.main(["run", str(spec), "-q"]) == 2
    assert not marker.exists()


def test_series_yaml_paths_relative_to_yaml(env, stack, tmp_path, monkeypatch):
    """image-files ``directory``, frame-cache ``file`` and raw-image ``filename`` are taken
    relative to the YAML's directory, not the working directory (which holds decoys)."""
    ydir = tmp_path / "ydir"
    ydir.mkdir()
    os.symlink(env.scan.directory, ydir / "frames")
    ims = imageseries.from_files(env.files)
    imageseries.write(ims, str(ydir / "cache.npz"), "frame-cache", threshold=-1)
    (ydir / "raw.bin").write_bytes(stack.astype("<u2").tobytes())
    decoy = tmp_path / "cwd"
    (decoy / "frames").mkdir(parents=True)
    shutil.copy(env.files[0], decoy / "frames")
    imageseries.write(imageseries.from_files(env.files[:2]), str(decoy / "cache.npz"),
                      "frame-cache", threshold=-1)
    (decoy / "raw.bin").write_bytes(stack[:2].astype("<u2").tobytes())
    monkeypatch.chdir(decoy)

    docs = {
        "image-files": 'image-files: {directory: frames, files: "scan_*.edf"}\noptions: {}\n',
        "frame-cache": f"data: {{file: cache.npz, nframes: {NY * NX}, shape: [{SHAPE[0]}, "
                       f"{SHAPE[1]}], dtype: uint16}}\nmeta: {{}}\n",
        "raw-image": f"filename: raw.bin\nscalar: {{type: i, bytes: 2, signed: false, "
                     f"endian: little}}\nshape: \"{SHAPE[0]} {SHAPE[1]}\"\nskip: 0\n",
    }
    for fmt, text in docs.items():
        yml = ydir / f"{fmt}.yml"
        yml.write_text(text)
        series = imageseries.open(str(yml), fmt)
        assert len(series) == NY * NX, fmt
        np.testing.assert_array_equal(series[7], stack[7], err_msg=fmt)
        if fmt == "image-files":
            assert all(f.startswith(str(ydir / "frames")) for f in series.filenames)


@needs_jobs
@needs_cli
def test_cli_run_unsafe_series_yaml_fails_scan(env, capfd):
    """A job whose scan input is an imageseries YAML with a Python tag: that scan fails with
    the YAML named, nothing runs, and its output is not marked complete."""
    evil = env.write("series.yml", python_tag_yaml(env, "image-files"))
    spec = env.write("job.yaml", f"output: {env.out}\nscans: [{{name: s1, inputs: {evil}, "
                                 f"mesh: [{NY}, {NX}]}}]\n")
    code = cli.main(["run", spec, "-q"])
    assert code == cli.EXIT_ERROR
    summary = Path(jobs.load_job(spec).summary).read_text()
    assert "failed" in summary and evil in summary
    assert_not_complete(os.path.join(env.out, "s1"))
    assert not env.marker().exists()
    assert "hacked" not in capfd.readouterr().out


# ---------------------------------------------------------------------------------------
# source scan

FORBIDDEN = {
    "eval(": re.compile(r"(?<![\w.])eval\s*\("),
    "exec(": re.compile(r"(?<![\w.])exec\s*\("),
    "pickle.load": re.compile(r"(?<![\w])pickle\.loads?\b"),
    "allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "yaml.load(": re.compile(r"\byaml\.load\s*\("),
    "yaml.unsafe_load": re.compile(r"\byaml\.(unsafe_load|full_load|load_all)\b"),
    "unsafe YAML Loader": re.compile(r"\b(yaml\.Loader|UnsafeLoader|FullLoader)\b"),
    "shell=True": re.compile(r"shell\s*=\s*True"),
    "os.system(": re.compile(r"\bos\.(system|popen)\s*\("),
}
_BLANKED = {tokenize.COMMENT, tokenize.STRING} | {
    getattr(tokenize, n) for n in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
    if hasattr(tokenize, n)}


def code_only(source: str) -> str:
    """``source`` with comments and string literals (docstrings too) blanked to spaces;
    everything else (and every line number) kept."""
    lines = source.splitlines(keepends=True)
    chars = [list(line) for line in lines]
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in _BLANKED:
            continue
        (r0, c0), (r1, c1) = tok.start, tok.end
        for r in range(r0, r1 + 1):
            row = chars[r - 1]
            lo = c0 if r == r0 else 0
            hi = c1 if r == r1 else len(row)
            for c in range(lo, hi):
                if row[c] != "\n":
                    row[c] = " "
    return "".join("".join(row) for row in chars)


def forbidden_hits(source: str) -> list[tuple[int, str]]:
    out = []
    for line_no, line in enumerate(code_only(source).splitlines(), 1):
        out.extend((line_no, name) for name, rx in FORBIDDEN.items() if rx.search(line))
    return out


def test_scan_finds_what_it_looks_for():
    """The scan's patterns hit code and skip comments and strings."""
    code = ('x = eval ("1")  # exec(bad)\ny = "pickle.load(f)"\nimport pickle\n'
            'z = pickle.load(f)\n"""yaml.load(f) in a docstring"""\nw = yaml.load(f, Loader=L)\n')
    assert forbidden_hits(code) == [(1, "eval("), (4, "pickle.load"), (6, "yaml.load(")]
    for ok in ("ast.literal_eval(s)", "cloudpickle.loads", "yaml.safe_load(f)",
               "np.load(f, allow_pickle=False)", "yaml.SafeLoader", "self.exec_time(1)"):
        assert not forbidden_hits(ok + "\n"), ok


def test_no_eval_exec_pickle_or_unsafe_yaml_in_package():
    sources = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(sources) > 10
    found = []
    for path in sources:
        for line_no, name in forbidden_hits(path.read_text(encoding="utf-8")):
            found.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{line_no}: {name}")
    assert not found, "\n".join(found)


def test_every_numpy_load_refuses_pickles():
    """Every ``np.load``/``numpy.load`` call in the package passes ``allow_pickle=False``."""
    import ast

    bad = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr == "load" and isinstance(node.func.value, ast.Name) and \
                    node.func.value.id in ("np", "numpy"):
                kws = {k.arg: k.value for k in node.keywords}
                v = kws.get("allow_pickle")
                if not (isinstance(v, ast.Constant) and v.value is False):
                    bad.append(f"{path.name}:{node.lineno}")
    assert not bad, bad
