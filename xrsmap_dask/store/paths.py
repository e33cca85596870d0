"""Checks on an output path before anything is written.

* :func:`check_output_path`: the output must not overlap an input (equal to it, holding it,
  or inside an input directory) nor another output of the same job (nested groups);
* :func:`check_writable`: a directory can be made there (not a file, not under a file, not
  on a read-only file system, writable);
* :func:`check_free_space`: the file system has room for what will be written.

Every refusal is an :class:`~xrsmap_dask.errors.InputError` naming the path and the
argument, never a raw ``OSError``.
"""
from __future__ import annotations

import os
import shutil
from typing import Iterable

from ..errors import InputError
from .lock import real_output_path


def _real_paths(paths: Iterable) -> list[str]:
    """Real paths, resolving each distinct directory once (inputs can be 10^5 files)."""
    dirs: dict[str, str] = {}
    out = []
    for p in paths:
        p = os.path.abspath(os.fspath(p))
        if os.path.islink(p):
            out.append(os.path.realpath(p))
            continue
        d, base = os.path.split(p)
        if d not in dirs:
            dirs[d] = os.path.realpath(d)
        out.append(os.path.join(dirs[d], base))
    return out


def _within(inner: str, outer: str) -> bool:
    """``inner`` is ``outer`` or below it (both real, absolute)."""
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def check_output_path(output, inputs: Iterable = (), other_outputs: Iterable = (), *,
                      argument: str = "output") -> str:
    """Refuse an output that overlaps an input or another output; return its real path.

    Parameters
    ----------
    output : str or PathLike
        The output (a zarr group directory, or a file for single-file formats).
    inputs : iterable of paths
        Every input file and directory the job reads (an HDF5 file, a zarr store, a
        directory of frames, each frame file).  Refused: the output *is* an input, *holds*
        one (writing or replacing it would destroy the input), or lies *inside* an input
        directory (a zarr store read as input).  Symlinks are resolved first.
    other_outputs : iterable of paths
        Outputs of the other scans of the same job: refused when equal or nested either way
        (``a`` and ``a/sub``).
    argument : str
        Argument name for the error.

    Raises
    ------
    InputError
        Naming both paths.
    """
    out = real_output_path(output)
    for real in _real_paths(inputs):
        if _within(real, out):
            what = "is" if real == out else "holds"
            raise InputError(f"the output {what} the input {real}: writing it would destroy "
                             f"the input; choose another output", path=os.fspath(output),
                             argument=argument)
        if os.path.isdir(real) and _within(out, real):
            raise InputError(f"the output is inside the input directory {real}; choose "
                             f"another output", path=os.fspath(output), argument=argument)
    for real in _real_paths(other_outputs):
        if _within(real, out) or _within(out, real):
            raise InputError(f"overlaps the output {real} of another scan (outputs must not be "
                             f"nested); choose separate groups", path=os.fspath(output),
                             argument=argument)
    return out


def _existing_ancestor(path: str) -> str:
    p = path
    while not os.path.lexists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def check_writable(path, *, argument: str = "output", directory: bool = True) -> str:
    """Check that ``path`` can be written; return its real path.

    ``directory=True`` (zarr groups): ``path`` is or can become a directory -- not a file.
    ``directory=False`` (single-file outputs such as HDF5): ``path`` is or can become a file
    -- not a directory.  Either way not under a file, not on a read-only file system, and
    its nearest existing directory is writable.
    """
    shown = os.fspath(path)
    p = os.path.abspath(shown)
    if directory and os.path.exists(p) and not os.path.isdir(p):
        raise InputError("is a file, not a directory (the output is a zarr group, a "
                         "directory)", path=shown, argument=argument)
    if not directory and os.path.isdir(p):
        raise InputError("is a directory, not a file", path=shown, argument=argument)
    base = _existing_ancestor(p if directory else os.path.dirname(p))
    if not os.path.isdir(base):
        raise InputError(f"is under {base}, which is a file, not a directory", path=shown,
                         argument=argument)
    try:
        readonly = bool(os.statvfs(base).f_flag & os.ST_RDONLY)
    except OSError:
        readonly = False
    if readonly:
        raise InputError(f"is on a read-only file system ({base})", path=shown,
                         argument=argument)
    if not os.access(base, os.W_OK | os.X_OK):
        raise InputError(f"cannot write in {base} (permission denied)", path=shown,
                         argument=argument)
    return real_output_path(p)


def check_free_space(path, nbytes: int, *, argument: str = "output") -> None:
    """Refuse to start writing ``nbytes`` (uncompressed, an upper bound) under ``path`` when
    its file system has less free space."""
    base = _existing_ancestor(os.path.abspath(os.fspath(path)))
    try:
        free = shutil.disk_usage(base).free
    except OSError:
        return
    need = int(nbytes) + 2**20  # metadata and records
    if free < need:
        raise InputError(f"needs about {_size(need)} of free space, {base} has {_size(free)}",
                         path=os.fspath(path), argument=argument)


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


def makedirs(path, *, argument: str = "output") -> None:
    """``os.makedirs(path, exist_ok=True)``, an OSError said as an :class:`InputError`."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the directory: {exc.strerror}", path=os.fspath(path),
                         argument=argument) from None
