"""Safe, bounded YAML loading (job specs and imageseries YAML): hostile documents are a quick
InputError with a bounded message, never a memory blow-up, a hang or a Python object."""
from __future__ import annotations

import os
import tracemalloc

import pytest
import yaml

from xrsmap_dask import imageseries, jobs
from xrsmap_dask.errors import InputError, UnsafeInputError
from xrsmap_dask.imageseries import _yaml
from xrsmap_dask.imageseries._yaml import load_yaml


def billion_laughs(levels: int = 9, key: str = "image-files") -> str:
    """The classic alias bomb: 10 ** levels strings once expanded, a few hundred bytes."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, levels + 1):
        lines.append(f"l{k}: &l{k} [" + ", ".join([f"*l{k - 1}"] * 10) + "]")
    lines.append(f"{key}: *l{levels}")
    return "\n".join(lines) + "\n"


def _peak(action) -> int:
    """Peak bytes traced while ``action()`` runs."""
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_alias_bomb_refused_with_bounded_memory(tmp_path):
    path = tmp_path / "bomb.yml"
    path.write_text(billion_laughs())
    errors = []

    def load():
        with pytest.raises(InputError, match="bomb.yml.*alias") as err:
            load_yaml(str(path))
        errors.append(err.value)

    assert _peak(load) < 8 << 20
    assert len(str(errors[0])) < 400
    with pytest.raises(InputError, match="yaml text.*alias"):
        load_yaml(billion_laughs(), is_text=True)


@pytest.mark.timeout(60)
def test_alias_bomb_through_the_openers_and_job_specs(tmp_path):
    series = tmp_path / "series.yml"
    series.write_text(billion_laughs())
    with pytest.raises(InputError, match="series.yml.*alias"):
        imageseries.open(str(series))           # format guessed from the YAML's keys
    with pytest.raises(InputError, match="series.yml.*alias"):
        imageseries.open(str(series), "image-files")
    job = tmp_path / "job.yml"
    job.write_text(billion_laughs(key="scans"))
    with pytest.raises(InputError, match="job.yml.*alias"):
        jobs.load_job(str(job))


def test_ordinary_aliases_and_merge_keys_load_as_safe_load():
    text = ("defaults: &d {mesh: [3, 4], on_error: fill}\n"
            "scans:\n  - {<<: *d, name: a}\n  - {<<: *d, name: b, mesh: [1, 1]}\n"
            "same: [*d, *d]\n")
    assert load_yaml(text, is_text=True) == yaml.safe_load(text)
    # a sizeable but honest document (many aliases of a small node) is fine
    many = "x: &x [1, 2]\nys: [" + ", ".join(["*x"] * 5000) + "]\n"
    assert len(load_yaml(many, is_text=True)["ys"]) == 5000


@pytest.mark.parametrize("text, reason", [
    ("&a [*a]", "recursive alias"),
    ("&m {k: *m}", "recursive alias"),
    ("[" * 5000, "nest"),
    ("- " * 5000 + "x", "nest"),
    ("{[1]: 2}", "invalid YAML"),
])
def test_hostile_structure(text, reason):
    with pytest.raises(InputError, match=reason) as err:
        load_yaml(text, is_text=True)
    assert not isinstance(err.value, UnsafeInputError)


def test_messages_never_print_unbounded_input(tmp_path):
    huge = "y" * 10**6
    cases = [(f'x: !!python/object/apply:os.system ["{huge}"]\n', UnsafeInputError),
             (f"x: !!python/name:{huge}\n", UnsafeInputError),
             (f'x: "{huge}', InputError),
             (f"{huge}: [\n", InputError),
             (f"x: 1\n{huge}\n:", InputError)]
    for text, kind in cases:
        with pytest.raises(kind) as err:
            load_yaml(text, is_text=True)
        assert len(str(err.value)) < 600, str(err.value)[:200]


def test_size_limit_and_encoding(tmp_path):
    big = tmp_path / "big.yml"
    with open(big, "w") as f:
        f.write("x: [" + "1, " * (_yaml.MAX_YAML_BYTES // 3) + "1]\n")
    with pytest.raises(InputError, match="big.yml.*larger than"):
        load_yaml(str(big))
    with pytest.raises(InputError, match="larger than"):
        load_yaml(" " * (_yaml.MAX_YAML_BYTES + 1), is_text=True)
    latin = tmp_path / "latin.yml"
    latin.write_bytes("title: caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="latin.yml.*UTF-8"):
        load_yaml(str(latin))


@pytest.mark.timeout(20)
def test_paths_that_are_not_regular_files(tmp_path):
    with pytest.raises(InputError, match="nothere.yml.*not found"):
        load_yaml(str(tmp_path / "nothere.yml"))
    folder = tmp_path / "folder.yml"
    folder.mkdir()
    with pytest.raises(InputError, match="folder.yml.*directory"):
        load_yaml(str(folder))
    fifo = tmp_path / "pipe.yml"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="pipe.yml.*FIFO"):
        load_yaml(str(fifo))


def test_plain_documents_unchanged(tmp_path):
    path = tmp_path / "ok.yml"
    text = "image-files: {directory: d, files: 'a_*.edf'}\noptions: {empty-frames: 0}\nmeta: {}\n"
    path.write_text(text)
    assert load_yaml(str(path)) == yaml.safe_load(text)
    assert load_yaml("", is_text=True) is None
    assert load_yaml("# only a comment\n", is_text=True) is None
