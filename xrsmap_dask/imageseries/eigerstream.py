"""The ``eiger-stream-v1`` and ``eiger-stream-v2`` formats (hexrd's): Dectris stream frames.

Layout (HDF5)::

    /data/<j>/                    v1: frame j            (j = 0, 1, ... n-1)
    /data/<j>/threshold_1, .../threshold_2               v2: one group per threshold
        compression_type          'bslz4', 'lz4', 'csrnpz' or none
        dtype, shape, elem_size   of the decoded frame
        data                      the encoded bytes (opaque)
    /metadata/                    one dataset per key (groups: nested dicts)

``bslz4``/``lz4`` are decoded with ``dectris-compression``; ``csrnpz`` is a scipy sparse CSR
matrix saved with ``save_npz`` after an 8-byte big-endian size (loaded without pickles).
The declared size is checked against ``shape`` and ``dtype`` before anything is decoded.
v2's ``threshold_setting`` is ``'threshold_1'`` (default), ``'threshold_2'`` or ``'man_diff'``
(``threshold_1 - multiplier * threshold_2``, float64); change it with ``set_option``.
"""
from __future__ import annotations

import io
import os

import numpy as np

from ..errors import FormatError, FrameReadError, InputError
from ._errors import UnsupportedOptionError
from ._utils import check_regular_file, h5_group_to_dict, short_repr
from .base import ImageSeries
from .registry import ImageSeriesFormat, has_suffix, register

THRESHOLDS = ("threshold_1", "threshold_2", "man_diff")
#: largest decoded frame accepted (a lying header is an error before any allocation)
MAX_FRAME_BYTES = 1 << 32


def _text(value) -> str | None:
    value = value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return None if value in (None, "", "none", "None") else str(value)


def decompress_frame(d: dict) -> np.ndarray:
    """Decode one stream frame ``{compression_type, dtype, shape, elem_size, data}``."""
    kind = _text(d.get("compression_type"))
    if kind not in (None, "lz4", "bslz4", "csrnpz"):
        raise InputError(f"Unsupported compression type: {kind}")
    try:
        dt = d["dtype"]
        dtype = np.dtype(_text(dt) if isinstance(dt, (str, bytes, np.ndarray)) else dt)
        shape = tuple(int(v) for v in np.asarray(d["shape"]).ravel())
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"stream frame lacks a valid dtype/shape: {short_repr(exc)}") \
            from None
    data = d["data"]
    raw = data.tobytes() if isinstance(data, (np.void, np.ndarray)) else bytes(data)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(shape) != 2 or nbytes > MAX_FRAME_BYTES:
        raise FormatError(f"stream frame shape {shape} is not a frame we can hold")
    if kind is None:
        if len(raw) != nbytes:
            raise FormatError(f"uncompressed frame has {len(raw)} bytes, expected {nbytes}")
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    declared = int.from_bytes(raw[:8], "big") if len(raw) >= 8 else -1
    if declared != nbytes:
        raise FormatError(f"{kind} frame declares {declared} bytes, its shape and dtype make "
                          f"{nbytes}")
    if kind == "csrnpz":
        import scipy.sparse

        try:
            frame = scipy.sparse.load_npz(io.BytesIO(raw[8:])).toarray()
        except Exception as exc:  # noqa: BLE001 - any damage in the embedded npz
            raise FormatError(f"csrnpz frame cannot be decoded: {short_repr(exc)}") from None
        if frame.shape != shape:
            raise FormatError(f"csrnpz frame has shape {frame.shape}, declared {shape}")
        return frame.astype(dtype, copy=False)
    try:
        from dectris.compression import decompress
    except ImportError:  # pragma: no cover - a dependency
        raise FormatError("decoding lz4/bslz4 stream frames needs the dectris-compression "
                          "package") from None
    try:
        out = decompress(raw, kind, elem_size=int(np.asarray(d.get("elem_size",
                                                                   dtype.itemsize))))
    except Exception as exc:  # noqa: BLE001 - a damaged stream
        raise FormatError(f"{kind} frame cannot be decoded: {short_repr(exc)}") from None
    if len(out) != nbytes:
        raise FormatError(f"{kind} frame decodes to {len(out)} bytes, expected {nbytes}")
    return np.frombuffer(out, dtype=dtype).reshape(shape).copy()


def _read_entry(group) -> dict:
    return {k: group[k][()] for k in group}


class EigerStreamV1ImageSeries(ImageSeries):
    """Frames of an Eiger stream v1 file (see the module docstring)."""

    _entry_suffix = ""

    def __init__(self, filename, **options):
        import h5py

        if isinstance(filename, h5py.Group):
            filename = filename.file.filename
        self.filename = os.path.abspath(os.fspath(filename))
        check_regular_file(self.filename)
        self._options = {}
        for key, value in options.items():
            self.set_option(key, value)
        try:
            with h5py.File(self.filename, "r") as f:
                keys = list(f["data"].keys())
                if sorted(keys, key=lambda k: int(k) if k.isdigit() else -1) != \
                        [str(i) for i in range(len(keys))]:
                    raise FormatError("stream '/data' entries are not 0 .. n-1",
                                      path=self.filename)
                self._nframes = len(keys)
                self._metadata = h5_group_to_dict(f["metadata"]) if "metadata" in f else {}
        except (OSError, KeyError) as exc:
            raise FormatError(f"not an Eiger stream file: {short_repr(exc)}",
                              path=self.filename) from None
        first = self._raw_frame(0, self._first_setting()) if self._nframes else np.zeros((0, 0))
        self._shape, self._frame_dtype = first.shape, first.dtype

    def _first_setting(self) -> str:
        return ""

    @property
    def dtype(self) -> np.dtype:
        return self._frame_dtype

    def _raw_frame(self, j: int, setting: str) -> np.ndarray:
        import h5py

        try:
            with h5py.File(self.filename, "r") as f:
                entry = f["data"][str(j)]
                entry = entry[setting] if setting else entry
                return decompress_frame(_read_entry(entry))
        except FormatError as exc:
            raise FrameReadError(exc.reason, path=self.filename, frame=j) from None
        except (OSError, KeyError) as exc:
            raise FrameReadError(f"cannot read the stream frame: {short_repr(exc)}",
                                 path=self.filename, frame=j) from None

    def __len__(self) -> int:
        return self._nframes

    def _read_region(self, j: int, rows: slice, cols: slice) -> np.ndarray:
        return self._raw_frame(j, "")[rows, cols]


class EigerStreamV2ImageSeries(EigerStreamV1ImageSeries):
    """Frames of an Eiger stream v2 file: one of its thresholds, or their difference."""

    def __init__(self, filename, threshold_setting: str = "threshold_1",
                 multiplier: float = 1.0):
        super().__init__(filename, threshold_setting=threshold_setting, multiplier=multiplier)

    def _first_setting(self) -> str:
        return "threshold_1"

    @property
    def threshold_setting(self) -> str:
        return self._options["threshold_setting"]

    @property
    def multiplier(self) -> float:
        return self._options["multiplier"]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype("float64") if self.threshold_setting == "man_diff" \
            else self._frame_dtype

    def set_option(self, key: str, value) -> None:
        """``threshold_setting`` (one of :data:`THRESHOLDS`) or ``multiplier`` (a number)."""
        if key == "threshold_setting" and value in THRESHOLDS:
            self._options[key] = value
        elif key == "multiplier" and isinstance(value, (int, float, np.number)) \
                and not isinstance(value, bool):
            self._options[key] = float(value)
        else:
            raise UnsupportedOptionError(
                f"{short_repr(key)} = {short_repr(value)} is not an option: threshold_setting "
                f"in {list(THRESHOLDS)}, multiplier a number", argument=str(key))
        self.__dict__.pop("_token", None)

    def option_values(self) -> dict:
        return dict(self._options)

    def _read_region(self, j: int, rows: slice, cols: slice) -> np.ndarray:
        if self.threshold_setting == "man_diff":
            one = self._raw_frame(j, "threshold_1")[rows, cols]
            two = self._raw_frame(j, "threshold_2")[rows, cols]
            return one - self.multiplier * two
        return self._raw_frame(j, self.threshold_setting)[rows, cols]


def _stream_version(path: str) -> int:
    """1 or 2 for an Eiger stream file, else 0."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            first = f.get("data/0")
            if isinstance(first, h5py.Group):
                return 2 if "threshold_1" in first else 1 if "compression_type" in first else 0
    except (OSError, ValueError):
        pass
    return 0


class EigerStreamFormat(ImageSeriesFormat):
    suffixes = (".h5", ".hdf5")
    guess_priority = 1

    def __init__(self, version: int):
        self.version = version
        self.name = f"eiger-stream-v{version}"
        self.description = (f"Dectris Eiger stream frames, v{version} (bslz4/lz4/csrnpz; "
                            "hexrd's layout)")
        self.open_keywords = frozenset() if version == 1 else \
            frozenset({"threshold_setting", "multiplier"})

    def guess_can_open(self, path: str) -> bool:
        return has_suffix(path, self.suffixes) and _stream_version(path) == self.version

    def open(self, filename, **kwargs) -> ImageSeries:
        cls = EigerStreamV1ImageSeries if self.version == 1 else EigerStreamV2ImageSeries
        return cls(filename, **kwargs)


register(EigerStreamFormat(1))
register(EigerStreamFormat(2))
