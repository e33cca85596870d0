"""The ``image-files`` format: a YAML listing image files (hexrd's layout), headers read only.

.. code-block:: yaml

    image-files:
      directory: frames          # relative to the YAML file's directory
      files: "scan_*.edf more_*.edf"   # whitespace-separated globs; each glob's matches sorted
    options:
      empty-frames: 0            # frames skipped at the start of each file
      max-total-frames: 0        # 0: no limit (hexrd's older name: max-frames)
      max-file-frames: 0
      dtype: float32             # optional cast
    meta:
      omega: "! load-numpy-array omega.npy"   # a .npy beside the YAML (allow_pickle=False)
      temperature: 295.0

``open(yaml, 'image-files')`` takes a path or the YAML text itself.  Unlike hexrd, which reads
every file whole at open time, the series parses headers only
(:class:`~xrsmap_dask.imageseries.filelist.FileListImageSeries`).  The writer stores each
frame as an EDF file in a directory beside the YAML and writes the YAML pointing at them.
"""
from __future__ import annotations

import glob
import os

import numpy as np

from ..errors import FormatError, InputError
from ._cast import CastImageSeries
from ._utils import (check_regular_file, frames_per_write, load_npy, resolve_relative, short_repr,  # noqa: F401
                     yaml_meta, yaml_meta_out, yaml_top_keys)
from ._yaml import load_yaml
from .filelist import FileListImageSeries
from .registry import ImageSeriesFormat, has_suffix, register

_OPTION_NAMES = {"empty-frames": "empty_frames", "max-total-frames": "max_total_frames",
                 "max-frames": "max_total_frames", "max-file-frames": "max_file_frames",
                 "dtype": "dtype"}


# -- reader --------------------------------------------------------------------------------
def _read_doc(source) -> tuple[dict, str | None]:
    """(YAML document, YAML path or None for text).

    An existing file, a PathLike, or a one-line string without ``:`` is a path; any other
    string is YAML text.
    """
    if isinstance(source, os.PathLike):
        path = os.fspath(source)
        check_regular_file(path)
        return load_yaml(path), path
    if not isinstance(source, str):
        raise InputError(f"expected a YAML path or YAML text, got {type(source).__name__}",
                         argument="filename")
    if os.path.exists(source) or ("\n" not in source and ":" not in source):
        check_regular_file(source)
        return load_yaml(source), source
    return load_yaml(source, is_text=True), None


def resolve_files(directory: str, patterns, where: str) -> list[str]:
    """Files matching whitespace-separated globs in ``directory``, all sorted together (as
    hexrd does).  ``patterns`` is a string (hexrd) or a list of globs.  No match at all
    raises InputError naming the globs and ``where`` (the YAML)."""
    if isinstance(patterns, (list, tuple)) and all(isinstance(p, str) for p in patterns):
        patterns = " ".join(patterns)
    if not isinstance(patterns, str) or not patterns.split():
        raise InputError("image-files 'files' must be a string of one or more globs",
                         path=where)
    found: set[str] = set()
    for pattern in patterns.split():
        # the directory is literal (may hold [ ] * ?); only the pattern is a glob
        found.update(glob.glob(os.path.join(glob.escape(directory), pattern)))
    if not found:
        raise InputError(f"the globs {short_repr(patterns)} match no file in {directory!r}",
                         path=where)
    return sorted(found)


def _options(options, where: str) -> dict:
    """The YAML's ``options:`` as FileListImageSeries keywords."""
    if not isinstance(options, dict):
        raise FormatError("'options:' must be a mapping", path=where)
    opts = {}
    for k, v in options.items():
        if k not in _OPTION_NAMES:
            raise InputError(f"unknown image-files option {short_repr(k)}; known: "
                             f"{sorted(_OPTION_NAMES)}", path=where)
        if v is None:
            continue
        if k == "dtype":
            try:
                v = np.dtype(v)
            except (TypeError, ValueError):
                raise InputError(f"option dtype {short_repr(v)} is not a numpy dtype",
                                 path=where) from None
        elif isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InputError(f"option {k} must be an int >= 0, got {short_repr(v)}",
                             path=where)
        opts[_OPTION_NAMES[k]] = v
    return opts


def open_imagefiles(filename, on_error: str = "raise", **kwargs):
    """Open the series a hexrd image-files YAML (path or text) describes; headers read only.

    Extra keyword arguments (``empty_frames``, ``max_total_frames``, ``max_file_frames``,
    ``dtype``) override the YAML's ``options:``.  A relative ``directory`` is looked up
    beside the YAML, then in the working directory (hexrd's rule).  With ``dtype``, a frame
    whose values that dtype cannot hold raises
    :class:`~xrsmap_dask.imageseries._errors.FrameRuntimeError` (hexrd: ``RuntimeError``).
    """
    doc, path = _read_doc(filename)
    where = path if path is not None else "<yaml text>"
    if not isinstance(doc, dict) or not isinstance(doc.get("image-files"), dict):
        raise FormatError("an image-files YAML needs an 'image-files:' mapping", path=where)
    spec = doc["image-files"]
    if "files" not in spec:
        raise FormatError("'image-files:' has no 'files'", path=where)
    directory = spec.get("directory") or "."
    if not isinstance(directory, str):
        raise InputError(f"must be a path, got {short_repr(directory)}", path=where,
                         argument="image-files.directory")
    directory = resolve_relative(directory, path, what="image-files directory")
    files = resolve_files(directory, spec["files"], where)
    opts = _options(doc.get("options") or {}, where)
    opts.update(kwargs)
    meta = doc.get("meta") or {}
    if not isinstance(meta, dict):
        raise FormatError("'meta:' must be a mapping", path=where)
    dtype = opts.pop("dtype", None)
    series = FileListImageSeries(files, meta=yaml_meta(meta, path), on_error=on_error, **opts)
    if dtype is None or np.dtype(dtype) == series.dtype:
        return series
    return CastImageSeries(series, dtype)


# -- writer --------------------------------------------------------------------------------
def write_imagefiles(ims, filename, directory: str | None = None, prefix: str | None = None,
                     meta: dict | None = None, overwrite: bool = False) -> None:
    """Write each frame as an EDF file and ``filename``, the YAML listing them.

    Parameters
    ----------
    filename : str or PathLike
        The YAML file.
    directory : str, optional
        Where the frames go, relative to the YAML's directory (default ``<yaml stem>_frames``).
    prefix : str, optional
        File name prefix (default the YAML stem); files are ``<prefix>_<index:06d>.edf``.
    meta : dict, optional
        Metadata instead of ``ims.metadata``; arrays go to ``.npy`` files beside the YAML.
    overwrite : bool
        The YAML lists the frames by a glob, so frame files of an earlier write in the same
        directory would join the series: they raise InputError unless ``overwrite=True``,
        which deletes them (only files matching this writer's glob) first.
    """
    import fabio.edfimage
    import yaml

    filename = os.fspath(filename)
    base = os.path.dirname(os.path.abspath(filename))
    stem = os.path.splitext(os.path.basename(filename))[0]
    directory = directory or f"{stem}_frames"
    prefix = prefix or stem
    out_dir = os.path.join(base, directory)
    os.makedirs(out_dir, exist_ok=True)
    nframes = len(ims)
    width = max(6, len(str(nframes - 1)))
    pattern = f"{prefix}_{'?' * width}.edf"
    stale = glob.glob(os.path.join(glob.escape(out_dir), pattern))
    if stale and not overwrite:
        raise InputError(f"{out_dir!r} already holds {len(stale)} files matching {pattern!r} "
                         "(they would join the series); pass overwrite=True to replace them",
                         path=filename)
    for old in stale:
        os.remove(old)
    h, w = ims.shape
    step = frames_per_write(h * w * np.dtype(ims.dtype).itemsize, nframes)
    for start in range(0, nframes, step):
        block = ims.read_block(start, min(nframes, start + step))
        for k in range(block.shape[0]):
            name = os.path.join(out_dir, f"{prefix}_{start + k:0{width}d}.edf")
            fabio.edfimage.EdfImage(data=np.ascontiguousarray(block[k])).write(name)
    # absolute: hexrd resolves the directory against the working directory
    doc = {"image-files": {"directory": out_dir, "files": pattern},
           "options": {"empty-frames": 0, "max-total-frames": 0},
           "meta": yaml_meta_out(dict(ims.metadata if meta is None else meta), filename)}
    with open(filename, "w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f, sort_keys=False)


class ImageFilesFormat(ImageSeriesFormat):
    name = "image-files"
    description = "YAML listing image files (directory + globs), options and metadata"
    suffixes = (".yml", ".yaml")
    open_keywords = frozenset({"empty_frames", "max_total_frames", "max_file_frames", "dtype"})
    write_keywords = frozenset({"directory", "prefix", "meta", "overwrite"})
    accepts_on_error = True

    def guess_can_open(self, path: str) -> bool:
        return has_suffix(path, self.suffixes) and "image-files" in yaml_top_keys(path)

    def open(self, filename, **kwargs) -> FileListImageSeries:
        return open_imagefiles(filename, **kwargs)

    def write(self, ims, filename, **kwargs) -> None:
        write_imagefiles(ims, filename, **kwargs)


register(ImageFilesFormat())
