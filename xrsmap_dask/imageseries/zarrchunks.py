"""Which frames of a zarr array (in a directory store) have a chunk that was never written.

zarr reads a chunk missing from the store as the array's fill value; we check presence
instead.  The stored objects are chunks, or shards for a sharded array (a chunk missing inside
a present shard is not seen).  Frames are axis 0 of a ``(frame, y, x)`` array; a ``(y, x)``
array is one frame.  Ranges are ``(start, stop)``, stop exclusive.  Cost: a few ``stat`` calls
for a small range, else one listing of the array's directory (proportional to the chunks
actually stored, whatever the metadata claim).
"""
from __future__ import annotations

import os
from collections import Counter

#: most chunk keys checked one by one (``stat``) before listing the directory instead
_STAT_LIMIT = 256


def key_grid(arr) -> tuple[int, ...]:
    """Shape of one stored object (a shard if the array is sharded, else a chunk)."""
    return tuple(arr.shards or arr.chunks)


def stored_keys(arr, array_dir: str) -> set[tuple[int, ...]]:
    """Grid coordinates of the chunks (shards) present in the array's directory."""
    meta = arr.metadata
    if hasattr(meta, "dimension_separator"):  # zarr v2
        prefix, sep = "", meta.dimension_separator
    else:
        enc = meta.chunk_key_encoding
        prefix, sep = ("c" + enc.separator if enc.name == "default" else ""), enc.separator
    found = set()
    for folder, _, files in os.walk(array_dir):
        rel = os.path.relpath(folder, array_dir).replace(os.sep, "/")
        for name in files:
            key = name if rel == "." else f"{rel}/{name}"
            parts = key[len(prefix):].split(sep) if key.startswith(prefix) else ()
            if len(parts) == arr.ndim and all(p.isdigit() for p in parts):
                found.add(tuple(int(p) for p in parts))
    return found


def all_stored(arr, array_dir: str) -> bool:
    """Whether every chunk (shard) of an array of any rank is in the store."""
    if arr.ndim == 0:
        return os.path.exists(os.path.join(array_dir, arr.metadata.encode_chunk_key(())))
    counts = [-(-n // g) for n, g in zip(arr.shape, key_grid(arr))]
    total = 1
    for c in counts:
        total *= c
    inside = [k for k in stored_keys(arr, array_dir) if all(x < n for x, n in zip(k, counts))]
    return len(inside) >= total


def _complete_frame_chunks(arr, array_dir: str, chunks: range, grid, counts) -> list[int]:
    """Sorted indices, within ``chunks``, of the frame chunks whose every key is stored."""
    need = counts[-2] * counts[-1]
    if len(chunks) * need <= _STAT_LIMIT:
        def stored(k):
            return all(os.path.exists(os.path.join(array_dir, arr.metadata.encode_chunk_key(
                (i, j) if arr.ndim == 2 else (k, i, j))))
                for i in range(counts[-2]) for j in range(counts[-1]))
        return [k for k in chunks if stored(k)]
    per_chunk = Counter(0 if arr.ndim == 2 else key[0] for key in stored_keys(arr, array_dir)
                        if all(x < n for x, n in zip(key, counts)))
    return sorted(k for k, n in per_chunk.items() if n >= need and k in chunks)


def missing_frame_ranges(arr, array_dir: str, start: int = 0,
                         stop: int | None = None) -> list[tuple[int, int]]:
    """``(start, stop)`` ranges of the frames in ``start .. stop - 1`` (default: all) with at
    least one chunk not stored (whole frames are checked, not a region)."""
    nframes, per = (1, 1) if arr.ndim == 2 else (arr.shape[0], key_grid(arr)[0])
    stop = nframes if stop is None else min(stop, nframes)
    if stop <= start:
        return []
    grid = key_grid(arr)
    counts = [-(-n // g) for n, g in zip(arr.shape, grid)]
    chunks = range(start // per, (stop - 1) // per + 1)
    ranges, pos = [], chunks.start
    for k in _complete_frame_chunks(arr, array_dir, chunks, grid, counts) + [chunks.stop]:
        if k > pos:
            ranges.append((max(pos * per, start), min(k * per, stop)))
        pos = k + 1
    return ranges


def format_ranges(ranges, limit: int = 5) -> str:
    """``[(0, 3), (7, 8)]`` -> ``'0..2, 7'`` (at most ``limit`` ranges, then a count)."""
    text = ", ".join(f"{a}..{b - 1}" if b - a > 1 else f"{a}" for a, b in ranges[:limit])
    if len(ranges) > limit:
        text += f", ... ({sum(b - a for a, b in ranges)} frames in all)"
    return text


def frame_ranges(frames, limit: int = 5) -> str:
    """``[0, 1, 2, 7]`` -> ``'0..2, 7'`` (sorted frame indices; see :func:`format_ranges`)."""
    ranges: list[list[int]] = []
    for f in frames:
        if ranges and f == ranges[-1][1]:
            ranges[-1][1] = f + 1
        else:
            ranges.append([f, f + 1])
    return format_ranges([tuple(r) for r in ranges], limit)
