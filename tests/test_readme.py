"""The README's Python examples run as written on the demo data (same parameters as make demo)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from xrsmap_dask import synth

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    synth.make_scan(root / "demo_output" / "scan", 21, 25, (256, 256), n_background=8)
    return root


def test_readme_has_examples():
    assert len(_python_blocks()) >= 3


def test_readme_python_examples_run(demo_dir, monkeypatch):
    monkeypatch.chdir(demo_dir)
    namespace: dict = {}
    for k, block in enumerate(_python_blocks()):
        code = compile(block, f"README.md python block {k}", "exec")
        exec(code, namespace)  # noqa: S102 - our own README, run as documentation test
    # the examples computed what they claim
    assert namespace["comp_map"].shape == (21 * 16, 25 * 16)
    assert namespace["sum_map"].shape == (21, 25)
    assert os.path.exists(demo_dir / "maps.zarr" / "zarr.json")
    assert namespace["median"].shape == (256, 256)
