"""The README's examples run as written, in the order a reader meets them, right after
``make demo`` (the demo's own outputs in place).

Python blocks run in one namespace, in order; a block holding ``if __name__ ==
"__main__":`` is a script and runs as one (``python script.py``, as a user would: cluster
examples must survive that).  Command lines of the bash blocks run as written: ``xrsmap-dask
...`` through ``cli.main``, ``python ...`` in a subprocess.  Lines needing SLURM/PBS or a
hand-started scheduler are left to the cluster tests.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xrsmap_dask import cli, demo

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SKIP_WORDS = ("slurm", "pbs", "sched.json", "survey.yaml", "dask scheduler", "dask worker",
              "ssh ", "sbatch", "qsub", "apptainer", "docker", "salloc", "make ")


def examples() -> list[tuple[str, str]]:
    """``[(kind, text)]`` of the README's python and bash blocks, in document order."""
    return [(m.group(1), m.group(2)) for m in
            re.finditer(r"```(python|bash)\n(.*?)```", README.read_text(), flags=re.S)]


def command_lines(block: str) -> list[str]:
    """The command lines of a bash block (continuations joined, comments dropped)."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        line = line.split(" #", 1)[0].strip().rstrip("&").strip()
        if line.startswith("#") or not line or any(w in line for w in SKIP_WORDS):
            continue
        out.append(line)
    return out


@pytest.fixture(scope="module")
def after_demo(tmp_path_factory):
    """A directory laid out like the repository root right after ``make demo``."""
    root = tmp_path_factory.mktemp("readme")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert demo.main(["--out", "demo_output"]) == 0
    finally:
        os.chdir(cwd)
    shutil.copytree(ROOT / "deploy", root / "deploy")
    return root


def _run_line(line: str, capsys) -> None:
    argv = shlex.split(line)
    if argv[0] == "xrsmap-dask":
        quiet = [] if argv[1] in ("info", "verify") or "-q" in argv else ["-q"]
        code = cli.main(argv[1:] + quiet)
        err = capsys.readouterr().err
        assert code == 0, f"{line} -> exit {code}: {err}"
    elif argv[0] == "python":
        r = subprocess.run([sys.executable] + argv[1:], capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, f"{line} -> exit {r.returncode}: {r.stderr}"
    else:
        raise AssertionError(f"README command of an unknown kind: {line}")


def test_readme_examples_run_in_order_after_the_demo(after_demo, monkeypatch, capsys):
    monkeypatch.chdir(after_demo)
    namespace: dict = {}
    ran = {"python": 0, "script": 0, "command": 0}
    for k, (kind, text) in enumerate(examples()):
        if kind == "bash":
            for line in command_lines(text):
                _run_line(line, capsys)
                ran["command"] += 1
        elif 'if __name__ == "__main__":' in text:
            script = after_demo / f"readme_script_{k}.py"
            script.write_text(text)
            r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                               timeout=600)
            assert r.returncode == 0, f"README script block {k}: {r.stderr[-2000:]}"
            ran["script"] += 1
        else:
            exec(compile(text, f"README.md python block {k}", "exec"), namespace)  # noqa: S102
            ran["python"] += 1
    assert ran["python"] >= 3 and ran["script"] >= 1 and ran["command"] >= 10, ran
    # what the examples claim
    assert namespace["comp_map"].shape == (21 * 16, 25 * 16)
    assert namespace["sum_map"].shape == (21, 25)
    assert namespace["intensity"].shape == (100, 21, 25)
    assert namespace["rings_q"].shape == (2, 21, 25)
    assert namespace["pattern"].dims == ("bin",)
    assert (after_demo / "demo_output" / "cli" / "radial.nxs").is_file()


def test_readme_covers_every_command():
    names = {shlex.split(line)[1] for kind, text in examples() if kind == "bash"
             for line in command_lines(text) if line.startswith("xrsmap-dask ")}
    assert {"composite", "annulus", "radial", "stats", "convert", "info", "preview", "run",
            "verify", "export"} <= names, names
