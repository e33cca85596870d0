"""Helpers shared by the format modules (so that format modules never import each other).

Task names (:func:`file_token`), write block sizes (:func:`frames_per_write`), metadata in
YAML (``"! load-numpy-array FILE"`` and hexrd's legacy ``'++np.array'``), the YAML path rule
(:func:`resolve_relative`), bounded reprs for error messages and HDF5 metadata values.
"""
from __future__ import annotations

import functools
import hashlib
import os
from typing import Any

import numpy as np

from ..errors import InputError, UnsafeInputError
from ._errors import InputNotFoundError
from .base import plain_metadata_value

#: bytes of frames one write step holds in memory
WRITE_BLOCK_BYTES = 32 * 2**20
#: the YAML metadata trigger of hexrd: ``"! load-numpy-array FILE"``
NUMPY_TAG = "! load-numpy-array"
#: hexrd's obsolete frame-cache YAML array form: ``key: '++np.array'`` plus ``key-array: [...]``
LEGACY_ARRAY = "++np.array"
#: longest repr of user input put in an error message
REPR_LIMIT = 80
#: largest npz member read (bytes); frame-cache entries are bounded by the frame size
NPZ_MAX_BYTES = 1 << 31


def short_repr(value: Any, limit: int = REPR_LIMIT) -> str:
    """A repr of ``value`` of at most ``limit`` characters, built without walking more than a
    few items of containers (error messages never print unbounded input, and a YAML alias
    bomb never gets expanded by its repr)."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxset = 3, 6, 6, 6, 6
    r.maxstring = r.maxother = r.maxlong = limit
    try:
        text = r.repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_regular_file(path: str, argument: str = "filename") -> None:
    """An existing ``path`` that is not a regular file (a directory, a FIFO that would block
    the open, a device) raises :class:`InputError` naming it; a missing one is left to the
    opener (which reports it as not found)."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise InputError(f"is {kind}", path=path, argument=argument)


def file_token(path: str, *parts) -> str:
    """Digest of a file's absolute path, size and mtime plus ``parts`` (a dask task name)."""
    digest = hashlib.sha1(os.path.abspath(path).encode())
    try:
        st = os.stat(path)
        digest.update(f"\0{st.st_size}\0{st.st_mtime_ns}".encode())
    except OSError:
        pass
    for p in parts:
        digest.update(f"\0{p}".encode())
    return digest.hexdigest()


def frames_per_write(frame_bytes: int, nframes: int) -> int:
    """Frames per write step so one step holds about :data:`WRITE_BLOCK_BYTES`."""
    return int(max(1, min(nframes, WRITE_BLOCK_BYTES // max(1, frame_bytes))))


# -- paths named inside YAML files -------------------------------------------------------------
def resolve_relative(name: str, yaml_path: str | None, extra_dirs=(), what: str = "file",
                     must_exist: bool = True) -> str:
    """The file a YAML names: absolute names as they are; a relative name is looked up beside
    the YAML first, then in ``extra_dirs``, then in the working directory (hexrd's rule), so
    YAMLs written by hexrd or by us open in both.  ``yaml_path=None`` (YAML text): the working
    directory only.  Missing everywhere: :class:`InputNotFoundError` listing the places
    tried (or the first candidate when ``must_exist`` is false)."""
    name = os.path.expanduser(os.fspath(name))
    if os.path.isabs(name):
        candidates = [name]
    else:
        dirs = [os.path.dirname(os.path.abspath(yaml_path))] if yaml_path else []
        dirs += [os.path.abspath(d) for d in extra_dirs] + [os.getcwd()]
        candidates = list(dict.fromkeys(os.path.normpath(os.path.join(d, name))
                                        for d in dirs))
    for c in candidates:
        if os.path.exists(c):
            return c
    if not must_exist:
        return candidates[0]
    tried = "" if len(candidates) == 1 else f" (looked in {', '.join(candidates)})"
    raise InputNotFoundError(f"{what} {short_repr(name)} not found{tried}",
                             path=yaml_path or candidates[0])


# -- metadata in YAML --------------------------------------------------------------------------
def load_npy(path: str) -> np.ndarray:
    """``np.load(path, allow_pickle=False)``; a pickled array raises UnsafeInputError."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputNotFoundError("metadata array file not found", path=path) from None
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise UnsafeInputError("the .npy holds pickled Python objects; refused",
                                   path=path) from None
        raise InputError(f"not a readable .npy file: {exc}", path=path) from None
    except (OSError, EOFError) as exc:
        raise InputError(f"not a readable .npy file: {exc}", path=path) from None


def yaml_meta(meta: dict, yaml_path: str | None, other_dirs=()) -> dict:
    """Metadata from a YAML ``meta:`` mapping, as hexrd reads it.

    - ``"! load-numpy-array FILE"`` loads ``FILE`` (``allow_pickle=False``), found by
      :func:`resolve_relative` (beside the YAML, in ``other_dirs``, in the working directory);
    - ``key: '++np.array'`` with ``key-array: [...]`` (hexrd's obsolete frame-cache form)
      becomes a numpy array under ``key``;
    - other ``"! command ..."`` strings are dropped (hexrd ignores unknown commands);
    - every other value is kept as YAML gives it.
    """
    if not isinstance(meta, dict):
        raise InputError(f"'meta:' must be a mapping, got {type(meta).__name__}",
                         path=yaml_path)
    legacy = {f"{k}-array" for k, v in meta.items() if v == LEGACY_ARRAY}
    out = {}
    for k, v in meta.items():
        if k in legacy:
            continue
        if v == LEGACY_ARRAY:
            arr = np.asarray(meta.get(f"{k}-array"))
            if arr.dtype.kind not in "biufcUS":
                raise InputError(f"metadata {short_repr(k)}: '++np.array' needs a numeric "
                                 f"'{k}-array' list", path=yaml_path)
            out[k] = arr
            continue
        words = v.split() if isinstance(v, str) else []
        if len(words) > 1 and words[0] == "!":
            if words[1] != NUMPY_TAG.split()[1]:
                continue  # an unknown trigger: hexrd drops the key
            if len(words) < 3:
                raise InputError(f"metadata {short_repr(k)}: {NUMPY_TAG!r} needs a file name",
                                 path=yaml_path)
            name = v.split(None, 2)[2].strip()
            v = load_npy(resolve_relative(name, yaml_path, other_dirs, "metadata array file"))
        out[k] = v
    return out


def yaml_meta_out(meta: dict, yaml_path: str) -> dict:
    """Metadata as YAML values; numpy arrays saved as ``<yaml stem>-<key>.npy`` beside it
    (named by absolute path, so that hexrd, which resolves it against the working directory,
    opens the YAML from anywhere).

    The inverse of :func:`yaml_meta`: top-level arrays become ``"! load-numpy-array FILE"``
    (dtype and shape kept), numpy scalars Python scalars; anything else YAML cannot hold
    safely raises InputError.
    """
    base = os.path.dirname(os.path.abspath(yaml_path))
    stem = os.path.splitext(os.path.basename(yaml_path))[0]
    out = {}
    for k, v in meta.items():
        if isinstance(v, np.ndarray):
            if v.dtype.kind == "O":
                raise InputError(f"metadata {short_repr(k)}: object arrays cannot be saved",
                                 argument="meta")
            name = os.path.join(base, f"{stem}-{k}.npy")
            np.save(name, v, allow_pickle=False)
            v = f"{NUMPY_TAG} {name}"  # absolute: hexrd resolves it against the working dir
        out[str(k)] = plain_metadata_value(k, v, "written to YAML", arrays_as_lists=True)
    return out


# -- HDF5 metadata values ----------------------------------------------------------------------
def meta_value_from_h5(value):
    """An HDF5 attribute/dataset value as metadata: 0-d -> Python scalar, bytes -> str."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return meta_value_from_h5(value[()])
        if value.dtype.kind == "O":  # variable-length strings
            return np.array([v.decode() if isinstance(v, bytes) else v for v in value.ravel()],
                            dtype=str).reshape(value.shape)
        if value.dtype.kind == "S":
            return np.char.decode(value, "utf-8")
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def meta_value_to_h5(key: str, value, path: str):
    """A metadata value as something h5py stores (arrays, numbers, strings)."""
    if isinstance(value, (str, bytes, bool, int, float, complex, np.generic)):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "O":
            raise InputError(f"metadata {short_repr(key)}: object arrays cannot be stored in "
                             "HDF5", path=path, argument="meta")
        if value.dtype.kind == "U":
            return np.char.encode(value, "utf-8")
        return value
    if isinstance(value, (list, tuple)):
        arr = np.asarray(value)
        if arr.dtype.kind in "biufcUS":
            return meta_value_to_h5(key, arr, path)
    raise InputError(f"metadata {short_repr(key)} of type {type(value).__name__} cannot be "
                     "stored in HDF5 (numbers, strings and numeric/string arrays only)",
                     path=path, argument="meta")


# -- format guessing ---------------------------------------------------------------------------
def yaml_top_keys(path: str) -> frozenset:
    """Top-level keys of the YAML mapping at ``path`` (empty when it is not one); loaded once
    per file version however many formats ask.  Invalid or unsafe YAML raises its
    :class:`InputError` (the reason no format can be guessed)."""
    try:
        st = os.stat(path)
    except OSError:
        return frozenset()
    check_regular_file(path)
    return _yaml_keys(os.path.abspath(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=32)
def _yaml_keys(path: str, mtime_ns: int, size: int) -> frozenset:
    from ._yaml import load_yaml

    doc = load_yaml(path)
    return frozenset(k for k in doc if isinstance(k, str)) if isinstance(doc, dict) \
        else frozenset()


# -- metadata as an HDF5 group (fch5 frame caches, Eiger stream files) --------------------------
def h5_group_to_dict(group) -> dict:
    """hexrd's reading of a metadata group: sub-groups become dicts, string datasets ``str``,
    one-element 1-D datasets their element (a numpy scalar), other datasets numpy arrays."""
    import h5py

    out: dict = {}
    for key, node in group.items():
        if isinstance(node, h5py.Group):
            out[key] = h5_group_to_dict(node)
        elif node.dtype.kind == "O":  # variable-length strings
            value = node.asstr()[()] if h5py.check_string_dtype(node.dtype) else node[()]
            out[key] = value.decode("utf-8") if isinstance(value, bytes) else value
        else:
            arr = np.array(node[()])
            out[key] = arr[0] if arr.ndim == 1 and len(arr) == 1 else arr
    return out


def dict_to_h5_group(group, meta: dict, path: str) -> None:
    """hexrd's writing of metadata into a group: dicts become sub-groups, strings string
    datasets, other values ``np.atleast_1d`` datasets; ``None`` values are skipped.
    Unicode arrays are stored as UTF-8 byte strings (HDF5 has no unicode arrays)."""
    for key, value in meta.items():
        if value is None:
            continue
        if isinstance(value, dict):
            dict_to_h5_group(group.create_group(str(key)), value, path)
        elif isinstance(value, (str, np.str_)):
            group.create_dataset(str(key), data=str(value))
        else:
            group.create_dataset(str(key), data=np.atleast_1d(meta_value_to_h5(key, value,
                                                                                path)))


# -- npz files, checked before anything is allocated ------------------------------------------
class CheckedNpz:
    """The arrays of an npz file, each checked against the zip's own sizes before it is read.

    ``keys()`` lists the members; ``[key]`` reads one.  A member whose ``.npy`` header
    declares more bytes than the member holds (a lying shape such as ``nframes=10**12``
    entries), a pickled object array, a damaged zip or a truncated member raises
    :class:`InputError` / :class:`UnsafeInputError` naming the file and key, in
    milliseconds and without allocating the declared size.
    """

    def __init__(self, path: str):
        import zipfile

        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
            self._info = {i.filename[:-4]: i for i in self._zip.infolist()
                          if i.filename.endswith(".npy")}
        except FileNotFoundError:
            raise InputNotFoundError("frame cache file not found", path=path) from None
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise InputError(f"not a readable npz file: {short_repr(exc)}", path=path) \
                from None

    def keys(self) -> list[str]:
        return list(self._info)

    def __contains__(self, key) -> bool:
        return key in self._info

    def header(self, key: str) -> tuple[tuple, np.dtype]:
        """(shape, dtype) of member ``key`` from its header (checked, nothing read)."""
        return self._open(key)[1:3]

    def _open(self, key: str):
        import zipfile

        fmt = np.lib.format
        info = self._info.get(key)
        if info is None:
            raise InputError(f"npz has no array {short_repr(key)}", path=self.path,
                             argument=key)
        try:
            f = self._zip.open(info)
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else \
                fmt.read_array_header_2_0
            shape, fortran, dtype = read(f, max_header_size=10000)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError) as exc:
            raise InputError(f"array {short_repr(key)} has no valid .npy header: "
                             f"{short_repr(exc)}", path=self.path, argument=key) from None
        if dtype.hasobject:
            raise UnsafeInputError(f"array {short_repr(key)} holds pickled Python objects; "
                                   "refused (allow_pickle=False)", path=self.path,
                                   argument=key)
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if nbytes != info.file_size - f.tell():
            raise InputError(f"array {short_repr(key)} declares shape {short_repr(shape)} "
                             f"{dtype} ({nbytes} bytes) but holds "
                             f"{info.file_size - f.tell()} bytes", path=self.path,
                             argument=key)
        return f, tuple(shape), dtype, fortran, nbytes

    def __getitem__(self, key: str) -> np.ndarray:
        return self.read(key)

    def read(self, key: str, max_items: int | None = None) -> np.ndarray:
        """Member ``key``; more than ``max_items`` elements (default: :data:`NPZ_MAX_BYTES`
        bytes) is an InputError before anything is read (a deflate bomb is real data)."""
        import zipfile

        f, shape, dtype, fortran, nbytes = self._open(key)
        items = nbytes // max(1, dtype.itemsize)
        if (max_items is not None and items > max_items) or nbytes > NPZ_MAX_BYTES:
            f.close()
            raise InputError(f"array {short_repr(key)} of shape {short_repr(shape)} is larger "
                             f"than this field can be ({max_items if max_items is not None else NPZ_MAX_BYTES} "
                             f"{'items' if max_items is not None else 'bytes'})",
                             path=self.path, argument=key)
        try:
            with f:
                raw = f.read(nbytes)
        except (OSError, EOFError, zipfile.BadZipFile, ValueError) as exc:
            raise InputError(f"array {short_repr(key)} cannot be read: {short_repr(exc)}",
                             path=self.path, argument=key) from None
        if len(raw) != nbytes:
            raise InputError(f"array {short_repr(key)} is truncated", path=self.path,
                             argument=key)
        return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C") \
            .copy()

    def close(self) -> None:
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
