"""Write an :class:`~xrsmap_dask.layout.OutputRequest` to a zarr group, resumably.

Protocol (maps and statistics alike):

1. check the path (not a file, not under a file, writable, no overlap with an input) and
   take the output lock (:mod:`.lock`);
2. prepare: create the group (attrs ``creating: True`` first), or reopen it if it holds the
   same job (``job_digest``) and find which units are really done (:func:`.chunks.check_units`:
   done record + chunk checksums; damaged units are redone); a different job is refused;
3. check free space for the units left, then run one task per unit (compute, write, fsync,
   checksum record, done record);
4. finalize: summary attrs (e.g. bad frames), fsync of every file, consolidated metadata,
   then ``complete: True`` last.

``overwrite=True`` writes a new output beside the old one (``.<name>.xrsmap-new``, resumed
if a previous overwrite was killed) and, once it is complete, swaps the entries this writer
owns (the arrays of its layout, the records, ``zarr.json`` last) into place; anything else
in the directory (another writer's group, a user's file) is left where it is.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field

from .. import _graph
from ..errors import InputError
from ..layout import FORMAT_VERSION, OutputRequest, decode_attrs, encode_attrs, jsonable
from . import chunks as C
from .paths import check_free_space, makedirs

RECORDS = C.RECORD_NAMES
#: arrays of a format-1 output (before chunk checksums)
LEGACY_ARRAYS = ("composite", "roi_sum", "annulus_sum", "chunk_done", "ring", "ring_width")


@dataclass
class StoreResult:
    """What a write did: ``computed_chunks`` the units computed now (``repaired``: those of
    them that were done but damaged), ``skipped`` when the output was already complete."""

    path: str
    computed_chunks: list
    nchunks: int
    skipped: bool
    bad_frames: list
    repaired: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# reading what is there


def read_attrs(path: str) -> dict | None:
    """Group attrs of the zarr group at ``path``, decoded (structured attrs are stored as
    JSON strings, :func:`~xrsmap_dask.layout.decode_attrs`); ``{}`` if unreadable, None if
    there is no group."""
    try:
        with open(os.path.join(path, "zarr.json"), encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    attrs = meta.get("attributes", {}) if isinstance(meta, dict) else {}
    return decode_attrs(attrs) if isinstance(attrs, dict) else {}


def update_attrs(group, attrs: dict) -> None:
    """Update the attrs of an open zarr group, encoded as :func:`encode_attrs` says."""
    group.attrs.update(encode_attrs(attrs, dict(group.attrs)))


def coordinate_names(layout) -> str:
    """The group attr ``coordinates`` (names separated by spaces): the arrays xarray shows
    as coordinates rather than data variables -- fixed arrays not named as a dimension
    (``ring_width``), bookkeeping arrays (``frame_unreadable``) and the records."""
    dims = {d for a in layout.arrays for d in a.dims}
    names = [a.name for a in layout.arrays
             if a.name not in dims and (a.values is not None or a.attrs.get("bookkeeping"))]
    return " ".join(names + list(RECORDS))


def is_ours(attrs: dict | None) -> bool:
    return bool(attrs) and "xrsmap_dask_format" in attrs


def owned_names(attrs: dict) -> set[str]:
    """Directory entries an output of ours owns (its arrays, records and ``zarr.json``)."""
    names = {"zarr.json"}
    layout = attrs.get("layout")
    if isinstance(layout, dict) and isinstance(layout.get("arrays"), dict):
        names |= set(layout["arrays"]) | set(RECORDS)
    elif attrs.get("xrsmap_dask_format") == 1:
        names |= set(LEGACY_ARRAYS)
    return names


def _remove_owned(path: str, attrs: dict) -> None:
    # zarr.json last: a removal killed half way still leaves an output of ours
    for name in sorted(owned_names(attrs), key=lambda n: n == "zarr.json"):
        p = os.path.join(path, name)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        elif os.path.lexists(p):
            os.unlink(p)


def _arrays_match(path: str, layout) -> bool:
    """Whether every array of ``layout`` and both records exist as laid out."""
    for a in layout.arrays:
        try:
            with open(os.path.join(path, a.name, "zarr.json"), encoding="utf-8") as f:
                meta = json.load(f)
            chunks = meta["chunk_grid"]["configuration"]["chunk_shape"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if list(meta.get("shape", [])) != list(a.shape) or list(chunks) != list(a.chunks):
            return False
    return all(os.path.exists(os.path.join(path, r, "zarr.json")) for r in RECORDS)


def staging_path(real: str) -> str:
    parent, name = os.path.split(real)
    return os.path.join(parent, f".{name}.xrsmap-new")


def trash_path(real: str) -> str:
    parent, name = os.path.split(real)
    return os.path.join(parent, f".{name}.xrsmap-old")


# ---------------------------------------------------------------------------------------
# prepare


def _create(path: str, request: OutputRequest) -> None:
    import zarr

    # room for the whole output before its first file (metadata and coordinates included)
    check_free_space(path, sum(request.layout.unit_nbytes(u)
                               for u in range(request.layout.nunits)))
    makedirs(path)
    layout_attrs = request.layout.to_attrs()
    head = {"xrsmap_dask_format": FORMAT_VERSION, "output_kind": request.kind,
            "creating": True, "layout": layout_attrs}
    # mode 'a': never wipe entries that are not ours (zarr's 'w' deletes the directory)
    group = zarr.open_group(store=path, mode="a", zarr_format=3)
    group.attrs.put(encode_attrs(head))
    fixed = C.create_arrays(path, group, request.layout)
    attrs = {**request.identity, **request.attrs, "xrsmap_dask_format": FORMAT_VERSION,
             "output_kind": request.kind, "job_digest": request.job_digest(),
             "layout": layout_attrs, "fixed_checksums": fixed,
             "coordinates": coordinate_names(request.layout), "complete": False}
    if request.summarize is not None:
        attrs["bad_frames"] = []
    group.attrs.put(encode_attrs(attrs))


def _refuse_other_job(path: str, have: dict, shown: str, request: OutputRequest) -> None:
    if have.get("xrsmap_dask_format") != FORMAT_VERSION:
        raise InputError(f"holds the output of a different job (written by an older "
                         f"xrsmap-dask, format {have.get('xrsmap_dask_format')}); pass "
                         f"overwrite=True to replace it", path=shown, argument="output")
    raise InputError(f"holds the output of a different job ({_what_differs(have, request)}); "
                     "pass overwrite=True to replace it", path=shown, argument="output")


def _what_differs(have: dict, request: OutputRequest) -> str:
    """The identity keys in which the stored output and this job differ, in words."""
    new = jsonable(request.identity)
    keys = sorted(k for k in new if jsonable(have.get(k)) != new[k])
    if not keys:
        return "other inputs or settings"
    words = ["the input files changed (names, sizes or modification times)"
             if k == "inputs_digest" else k for k in keys[:6]]
    return "differs in: " + ", ".join(words) + (", ..." if len(keys) > 6 else "")


def _resume_layout(request: OutputRequest, have: dict, shown: str) -> OutputRequest:
    if have.get("layout") == request.layout.to_attrs():
        return request
    again = request.relayout(have) if request.relayout is not None else None
    if again is not None and again.layout.to_attrs() == have.get("layout"):
        return again   # resume in the partial output's chunk layout (same numbers)
    raise InputError(f"holds a partial output written with frames_per_chunk="
                     f"{have.get('frames_per_chunk')} (another chunk layout); resume with the "
                     f"same frames_per_chunk, or pass overwrite=True", path=shown,
                     argument="frames_per_chunk")


def _foreign_entries(path: str) -> list[str]:
    """Entries of the directory ``path`` other than the temporary file zarr leaves when it
    is killed while writing the group's ``zarr.json`` (``zarr.<hex>.partial``; removed)."""
    names = []
    for name in os.listdir(path):
        if re.fullmatch(r"zarr\.[0-9a-f]{32}\.partial", name):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(path, name))
        else:
            names.append(name)
    return names


def prepare(target: str, request: OutputRequest, *, shown: str, fresh_ok: bool):
    """Create or reopen ``target``; ``(request, done, damaged, complete)``.

    ``fresh_ok``: a group of ours holding another job may be replaced (our staging copy).
    """
    have = read_attrs(target)
    if have is None:
        if os.path.isdir(target) and _foreign_entries(target) and not fresh_ok:
            raise InputError("exists and is not a zarr group; choose another output (nothing "
                             "that is not an xrsmap-dask output is replaced)", path=shown,
                             argument="output")
        if fresh_ok and os.path.isdir(target):
            shutil.rmtree(target)
        _create(target, request)
        return request, None, [], False
    if not is_ours(have):
        raise InputError("holds the output of a different job (a zarr group not written by "
                         "xrsmap-dask); choose another output", path=shown, argument="output")
    stale = have.get("creating") is True and "job_digest" not in have
    if not stale and have.get("job_digest") != request.job_digest():
        if not fresh_ok:
            _refuse_other_job(target, have, shown, request)
        stale = True
    if not stale:
        request = _resume_layout(request, have, shown)
        stale = not _arrays_match(target, request.layout)
    if stale:   # ours: killed while being created, replaced half way, or our staging copy
        _remove_owned(target, have)
        _create(target, request)
        return request, None, [], False
    done, damaged = C.check_units(target, request.layout)
    return request, done, damaged, have.get("complete") is True and not damaged


# ---------------------------------------------------------------------------------------
# run and finalize


def _gather(*done):
    return list(done)


def store_graph(target: str, request: OutputRequest, todo: list):
    """A Delayed of one task per unit of ``todo`` (compute the unit inside the task, write
    it, record it) and one gathering task; nothing else runs."""
    layout = request.layout
    g = _graph.Graph()
    deps = []
    if request.graph is not None:
        g.include(request.graph)
        deps = list(request.graph.layers)
    name = _graph.layer_name(request.task_name, target, request.job_digest(), todo)
    columns = layout.unit_arrays
    tasks = {}
    for u in todo:
        names = tuple(layout.units[u])
        tasks[(name, u)] = (C.write_unit, target, u, columns, names,
                            tuple(layout.region(u, n) for n in names),
                            tuple(layout.chunk_index(u, n) for n in names),
                            request.unit_task(u))
    g.add(name, tasks, deps)
    gname = "store-all-" + name.split("-")[-1]
    g.add(gname, {gname: (_gather,) + tuple((name, u) for u in todo)}, [name])
    return g.delayed(gname)


def run_units(target: str, request: OutputRequest, todo: list, scheduler=None,
              **compute_kwargs) -> None:
    """Compute and write the units ``todo`` (:func:`store_graph`)."""
    import dask

    if scheduler is not None:
        compute_kwargs["scheduler"] = scheduler
    dask.compute(store_graph(target, request, todo), **compute_kwargs)


def finalize(target: str, request: OutputRequest) -> dict:
    """Summary attrs, fsync, consolidation, then ``complete: True``; the summary attrs."""
    import zarr

    flags, readable = C.read_records(target, "chunk_done", request.layout.nunits, None)
    missing = [int(u) for u in range(len(flags)) if not (readable[u] and flags[u] == 1)]
    if missing:
        raise RuntimeError(f"chunks {missing} of {target} were not written")
    summary = {}
    if request.summarize is not None:
        summary = request.summarize({n: C.open_array(target, n, "r")[...]
                                     for n in request.summary_arrays})
    C.fsync_tree(target)
    C.consolidate(target)
    group = zarr.open_group(store=target, mode="r+")
    if summary:
        update_attrs(group, summary)
    update_attrs(group, {"complete": True})  # last: only now is the output whole
    C.fsync_path(os.path.join(target, "zarr.json"))
    C.fsync_path(target)
    return summary
