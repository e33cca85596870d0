"""``verify(path)``: is an output whole and unaltered?

Checks every xrsmap-dask output at or below ``path`` (a map group, its ``stats`` group, or
every scan of a survey store): attrs readable, ``complete: True``, every array present as
its recorded layout says, every unit's done record set, and every chunk file hashing to the
checksum recorded when it was written (fixed arrays such as ring radii included).  Reads
every chunk file once; reads no input.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..layout import FORMAT_VERSION
from . import chunks as C
from .writer import _arrays_match, is_ours, owned_names, read_attrs


@dataclass
class OutputCheck:
    """The verdict on one output group."""

    path: str
    kind: str
    complete: bool
    nchunks: int
    checked_chunks: int
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class VerifyReport:
    """``ok`` when at least one output was found and every one passed."""

    path: str
    outputs: list = field(default_factory=list)
    problems: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.outputs) and not self.problems and all(o.ok for o in self.outputs)

    def lines(self) -> list[str]:
        """Human-readable report, one line per output and per problem."""
        out = []
        for o in self.outputs:
            state = "ok" if o.ok else "FAILED"
            out.append(f"{o.path}: {o.kind}, {o.checked_chunks}/{o.nchunks} chunks checked: "
                       f"{state}")
            out.extend(f"  {p}" for p in o.problems)
        out.extend(self.problems)
        return out


def _check_one(path: str, attrs: dict) -> OutputCheck:
    kind = str(attrs.get("output_kind", "maps"))
    check = OutputCheck(path, kind, attrs.get("complete") is True, 0, 0)
    if attrs.get("xrsmap_dask_format") != FORMAT_VERSION:
        check.problems.append(f"format {attrs.get('xrsmap_dask_format')} has no chunk "
                              f"checksums (written by an older xrsmap-dask): cannot verify")
        return check
    if not check.complete:
        check.problems.append("incomplete (complete is not True): rerun the job")
    fixed = attrs.get("fixed_checksums") or {}
    for name, want in fixed.items():
        try:
            ndim = C.open_array(path, name, "r").ndim
        except Exception:  # noqa: BLE001 - metadata gone or damaged
            ndim = 0
        if not ndim or C.file_checksum(C.chunk_file(path, name, (0,) * ndim)) != want:
            check.problems.append(f"array {name!r} missing or altered")
    try:
        layout = C.recorded_layout(path)
    except Exception as exc:  # noqa: BLE001 - any damage to the metadata is a failure
        check.problems.append(f"arrays missing or unreadable: {exc}")
        return check
    check.nchunks = layout.nunits
    if attrs.get("layout") != layout.to_attrs() or not _arrays_match(path, layout):
        check.problems.append("arrays are not as the recorded layout says")
        return check
    done, damaged = C.check_units(path, layout)
    check.checked_chunks = int(done.sum()) + len(damaged)
    for u, what in damaged:
        check.problems.append(f"chunk {u}: {what}")
    undone = sorted(set(np.flatnonzero(~done).tolist()) - {d for d, _ in damaged})
    if undone:
        check.problems.append(f"chunks {_short(undone)} not written")
    return check


def _short(items: list) -> str:
    return str(items) if len(items) <= 10 else f"{items[:10]} and {len(items) - 10} more"


def _outputs_below(path: str):
    """(path, attrs) of every output of ours at or below ``path`` (never entering the
    arrays of an output)."""
    attrs = read_attrs(path)
    skip = set()
    if is_ours(attrs):
        yield path, attrs
        skip = owned_names(attrs)
    try:
        entries = sorted(os.listdir(path))
    except OSError:
        return
    for name in entries:
        sub = os.path.join(path, name)
        if name not in skip and os.path.isdir(sub) and not os.path.islink(sub) and \
                not name.endswith((".xrsmap-new", ".xrsmap-old")):
            yield from _outputs_below(sub)


def verify(path) -> VerifyReport:
    """Check every xrsmap-dask output at or below ``path``; a :class:`VerifyReport`.

    ``report.ok`` is False when no output is found, or any output is incomplete, lacks an
    array, or has a chunk missing or altered since it was written (``report.lines()`` says
    which).  Never raises for a damaged output.
    """
    path = os.fspath(path)
    report = VerifyReport(path)
    if not os.path.isdir(path):
        report.problems.append(f"{path}: not a directory (no output here)")
        return report
    for sub, attrs in _outputs_below(path):
        report.outputs.append(_check_one(sub, attrs))
    if not report.outputs:
        report.problems.append(f"{path}: no xrsmap-dask output found")
    return report
