"""Shared harness of the reliability tables (issue 7): bad input gets a clear error before the
graph runs.

Each ``tests/test_reliability_<topic>.py`` module holds one table (a :class:`CaseTable` named
``CASES``) of the bad inputs of issue 7 part 1 that exercise one part of the package, each built
from real files in ``tmp_path`` (a synthetic 3 x 4 scan of 32 x 40 uint16 EDF frames), and one
line ``test_bad_input = bad_input_test(CASES)``.  For every case that test asserts

* the error type (:class:`~xrsmap_dask.errors.InputError` or the subclass named) - for the CLI,
  exit code 2, which ``xrsmap-dask`` returns for an ``InputError`` (1 for anything else);
* a message naming the file or argument (a regex over ``str(error)`` or the CLI's stderr);
* for cases validated "before the graph runs" (``early``): not one dask task ran (a dask
  callback records every task of the local schedulers; see ``test_checks_can_fail`` in
  ``test_reliability_harness.py``, which shows that it records the read tasks of a good job);
* for cases going through a job that writes output (``output``): the zarr group is absent or
  its ``complete`` attr is not ``True``, and no ``.lock`` is left behind;
* that unsafe inputs ran nothing (no marker file, no "hacked" on stdout).

A case that fails because another module misbehaves carries ``xfail(strict=True, reason=...)``
naming what to change where.

A test module takes the fixtures by importing them (``from _reliability import env, scan``):
pytest finds fixtures in a test module's namespace, and ``scan`` is then built once per module.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import fabio
import numpy as np
import pytest
import zarr
from dask.callbacks import Callback

from xrsmap_dask import synth
from xrsmap_dask.errors import InputError
from xrsmap_dask.layout import decode_attrs
from xrsmap_dask.mapper import Mapper

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
    attrs = decode_attrs(zarr.open_group(store=path, mode="r").attrs)
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


class CaseTable(list):
    """The bad-input cases of one test module, in the order they are registered."""

    def case(self, id: str, error: type = InputError, **kw):
        """Decorator adding ``setup`` to this table."""
        def deco(setup):
            self.append(Case(id, setup, error, **kw))
            return setup
        return deco


# ---------------------------------------------------------------------------------------
# the table-driven test


def bad_input_test(cases: list[Case]) -> Callable:
    """``test_bad_input`` parametrized over ``cases`` (call it after the last case is added)."""
    @pytest.mark.parametrize("case", [c.param() for c in cases])
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

    return test_bad_input
