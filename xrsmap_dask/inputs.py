"""Input resolution, used by every command and face: strings -> :class:`InputSpec` ->
an open image series; correction images from paths.

Input strings (CLI arguments, a YAML ``inputs`` value, ``Mapper``'s ``in_files``): a path,
a glob (sorted), ``@list.txt`` (one path per line, ``#`` comments, relative to the list
file), ``file.h5:/path/to/dataset`` (also ``store.zarr:/group``) or an imageseries file
(YAML, npz, fch5, zarr, h5).  Relative paths start from a base directory (a job spec's
directory, else the working directory).  Resolving checks that files exist; opening reads
headers only.
"""
from __future__ import annotations

import glob as _glob
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .errors import InputError, UnsafeInputError

@dataclass(frozen=True)
class InputSpec:
    """Where a scan's frames are: resolved absolute paths, not yet opened.

    ``kind`` is ``'files'`` (image files, in order) or the name of the image-series format
    that reads the one file ``paths[0]`` (``'hdf5'``, ``'zarr'``, ``'frame-cache'``,
    ``'image-files'``, ...: whatever the format registry guesses; ``'guess'`` when that
    needs the file opened), with ``dataset`` the path inside it (``file.h5:/entry/data``)
    when one was given.
    """

    kind: str
    paths: tuple[str, ...]
    dataset: str | None = None
    #: reader keywords (``missing_chunks`` ...) as ``(name, value)`` pairs, given to the
    #: format when it accepts them
    options: tuple = ()

    def describe(self) -> str:
        if self.kind == "files":
            first = self.paths[0]
            return first if len(self.paths) == 1 else f"{len(self.paths)} files ({first} ...)"
        return self.paths[0] + (f":{self.dataset}" if self.dataset else "")


def _split_dataset(item: str) -> tuple[str, str | None]:
    """``file.h5:/group/data`` -> (``file.h5``, ``/group/data``); else (item, None): the
    format registry's splitter."""
    from .imageseries import split_inner_path

    return split_inner_path(item)


def _series_format(path: str) -> str | None:
    """The image-series format of one input file, ``None`` for a plain image file, or
    ``'guess'`` when guessing needs the file's content and the content is bad (an unsafe or
    invalid YAML): the error is then raised when the scan's input is opened, so that it fails
    that scan, not the validation of a whole job spec."""
    from .errors import FormatError
    from .imageseries import guess_format

    try:
        fmt = guess_format(path)
    except FormatError:
        return None
    except InputError:
        return "guess"
    return None if fmt == "files" else fmt


def _is_glob(item: str) -> bool:
    return any(ch in item for ch in "*?[")


def resolve_inputs(items: str | Sequence[str], base_dir: str | None = None,
                   argument: str = "inputs", allow_missing: bool = False,
                   options: dict | None = None) -> InputSpec:
    """Resolve input strings (CLI arguments or a YAML ``inputs`` value) to an :class:`InputSpec`.

    Each item is a path, a glob (sorted), ``@list.txt`` (one path per line, ``#`` comments,
    relative to the list file), ``file.h5:/path/to/dataset`` (also ``store.zarr:/group``) or
    an imageseries file (YAML, npz, fch5, zarr, h5, an Eiger master).  Several items must all
    be image files, or all HDF5 files (one series, their frames one after the other).
    Relative paths are taken relative to ``base_dir`` (default: the working directory).
    Files are checked to exist (a listed image file may be missing with ``allow_missing``:
    with ``on_error='fill'`` it becomes a NaN frame); nothing is opened or run.
    ``options`` are reader keywords carried with the result
    (:func:`xrsmap_dask.settings.options.read_options`).
    """
    from dataclasses import replace

    spec = _resolve(items, base_dir, argument, allow_missing)
    return replace(spec, options=tuple(sorted((options or {}).items())))


def _resolve(items: str | Sequence[str], base_dir: str | None = None,
             argument: str = "inputs", allow_missing: bool = False) -> InputSpec:
    if isinstance(items, (str, os.PathLike)):
        items = [os.fspath(items)]
    if not isinstance(items, (list, tuple)) or not items:
        raise InputError("give at least one input (path, glob, @list.txt or file.h5:/dataset)",
                         argument=argument)
    base = os.path.abspath(base_dir) if base_dir else os.getcwd()

    def absolute(p: str, rel_to: str = base) -> str:
        p = os.path.expanduser(str(p))
        return os.path.normpath(p if os.path.isabs(p) else os.path.join(rel_to, p))

    files: list[str] = []
    for raw in items:
        if not isinstance(raw, (str, os.PathLike)):
            raise InputError(f"inputs must be strings, got {raw!r}", argument=argument)
        item = os.fspath(raw).strip()
        if item.startswith("@"):
            listfile = absolute(item[1:])
            try:
                with open(listfile, encoding="utf-8") as f:
                    lines = [ln.strip() for ln in f]
            except OSError as exc:
                raise InputError(f"cannot read the file list: {exc.strerror}",
                                 path=listfile) from None
            names = [ln for ln in lines if ln and not ln.startswith("#")]
            if not names:
                raise InputError("the file list is empty", path=listfile)
            files.extend(absolute(n, os.path.dirname(listfile)) for n in names)
            continue
        path, dataset = _split_dataset(item)
        full = absolute(path)
        fmt = None
        if dataset is not None or (len(items) == 1 and not _is_glob(item)
                                   and os.path.exists(full)):
            fmt = _series_format(full)
        if fmt is not None:
            if len(items) != 1:
                raise InputError("an HDF5/zarr dataset or imageseries file must be the only "
                                 f"input, got {len(items)} inputs", argument=argument)
            if not os.path.exists(full):
                raise InputError("file not found", path=full, argument=argument)
            return InputSpec(fmt, (full,), dataset)
        if _is_glob(item):
            found = sorted(_glob.glob(absolute(item)))
            if not found:
                raise InputError("no file matches this pattern", path=absolute(item),
                                 argument=argument)
            files.extend(found)
        else:
            files.append(absolute(item))
    missing = [p for p in files if not os.path.exists(p)]
    if len(missing) == len(files) or (missing and not allow_missing):
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(f"file not found{more}", path=missing[0], argument=argument)
    return InputSpec(_multi_file_format(files), tuple(files))


def _multi_file_format(files: list[str]) -> str:
    """``'nexus'`` when every file is HDF5 (several files of one scan: one series, their
    frames one after the other), else ``'files'`` (image files)."""
    from .io.nexus import is_hdf5_file

    if len(files) > 1 and all(os.path.exists(f) and is_hdf5_file(f) for f in files):
        return "nexus"
    return "files"


def open_inputs(spec: InputSpec, on_error: str = "raise", progress=None):
    """Open an :class:`InputSpec` as an ImageSeries (headers only for image files;
    ``progress(done, total)`` follows the header reads).  The format registry refuses
    ``on_error='fill'`` for formats without that policy, naming the format."""
    from . import imageseries

    if spec.kind == "files":
        return imageseries.from_files(list(spec.paths), on_error=on_error, progress=progress)
    policy = {} if on_error == "raise" else {"on_error": on_error}
    if spec.options and spec.kind != "guess":
        accepted = imageseries.get_format(spec.kind).open_keywords
        policy.update({k: v for k, v in spec.options if k in accepted})
    if len(spec.paths) > 1:
        return imageseries.open(list(spec.paths), spec.kind, **policy)
    name = spec.paths[0] + (f":{spec.dataset}" if spec.dataset else "")
    try:
        return imageseries.open(name, None if spec.kind == "guess" else spec.kind, **policy)
    except InputError as exc:
        if exc.argument == "on_error":
            raise InputError(exc.reason, path=spec.paths[0], argument="on_error") from None
        raise


def open_series(inputs: Any, on_error: str = "raise", progress=None, base_dir=None,
                options: dict | None = None):
    """An image series from anything a face accepts: an :class:`InputSpec`, an image series
    (returned as is), a list of image paths (each must be a frame file: a missing one is a
    :class:`FrameReadError` naming it and its frame), or one input string (a glob,
    ``@list.txt``, ``file.h5:/data``, an imageseries file)."""
    from .imageseries import ImageSeries, from_files

    if isinstance(inputs, ImageSeries):
        return inputs
    if isinstance(inputs, (list, tuple)):
        if not inputs:
            raise InputError("no input files", argument="inputs")
        return from_files([os.fspath(p) for p in inputs], on_error=on_error, progress=progress)
    if isinstance(inputs, (str, os.PathLike)) and _is_glob(os.fspath(inputs)):
        return from_files(os.fspath(inputs), on_error=on_error, progress=progress)
    if not isinstance(inputs, InputSpec):
        inputs = resolve_inputs(inputs, base_dir, allow_missing=on_error == "fill",
                                options=options)
    return open_inputs(inputs, on_error=on_error, progress=progress)


def read_image(value: Any, argument: str) -> np.ndarray | None:
    """A 2-D image (mask, dark, flat, background image) from a path or an array.

    Paths: ``.npy`` (``allow_pickle=False``), ``file.h5:/dataset`` (a 2-D dataset, or a
    3-D one of one frame; a bare HDF5 file: its detector pixel mask), ``store.zarr:/array``,
    or an image file (EDF header-checked: a truncated file is an error, never zero-padded;
    others via fabio).
    ``None`` passes.  Errors name the file and ``argument``.
    """
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        data = np.asarray(value)
    else:
        path = os.fspath(value)
        data = _read_image_file(path, argument)
    if data.ndim != 2:
        raise InputError(f"expected a 2-D image, got shape {data.shape}",
                         path=value if isinstance(value, str) else None, argument=argument)
    return data


def _read_image_file(path: str, argument: str) -> np.ndarray:
    file, dataset = _split_dataset(path)
    try:
        if dataset is None and not os.path.exists(file):
            raise InputError("file not found", path=file, argument=argument)
        from .io.nexus import is_hdf5_file

        if is_hdf5_file(file):  # file.h5:/image, or a file's own detector mask
            from .io.h5info import read_mask_image

            return read_mask_image(path, argument)
        if dataset is not None:
            ims = open_inputs(InputSpec(_series_format(file) or "zarr", (file,), dataset))
            if len(ims) != 1:
                raise InputError(f"expected one image, {dataset} holds {len(ims)} frames",
                                 path=file, argument=argument)
            return np.asarray(ims[0])
        if path.lower().endswith(".npy"):
            from .imageseries.imagefiles import load_npy

            return np.asarray(load_npy(path))
        from .imageseries import read_image as read_image_file

        return np.asarray(read_image_file(path, argument))
    except UnsafeInputError as exc:
        raise UnsafeInputError(exc.reason, path=path, argument=argument) from None
    except InputError as exc:
        raise InputError(exc.reason, path=exc.path or path, argument=argument) from None


def read_norm(value: Any, nframes: int | None = None) -> np.ndarray | None:
    """Per-frame normalisation values from a ``.npy``/text file or an array; ``None``
    passes.  With ``nframes``, the count must match."""
    if value is None:
        return None
    path = value if isinstance(value, str) else None
    if path is not None:
        try:
            value = np.load(path, allow_pickle=False) if path.endswith(".npy") \
                else np.loadtxt(path, dtype=np.float64, ndmin=1)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read per-frame norm values: {exc}", path=path,
                             argument="norm") from None
    norm = np.asarray(value, dtype=np.float64)
    if nframes is not None and norm.size != nframes:
        raise InputError(f"{norm.size} values for {nframes} frames", path=path,
                         argument="norm")
    return norm
