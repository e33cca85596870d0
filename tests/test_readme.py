"""The README's examples run as written on the demo data (the scan `make demo` writes).

Python blocks are executed in order in one namespace; ``xrsmap-dask`` command lines of the
bash blocks are run through ``cli.main`` (except those needing SLURM/PBS or a hand-started
scheduler, which other tests cover), in a directory laid out like the repository root.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

from xrsmap_dask import cli, synth
from xrsmap_dask.layout import decode_attrs

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SKIP_WORDS = ("slurm", "pbs", "sched.json", "survey.yaml")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def _commands() -> list[list[str]]:
    """Every ``xrsmap-dask ...`` command of the bash blocks (continuations joined)."""
    cmds = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip().rstrip("&").strip()
            if line.startswith("xrsmap-dask ") and not any(w in line for w in SKIP_WORDS):
                cmds.append(shlex.split(line)[1:])
    return cmds


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    synth.make_scan(root / "demo_output" / "scan", 21, 25, (256, 256), n_background=8)
    shutil.copytree(ROOT / "deploy", root / "deploy")
    return root


def test_readme_has_examples():
    assert len(_blocks("python")) >= 3
    names = {c[0] for c in _commands()}
    assert {"composite", "annulus", "stats", "convert", "info", "preview", "run"} <= names


def test_readme_python_examples_run(demo_dir, monkeypatch):
    monkeypatch.chdir(demo_dir)
    namespace: dict = {}
    for k, block in enumerate(_blocks("python")):
        code = compile(block, f"README.md python block {k}", "exec")
        exec(code, namespace)  # noqa: S102 - our own README, run as documentation test
    # the examples computed what they claim
    assert namespace["comp_map"].shape == (21 * 16, 25 * 16)
    assert namespace["sum_map"].shape == (21, 25)
    assert os.path.exists(demo_dir / "maps.zarr" / "zarr.json")
    assert namespace["median"].shape == (256, 256)


def test_readme_command_lines_run(demo_dir, monkeypatch, capsys):
    monkeypatch.chdir(demo_dir)
    for argv in _commands():
        code = cli.main(argv + (["-q"] if argv[0] not in ("info",) else []))
        assert code == 0, f"xrsmap-dask {' '.join(argv)} -> exit {code}: {capsys.readouterr().err}"
    import zarr

    group = zarr.open_group(str(demo_dir / "demo_output" / "maps.zarr"), mode="r")
    assert decode_attrs(group.attrs)["complete"] is True and group["composite"].shape == (21, 25, 16, 16)
    rings = zarr.open_group(str(demo_dir / "demo_output" / "rings.zarr"), mode="r")
    assert rings["annulus_sum"].shape == (2, 21, 25)
    assert (demo_dir / "demo_output" / "maps_log.png").exists()
