"""Files written by ours must open in the real hexrd with equal frames and metadata.

    python tools/hexrd_crosscheck.py write DIR         # with xrsmap-dask installed
    HEXRD_PYTHON tools/hexrd_crosscheck.py check DIR   # with the real hexrd installed

``write`` writes every format both implement with our writers; ``check`` opens each with
hexrd (from another working directory than DIR, since hexrd resolves YAML paths against it)
and compares frames and metadata with the same reference; it prints one line per file and
exits 1 on the first difference.
"""
import os
import sys

import numpy as np

# file -> (format, write keywords, hexrd open)
FILES = {
    "ours.h5": ("hdf5", {"path": "imageseries", "gzip": 4}),
    "ours.npz": ("frame-cache", {"threshold": 0, "style": "npz"}),
    "ours.fch5": ("frame-cache", {"threshold": 0, "style": "fch5"}),
    "ours_fc.yml": ("frame-cache", {"threshold": 0, "style": "yml"}),
    "ours_files.yml": ("image-files", {}),
    "ours_raw.yml": ("raw-image", {}),
}


def reference():
    a = (np.arange(5 * 9 * 11, dtype=np.int64).reshape(5, 9, 11) * 7919) % 1000
    a[a < 500] = 0
    omega = np.column_stack([np.arange(5) * 0.5, np.arange(1, 6) * 0.5])
    return a.astype(np.uint16), {"omega": omega, "panel": "ff1", "temperature": 295.5}


def write(out: str) -> None:
    from xrsmap_dask import imageseries

    data, meta = reference()
    ims = imageseries.open(None, "array", data=data, meta=meta)
    os.makedirs(out, exist_ok=True)
    for name, (fmt, kw) in FILES.items():
        imageseries.write(ims, os.path.join(out, name), fmt, **kw)
        print(f"ours wrote {name} [{fmt}]")


def _hexrd_open(path: str, fmt: str):
    from hexrd.core import imageseries
    from hexrd.core.imageseries.load.framecache import FrameCacheImageSeriesAdapter
    from hexrd.core.imageseries.load.rawimage import RawImageSeriesAdapter

    if path.endswith("ours_fc.yml"):
        return imageseries.ImageSeries(FrameCacheImageSeriesAdapter(path, style="yml"))
    if fmt == "raw-image":
        return imageseries.ImageSeries(RawImageSeriesAdapter(path))
    if fmt == "hdf5":
        return imageseries.open(path, fmt, path="imageseries")
    if fmt == "frame-cache":
        return imageseries.open(path, fmt, style=os.path.splitext(path)[1][1:])
    return imageseries.open(path, fmt)


def check(out: str) -> int:
    data, meta = reference()
    os.chdir(os.path.dirname(os.path.abspath(out)) or "/")
    failed = 0
    for name, (fmt, _) in FILES.items():
        try:
            ims = _hexrd_open(os.path.join(out, name), fmt)
            got = np.stack([np.asarray(ims[i]) for i in range(len(ims))])
            problems = [] if np.array_equal(got, data) and got.dtype == data.dtype else \
                [f"frames differ ({got.dtype} {got.shape})"]
            md = ims.metadata
            if fmt != "raw-image":  # hexrd's raw-image reader has no metadata
                if not np.array_equal(np.asarray(md.get("omega")), meta["omega"]):
                    problems.append("omega differs")
                if str(np.asarray(md.get("panel")).astype(str)) != meta["panel"]:
                    problems.append(f"panel {md.get('panel')!r}")
                if float(np.asarray(md.get("temperature"))) != meta["temperature"]:
                    problems.append(f"temperature {md.get('temperature')!r}")
        except Exception as exc:  # noqa: BLE001 - report and go on
            problems = [f"{type(exc).__name__}: {exc}"]
        failed += bool(problems)
        print(f"hexrd reads {name} [{fmt}]: {'OK' if not problems else '; '.join(problems)}")
    return 1 if failed else 0


if __name__ == "__main__":
    mode, target = sys.argv[1], os.path.abspath(sys.argv[2])
    sys.exit(write(target) if mode == "write" else check(target))
