"""A series whose reads sleep: EDF frames behind an injected read latency (a parallel file
system's), for ``bench_survey.py``.  Registered as the image-series format ``slow-edf``:
a ``.slowscan`` JSON file ``{"files": "<glob of EDF files>", "latency_s": 0.025}`` (the
glob relative to the file) opens as the EDF series whose every block read first sleeps
``latency_s`` per frame.  Worker processes import this module to unpickle the blocks (it
must be importable there: ``benchmarks/`` on ``sys.path``, as multiprocessing hands it on).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from xrsmap_dask import imageseries
from xrsmap_dask.imageseries.base import BlockSource, ImageSeries
from xrsmap_dask.imageseries.registry import ImageSeriesFormat


class SlowSeries(ImageSeries):
    """``inner``'s frames, each read ``latency`` seconds late."""

    def __init__(self, inner: ImageSeries, latency: float):
        self._inner, self.latency = inner, float(latency)
        self._shape, self._dtype, self._metadata = inner.shape, inner.dtype, {}

    def __len__(self) -> int:
        return len(self._inner)

    @property
    def token(self) -> str:
        return f"slow-{self.latency}-{self._inner.token}"

    def _read_region(self, j, rows, cols):
        time.sleep(self.latency)
        return self._inner.read_block(j, j + 1, (rows, cols))[0]

    def block_source(self, start: int, stop: int) -> "SlowBlock":
        return SlowBlock(self._inner.block_source(start, stop), self.latency)


@dataclass
class SlowBlock(BlockSource):
    """The inner block, read after sleeping ``latency`` per frame."""

    inner: BlockSource
    latency: float

    @property
    def nframes(self) -> int:
        return self.inner.nframes

    def read(self, roi):
        time.sleep(self.latency * self.inner.nframes)
        return self.inner.read(roi)


class SlowFormat(ImageSeriesFormat):
    name = "slow-edf"
    description = "EDF files behind an injected read latency (benchmarks only)"
    suffixes = (".slowscan",)

    def open(self, filename, **kwargs):
        with open(filename) as f:
            desc = json.load(f)
        pattern = os.path.join(os.path.dirname(os.path.abspath(filename)), desc["files"])
        return SlowSeries(imageseries.from_files(pattern), desc["latency_s"])


def register() -> None:
    imageseries.register(SlowFormat())


def write_slowscan(path: str, files_glob: str, latency_s: float) -> None:
    with open(path, "w") as f:
        json.dump({"files": files_glob, "latency_s": latency_s}, f)
