"""Format registry: adapters (openers) and writers keyed by hexrd's format names.

Adapter modules register themselves at import (``@register_opener('hdf5')``); :func:`open`
and :func:`write` only look names up, so the rest of the library never imports a format
module directly (as xarray's backends do).
"""
from __future__ import annotations

from typing import Callable

from ..errors import FormatError

_OPENERS: dict[str, Callable] = {}
_WRITERS: dict[str, Callable] = {}


def register_opener(name: str) -> Callable:
    def deco(func: Callable) -> Callable:
        _OPENERS[name] = func
        return func

    return deco


def register_writer(name: str) -> Callable:
    def deco(func: Callable) -> Callable:
        _WRITERS[name] = func
        return func

    return deco


def get_opener(name: str) -> Callable:
    try:
        return _OPENERS[name]
    except KeyError:
        raise FormatError(f"unknown imageseries format; known: {', '.join(sorted(_OPENERS))}",
                          argument=f"format={name!r}") from None


def get_writer(name: str) -> Callable:
    try:
        return _WRITERS[name]
    except KeyError:
        raise FormatError(f"cannot write this format; writable: {', '.join(sorted(_WRITERS))}",
                          argument=f"format={name!r}") from None


def formats() -> dict[str, tuple[bool, bool]]:
    """{format name: (can open, can write)}."""
    names = set(_OPENERS) | set(_WRITERS)
    return {n: (n in _OPENERS, n in _WRITERS) for n in sorted(names)}
