"""Security defaults of the whole package (issue 7): a source scan finds no ``eval``/``exec``/
pickle loads/unsafe YAML loads/shell commands, and every ``np.load`` refuses pickles."""
from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import xrsmap_dask

PACKAGE_DIR = Path(xrsmap_dask.__file__).parent

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
