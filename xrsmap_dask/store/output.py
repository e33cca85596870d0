"""The one function that writes an output: :func:`write_output` (see :mod:`.writer` for the
protocol) and the swap that ends an ``overwrite``."""
from __future__ import annotations

import errno
import os
import shutil

from ..errors import InputError
from ..layout import OutputRequest
from . import chunks as C
from .lock import OutputLock
from .paths import check_free_space, check_output_path, check_writable
from .writer import (StoreResult, finalize, is_ours, owned_names, prepare, read_attrs,
                     run_units, staging_path, trash_path)


def write_output(request: OutputRequest, path, *, overwrite: bool = False, scheduler=None,
                 **compute_kwargs) -> StoreResult:
    """Write ``request`` to the zarr group ``path``: resume it, skip it when complete.

    Parameters
    ----------
    request : OutputRequest
        From :meth:`xrsmap_dask.maps.Maps.output_request` or
        :func:`xrsmap_dask.stats.stats_output`.
    path : str or PathLike
        The group directory.  Refused (:class:`~xrsmap_dask.errors.InputError`, argument
        ``output``): a file, a path under a file, a read-only file system, a path that
        overlaps one of ``request.inputs``, not enough free space, a directory holding
        something that is not an xrsmap-dask output, or another job's output without
        ``overwrite``.
    overwrite : bool
        Replace an existing output (ours) once the new one is complete.
    scheduler : str or distributed.Client, optional
        Passed to ``dask.compute`` with ``compute_kwargs``.
    """
    shown = os.fspath(path)
    real = check_writable(shown)
    check_output_path(shown, request.inputs)
    try:
        result = _write_locked(request, real, shown, overwrite, scheduler, compute_kwargs)
    except OSError as exc:
        if exc.errno not in OUTPUT_ERRNOS:
            raise
        raise InputError(f"cannot write the output: {exc.strerror}"
                         + (f" ({exc.filename})" if exc.filename else ""), path=shown,
                         argument="output") from None
    _consolidate_parent(real)
    return result


def _write_locked(request, real, shown, overwrite, scheduler, compute_kwargs) -> StoreResult:
    with OutputLock(real):
        if os.path.isdir(trash_path(real)):
            shutil.rmtree(trash_path(real))      # left by a swap that was killed
        target = real
        have = read_attrs(real)
        if overwrite and have is not None:
            if not is_ours(have):
                raise InputError("holds a zarr group not written by xrsmap-dask; it is not "
                                 "replaced: choose another output", path=shown,
                                 argument="output")
            target = staging_path(real)
        elif overwrite and os.path.isdir(real) and os.listdir(real):
            raise InputError("exists and is not a zarr group; it is not replaced: choose "
                             "another output", path=shown, argument="output")
        request, done, damaged, complete = prepare(target, request, shown=shown,
                                                   fresh_ok=target != real)
        n = request.layout.nunits
        todo = list(range(n)) if done is None else [u for u in range(n) if not done[u]]
        if complete and target == real:
            bad = (read_attrs(real) or {}).get("bad_frames", [])
            return StoreResult(shown, [], n, True, list(bad))
        if todo:
            check_free_space(target, sum(request.layout.unit_nbytes(u) for u in todo))
            if damaged:
                _mark_incomplete(target)
            run_units(target, request, todo, scheduler, **compute_kwargs)
        summary = finalize(target, request) if todo or not complete else \
            {"bad_frames": (read_attrs(target) or {}).get("bad_frames", [])}
        if target != real:
            swap_owned(real, target)
    return StoreResult(shown, todo, n, False, list(summary.get("bad_frames", [])),
                       [u for u, _ in damaged])


#: errors of the output's file system that are the output path's fault, not a bug
OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                 errno.ENOTDIR, errno.EISDIR, errno.EEXIST}


def _consolidate_parent(real: str) -> None:
    """An output nested in an output of ours (a map group's ``stats``): refresh the
    parent's consolidated metadata, under the parent's lock (skipped while it is written:
    its writer consolidates when it completes)."""
    parent = os.path.dirname(real)
    if not is_ours(read_attrs(parent)):
        return
    lock = OutputLock(parent)
    try:
        lock.acquire()
    except InputError:
        return
    try:
        C.consolidate(parent)
    except Exception:  # noqa: BLE001 - consolidation is a convenience for readers
        pass
    finally:
        lock.release()


def _mark_incomplete(path: str) -> None:
    import zarr

    from ..layout import decode_attrs
    from .writer import update_attrs

    group = zarr.open_group(store=path, mode="r+")
    if decode_attrs(dict(group.attrs)).get("complete") is True:
        update_attrs(group, {"complete": False})


def swap_owned(real: str, staging: str) -> None:
    """Move the complete output ``staging`` into ``real`` in place of the old output,
    entry by entry among those the old and new outputs own (``zarr.json`` last); entries
    neither owns stay.  A swap killed half way leaves ``real`` incomplete: rerun."""
    old = read_attrs(real) or {}
    if is_ours(old):
        _mark_incomplete(real)
    trash = trash_path(real)
    os.makedirs(trash, exist_ok=True)
    names = (owned_names(old) if is_ours(old) else set()) | set(os.listdir(staging))
    for name in sorted(names - {"zarr.json"}):
        if os.path.lexists(os.path.join(real, name)):
            os.rename(os.path.join(real, name), os.path.join(trash, name))
        if os.path.lexists(os.path.join(staging, name)):
            os.rename(os.path.join(staging, name), os.path.join(real, name))
    os.replace(os.path.join(staging, "zarr.json"), os.path.join(real, "zarr.json"))
    C.fsync_path(real)
    try:
        C.consolidate(real)   # list the entries that stayed (e.g. a stats group) too
    except Exception:  # noqa: BLE001 - a foreign entry zarr cannot read: keep ours listed
        pass
    C.fsync_path(os.path.join(real, "zarr.json"))
    shutil.rmtree(trash)
    shutil.rmtree(staging)
